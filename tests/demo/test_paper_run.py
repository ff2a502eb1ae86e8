"""The paper study's SAE and tweet stages on CPU: ``python -m finsae.demo --experiment paper --only
SAEs,tweets`` on a bert-base-shaped pair with random weights (12 x 768, bert-base-uncased's vocabulary;
``paper_pair.py``) under the paper pair's hub ids, with the paper experiment's settings except the scale: a
few thousand tokens per SAE, 768 latents, two of the twelve layers (``--layers``: the same graph, code path
and commands, 16 SAE jobs instead of 96). Every job runs, every SAE is published with its settings, and a
rerun finds the SAEs done.

The stages after them (analyze, labels, backtest, report) are not run here: at bert-base shape the analysis
caches all twelve layers of both models over its ~7,000 held-out passages (the AG News genre contrast has no
cap), over half an hour on two shared cores."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from finsae.demo.paper import CROSSCODER, PAIR, paper_runs
from finsae.paths import backtest_dir, report_dir, sae_dir
from finsae.summary import SUMMARY_FILE

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper_pair import write_random_pair  # noqa: E402

LAYERS = (0, 1)
SMALL = {
    "train": ["logger=csv", "data.corpora=[phrasebank]", "data.max_docs=200",
              "data.max_chars_per_corpus=null", "sae.expansion_factor=1", "sae.k=16", "sae.tokens=4096",
              "sae.batch_size=512", "sae.init_sample=1024",
              "trainer.checkpoint_every=4", "trainer.progress_bar=false", "downstream_docs=8"],
    "analyze": ["logger=csv", "analysis.docs_per_side=150", "analysis.docs_per_category=20",
                "analysis.n_boot=10",
                "analysis.agreement_tokens=4000", "analysis.control_latents=4", "progress_bar=false"],
    "label": ["logger=csv", "progress_bar=false"],
    "backtest": ["logger=csv", "features.tickers=[PTR,REX,BBL,UL,NGG,SNP,CODI,HRG]", "lgbm.n_estimators=40",
                 "lgbm.num_leaves=[7]", "walk_forward.refit_days=42", "strategy.bootstrap=100",
                 "benchmark.bootstrap=100", "progress_bar=false"],
}


def _study(project_root: Path, tmp: Path, art: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_CACHE": str(tmp / "hub"), "HF_HUB_OFFLINE": "1",
           "FINSAE_OUTPUTS": str(tmp / "out"), "OMP_NUM_THREADS": "1"}
    overrides = [f"--override={stage}:{o}" for stage, items in SMALL.items() for o in items]
    cmd = [sys.executable, "-m", "finsae.demo", "--experiment", "paper", "--only", "SAEs,tweets",
           "--layers", ",".join(map(str, LAYERS)), "--slots", "2", "--artifacts", str(art),
           "--results", "", "--readme", "", *overrides]
    return subprocess.run(cmd, cwd=project_root, env=env, capture_output=True, text=True, timeout=3000)


@pytest.mark.slow
@pytest.mark.timeout(2400)  # ~9 min on two shared cores: 16 SAE jobs and two tweet encodings
def test_paper_sae_stage_runs_on_a_random_bert_base_pair(tmp_path, project_root, data_dir):
    write_random_pair(tmp_path / "hub")
    art = tmp_path / "artifacts"
    r = _study(project_root, tmp_path, art)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    timing = json.loads((report_dir(art) / "timing.json").read_text())
    assert timing["experiment"] == "paper" and timing["ok"] and timing["only"] == ["SAEs", "tweets"]
    jobs = {name: j for s in timing["stages"].values() for name, j in s["jobs"].items()}
    assert len(jobs) == 16 + 2 and all(j["status"] == "ran" for j in jobs.values()), jobs
    for run in paper_runs(LAYERS):
        summary = json.loads((sae_dir(art, run.model, run.layer, run.tag) / SUMMARY_FILE).read_text())
        width = 2 if run.model == CROSSCODER else 1
        assert (summary["k"], summary["num_latents"], summary["tokens"]) == (16, 768, 4096)
        assert summary["d_in"] == width * 768 and summary["layer"] == run.layer and summary["tag"] == run.tag
        if run.model != CROSSCODER:
            assert summary["model"] == run.model
    assert not (backtest_dir(art, PAIR) / SUMMARY_FILE).exists()  # the tweets jobs only fill the caches
    rerun = _study(project_root, tmp_path, art)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    # the tweets jobs are done when the backtest is (as in the demo): without it they rerun, on warm caches
    assert "SAEs 16/16 already done" in rerun.stdout, rerun.stdout[-2000:]
    assert "paper: " in rerun.stdout and "(2 jobs run, 16 already done)" in rerun.stdout, rerun.stdout[-2000:]
    assert "offline backend" not in rerun.stdout  # no labels job in this run: no note about it
