"""python -m finsae.reproduce: a tiny SAE reproduced from its Hydra run folder and from its offline W&B run alone
(equal metrics), a changed metric and code version caught, bad folders failing in one line."""

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
