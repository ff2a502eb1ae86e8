"""Reliability rows of issue 18: config values that would be paths, publishing over something that is not a
previous result, signals with worker processes, damaged inputs, unwritable or full folders.

Config rows run in-process (compose + validate, what every entry point does first); the few rows that need a
whole command run it and check the exit code, the one ``finsae: error:`` line, and what survived."""

from __future__ import annotations

import json
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
    ("analyze", "seed_tags=[../x]", "seed_tags='../x'"),
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


@pytest.mark.slow
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

# map() with more jobs than workers: on the way out its generator cancels the queued futures, which loky's
# shutdown then tries to fail again (InvalidStateError in its manager thread, a traceback on the console)
POOL_MAP_SCRIPT = POOL_SCRIPT.replace("""        for f in [pool.submit(job, i) for i in range(4)]:
            f.result()""", """        list(pool.map(job, range(8)))""")

BACKTEST = ["features.tickers=[XOM,JPM]", "features.sets=[price_count]", "lgbm.n_estimators=40", "lgbm.num_leaves=[7]",
            "walk_forward.refit_days=42", "walk_forward.jobs=2", "strategy.bootstrap=100", "benchmark.bootstrap=100",
            "progress_bar=false", "logger=none", "canaries=false"]
SIGNAL_ROWS = [("worker pool", "SIGTERM"), ("worker pool", "SIGINT"), ("worker pool map", "SIGTERM"),
               ("backtest.py", "SIGTERM")]


@pytest.mark.slow
@pytest.mark.parametrize("what, sig", SIGNAL_ROWS, ids=[f"{w} {s}" for w, s in SIGNAL_ROWS])
def test_a_signal_ends_the_stage_in_one_line_and_kills_its_workers(project_root, data_dir, tmp_path, what, sig):
    import os
    import signal

    signum = getattr(signal, sig)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if what.startswith("worker pool"):
        cmd = [sys.executable, "-c", POOL_MAP_SCRIPT if what.endswith("map") else POOL_SCRIPT]
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


# ------------------------------------------------------------------------------------ unwritable or full folders
# Disk faults injected under one folder (the tests run as root, which ignores permission bits): EROFS/ENOSPC on
# opening (or moving) a file for writing there whose name ends with SUFFIX ("" = any), or FULL: 100 MB free there.
FAULTY = """
import builtins, collections, errno, os, runpy, shutil, sys
folder, fault, suffix, script = os.path.realpath(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
under = lambda p: (os.path.realpath(p) + os.sep).startswith(folder + os.sep)
if fault == "FULL":
    real_usage = shutil.disk_usage
    def disk_usage(p):
        u = real_usage(p)
        return type(u)(u.total, u.total - 100 * 2**20, 100 * 2**20) if under(p) else u
    shutil.disk_usage = disk_usage
else:
    code, real_open = getattr(errno, fault), builtins.open
    def open_(file, mode="r", *a, **k):
        if (isinstance(file, (str, os.PathLike)) and set(mode) & set("wax+") and under(file)
                and os.fspath(file).endswith(suffix)):
            raise OSError(code, os.strerror(code), os.fspath(file))
        return real_open(file, mode, *a, **k)
    builtins.open = open_
    real_move = shutil.move  # what a checkpoint's write ends with (fsspec writes a temp file, then moves it)
    def move(src, dst, *a, **k):
        if under(dst) and os.fspath(dst).endswith(suffix):
            raise OSError(code, os.strerror(code), os.fspath(dst))
        return real_move(src, dst, *a, **k)
    shutil.move = move
sys.argv = [script, *sys.argv[5:]]
runpy.run_path(script, run_name="__main__")
"""
TINY = ["debug=tiny", "logger=none"]
PAIR = ["pair.base=tiny", "pair.domain=tiny", "tag=t", "logger=none"]
# (script, its arguments, what to set up under ART, fault folder under ART, fault, suffix, the one line says)
DISK_ROWS = [
    ("train.py", TINY, "file:sae", "", None, "",
     "the SAE folder ART/sae/tiny/layer_1/debug cannot be written: ART/sae is a file, not a folder"),
    ("train.py", TINY, "file:checkpoints", "", None, "", "the checkpoint folder ART/checkpoints/sae/tiny/layer_1/debug "
                                                         "cannot be written: ART/checkpoints is a file"),
    ("train.py", TINY, "dir:activations", "activations", "EROFS", "",
     "the activation cache ART/activations cannot be written (Read-only file system)"),
    ("train.py", TINY, "dir:activations", "activations", "FULL", "", "the activation cache ART/activations has 0.1 GB "
                                                                     "free, less than the 1 GB"),
    ("train.py", TINY, "", "checkpoints", "ENOSPC", ".ckpt", ".ckpt cannot be written (No space left on device): free "
                                                             "space"),
    ("train.py", TINY, "", "sae", "ENOSPC", ".npy", "cannot be written (No space left on device)"),
    ("analyze.py", PAIR, "dir:analysis/tiny_tiny", "analysis", "EROFS", "",
     "the analysis folder ART/analysis/tiny_tiny cannot be written (Read-only file system)"),
    ("analyze.py", PAIR, "dir:activations", "activations", "FULL", "", "the activation cache ART/activations has 0.1 "
                                                                       "GB free"),
    ("backtest.py", ["logger=none"], "dir:backtest/cache", "backtest/cache", "EROFS", "",
     "the tweet-encoding cache ART/backtest/cache cannot be written (Read-only file system)"),
    ("backtest.py", ["logger=none"], "dir:activations", "activations", "FULL", "", "the activation cache ART/activations "
                                                                                   "has 0.1 GB free"),
]


