"""The SAE stage's artifact (one folder published in one rename) and the guards of a training run, from the core."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from finsae.errors import ConfigError, DataMissingError, FinsaeError
from finsae.sae import SaeConfig, TopKSAE, load, save
from finsae.sae.artifact import FREQUENCY_FILE, firing_histogram, publish_sae, read_frequency
from finsae.summary import is_published
from finsae.sae.run_guard import check_no_work_lost, check_same_config, run_lock
from finsae.sae.summary import SaeSummary, downstream_fields
from finsae.sae.warm_start import check_warm_start_source

REQUIRED = dict(seed=0, d_in=8, num_latents=32, k=4, lr=1e-3, batch_size=64, steps=2, tokens=128,
                dead_fraction=0.0, dead_tokens=100, fvu=0.1, nmse=0.1, l0=4.0, sae_eval_tokens=10,
                sae_eval_never_fired_fraction=0.0, corpus="mix", corpus_hash="0" * 16, activation_tokens=100,
                code_version="0")


def _sae(seed: int = 0) -> TopKSAE:
    sae = TopKSAE(SaeConfig(d_in=8, num_latents=32, k=4, seed=seed))
    sae.init_from_sample(torch.randn(64, 8, generator=torch.Generator().manual_seed(seed)))
    return sae


def _summary(**fields) -> SaeSummary:
    return SaeSummary(**{**REQUIRED, "model": "tiny", "layer": 1, "tag": "t", **fields})


def test_publish_writes_the_whole_folder_and_replaces_only_its_own_earlier_version(tmp_path):
    out = tmp_path / "sae" / "tiny" / "layer_1" / "t"
    assert not is_published(out)
    freq = np.linspace(0, 0.5, 32)
    publish_sae(out, _sae(), _summary(fvu=0.2), freq, extra={"layer": 1})
    assert is_published(out)
    assert sorted(p.name for p in out.iterdir()) == ["cfg.json", "sae.safetensors", FREQUENCY_FILE, "summary.json"]
    assert read_frequency(out).dtype == np.float32 and np.allclose(read_frequency(out), freq)
    assert SaeSummary.read(out).fvu == 0.2
    new = _sae(seed=1)
    publish_sae(out, new, _summary(fvu=0.1), freq, extra={})  # a rerun replaces it whole
    assert SaeSummary.read(out).fvu == 0.1 and torch.equal(load(out).W_enc, new.W_enc)
    assert [p.name for p in out.parent.iterdir() if p.is_dir()] == ["t"]  # no staging or old copy left behind
    other = tmp_path / "other"
    (other / "x").mkdir(parents=True)  # something that is not a run's folder is never replaced
    with pytest.raises(FinsaeError, match="in the way"):
        publish_sae(other, _sae(), _summary(), freq, extra={})
    assert (other / "x").is_dir()
    with pytest.raises(DataMissingError, match=FREQUENCY_FILE):
        read_frequency(other)


def test_firing_histogram_counts_never_fired_latents():
    fig = firing_histogram(np.array([0.0, 0.0, 1e-3, 1e-2, 0.1]), "tiny layer 1")
    assert "(2 never fired)" in fig.axes[0].get_title()
    assert sum(p.get_height() for p in fig.axes[0].patches) == 3


def test_no_work_lost(tmp_path):
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    assert check_no_work_lost(out, ckpt, resume=False, overwrite=False) is None
    assert check_no_work_lost(out, ckpt, resume=True, overwrite=False) is None  # nothing to resume: from the start
    ckpt.mkdir()
    (ckpt / "last.ckpt").write_bytes(b"x")
    with pytest.raises(ConfigError, match="unfinished run; resume=true"):
        check_no_work_lost(out, ckpt, resume=False, overwrite=False)
    assert check_no_work_lost(out, ckpt, resume=True, overwrite=False) == str(ckpt / "last.ckpt")
    assert check_no_work_lost(out, ckpt, resume=False, overwrite=True) is None
    publish_sae(out, _sae(), _summary(), np.zeros(32), extra={})
    with pytest.raises(ConfigError, match="holds a finished SAE"):
        check_no_work_lost(out, ckpt, resume=True, overwrite=False)


def test_resume_refuses_a_changed_config(tmp_path):
    hp = {"sae_cfg": {"k": 4, "num_latents": 32}, "train_cfg": {"lr": 1e-3}, "run": {"data": {"max_docs": 10}}}
    ckpt = tmp_path / "last.ckpt"
    torch.save({"hyper_parameters": hp}, ckpt)
    check_same_config(str(ckpt), hp)
    changed = {**hp, "train_cfg": {"lr": 2e-3}, "run": {"data": {"max_docs": 11}}}
    with pytest.raises(ConfigError, match=r"\['data.max_docs', 'sae.lr'\] differ"):
        check_same_config(str(ckpt), changed)
    # a checkpoint written before sae.init_from_any_layer existed resumes at its default, not set otherwise
    check_same_config(str(ckpt), {**hp, "train_cfg": {"lr": 1e-3, "init_from_any_layer": False}})
    with pytest.raises(ConfigError, match=r"\['sae.init_from_any_layer'\] differ"):
        check_same_config(str(ckpt), {**hp, "train_cfg": {"lr": 1e-3, "init_from_any_layer": True}})
    ckpt.write_bytes(b"cut")
    with pytest.raises(ConfigError, match="unreadable"):
        check_same_config(str(ckpt), hp)


def test_one_run_per_checkpoint_folder(tmp_path):
    ckpt = tmp_path / "checkpoints" / "t"
    refused = []

    def second():
        try:
            with run_lock(ckpt):
                pass
        except FinsaeError as e:
            refused.append(str(e))

    with run_lock(ckpt):
        t = threading.Thread(target=second)
        t.start()
        t.join()
        with run_lock(ckpt, hold=False):  # a rank other than zero takes no lock
            pass
    assert len(refused) == 1 and "another run is training this SAE" in refused[0]
    with run_lock(ckpt):  # released
        pass


def test_warm_start_source_must_have_this_shape(tmp_path):
    save(_sae(), tmp_path / "src", extra={"layer": 2})
    check_warm_start_source(tmp_path / "src", SaeConfig(d_in=8, num_latents=32, k=4), layer=2)
    with pytest.raises(ConfigError, match="num_latents=32, this run needs num_latents=64"):
        check_warm_start_source(tmp_path / "src", SaeConfig(d_in=8, num_latents=64, k=4), layer=2)
    with pytest.raises(DataMissingError, match="SAE config not found"):
        check_warm_start_source(tmp_path / "nothing", SaeConfig(d_in=8, num_latents=32, k=4), layer=2)


def test_warm_start_from_another_layer_is_refused_unless_asked_for(tmp_path):
    save(_sae(), tmp_path / "layer0", extra={"layer": 0, "model": "tiny"})
    save(_sae(), tmp_path / "unknown")  # saved in code: no layer recorded
    cfg = SaeConfig(d_in=8, num_latents=32, k=4)
    with pytest.raises(ConfigError) as err:
        check_warm_start_source(tmp_path / "layer0", cfg, layer=1)
    assert (f"sae.init_from={tmp_path / 'layer0'} is an SAE of layer 0, this run trains layer 1" in str(err.value)
            and "sae.init_from_any_layer=true" in str(err.value) and "\n" not in str(err.value))
    with pytest.raises(ConfigError, match="records no layer.*sae.init_from_any_layer=true"):
        check_warm_start_source(tmp_path / "unknown", cfg, layer=1)
    check_warm_start_source(tmp_path / "layer0", cfg, layer=1, any_layer=True)  # asked for: accepted
    check_warm_start_source(tmp_path / "unknown", cfg, layer=1, any_layer=True)


def test_downstream_fields_are_summary_fields():
    from finsae.models.patching import DownstreamScore

    names = DownstreamScore._fields
    score = DownstreamScore(**{n: (f"task_{i}" if n == "task" else 0.1 * (i + 1)) for i, n in enumerate(names)})
    fields = downstream_fields(score, 25)
    s = _summary(**fields)
    assert s.downstream_docs == 25 and s.loss_recovered == score.loss_recovered and s.downstream_task == score.task
    assert s.downstream_zero_all == score.zero_all


@pytest.mark.parametrize("change, why", [({"k": 1000}, "SaeConfig.k must be an int in [1, num_latents=32], got 1000"),
                                         ({"d_in": 0}, "SaeConfig.d_in must be a positive int"),
                                         ({"num_latents": "many"}, "SaeConfig.num_latents must be an int")])
def test_an_invalid_cfg_json_is_named_with_its_fix(tmp_path, change, why):
    import json

    from finsae.sae import read_meta
    from finsae.sae.io import check_weights

    save(_sae(), tmp_path / "s", extra={"layer": 1})
    cfg = tmp_path / "s" / "cfg.json"
    cfg.write_text(json.dumps(json.loads(cfg.read_text()) | change))
    for reader in (load, check_weights, read_meta,
                   lambda p: check_warm_start_source(p, SaeConfig(d_in=8, num_latents=32, k=4), layer=1)):
        with pytest.raises(ConfigError) as err:
            reader(tmp_path / "s")
        text = str(err.value)
        assert f"SAE config {cfg} is invalid: {why}" in text and "retrain the SAE" in text and "\n" not in text
