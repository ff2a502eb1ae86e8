"""The paper study end to end on CPU: ``python -m finsae.demo --experiment paper`` on a bert-base-shaped pair
with random weights (12 x 768, bert-base-uncased's vocabulary; ``paper_pair.py``) under the paper pair's hub
ids, with the paper experiment's graph and commands at test scale (:data:`PROFILE`): two of the twelve layers
(``--layers 0,11``: 20 SAE jobs instead of 120), a few thousand tokens and 768 latents per SAE, a few dozen
held-out passages per side of each contrast, eight tickers. Every job runs (SAEs, seed repeats, crosscoders,
warm starts, tweets, analyze, labels, backtest, report), every stage's result is published with the paper's
names and settings, the report builds, and a rerun finds every job done."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from finsae.demo.paper import CROSSCODER, PAIR, paper_runs
from finsae.demo.plan import report_file
from finsae.paths import analysis_dir, backtest_dir, labels_dir, report_dir, sae_dir
from finsae.summary import SUMMARY_FILE

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper_pair import write_random_pair  # noqa: E402

LAYERS = (0, 11)
PROFILE = {
    "train": ["logger=csv", "data.corpora=[phrasebank]", "data.max_docs=200",
              "data.max_chars_per_corpus=null", "sae.expansion_factor=1", "sae.k=16", "sae.tokens=4096",
              "sae.batch_size=512", "sae.init_sample=1024",
              "trainer.checkpoint_every=4", "trainer.progress_bar=false", "downstream_docs=2"],
    # random weights know no finance: the rule's floors at their loosest, so that the labels have latents
    "analyze": ["logger=csv", "analysis.min_auroc=0.5", "analysis.fdr=0.99", "analysis.docs_per_side=40",
                "analysis.docs_per_category=8", "analysis.genre_docs=20",
                "analysis.max_chars=200", "analysis.n_boot=10",
                "analysis.agreement_tokens=2000", "analysis.null_tokens=2000", "analysis.control_latents=4",
                "analysis.independent.overlap_n_boot=20", "analysis.warmstart.n_boot=20",
                "progress_bar=false"],
    "label": ["logger=csv", "label.max_latents=4", "progress_bar=false"],
    "backtest": ["logger=csv", "features.tickers=[PTR,REX,BBL,UL,NGG,SNP,CODI,HRG]", "lgbm.n_estimators=40",
                 "lgbm.num_leaves=[7]", "walk_forward.refit_days=42", "strategy.bootstrap=100",
                 "benchmark.bootstrap=100", "progress_bar=false"],
}
"""The paper experiment at test scale: ``--override STAGE:KEY=VALUE`` for each entry point."""
N_JOBS = 20 + 2 + 4  # SAEs, tweets, analyze + labels + backtest + report


def _study(project_root: Path, tmp: Path, art: Path, data: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_CACHE": str(tmp / "hub"), "HF_HUB_OFFLINE": "1",
           "FINSAE_DATA_DIR": str(data), "FINSAE_OUTPUTS": str(tmp / "out"), "OMP_NUM_THREADS": "1"}
    overrides = [f"--override={stage}:{o}" for stage, items in PROFILE.items() for o in items]
    cmd = [sys.executable, "-m", "finsae.demo", "--experiment", "paper",
           "--layers", ",".join(map(str, LAYERS)), "--slots", "2", "--artifacts", str(art),
           "--results", "", "--readme", "", *overrides]
    return subprocess.run(cmd, cwd=project_root, env=env, capture_output=True, text=True, timeout=3000)


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_the_paper_graph_runs_end_to_end_on_a_random_bert_base_pair(tmp_path, project_root, data_dir):
    write_random_pair(tmp_path / "hub")
    art = tmp_path / "artifacts"
    r = _study(project_root, tmp_path, art, data_dir)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    timing = json.loads((report_dir(art) / "timing.json").read_text())
    assert timing["experiment"] == "paper" and timing["ok"] and timing["only"] is None
    jobs = {name: j for s in timing["stages"].values() for name, j in s["jobs"].items()}
    assert len(jobs) == N_JOBS and all(j["status"] == "ran" for j in jobs.values()), jobs
    for run in paper_runs(LAYERS):
        summary = json.loads((sae_dir(art, run.model, run.layer, run.tag) / SUMMARY_FILE).read_text())
        width = 2 if run.model == CROSSCODER else 1
        assert (summary["k"], summary["num_latents"], summary["tokens"]) == (16, 768, 4096)
        assert summary["d_in"] == width * 768 and summary["layer"] == run.layer and summary["tag"] == run.tag
        if run.model != CROSSCODER:
            assert summary["model"] == run.model
    analysis = json.loads((analysis_dir(art, PAIR) / SUMMARY_FILE).read_text())
    assert (analysis["base"], analysis["domain"]) == ("bert_base", "finbert")
    assert analysis["layers"] == list(LAYERS)
    assert analysis["tag"] == "paper" and analysis["seed_tag"] == "paper_seed1"
    assert json.loads((labels_dir(art, PAIR) / SUMMARY_FILE).read_text())["n_labelled"] > 0
    backtest = json.loads((backtest_dir(art, PAIR) / SUMMARY_FILE).read_text())
    assert backtest["strategies"], backtest
    assert report_file(art).is_file() and report_file(art).stat().st_size > 0
    for f in [*art.rglob(SUMMARY_FILE)]:  # strict JSON everywhere: every NaN a null with its reason
        json.loads(f.read_text(), parse_constant=lambda c, f=f: pytest.fail(f"bare {c} in {f}"))
    rerun = _study(project_root, tmp_path, art, data_dir)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"(0 jobs run, {N_JOBS} already done)" in rerun.stdout, rerun.stdout[-2000:]