@pytest.mark.slow
@pytest.mark.parametrize("script, args, setup, folder, fault, suffix, message", DISK_ROWS,
                         ids=[f"{r[0]} {r[2] or r[3]} {r[4]}{r[5]}" for r in DISK_ROWS])
def test_an_unwritable_or_full_folder_is_one_line(project_root, data_dir, tmp_path, script, args, setup, folder,
                                                  fault, suffix, message):
    art = tmp_path / "art"
    art.mkdir()
    kind, _, rel = setup.partition(":")
    if kind == "file":
        (art / rel).write_text("a file, not a folder")
    elif kind == "dir":
        (art / rel).mkdir(parents=True)
    cmd = [sys.executable, script, f"paths.artifacts={art}", *args]
    if fault:
        cmd = [sys.executable, "-c", FAULTY, str(art / folder), fault, suffix, *cmd[1:]]
    r = subprocess.run(cmd, cwd=project_root, capture_output=True, text=True, timeout=600, check=False)
    _one_error_line(r, message.replace("ART", str(art)))
    if kind == "file":
        assert (art / rel).read_text() == "a file, not a folder"
    assert not list(art.glob("sae/*/layer_*/*/summary.json"))  # nothing published


# ------------------------------------------------------------------------------------------- damaged inputs
def _tiny_sae_folder(folder):
    import torch

    from finsae.sae import SaeTrainConfig, TopKSAE, save

    torch.manual_seed(0)
    save(TopKSAE(SaeTrainConfig(expansion_factor=4, k=4).sae_config(32, 0)), folder)
    return folder / "sae.safetensors"


