"""Signal decay: how long a daily cross-sectional score keeps information about returns.

The score of signal day d uses what is known at d's close; like the backtest's ``ret_exec``, every forward return
starts at d's execution price (the open of d+1, or its close with ``execution="close"``), never at d itself.
Two forward returns per horizon h (in trading days, the ticker's next rows with a price):

* ``cumulative``: from d's execution to h days later (p[d+1+h] / p[d+1] - 1): what a position held h days earns,
  which tells the holding period a signal supports. h = 1 is ``ret_exec``;
* ``day``: the one-day return h-1 days later (p[d+1+h] / p[d+h] - 1): the information left in the score after
  h-1 days, which is the decay profile proper (it goes to 0 once the information is spent, where the cumulative
  IC only shrinks like 1/sqrt(h)). h = 1 is also ``ret_exec``.

Per (set, window, horizon): the mean over days of the per-day rank IC, with a circular day-block bootstrap
interval whose block is at least h days (overlapping h-day returns make neighbouring days' ICs correlated).

The stage (:func:`finsae.trading.run.signal_decay`) scores the out-of-sample predictions of the model the
long-short book trades, fit on the one-day target: its windows are purged for that target, and an h-day
forward return of a test day only reads prices after it, which no fit has seen, so one walk-forward serves
every horizon. A model fit on an h-day target instead must be purged by h+1 trading days (its row of day d
looks up to d+1+h): :func:`horizon_gap` and :func:`purged_folds` give the walk-forward windows for that.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from finsae.errors import require
from finsae.trading.metrics import mean_ci
from finsae.trading.walk_forward import Fold, folds

HORIZONS: tuple[int, ...] = (1, 2, 5, 10, 20)
"""Default horizons of the decay table, in trading days."""
WINDOWS: tuple[str, ...] = ("cumulative", "day")
"""Forward-return windows (see the module docstring)."""


class DecayRow(NamedTuple):
    """One row of the decay table (``rank_ic_decay.csv``)."""

    set: str
    """Feature set (or any named score)."""
    period: str
    """``full`` (every scored day) or a named later period (the backtest's ``headline``)."""
    window: str
    """``cumulative`` (d's execution to h days later) or ``day`` (the one-day return h-1 days later)."""
    horizon: int
    """h, in trading days."""
    ic: float
    """Mean over days of the per-day Spearman correlation of score and forward return."""
    lo: float
    """Lower end of the day-block bootstrap interval of ``ic``."""
    hi: float
    """Upper end."""
    n_days: int
    """Days with an IC (at least 3 tickers with both a score and a forward return, neither constant)."""
    block_days: int
    """Bootstrap block length used: max(the configured block, h)."""


DECAY_COLUMNS: tuple[str, ...] = DecayRow._fields


def _check_horizons(horizons) -> tuple[int, ...]:
    hs = tuple(int(h) for h in horizons)
    require(len(hs) > 0 and all(h >= 1 for h in hs) and all(h == x for h, x in zip(hs, horizons, strict=True)),
            f"decay horizons must be whole trading days >= 1, got {list(horizons)}")
    return hs


def forward_returns(adj: pd.DataFrame, horizons=HORIZONS, execution: str = "open") -> pd.DataFrame:
    """``ticker``, ``date`` and, per horizon h, ``cum_{h}`` and ``day_{h}`` for every row of ``adj``
    (:func:`finsae.trading.prices.adjusted`: ``adj_open``, ``adj_close``); NaN where the ticker has no price
    that many rows ahead."""
    hs = _check_horizons(horizons)
    require(execution in ("open", "close"), f"execution must be 'open' or 'close', got {execution!r}")
    adj = adj.sort_values(["ticker", "date"], kind="stable")
    px = adj["adj_open"] if execution == "open" else adj["adj_close"]
    g = px.groupby(adj["ticker"], sort=False)
    ahead = {k: g.shift(-k) for k in sorted({1, *hs, *(h + 1 for h in hs)})}
    out = adj[["ticker", "date"]].copy()
    for h in hs:
        out[f"cum_{h}"] = ahead[1 + h] / ahead[1] - 1
        out[f"day_{h}"] = ahead[1 + h] / ahead[h] - 1
    return out.reset_index(drop=True)


def rank_ic_by_day(score: pd.DataFrame, ret: pd.DataFrame) -> pd.Series:
    """Per-day rank IC of two ``date`` x ``ticker`` panels (``ret`` aligned to ``score``): the Spearman
    correlation over the tickers with both values; days with fewer than 3 such tickers or a constant side left
    out. The same numbers as :func:`finsae.trading.metrics.daily_rank_ic`, all days at once."""
    s = score.to_numpy(np.float64)
    r = ret.reindex(index=score.index, columns=score.columns).to_numpy(np.float64)
    both = np.isfinite(s) & np.isfinite(r)
    n = both.sum(axis=1)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        ranks = [stats.rankdata(np.where(both, x, np.nan), axis=1, nan_policy="omit") for x in (s, r)]
        cs, cr = (np.where(both, x - np.nanmean(x, axis=1, keepdims=True), 0.0) for x in ranks)
    vs, vr = (cs ** 2).sum(axis=1), (cr ** 2).sum(axis=1)
    ok = (n >= 3) & (vs > 1e-12) & (vr > 1e-12)
    ic = (cs * cr).sum(axis=1)[ok] / np.sqrt(vs[ok] * vr[ok])
    return pd.Series(ic, index=score.index[ok], dtype=float)


def rank_ic_decay(scores: pd.DataFrame, forward: pd.DataFrame, horizons=HORIZONS, block_days: int = 10,
                  draws: int = 1000, seed: int = 0, level: float = 0.95,
                  periods: dict | None = None) -> pd.DataFrame:
    """The decay table: one :class:`DecayRow` per (set, period, window, horizon), in that order.

    ``scores``: ``set``, ``date``, ``ticker``, ``score`` (the score of signal day d, known at d's close);
    ``forward``: :func:`forward_returns` with these horizons; ``periods``: name -> first signal day (None: all
    days), by default ``{"full": None}``."""
    hs = _check_horizons(horizons)
    missing = {"set", "date", "ticker", "score"} - set(scores.columns)
    require(not missing, f"decay scores lack the columns {sorted(missing)}")
    cols = [f"{w}_{h}" for h in hs for w in ("cum", "day")]
    absent = [c for c in cols if c not in forward.columns]
    require(not absent, f"forward returns lack {absent}: compute them with the same horizons")
    require(block_days >= 1 and draws >= 10, f"decay needs block_days >= 1 and draws >= 10, got {block_days}, {draws}")
    fwd = forward.set_index(["date", "ticker"])[cols]
    rows = []
    for name, sc in scores.groupby("set", sort=False):
        wide = sc.set_index(["date", "ticker"])["score"]
        require(wide.index.is_unique, f"decay scores of set {name!r} have a (date, ticker) twice")
        score = wide.unstack("ticker").sort_index()
        ahead = fwd.reindex(wide.index)
        for period, start in (periods or {"full": None}).items():
            keep = slice(None) if start is None else score.index >= pd.Timestamp(start)
            for window, prefix in (("cumulative", "cum"), ("day", "day")):
                for h in hs:
                    ic = rank_ic_by_day(score.loc[keep], ahead[f"{prefix}_{h}"].unstack("ticker"))
                    block = max(block_days, h)
                    lo, hi = mean_ci(ic, block, draws, seed, level)
                    mean = float(ic.mean()) if len(ic) else float("nan")
                    rows.append(DecayRow(str(name), str(period), window, h, mean, lo, hi, len(ic), block))
    return pd.DataFrame(rows, columns=list(DECAY_COLUMNS))


def horizon_gap(horizon: int, wf_cfg) -> int:
    """Trading days to leave out between a training window and what follows it (validation, test) when the model
    learns an h-day forward return: the purge grows to h+1 days (row d's target reaches d+1+h), at least the
    configured ``purge_days``, plus the configured embargo. ``wf_cfg``: a ``WalkForwardConfig``."""
    (h,) = _check_horizons([horizon])
    return max(wf_cfg.purge_days, h + 1) + wf_cfg.embargo_days


def purged_folds(days, wf_cfg, horizon: int) -> list[Fold]:
    """:func:`finsae.trading.walk_forward.folds` with the purge widened for an h-day target
    (:func:`horizon_gap`)."""
    (h,) = _check_horizons([horizon])
    return folds(days, dataclasses.replace(wf_cfg, purge_days=max(wf_cfg.purge_days, h + 1)))
