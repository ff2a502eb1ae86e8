"""The trials ledger: every backtest (run x feature set x strategy) ever evaluated, appended, never rewritten.

The deflated Sharpe deflates by the number of trials and the variance of their Sharpe ratios; counting only the
trials of the current run would understate both. Every run and every job of a multirun sweep appends its trials
here (under a file lock) before the DSR is computed, so the count is honest across runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from filelock import FileLock

LEDGER_FILE = "trials.jsonl"


def append_trials(path: Path, trials: list[dict]) -> None:
    """Append ``trials`` (JSON-able dicts with at least ``sr_daily``) to the ledger at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"), open(path, "a") as fh:
        for t in trials:
            fh.write(json.dumps(t, sort_keys=True, default=str) + "\n")


def read_trials(path: Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    with FileLock(str(path) + ".lock"):
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def trial_stats(trials: list[dict]) -> tuple[int, float]:
    """(number of trials, variance of their per-period Sharpe ratios) — the DSR's two inputs."""
    srs = np.array([t["sr_daily"] for t in trials if t.get("sr_daily") is not None and np.isfinite(t["sr_daily"])])
    return len(trials), float(np.var(srs, ddof=1)) if len(srs) > 1 else 0.0
