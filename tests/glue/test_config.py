"""Config composition and validation: typos, ranges and unknown names fail before any work."""

import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, MissingConfigException

from finsae.errors import ConfigError
from finsae.glue.schemas import TrainScriptSchema, register_schemas, validate


def _compose(root, overrides, script: str = "train"):
    register_schemas()
    with initialize_config_dir(config_dir=str(root / "conf"), version_base="1.3"):
        return compose(script, overrides=["paths.output_dir=/tmp/finsae-test", *overrides])


def test_default_config_validates(project_root):
    cfg = validate(_compose(project_root, []))
    assert isinstance(cfg, TrainScriptSchema)
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
    ("sae.k=0", "sae.k must be a positive int"),
    ("sae.k=-4", "sae.k must be a positive int"),
    ("sae.init_sample=0", "sae.init_sample must be a positive int"),
    ("activations.batch_size=0", "activations batch_size=0 must be > 0"),
    ("sae.encoder_dtype=fp8", "encoder_dtype"),
    ("model.name=gpt9", "unknown"),
    ("logger.kind=tensorboard", "logger.kind"),
    ("activations.max_length=2", "max_length"),
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
    assert "finsae: error: sae.k must be a positive int, got 0" in r.stderr
    assert "Traceback" not in r.stderr


def test_every_override_a_hint_names_composes(project_root):
    """Error messages and docs in src/ that tell the user `key=value` name keys that exist: each one composes
    with the config of a script that has the key (train.py's first) and validates."""
    import re

    pattern = re.compile(r"(?<![\w.])((?:[a-z_]+\.)*[a-z_]+)=(true|false)\b")
    hints = set()
    for path in (project_root / "src").rglob("*.py"):
        hints.update(f"{k}={v}" for k, v in pattern.findall(path.read_text()))
    assert {"resume=true", "overwrite=true", "rebuild_cache=true", "skip_if_done=true"} <= hints
    for hint in sorted(hints):
        errors = []
        for script in ("train", "analyze", "label", "backtest"):  # the first script whose config has the key
            try:
                validate(_compose(project_root, [hint], script))
                break
            except Exception as e:  # noqa: BLE001 - a key of another script's config
                errors.append(f"{script}: {str(e).splitlines()[0]}")
        else:
            raise AssertionError(f"{hint} names a key no script has: {errors}")


def test_config_files_comment_every_key_and_restate_no_schema_default(project_root):
    """Each knob is declared once (its schema dataclass holds default and doc); a YAML option sets only what
    differs, and says why on the same line."""
    import re

    from omegaconf import OmegaConf

    register_schemas()
    key_line = re.compile(r"^\s*([A-Za-z_]+):\s*(\S.*)?$")
    for path in sorted((project_root / "conf").rglob("*.yaml")):
        if path.parent.name == "hydra":
            continue
        for line in path.read_text().splitlines():
            m = key_line.match(line)
            if not m or m.group(1) == "defaults" or not m.group(2) or m.group(2).startswith("#"):
                continue
            assert "#" in line, f"{path.relative_to(project_root)}: `{line.strip()}` has no comment"
    # Group options that extend a schema must not restate its defaults.
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance().repo
    for group_dir in sorted(p for p in (project_root / "conf").iterdir() if p.is_dir() and p.name in store and p.name != "hydra"):
        schema = OmegaConf.create(store[group_dir.name]["_schema.yaml"].node)
        for path in sorted(group_dir.glob("*.yaml")):
            values = OmegaConf.load(path)
            for key in values:
                if key != "defaults" and key in schema and not OmegaConf.is_missing(schema, key):
                    assert values[key] != schema[key], f"{path.relative_to(project_root)} restates {key}={values[key]}"
