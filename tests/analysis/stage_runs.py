"""The analysis stage tests' runs of the entry points (train.py, analyze.py) on the tiny model: one
subprocess each, all writing under one artifacts folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from finsae.paths import sae_dir

PAIR = ["pair.base=tiny", "pair.domain=tiny"]
"""The tiny model on both sides of the pair."""
SMALL_ANALYSIS = ["analysis.docs_per_side=150", "analysis.docs_per_category=20", "analysis.n_boot=10",
                  "analysis.agreement_tokens=4000", "analysis.control_latents=4", "progress_bar=false"]
"""analyze.py knobs small enough for a test; each test adds its logger and the knobs of the method it
checks."""
QUICK_LAYER_1 = ["debug=tiny", "layer=1", "logger=none", "downstream_docs=0"]
"""A short training run at layer 1 without the downstream check (the warm-started runs, the crosscoder)."""


def run(root: Path, art: Path, script: str, *overrides: str,
        check: bool = True) -> subprocess.CompletedProcess:
    """``python script`` in ``root`` with ``paths.artifacts=art`` and ``overrides`` (flags such as
    ``--multirun`` go first); with ``check``, a failed run fails the test with the end of its stderr."""
    flags = [o for o in overrides if o.startswith("--")]
    rest = [o for o in overrides if o not in flags]
    cmd = [sys.executable, script, *flags, f"paths.artifacts={art}", *rest]
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=900, check=False)
    if check:
        assert r.returncode == 0, r.stderr[-4000:]
    return r


def train_warm_runs(root: Path, art: Path) -> None:
    """The warm start's domain and control runs: the tiny model's SAE ``t`` at layer 1 continued with seed 1
    (the same tokens in the same order: the tiny pair's domain model is the base itself)."""
    run(root, art, "train.py", "--multirun", *QUICK_LAYER_1, "seed=1",
        f"sae.init_from={sae_dir(art, 'tiny', 1, 't')}", "tag=t_warm_domain,t_warm_control")