SAE_DAMAGE = [("cut in half", lambda b: b[: len(b) // 2], "its header needs"),
              ("cut in its header", lambda b: b[:40], "unreadable header"),
              ("garbage", lambda b: b"not a safetensors file at all" * 4, "unreadable header"),
              ("empty", lambda b: b"", "unreadable header"),
              ("bytes appended", lambda b: b + b"\0\0", "its header needs")]


@pytest.mark.parametrize("damage, message", [(d, m) for _, d, m in SAE_DAMAGE], ids=[r[0] for r in SAE_DAMAGE])
def test_a_damaged_sae_file_is_named_from_its_header(tmp_path, damage, message):
    from finsae.sae.io import check_weights, load

    weights = _tiny_sae_folder(tmp_path / "sae")
    check_weights(tmp_path / "sae")  # the intact file passes
    weights.write_bytes(damage(weights.read_bytes()))
    for read in (check_weights, load):
        with pytest.raises(FinsaeError) as err:
            read(tmp_path / "sae")
        assert str(weights) in str(err.value) and message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_analyze_names_a_cut_sae_before_any_work(project_root, tmp_path):
    art = tmp_path / "art"
    for m_layer in ("layer_0",):
        folder = art / "sae" / "tiny" / m_layer / "t"
        weights = _tiny_sae_folder(folder)
        (folder / "summary.json").write_text("{}")
        weights.write_bytes(weights.read_bytes()[:1000])
    r = subprocess.run([sys.executable, "analyze.py", f"paths.artifacts={art}", *PAIR, "layers=[0]"],
                       cwd=project_root, capture_output=True, text=True, timeout=300, check=False)
    _one_error_line(r, f"SAE weights {weights} are damaged or cut")
    assert not (art / "activations").exists() and not (art / "analysis").exists()  # before the held-out extraction


@pytest.mark.parametrize("damage", ["cut", "garbage", "empty"])
def test_a_damaged_per_tweet_cache_entry_is_rebuilt(tmp_path, damage):
    import numpy as np
    import scipy.sparse as sp

    from finsae.trading.text_cache import DOC_FILE, cached_docs
    from finsae.trading.text_features import DocFeatures

    m = sp.csr_matrix(np.eye(3, 4, dtype=np.float32))
    docs = DocFeatures(np.array([3, 1, 2]), m, m, np.ones((3, 2), dtype=np.float32))
    calls = []

    def compute():
        calls.append(1)
        return docs

    cached_docs(tmp_path, "k", compute)
    path = tmp_path / "k" / DOC_FILE
    good = path.read_bytes()
    path.write_bytes({"cut": good[: len(good) // 2], "garbage": b"garbage" * 50, "empty": b""}[damage])
    again, computed = cached_docs(tmp_path, "k", compute)
    assert computed and len(calls) == 2 and path.read_bytes() == good  # rebuilt, published whole
    np.testing.assert_array_equal(again.n_tokens, docs.n_tokens)
    assert cached_docs(tmp_path, "k", compute)[1] is False  # and reused from then on


def _write_contexts(path, kind):
    import pandas as pd

    from finsae.analysis.contexts import CONTEXT_COLUMNS

    path.parent.mkdir(parents=True)
    frame = pd.DataFrame({c: [1] for c in CONTEXT_COLUMNS})
    if kind == "column-less":
        frame = frame.drop(columns=["words", "acts"])
    frame.to_parquet(path)
    if kind == "cut":
        path.write_bytes(path.read_bytes()[:-30])


@pytest.mark.parametrize("kind, message", [("cut", "is damaged or cut"), ("column-less", "lacks columns ['words', 'acts']")])
def test_damaged_contexts_are_named_in_one_line(tmp_path, kind, message):
    from finsae.analysis.contexts import contexts_path, read_contexts

    path = contexts_path(tmp_path, "tiny", 0)
    _write_contexts(path, kind)
    with pytest.raises(FinsaeError) as err:
        read_contexts(tmp_path, "tiny", 0)
    assert str(path) in str(err.value) and message in str(err.value) and "\n" not in str(err.value)


_HEAD = {"pair": "p", "base": "tiny", "domain": "tiny", "tag": "t", "seed_tag": "t_seed1"}
SUMMARY_ROWS = [(json.dumps({**_HEAD, "layers": "0"}), "'layers' is '0', not a list"),
                (json.dumps({**_HEAD, "layers": None}), "'layers' is None, not a list"),
                (json.dumps({**_HEAD, "layers": [0.5]}), "'layers' is [0.5], not a list"),
                ("[1, 2]", "not a JSON object"),
                ('{"base": "tiny", "domain": "tiny", "layers": [0]}', "missing ['pair', 'seed_tag', 'tag']"),
                (json.dumps({**_HEAD, "layers": [0]}), "contexts file")]  # contexts cut


@pytest.mark.parametrize("text, message", SUMMARY_ROWS, ids=[r[1][:24] for r in SUMMARY_ROWS])
def test_label_names_a_damaged_analysis_before_any_work(tmp_path, text, message):
    import pandas as pd

    from finsae.analysis.contexts import contexts_path
    from finsae.labeling.run import read_analysis

    folder = tmp_path / "analysis" / "p"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(text)
    pd.DataFrame({"model": ["tiny"], "layer": [0], "latent": [0], "financial": [True], "n_active_docs": [1]}).to_parquet(
        folder / "features.parquet")
    _write_contexts(contexts_path(folder, "tiny", 0), "cut")
    with pytest.raises(FinsaeError) as err:
        read_analysis(folder, "p", "tiny", "tiny")
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_a_run_name_that_is_a_path_is_refused_before_hydra_makes_the_folder(project_root, tmp_path):
    import os

    outputs = tmp_path / "outputs"
    r = subprocess.run([sys.executable, "label.py", "name=../escape", f"paths.artifacts={tmp_path / 'art'}"],
                       cwd=project_root, capture_output=True, text=True, timeout=300, check=False,
                       env={**os.environ, "FINSAE_OUTPUTS": str(outputs)})
    _one_error_line(r, "name='../escape' must be a plain name")
    assert not (tmp_path / "escape").exists() and not outputs.exists()


@pytest.mark.parametrize("layers", ["0,1", None, 3])
def test_a_typed_summary_whose_list_is_not_a_list_is_named(tmp_path, layers):
    import dataclasses
    import json

    from finsae.analysis.summary import AnalysisSummary

    required = {f.name: "x" for f in dataclasses.fields(AnalysisSummary)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({**required, "layers": [0, 1]}))
    assert AnalysisSummary.read(path).layers == [0, 1]
    path.write_text(json.dumps({**required, "layers": layers}))
    with pytest.raises(FinsaeError) as err:
        AnalysisSummary.read(path)
    assert str(path) in str(err.value) and "'layers' is" in str(err.value) and "\n" not in str(err.value)
