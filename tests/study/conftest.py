"""A tiny study built by the real stages (tiny random BERT as both sides of the pair, a few StockNet tickers):
what the report, the results pages and the notebook are tested against."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the labeling fixtures

PAIR = ["pair.base=tiny", "pair.domain=tiny"]
ANALYSIS_SMALL = ["analysis.docs_per_side=150", "analysis.docs_per_category=20", "analysis.n_boot=10",
                  "analysis.agreement_tokens=4000", "analysis.control_latents=4", "progress_bar=false"]
BACKTEST_SMALL = ["features.tickers=[XOM,JPM,WFC,GE,T,PFE,KO,MRK]", "features.sets=[price_count]",
                  "lgbm.n_estimators=40", "lgbm.num_leaves=[7]", "walk_forward.refit_days=42", "strategy.bootstrap=100",
                  "benchmark.bootstrap=100", "progress_bar=false"]


def _stage(root: Path, art: Path, *args: str, run_dir: Path | None = None) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    where = [f"hydra.run.dir={run_dir}"] if run_dir else []
    r = subprocess.run([sys.executable, *args[:1], *(a for a in args[1:] if a.startswith("--")),
                        f"paths.artifacts={art}", "logger=csv", *where, *(a for a in args[1:] if not a.startswith("--"))],
                       cwd=root, env=env, capture_output=True, text=True, timeout=1200, check=False)
    assert r.returncode == 0, f"{' '.join(args)}\n{r.stderr[-3000:]}"


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory, project_root, data_dir) -> Path:
    """artifacts/ of a whole tiny study: SAEs at two layers, analysis, labels (offline backend), backtest.

    The tiny random model has no financial latents to label, so the label stage runs on the labeling tests'
    planted-keyword analysis (``tests/labeling/fixtures.py``) in a store of its own; its labels, and the contexts
    and feature table they were made from (not its summary: the analysis section shows the real analysis), are
    then copied into the study. The analysis and backtest run folders are ``<tmp>/runs/{analyze,backtest}``."""
    import shutil

    from labeling.fixtures import write_analysis

    tmp = tmp_path_factory.mktemp("study")
    art = tmp / "artifacts"
    _stage(project_root, art, "train.py", "--multirun", "debug=tiny", "layer=0,1", "tag=t")
    _stage(project_root, art, "analyze.py", *PAIR, "tag=t", *ANALYSIS_SMALL, run_dir=tmp / "runs" / "analyze")
    planted = tmp / "planted"
    write_analysis(planted)
    _stage(project_root, planted, "label.py", "progress_bar=false")
    shutil.copytree(planted / "labels" / "minilm_fin", art / "labels" / "minilm_fin")
    for name in ("contexts", "features.parquet"):
        src, dst = planted / "analysis" / "minilm_fin" / name, art / "analysis" / "minilm_fin" / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    _stage(project_root, art, "backtest.py", *BACKTEST_SMALL, run_dir=tmp / "runs" / "backtest")
    return art
