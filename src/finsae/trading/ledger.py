"""The trials ledger: every headline backtest (feature set x strategy) ever evaluated, appended, never rewritten.

The deflated Sharpe deflates by the number of trials and the variance of their Sharpe ratios; counting only the
trials of the current run would understate both. A trial is one (set, strategy) evaluated on the headline period;
it is keyed by a hash of what was traded (the predictions, the strategy's knobs and the period), so a rerun of the
same predictions adds nothing. A run appends its trials under the ledger's lock in the same step that publishes
its results (:func:`record_trials`), never before: a killed run is not counted, and a rerun is counted once.

A line cut by a kill or a full disk mid-append is dropped with one warning naming the file
(:func:`check_ledger`, run before the walk-forward); any other unreadable line is refused in one line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
from filelock import FileLock

from finsae.errors import CacheCorruptError
from finsae.trading.artifacts import LEDGER_FILE  # noqa: F401 - the contract names the file; re-exported

log = logging.getLogger("finsae")


def _lock(path: Path) -> FileLock:
    return FileLock(str(path) + ".lock")


def trial_key(rows: np.ndarray, scores: np.ndarray, **spec) -> str:
    """Hash of one trial: the predicted rows and scores (bit for bit) and the knobs that turn them into returns."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(rows, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(scores, dtype=np.float64).tobytes())
    h.update(json.dumps(spec, sort_keys=True, default=str).encode())
    return h.hexdigest()[:24]


def _parse(path: Path, data: bytes) -> tuple[list[dict], int | None]:
    """(records, byte offset where a cut last line starts, or None)."""
    lines = data.split(b"\n")
    out, offset = [], 0
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        if line.strip():
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict):
                    raise ValueError("not an object")
                if last:  # valid JSON but no newline: the append was cut after its last byte; keep it
                    out.append(rec)
                    return out, None
                out.append(rec)
            except ValueError:
                if last or (i == len(lines) - 2 and not lines[-1].strip()):
                    return out, offset
                raise CacheCorruptError(
                    f"trials ledger {path}: line {i + 1} is not a JSON record (not a cut last line); "
                    f"fix or move the file aside (the DSR's trial count starts again from zero)") from None
        offset += len(line) + 1
    return out, None


def check_ledger(path: Path) -> None:
    """Read the ledger at ``path`` before any work: drop a cut last line (one warning naming the file), refuse
    (one line, :class:`CacheCorruptError`) a ledger damaged elsewhere."""
    path = Path(path)
    if not path.is_file():
        return
    with _lock(path):
        _read_repaired(path)


def _read_repaired(path: Path) -> list[dict]:
    data = path.read_bytes()
    records, cut = _parse(path, data)
    if cut is not None:
        with open(path, "r+b") as fh:
            fh.truncate(cut)
            fh.flush()
            os.fsync(fh.fileno())
        log.warning("trials ledger %s: dropped a cut last line (%d bytes, from an interrupted append)",
                    path, len(data) - cut)
    elif data and not data.endswith(b"\n"):
        with open(path, "ab") as fh:
            fh.write(b"\n")
    return records


def read_trials(path: Path) -> list[dict]:
    """Every trial of the ledger (a cut last line repaired, see :func:`check_ledger`)."""
    path = Path(path)
    if not path.is_file():
        return []
    with _lock(path):
        return _read_repaired(path)


def merge_trials(old: list[dict], new: list[dict]) -> list[dict]:
    """``old`` then the trials of ``new`` whose key is not in it yet (a trial without a key always counts)."""
    seen = {t["key"] for t in old if t.get("key")}
    out = list(old)
    for t in new:
        if t.get("key") and t["key"] in seen:
            continue
        seen.add(t.get("key"))
        out.append(t)
    return out


def record_trials(path: Path, new: list[dict], then=None) -> int:
    """Append the trials of ``new`` not yet in the ledger, then call ``then()`` (the publish), both under the
    ledger's lock; returns how many were appended. A kill between the two leaves the trials keyed, so the rerun
    that publishes adds nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock(path):
        old = _read_repaired(path) if path.is_file() else []
        add = merge_trials(old, new)[len(old):]
        if add:
            with open(path, "a") as fh:
                fh.write("".join(json.dumps(t, sort_keys=True, default=str) + "\n" for t in add))
                fh.flush()
                os.fsync(fh.fileno())
        if then is not None:
            then()
    return len(add)


def append_trials(path: Path, trials: list[dict]) -> None:
    """Append ``trials`` (keyed ones only once); see :func:`record_trials`."""
    record_trials(path, trials)


def headline(trials: list[dict]) -> list[dict]:
    """The headline trials (older ledgers also hold full-period rows, which are not separate trials)."""
    return [t for t in trials if t.get("period", "headline") == "headline"]


def trial_stats(trials: list[dict]) -> tuple[int, float]:
    """(number of headline trials, variance of their per-period Sharpe ratios) — the DSR's two inputs."""
    trials = headline(trials)
    srs = np.array([t["sr_daily"] for t in trials if t.get("sr_daily") is not None and np.isfinite(t["sr_daily"])])
    return len(trials), float(np.var(srs, ddof=1)) if len(srs) > 1 else 0.0


def effective_trials(trials: list[dict], min_corr: float = 0.5, min_overlap: int = 20) -> int:
    """Effective number of independent trials: the headline trials' daily return series clustered
    hierarchically (average linkage) on the correlation distance sqrt((1 - rho) / 2), cut at the distance of a
    correlation ``min_corr`` (two groups merge while their mean distance is below sqrt((1 - min_corr) / 2)); each
    cluster is one independent trial (Lopez de Prado 2018, ch. 8; Bailey & Lopez de Prado 2014). Pairs overlapping on
    fewer than ``min_overlap`` days count as uncorrelated; a trial without a stored series (older ledgers) is its
    own cluster."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    trials = headline(trials)
    with_series = [t for t in trials if isinstance(t.get("returns"), dict) and len(t["returns"]) > 1]
    n_alone = len(trials) - len(with_series)
    if len(with_series) < 2:
        return n_alone + len(with_series)
    import pandas as pd

    frame = pd.DataFrame({i: pd.Series(t["returns"], dtype=float) for i, t in enumerate(with_series)})
    rho = frame.corr(min_periods=min_overlap).fillna(0.0).to_numpy(copy=True)
    np.fill_diagonal(rho, 1.0)
    dist = np.sqrt(np.clip((1 - rho) / 2, 0.0, 1.0))
    dist = (dist + dist.T) / 2
    np.fill_diagonal(dist, 0.0)
    z = linkage(squareform(dist, checks=False), method="average")
    labels = fcluster(z, t=float(np.sqrt((1 - min_corr) / 2)), criterion="distance")
    return n_alone + int(len(np.unique(labels)))
