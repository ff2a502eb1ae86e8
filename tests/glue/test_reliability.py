"""Reliability rows of issue 18: config values that would be paths, publishing over something that is not a
previous result, signals with worker processes, damaged inputs, unwritable or full folders.

Config rows run in-process (compose + validate, what every entry point does first); the few rows that need a
whole command run it and check the exit code, the one ``finsae: error:`` line, and what survived."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from finsae.errors import ConfigError, FinsaeError
from finsae.glue.schemas import register_schemas, validate

# (script's config, override, key named in the one line)
NAME_ROWS = [
    ("backtest", "pair_name=.", "pair_name='.'"),
    ("backtest", "pair_name=..", "pair_name='..'"),
    ("backtest", "pair_name=../x", "pair_name='../x'"),
    ("backtest", "pair_name=../../../x", "pair_name='../../../x'"),
    ("backtest", "pair_name=/abs/x", "pair_name='/abs/x'"),
    ("backtest", "pair_name=''", "pair_name=''"),
    ("backtest", "pair_name=a/b", "pair_name='a/b'"),
    ("backtest", "features.tag=..", "features.tag='..'"),
    ("backtest", "features.tag=/tmp/sae", "features.tag='/tmp/sae'"),
    ("backtest", "features.tag=../demo", "features.tag='../demo'"),
    ("analyze", "pair_name=.", "pair_name='.'"),
    ("analyze", "pair_name=/abs", "pair_name='/abs'"),
    ("analyze", "tag=..", "tag='..'"),
    ("analyze", "seed_tag=../x", "seed_tag='../x'"),
    ("label", "pair_name=..", "pair_name='..'"),
    ("label", "pair_name=a/../b", "pair_name='a/../b'"),
    ("train", "tag=.", "tag='.'"),
    ("train", "tag=''", "tag=''"),
    ("train", "tag=/abs", "tag='/abs'"),
    ("train", "finetune.out_name=..", "finetune.out_name='..'"),
    ("train", "finetune.out_name=.hidden", "finetune.out_name='.hidden'"),
]


def compose_typed(project_root, script, overrides):
    register_schemas()
    with initialize_config_dir(config_dir=str(project_root / "conf"), version_base="1.3"):
        return validate(compose(script, overrides=["paths.output_dir=/tmp/finsae-test", *overrides]))


@pytest.mark.parametrize("script, override, named", NAME_ROWS, ids=[f"{r[0]} {r[1]}" for r in NAME_ROWS])
def test_a_name_that_is_a_path_is_refused_at_validation(project_root, script, override, named):
    with pytest.raises(ConfigError) as err:
        compose_typed(project_root, script, [override])
    msg = str(err.value)
    assert msg.startswith(named + " must be a plain name") and "\n" not in msg


@pytest.mark.parametrize("script, override", [("backtest", "pair_name=my_pair.v2"), ("backtest", "features.tag=demo_seed1"),
                                              ("analyze", "pair_name=x-1"), ("label", "pair_name=p"),
                                              ("train", "tag=a..b")])
def test_plain_names_still_pass(project_root, script, override):
    compose_typed(project_root, script, [override])


def test_the_path_helpers_refuse_what_validation_would(tmp_path):
    from finsae import paths

    for call in (lambda: paths.backtest_dir(tmp_path, "."), lambda: paths.analysis_dir(tmp_path, "../x"),
                 lambda: paths.sae_dir(tmp_path, "tiny", 0, "/abs"), lambda: paths.model_dir(tmp_path, "..")):
        with pytest.raises(ConfigError, match="must be a plain name"):
            call()
    assert paths.backtest_dir(tmp_path, "p") == tmp_path / "backtest" / "p"


def _entry(tmp_path, kind):
    """What stands where a stage is about to publish (None: nothing)."""
    entry = tmp_path / "out" / "pair"
    entry.parent.mkdir(parents=True)
    if kind == "a file":
        entry.write_text("x")
    elif kind == "a foreign folder":
        (entry / "sub").mkdir(parents=True)
        (entry / "sub" / "precious.txt").write_text("keep")
    elif kind == "a link to a result":
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "elsewhere" / "summary.json").write_text("{}")
        entry.symlink_to(tmp_path / "elsewhere")
    elif kind == "an earlier result":
        entry.mkdir()
        (entry / "summary.json").write_text('{"old": 1}')
    return entry


@pytest.mark.parametrize("kind, refused", [("nothing", False), ("an earlier result", False), ("a file", True),
                                           ("a foreign folder", True), ("a link to a result", True)])
def test_publish_replaces_only_an_earlier_result(tmp_path, kind, refused):
    from finsae.atomic import publish, staging_dir

    entry = _entry(tmp_path, kind)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    tmp = staging_dir(entry)
    (tmp / "summary.json").write_text('{"new": 1}')
    if refused:
        with pytest.raises(FinsaeError, match="is in the way and is not a previous result") as err:
            publish(tmp, entry)
        assert "\n" not in str(err.value)
        assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # untouched, staging cleaned
    else:
        publish(tmp, entry)
        assert (entry / "summary.json").read_text() == '{"new": 1}'
        assert [p.name for p in entry.parent.iterdir()] == ["pair"]  # no old copy or staging left


def _one_error_line(r, message):
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("finsae: error:")]
    assert r.returncode == 2, r.stderr[-2000:]
    assert len(lines) == 1 and message in lines[0], r.stderr[-2000:]
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("value", [".", "../victim"])
def test_backtest_pair_name_path_touches_nothing(project_root, tmp_path, value):
    art = tmp_path / "art"
    ledger = art / "backtest" / "trials.jsonl"
    (art / "backtest" / "other_pair").mkdir(parents=True)
    (art / "backtest" / "other_pair" / "summary.json").write_text("{}")
    ledger.write_text('{"trial": 1}\n')
    (art / "victim").mkdir()
    (art / "victim" / "sentinel.txt").write_text("keep")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    r = subprocess.run([sys.executable, "backtest.py", f"pair_name={value}", f"paths.artifacts={art}", "logger=none"],
                       cwd=project_root, capture_output=True, text=True, timeout=300, check=False)
    _one_error_line(r, f"pair_name={value!r} must be a plain name")
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
