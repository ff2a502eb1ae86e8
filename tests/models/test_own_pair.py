"""A user's own pair: two ``conf/model/*.yaml`` files with ``path:`` (weights on disk) and one ``conf/pair``
file, here in a config folder outside the checkout (``$FINSAE_CONFIG_DIR``, given to Hydra as
``hydra.searchpath``). Every stage that names a model finds its weights there: the SAE runs of both models,
the pair's crosscoder, the analysis's extraction of both models and the backtest's tweet encoding, offline
(``HF_HUB_OFFLINE=1``, an empty hub cache: no hub name is ever resolved). A path that holds no model fails
in one line naming it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from finsae.errors import ConfigError, OfflineModelError
from finsae.models import get_spec, known_models
from finsae.models.declared import CONFIG_DIR_ENV
from finsae.models.registry import TOKENIZER_FILES, directory_hash, packaged_minilm_dir
from finsae.paths import sae_dir

BASE, TWIN, PAIR = "own_base", "own_twin", "own_pair"


def write_random_bert(folder: Path, seed: int, classifier: bool) -> Path:
    """A random 2-layer BERT (width 64) with bert-base-uncased's tokenizer files (the packaged MiniLM's)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    torch.manual_seed(seed)
    config = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                        num_labels=3, id2label={0: "positive", 1: "negative", 2: "neutral"},
                        label2id={"positive": 0, "negative": 1, "neutral": 2})
    (BertForSequenceClassification(config) if classifier else BertModel(config)).save_pretrained(str(folder))
    for f in TOKENIZER_FILES:
        if (packaged_minilm_dir() / f).exists():
            shutil.copy2(packaged_minilm_dir() / f, folder / f)
    return folder


def declare(conf: Path, name: str, path: Path | str) -> None:
    (conf / "model").mkdir(parents=True, exist_ok=True)
    (conf / "model" / f"{name}.yaml").write_text(f"defaults: [_schema]\nname: {name}\npath: {path}\n")


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """The weights, the config folder (two models, one pair, one model whose path holds nothing), the env."""
    root = tmp_path_factory.mktemp("own")
    weights = {BASE: write_random_bert(root / "weights" / "base", 0, False),
               TWIN: write_random_bert(root / "weights" / "twin", 1, True)}
    conf = root / "conf"
    for name, folder in weights.items():
        declare(conf, name, folder)
    declare(conf, "own_missing", root / "weights" / "nothing_here")
    (conf / "pair").mkdir()
    (conf / "pair" / f"{PAIR}.yaml").write_text(f"defaults: [_schema]\nbase: {BASE}\ndomain: {TWIN}\n")
    broken = f"defaults: [_schema]\nbase: own_missing\ndomain: {TWIN}\n"
    (conf / "pair" / "own_broken.yaml").write_text(broken)
    (root / "hub").mkdir()
    env = {**os.environ, CONFIG_DIR_ENV: str(conf), "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(root / "hub"),
           "FINSAE_OUTPUTS": str(root / "out"), "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    return root, weights, conf, env


def test_a_declared_model_resolves_to_its_path(own, monkeypatch):
    root, weights, conf, _ = own
    monkeypatch.setenv(CONFIG_DIR_ENV, str(conf))
    assert {BASE, TWIN} <= set(known_models())
    spec = get_spec(BASE)
    assert (spec.source, spec.path) == ("local", str(weights[BASE]))
    assert spec.declared_in == str(conf / "model" / f"{BASE}.yaml")
    assert get_spec(BASE, path="/elsewhere").path == "/elsewhere"  # a run's model.path= wins
    monkeypatch.delenv(CONFIG_DIR_ENV)
    with pytest.raises(ConfigError, match=f"unknown model '{BASE}'.*conf/model/{BASE}.yaml"):
        get_spec(BASE)


def test_path_in_a_builtin_models_file_is_taken_and_the_checkouts_file_wins(own, tmp_path, monkeypatch):
    """``path:`` in conf/model/bert_base.yaml points the paper's base at a local copy for every stage; a file
    of the same name in ``$FINSAE_CONFIG_DIR`` is not read over the checkout's (Hydra's order: the first
    wins)."""
    from finsae.models import declared

    _, weights, _, _ = own
    declare(tmp_path, "bert_base", weights[BASE])
    monkeypatch.setattr(declared, "config_dirs", lambda: [tmp_path])
    spec = get_spec("bert_base")
    assert (spec.source, spec.hf_id, spec.path) == ("hub", "bert-base-uncased", str(weights[BASE]))
    monkeypatch.undo()
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path))
    assert get_spec("bert_base").path is None


