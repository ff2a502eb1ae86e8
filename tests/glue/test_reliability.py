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


# --------------------------------------------------------------------------------------------------- signals
def _children(pid: int) -> set[tuple[int, str]]:
    """Every living descendant of ``pid`` as (pid, start time): the pair names a process even if its pid is
    reused later. From /proc (no psutil in the environment)."""
    import os

    ppid, start = {}, {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                fields = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                ppid[int(d)], start[int(d)] = int(fields[1]), fields[19]
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for c, pp in ppid.items():
            if pp == p:
                out.add((c, start[c]))
                todo.append(c)
    return out


def _alive(procs: set[tuple[int, str]]) -> set[tuple[int, str]]:
    out = set()
    for pid, start in procs:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and fields[19] == start:
            out.add((pid, start))
    return out


def _stop_when_workers_run(proc, signum, n_children=2, timeout=400):
    """Send ``signum`` to ``proc`` (only to it, as a scheduler does) once it has ``n_children`` descendants;
    return them and the process's stderr."""
    import time

    seen: set = set()
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout and proc.poll() is None:
        seen |= _children(proc.pid)
        if len(_alive(seen)) >= n_children:
            time.sleep(1)  # let the workers pick up their jobs
            seen |= _children(proc.pid)
            proc.send_signal(signum)
            break
        time.sleep(0.2)
    _, err = proc.communicate(timeout=120)
    return seen, err


POOL_SCRIPT = """
import time
from finsae.glue.app import Stopped, stop_on_signals, stopped
from finsae.workers import one_thread_pool

def job(i):
    time.sleep(120)

try:
    with stop_on_signals(), one_thread_pool(2, None) as pool:
        for f in [pool.submit(job, i) for i in range(4)]:
            f.result()
except Stopped as e:
    stopped(e.signum)
"""

BACKTEST = ["features.tickers=[XOM,JPM]", "features.sets=[price_count]", "lgbm.n_estimators=40", "lgbm.num_leaves=[7]",
            "walk_forward.refit_days=42", "walk_forward.jobs=2", "strategy.bootstrap=100", "benchmark.bootstrap=100",
            "progress_bar=false", "logger=none", "canaries=false"]
SIGNAL_ROWS = [("worker pool", "SIGTERM"), ("worker pool", "SIGINT"), ("backtest.py", "SIGTERM")]


@pytest.mark.parametrize("what, sig", SIGNAL_ROWS, ids=[f"{w} {s}" for w, s in SIGNAL_ROWS])
def test_a_signal_ends_the_stage_in_one_line_and_kills_its_workers(project_root, data_dir, tmp_path, what, sig):
    import os
    import signal

    signum = getattr(signal, sig)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if what == "worker pool":
        cmd = [sys.executable, "-c", POOL_SCRIPT]
    else:
        cmd = [sys.executable, what, f"paths.artifacts={tmp_path / 'art'}", *BACKTEST]
    proc = subprocess.Popen(cmd, cwd=project_root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        seen, err = _stop_when_workers_run(proc, signum)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(seen) >= 2, err[-2000:]  # the workers were running when the signal came
    assert proc.returncode == 128 + signum, err[-3000:]
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith(f"finsae: stopped by {sig}"), err[-3000:]
    import time

    for _ in range(50):  # killed workers are reaped by init within moments
        if not _alive(seen):
            break
        time.sleep(0.1)
    assert _alive(seen) == set(), f"orphans: {_alive(seen)}"
    if what == "backtest.py":
        assert not (tmp_path / "art" / "backtest" / "minilm_fin").exists()  # nothing half-done was published
