"""python -m finsae.reproduce on the tiny study's analysis and backtest runs: the same summary metrics (within the
stated tolerance), each rerun in a new folder whose store links the original inputs and leaves them untouched."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def reproduce(project_root, run, out):
    r = subprocess.run([sys.executable, "-m", "finsae.reproduce", str(run), "--out", str(out)], cwd=project_root,
                       capture_output=True, text=True, timeout=1500, check=False)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads((out / "reproduce.json").read_text())


def test_reproduce_the_tiny_analysis(project_root, tiny_study, tmp_path):
    before = (tiny_study / "analysis" / "tiny_tiny" / "layers.parquet").read_bytes()
    report = reproduce(project_root, tiny_study.parent / "runs" / "analyze", tmp_path / "a")
    status = {m["key"]: m["status"] for m in report["metrics"]}
    assert report["differ"] == [] and status["n_specialized"] == status["mean_overlap"] == "ok"
    assert (tmp_path / "a" / "artifacts" / "analysis" / "tiny_tiny" / "layers.parquet").is_file()
    assert (tmp_path / "a" / "artifacts" / "sae").is_symlink() or (tmp_path / "a" / "artifacts" / "sae").is_dir()
    assert (tiny_study / "analysis" / "tiny_tiny" / "layers.parquet").read_bytes() == before


def test_reproduce_the_tiny_backtest(project_root, tiny_study, tmp_path):
    ledger = (tiny_study / "backtest" / "trials.jsonl").read_text()
    report = reproduce(project_root, tiny_study.parent / "runs" / "backtest", tmp_path / "b")
    status = {m["key"]: m["status"] for m in report["metrics"]}
    assert report["differ"] == [] and status["n_trials"] == status["n_rows"] == "ok"
    assert (tiny_study / "backtest" / "trials.jsonl").read_text() == ledger  # the original ledger is not appended to
    new = tmp_path / "b" / "artifacts" / "backtest"
    assert (new / "minilm_fin" / "metrics.csv").is_file() and not (new / "trials.jsonl").is_symlink()