def test_a_declaration_without_a_path_or_with_an_interpolation_is_refused(tmp_path, monkeypatch):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "nopath.yaml").write_text("name: nopath\n")
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path))
    with pytest.raises(ConfigError, match=r"model 'nopath' \(.*nopath.yaml\) has no path"):
        get_spec("nopath")
    (tmp_path / "model" / "nopath.yaml").write_text("name: nopath\npath: ${oc.env:HOME}/m\n")
    with pytest.raises(ConfigError, match="interpolation"):
        get_spec("nopath")


def test_a_wrong_path_is_named_in_one_line(own, monkeypatch):
    from finsae.models.loading import model_config

    root, _, conf, env = own
    monkeypatch.setenv(CONFIG_DIR_ENV, str(conf))
    with pytest.raises(OfflineModelError) as err:
        model_config(get_spec("own_missing"))
    assert f"path {root / 'weights' / 'nothing_here'} does not exist" in str(err.value)
    assert "own_missing.yaml" in str(err.value) and "\n" not in str(err.value)
    for script, args in (("train.py", ["model=own_missing", "debug=tiny"]),
                         ("analyze.py", ["pair=own_broken", "tag=debug", "layers=[1]"]),
                         ("backtest.py", ["pair=own_broken", "encode_only=base", "features.layers=[1]"])):
        r = _run(script, [*args, f"paths.artifacts={root / 'art_wrong'}"], env, conf)
        err_lines = [line for line in r.stderr.splitlines() if line.startswith("finsae: error:")]
        assert r.returncode != 0 and len(err_lines) == 1, (script, r.stderr[-2000:])
        assert str(root / "weights" / "nothing_here") in err_lines[0], err_lines
    assert not (root / "art_wrong" / "sae").exists()  # refused before any work


def _run(script: str, args: list[str], env: dict, conf: Path) -> subprocess.CompletedProcess:
    project_root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, str(project_root / script), *args, "logger=csv",
           f"hydra.searchpath=[file://{conf}]"]
    return subprocess.run(cmd, cwd=project_root, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_own_pair_runs_train_analyze_and_tweet_encoding_from_its_paths(own, data_dir):
    root, weights, conf, env = own
    art = root / "art"
    common = [f"paths.artifacts={art}", f"paths.data_dir={data_dir}"]
    for what in ([f"model={BASE}"], [f"model={TWIN}"], ["task=crosscoder", f"pair={PAIR}"]):
        r = _run("train.py", ["debug=tiny", *what, *common], env, conf)
        assert r.returncode == 0, r.stderr[-3000:]
    for name in (BASE, TWIN):
        meta = json.loads((sae_dir(art, name, 1, "debug") / "cfg.json").read_text())
        assert meta["extra"]["model"] == name and meta["extra"]["model_path"] == str(weights[name])
        assert meta["extra"]["weights_hash"] == directory_hash(weights[name])
    cross = json.loads((sae_dir(art, f"crosscoder_{BASE}_{TWIN}", 1, "debug") / "cfg.json").read_text())
    both = f"{directory_hash(weights[BASE])}+{directory_hash(weights[TWIN])}"
    assert cross["extra"]["weights_hash"] == both

    small = ["analysis.docs_per_side=60", "analysis.docs_per_category=10", "analysis.genre_docs=20",
             "analysis.n_boot=10", "analysis.agreement_tokens=2000", "analysis.control_latents=4",
             "progress_bar=false"]
    r = _run("analyze.py", [f"pair={PAIR}", "tag=debug", "layers=[1]", *small, *common], env, conf)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((art / "analysis" / PAIR / "summary.json").read_text())
    assert (summary["base"], summary["domain"], summary["layers"]) == (BASE, TWIN, [1])

    for role in ("base", "domain"):
        r = _run("backtest.py", [f"pair={PAIR}", f"encode_only={role}", "features.tag=debug",
                                 "features.layers=[1]", "features.tickers=[PTR,REX,BBL]",
                                 "progress_bar=false", *common], env, conf)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "encoded into the caches" in r.stdout
    assert not list((root / "hub").iterdir())  # the hub cache was never written
