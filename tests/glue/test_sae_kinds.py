"""The kinds of dictionary through `train.py` on the tiny model: a warm start refits the input scale and
offset to a planted twin (the tiny model with its last block's output scaled and shifted), the affine-map null
of that twin (an exact affine image of the base) trains what the domain run trains, a second control seed is
one override, died latents are counted, and a new kind is one class and one registry line."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from finsae.analysis.warmstart import decoder_drift
from finsae.sae import load

pytestmark = pytest.mark.slow
BASE = ["debug=tiny", "layer=1", "logger=none", "downstream_docs=0"]
SCALE, SHIFT = 2.5, 0.75


def train(root, tmp, *overrides, check=True):
    cmd = [sys.executable, "train.py", *BASE, f"paths.artifacts={tmp / 'art'}", *overrides]
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600, check=False)
    if check:
        assert r.returncode == 0, r.stderr[-4000:]
    return r


def folder(tmp, tag):
    return tmp / "art" / "sae" / "tiny" / "layer_1" / tag


def summary(tmp, tag) -> dict:
    return json.loads((folder(tmp, tag) / "summary.json").read_text())


@pytest.fixture(scope="module")
def tmp(tmp_path_factory, data_dir):
    return tmp_path_factory.mktemp("sae_kinds")


@pytest.fixture(scope="module")
def planted_twin(tmp):
    """The tiny model saved with block 1's output LayerNorm scaled by SCALE and shifted by SHIFT: its layer-1
    activations are exactly ``SCALE * h_base + SHIFT`` (an affine image of the base's)."""
    from finsae.models import get_spec, load_model

    loaded = load_model(get_spec("tiny"))
    norm = loaded.model.encoder.layer[1].output.LayerNorm
    with torch.no_grad():
        norm.weight.mul_(SCALE)
        norm.bias.mul_(SCALE).add_(SHIFT)
    out = tmp / "twin"
    loaded.model.save_pretrained(out)
    loaded.tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def start(project_root, tmp):
    train(project_root, tmp, "tag=src")
    return folder(tmp, "src")


def test_a_warm_start_refits_scale_and_offset_to_the_twin(project_root, tmp, planted_twin, start):
    twin = [f"model.path={planted_twin}", f"sae.init_from={start}", "seed=1", "sae.tokens=512"]  # one step
    train(project_root, tmp, *twin, "tag=refit")
    train(project_root, tmp, *twin, "tag=norefit", "sae.init_refit=false")
    base, refit, kept = load(start), load(folder(tmp, "refit")), load(folder(tmp, "norefit"))
    assert float(kept.norm_scale) == float(base.norm_scale)
    # 1 / RMS of the twin's rows: the scale's 1 / SCALE, a little less as the shift adds to the norm
    assert 0.9 < float(refit.norm_scale) * SCALE / float(base.norm_scale) < 1.0
    # b_dec follows the twin's mean: in input units it moves to SCALE * mean + SHIFT
    offset = refit.b_dec.detach().numpy() / float(refit.norm_scale)
    expected = SCALE * base.b_dec.detach().numpy() / float(base.norm_scale) + SHIFT
    assert np.abs(offset - expected).max() < 0.1 * np.abs(expected).max()
    s = summary(tmp, "refit")
    assert s["init_refit"] is True and s["init_from"] == str(start) and isinstance(s["died"], int)
    assert summary(tmp, "norefit")["init_refit"] is False
    extra = json.loads((folder(tmp, "refit") / "cfg.json").read_text())["extra"]
    assert extra["model_path"] == str(planted_twin)


def test_the_affine_null_of_an_affine_twin_trains_what_the_domain_run_trains(project_root, tmp, planted_twin,
                                                                               start):
    twin = [f"model.path={planted_twin}", f"sae.init_from={start}", "seed=1"]
    train(project_root, tmp, *twin, "tag=domain")
    r = train(project_root, tmp, *twin, "tag=affine", "sae.dictionary=affine_null")
    assert "affine null: map fitted on" in r.stdout
    s = summary(tmp, "affine")
    assert s["affine_r2"] > 0.999 and s["affine_fit_rows"] > 0 and s["affine_fit_docs"] > 0
    assert s["affine_eval_docs"] > 0 and s["model"] == "tiny" and isinstance(s["died"], int)
    base = load(start)
    domain = decoder_drift(base, load(folder(tmp, "domain")))
    null = decoder_drift(base, load(folder(tmp, "affine")))
    assert domain.max() > 0.01  # both trained
    assert np.nanmax(np.abs(domain - null)) < 0.1 * np.nanmax(domain)  # no latent drifts beyond the null


def test_a_second_control_seed_is_one_override(project_root, tmp, start):
    for seed, tag in ((1, "control"), (2, "control_b")):
        train(project_root, tmp, f"sae.init_from={start}", f"seed={seed}", f"tag={tag}")
    a, b = load(folder(tmp, "control")), load(folder(tmp, "control_b"))
    assert summary(tmp, "control")["seed"] == 1 and summary(tmp, "control_b")["seed"] == 2
    assert not torch.equal(a.W_dec, b.W_dec)  # another data order: an out-of-sample control


def test_bad_kinds_fail_before_work(project_root, tmp, start):
    from finsae.sae import SaeConfig, TopKSAE, save

    sae = TopKSAE(SaeConfig(d_in=32, expansion_factor=4, k=4))
    anonymous = save(sae, tmp / "anonymous", extra={"layer": 1})  # no model recorded
    r = train(project_root, tmp, f"sae.init_from={anonymous}", "tag=bad_null0", check=False)
    assert r.returncode == 2 and "records no model" in r.stderr and "sae.init_refit=false" in r.stderr
    r = train(project_root, tmp, "sae.dictionary=affine_null", "tag=bad_null1", check=False)
    assert r.returncode == 2 and "continues a trained SAE: set sae.init_from" in r.stderr, r.stderr[-2000:]
    r = train(project_root, tmp, "sae.dictionary=crosscoder", "tag=bad_null2", check=False)
    assert r.returncode == 2 and "trained by task=crosscoder" in r.stderr, r.stderr[-2000:]
    r = train(project_root, tmp, "sae.dictionary=warm", "tag=bad_null3", check=False)
    assert r.returncode == 2 and "not a kind of dictionary" in r.stderr, r.stderr[-2000:]
    assert not list((tmp / "art" / "sae").rglob("bad_null*"))


class Negate:
    """A toy map: every activation row negated."""

    def apply(self, rows):
        return -np.asarray(rows, np.float32)


def test_a_new_kind_is_one_class_and_one_registry_line(project_root, tmp, start, monkeypatch):
    from hydra import compose, initialize_config_dir

    from finsae.activations.mapped import MappedStore
    from finsae.glue.sae_stage import run
    from finsae.glue.schemas import register_schemas, validate
    from finsae.sae import inputs

    class Negated(inputs.OneModel):  # the class ...
        name = "negated"

        def published_name(self):
            return f"{super().published_name()}_negated"

        def training_store(self, stores, init_rows):
            store, extra = super().training_store(stores, init_rows)
            return MappedStore(store, Negate(), store.d, "negated"), extra

    monkeypatch.setitem(inputs.KINDS, "negated", Negated)  # ... and its registry line
    register_schemas()
    with initialize_config_dir(config_dir=str(project_root / "conf"), version_base="1.3"):
        raw = compose("train", overrides=[*BASE, f"paths.artifacts={tmp / 'art'}",
                                          f"paths.output_dir={tmp / 'run'}", "sae.dictionary=negated",
                                          "tag=toy", "trainer.val_checks=0"])
    result = run(validate(raw), raw)
    out = tmp / "art" / "sae" / "tiny_negated" / "layer_1" / "toy"
    assert result.model == "tiny_negated" and json.loads((out / "summary.json").read_text())["fvu"] < 1
    plain = load(start)  # the same rows, seed and init sample, not negated
    assert float(load(out).norm_scale) == pytest.approx(float(plain.norm_scale), rel=1e-6)
