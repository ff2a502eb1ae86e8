"""python -m finsae.reproduce: a tiny SAE reproduced from its Hydra run folder, from its offline W&B run alone and
from its artifact folder (equal metrics), a changed metric and code version caught, bad folders failing in one
line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from finsae.reproduce import compare, main

pytestmark = pytest.mark.slow


def _repro(project_root, *args):
    return subprocess.run([sys.executable, "-m", "finsae.reproduce", *map(str, args)], cwd=project_root,
                          capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, project_root, data_dir):
    tmp = tmp_path_factory.mktemp("repro")
    run = tmp / "run"
    r = subprocess.run([sys.executable, "train.py", "debug=tiny", "layer=1", "logger=wandb_offline", "tag=repro",
                        f"paths.artifacts={tmp / 'art'}", f"hydra.run.dir={run}"],
                       cwd=project_root, capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    (tmp / "train.stdout").write_text(r.stdout)
    return tmp, run


def test_reproduce_from_the_offline_wandb_run_alone(project_root, trained):
    tmp, run = trained
    wandb_run = next((run / "wandb").glob("offline-run-*"))
    alone = tmp / "copied" / wandb_run.name  # what was copied off the cluster: the W&B run folder only
    shutil.copytree(wandb_run, alone)
    r = _repro(project_root, alone, "--out", tmp / "from_wandb")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    report = json.loads((tmp / "from_wandb" / "reproduce.json").read_text())
    status = {m["key"]: m["status"] for m in report["metrics"]}
    assert status["fvu"] == status["l0"] == status["train/fvu"] == "ok"
    assert report["differ"] == [] and report["code_version_old"] == report["code_version_new"]
    assert (tmp / "from_wandb" / "artifacts" / "sae" / "tiny" / "layer_1" / "repro" / "sae.safetensors").is_file()
    assert "CODE VERSION DIFFERS" not in r.stderr


def test_reproduce_catches_a_changed_metric_and_warns_on_code_version(project_root, trained):
    tmp, run = trained
    bent = tmp / "bent"
    shutil.copytree(run, bent, ignore=shutil.ignore_patterns("wandb"))
    summary = json.loads((bent / "summary.json").read_text())
    true_fvu = summary["fvu"]
    summary["fvu"] = true_fvu * 1.01
    (bent / "summary.json").write_text(json.dumps(summary))
    prov = json.loads((bent / "provenance.json").read_text())
    (bent / "provenance.json").write_text(json.dumps({**prov, "code_version": "0" * 40}))
    r = _repro(project_root, bent, "--out", tmp / "from_hydra")
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-3000:]
    assert "CODE VERSION DIFFERS" in r.stderr and "0" * 40 in r.stderr
    report = json.loads((tmp / "from_hydra" / "reproduce.json").read_text())
    assert report["differ"] == ["fvu"]
    row = next(m for m in report["metrics"] if m["key"] == "fvu")
    assert row["new"] == pytest.approx(true_fvu, rel=1e-4)
    assert "fvu" in r.stdout and "DIFF" in r.stdout


def test_compare_flattens_nested_summaries():
    old = {"strategies": [{"set": "price", "sharpe": 1.0}], "stocknet": {"price": {"mcc": 0.1}}, "sets": ["price"],
           "table": {"_type": "table-file", "nrows": 3}}
    new = {"strategies": [{"set": "price", "sharpe": 1.5}], "stocknet": {"price": {"mcc": 0.1}}, "sets": ["price"],
           "table": {"_type": "table-file", "nrows": 4}}
    rows = {r.key: r.status for r in compare(old, new, rtol=1e-4, atol=1e-6)}
    assert rows == {"strategies[0].set": "ok", "strategies[0].sharpe": "DIFF", "stocknet.price.mcc": "ok", "sets": "ok"}


def test_compare_tolerance_timings_and_nan():
    old = {"fvu": 0.5, "l0": 4.0, "seconds": 3.0, "loss_recovered": float("nan"), "model": "tiny", "gone": 1}
    new = {"fvu": 0.5 + 4e-5, "l0": 4.1, "seconds": 9.0, "loss_recovered": float("nan"), "model": "tiny"}
    rows = {r.key: r.status for r in compare(old, new, rtol=1e-4, atol=1e-6)}
    assert rows == {"fvu": "ok", "l0": "DIFF", "seconds": "timing", "loss_recovered": "ok", "model": "ok",
                    "gone": "missing"}


@pytest.mark.parametrize("breakage", ["missing", "corrupt", "foreign", "no_folder"])
def test_bad_run_folder_fails_in_one_line(tmp_path, capsys, breakage):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    if breakage == "corrupt":
        (run / ".hydra" / "config.yaml").write_text("paths: [unclosed\n  : :")
    elif breakage == "foreign":
        (run / ".hydra" / "config.yaml").write_text("lr: 0.1\n")
    elif breakage == "no_folder":
        run = tmp_path / "nowhere"
    assert main([str(run), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("finsae: error:")
    assert {"missing": "config.yaml", "corrupt": "not valid YAML", "foreign": "not a finsae stage config",
            "no_folder": "nowhere"}[breakage] in err[0]
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ guards (issue 37): refused before any work
@pytest.mark.parametrize("flag, value", [("--rtol", "-1"), ("--atol", "-1e-6"), ("--rtol", "nan"), ("--atol", "inf")])
def test_a_negative_or_non_finite_tolerance_is_refused(project_root, trained, tmp_path, capsys, flag, value):
    _, run = trained
    assert main([str(run), f"{flag}={value}", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"finsae: error: {flag} must be a finite number >= 0"), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("how", ["--artifacts", "the config's store"])
def test_a_missing_store_is_refused_not_rebuilt(trained, tmp_path, capsys, how):
    import yaml

    _, run = trained
    missing = tmp_path / "missing"
    args = [str(run), "--artifacts", str(missing)]
    if how == "the config's store":  # a run copied off a cluster: its config names a store that is not here
        moved = tmp_path / "moved"
        shutil.copytree(run, moved, ignore=shutil.ignore_patterns("wandb"))
        cfg = yaml.safe_load((moved / ".hydra" / "config.yaml").read_text())
        cfg["paths"]["artifacts"] = str(missing)
        (moved / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
        args = [str(moved)]
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "store" in err[0] and f"not found at {missing}" in err[0], err
    assert ("Pass --artifacts STORE" in err[0]) == (how != "--artifacts")
    assert not (tmp_path / "out").exists() and not missing.exists()


def test_a_cut_offline_wandb_run_is_named_as_cut(trained, tmp_path, capsys):
    _, run = trained
    cut = tmp_path / "cut"
    shutil.copytree(next((run / "wandb").glob("offline-run-*")), cut)
    log = next(cut.glob("*.wandb"))
    log.write_bytes(log.read_bytes()[: log.stat().st_size * 6 // 10])  # copied while the run was still writing
    assert main([str(cut), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a cut offline W&B run (no end record" in err[0], err
    assert not (tmp_path / "out").exists()


def test_a_secret_in_a_saved_config_is_never_copied(project_root, trained, tmp_path):
    import yaml

    _, run = trained
    leaky = tmp_path / "leaky"
    shutil.copytree(run, leaky, ignore=shutil.ignore_patterns("wandb"))
    cfg = yaml.safe_load((leaky / ".hydra" / "config.yaml").read_text())
    secret = "sk-NEVER-COPY-ME-0123456789"
    cfg["llm_api_key"] = secret  # a saved config from elsewhere, holding a key by mistake
    (leaky / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = _repro(project_root, leaky, "--out", tmp_path / "out")
    lines = [line for line in r.stderr.splitlines() if line.startswith("finsae: error:")]
    assert r.returncode == 2 and len(lines) == 1 and "holds a secret (llm_api_key)" in lines[0], r.stderr[-2000:]
    assert secret not in r.stdout + r.stderr and not (tmp_path / "out").exists()
    written = [p for p in tmp_path.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert written == [leaky / ".hydra" / "config.yaml"]  # only where it was planted


def _rerun_started(proc, out, timeout=300):
    """Wait until the rerun's stage is inside its Hydra job (its log exists), as a scheduler's stop would find it."""
    import time

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout and proc.poll() is None:
        if (out / "run" / "train.log").exists():
            time.sleep(2)
            return
        time.sleep(0.2)
    raise AssertionError(f"the rerun did not start: {proc.communicate(timeout=60)[1][-2000:]}")


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT", "SIGKILL"])
def test_a_signal_reaches_the_rerun_and_leaves_no_child(project_root, trained, tmp_path, sig):
    """SIGTERM/SIGINT sent to reproduce alone (as a scheduler does): forwarded to the rerun, one line, 128 + signal;
    SIGKILL of reproduce itself: the kernel stops the rerun (no orphan left training)."""
    import os
    import signal
    import time

    from glue.test_reliability import _alive, _children

    _, run = trained
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "finsae.reproduce", str(run), "--out", str(out)], cwd=project_root,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        _rerun_started(proc, out)
        children = _children(proc.pid)
        assert children, "the rerun runs as reproduce's child"
        proc.send_signal(getattr(signal, sig))
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    signum = getattr(signal, sig)
    if sig != "SIGKILL":
        assert proc.returncode == 128 + signum, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
        assert err.strip().splitlines()[-1].startswith(f"finsae: stopped by {sig}: the rerun was stopped"), err[-2000:]
    for _ in range(300):  # the rerun saves its checkpoint and exits
        if not _alive(children):
            break
        time.sleep(0.2)
    assert _alive(children) == set(), f"left running: {_alive(children)}"
    # stopped, not run to its end: the rerun published no SAE (an orphan would have finished and published it)
    assert not (out / "artifacts" / "sae" / "tiny" / "layer_1" / "repro" / "summary.json").exists()
    assert not (out / "reproduce.json").exists()


# ------------------------------------------------------------------ issue 34: from an artifact folder to its run
def test_reproduce_from_the_artifact_folder_finds_its_run_and_prints_only_differences(project_root, trained):
    tmp, run = trained
    artifact = tmp / "art" / "sae" / "tiny" / "layer_1" / "repro"
    summary = json.loads((artifact / "summary.json").read_text())
    assert summary["run_dir"] == str(run) and summary["wandb_run_id"]
    assert f"(run {run})" in (tmp / "train.stdout").read_text().strip().splitlines()[-1]  # the one-line summary
    r = _repro(project_root, artifact, "--out", tmp / "from_artifact")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    report = json.loads((tmp / "from_artifact" / "reproduce.json").read_text())
    assert report["source"] == str(run.resolve()) and report["differ"] == []
    assert {m["key"]: m["status"] for m in report["metrics"]}["fvu"] == "ok"
    assert "run_dir" not in {m["key"] for m in report["metrics"]}  # another run by design, not a result
    assert not any(line.split()[:1] == ["fvu"] for line in r.stdout.splitlines())  # agreeing: not listed
    assert "--all lists every metric" in r.stdout
    assert (tmp / "from_artifact" / "artifacts" / "sae" / "tiny" / "layer_1" / "repro" / "summary.json").is_file()


def test_an_artifact_whose_run_folder_is_gone_is_reproduced_from_its_wandb_run(project_root, trained):
    """The run folder is not on this machine, its offline W&B run is (under --runs): found by the run id."""
    tmp, run = trained
    wandb_run = next((run / "wandb").glob("offline-run-*"))
    shutil.copytree(wandb_run, tmp / "synced" / "somewhere" / wandb_run.name)
    moved = tmp / "moved" / "sae" / "tiny" / "layer_1" / "repro"
    moved.mkdir(parents=True)
    summary = json.loads((tmp / "art" / "sae" / "tiny" / "layer_1" / "repro" / "summary.json").read_text())
    (moved / "summary.json").write_text(json.dumps({**summary, "run_dir": str(tmp / "gone")}))
    r = _repro(project_root, moved, "--runs", tmp / "synced", "--artifacts", tmp / "art", "--all",
               "--out", tmp / "from_id")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    report = json.loads((tmp / "from_id" / "reproduce.json").read_text())
    assert report["source"] == str((tmp / "synced" / "somewhere" / wandb_run.name).resolve())
    assert any(line.split()[:1] == ["fvu"] and line.split()[-1] == "ok" for line in r.stdout.splitlines())


def test_an_artifact_folder_naming_no_run_fails_in_one_line(tmp_path, capsys):
    old = tmp_path / "sae" / "tiny" / "layer_1" / "old"
    old.mkdir(parents=True)
    (old / "summary.json").write_text(json.dumps({"fvu": 0.1}))  # written before summaries named their run
    assert main([str(old), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "names no run" in err[0] and "pass the run folder" in err[0], err
    (old / "summary.json").write_text(json.dumps({"fvu": 0.1, "run_dir": str(tmp_path / "gone"), "wandb_run_id": "x1"}))
    assert main([str(old), "--runs", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "W&B run x1" in err[0] and "--runs DIR" in err[0], err
    assert not (tmp_path / "out").exists()


def test_the_table_lists_only_differences_unless_all(capsys):
    from finsae.metric_diff import print_table

    rows = compare({"fvu": 0.5, "l0": 4.0, "seconds": 1.0}, {"fvu": 0.5, "l0": 5.0, "seconds": 2.0}, 1e-4, 1e-6)
    print_table(rows, 1e-4, 1e-6)
    short = capsys.readouterr().out
    assert "l0" in short and "fvu" not in short and "seconds" not in short
    assert "1 metric(s) agree" in short and "1 timing(s)" in short
    print_table(rows, 1e-4, 1e-6, show_all=True)
    full = capsys.readouterr().out
    assert all(k in full for k in ("fvu", "l0", "seconds"))
