"""Config composition and validation: typos, ranges and unknown names fail before any work."""

import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, MissingConfigException

from finsae.errors import ConfigError
from finsae.glue.schemas import TrainSchema, register_schemas, validate


def _compose(root, overrides):
    register_schemas()
    with initialize_config_dir(config_dir=str(root / "conf"), version_base="1.3"):
        return compose("train", overrides=["paths.output_dir=/tmp/finsae-test", *overrides])


def test_default_config_validates(project_root):
    cfg = validate(_compose(project_root, []))
    assert isinstance(cfg, TrainSchema)
    assert cfg.model.name == "minilm" and cfg.pair.domain == "minilm_fin" and cfg.layer == 3
    assert cfg.logger.kind == "wandb" and cfg.logger.mode == "offline"
    assert cfg.sae.k == 32 and cfg.sae.expansion_factor == 32


def test_experiments_compose(project_root):
    paper = validate(_compose(project_root, ["experiment=paper"]))
    assert (paper.model.name, paper.pair.domain, paper.sae.k, paper.trainer.devices) == ("bert_base", "finbert", 192, 7)
    assert paper.trainer.strategy == "ddp"
    demo = validate(_compose(project_root, ["experiment=demo", "model=minilm_fin", "layer=5"]))
    assert demo.model.name == "minilm_fin" and demo.layer == 5


def test_typo_key_fails_at_composition(project_root):
    with pytest.raises(ConfigCompositionException, match="kk"):
        _compose(project_root, ["sae.kk=3"])


@pytest.mark.parametrize("override,match", [
    ("sae.k=0", "sae.k must be > 0"),
    ("sae.k=-4", "sae.k must be > 0"),
    ("sae.encoder_dtype=fp8", "encoder_dtype"),
    ("model.name=gpt9", "unknown"),
    ("logger.kind=tensorboard", "logger.kind"),
    ("data.max_length=4", "max_length"),
])
def test_range_checks(project_root, override, match):
    with pytest.raises(ConfigError, match=match):
        validate(_compose(project_root, [override]))


def test_unknown_model_option(project_root):
    with pytest.raises(MissingConfigException):
        _compose(project_root, ["model=gpt9"])


def test_cli_bad_value_is_one_line(project_root, tmp_path):
    r = subprocess.run([sys.executable, "train.py", "sae.k=0", f"paths.artifacts={tmp_path}", "logger=none"],
                       cwd=project_root, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "finsae: error: sae.k must be > 0" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("stage", ["analyze", "label", "backtest"])
def test_planned_stages_refuse_in_one_line(project_root, stage):
    r = subprocess.run([sys.executable, f"{stage}.py", "logger=none"], cwd=project_root, capture_output=True,
                       text=True, timeout=120, check=False)
    assert r.returncode == 2 and "not built yet" in r.stderr and "Traceback" not in r.stderr
