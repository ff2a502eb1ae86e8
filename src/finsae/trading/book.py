"""Turnover-aware books: the daily scores smoothed, a no-trade buffer on the ranks, the two knobs chosen inside
each training window, and what the books make after costs (breakeven cost, cost sweep).

Construction (one standard choice, documented here once):

* **smoothing**: each day's scores are first ranked within the day (:func:`finsae.trading.targets.cross_sectional`,
  so monthly refits with different scales mix fairly), then each ticker's rank is averaged exponentially over
  the signal days with half-life ``half_life`` days (0: no smoothing). Causal: day d's value uses days <= d;
* **no-trade buffer** (rank hysteresis): each leg holds m = max(1, floor(n * quantile)) names of the day's n, with
  equal weight (long-short +0.5/m and -0.5/m, long-only 1/m) as :func:`finsae.trading.backtest.positions`.
  A name held yesterday stays while its rank is inside the wider zone floor(n * (quantile + band)); the leg is
  filled up with the best-ranked names not held. ``band = 0`` is exactly the daily book. The legs stay
  dollar-neutral with gross 1, so turnover and costs compare with the daily book's one for one;
* **knob choice**: on each walk-forward fold, every (half_life, band) of the grid is run over the training
  window's scores and realized returns (days up to the fold's last validation day, purged from the test days by
  the fold's gap), and the pair with the highest net Sharpe after ``cost_bps`` wins; the test days are then
  traded with it. Each configuration tried is a trial (``TurnoverBook.n_configs``, with its return series).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd

from finsae.errors import require
from finsae.trading.backtest import Returns, strategy_returns
from finsae.trading.config import Knobs, TurnoverConfig
from finsae.trading.metrics import PERIODS, block_bootstrap, per_period_sharpe, sharpe_ci, turnover_mean
from finsae.trading.targets import cross_sectional
from finsae.trading.walk_forward import Fold

COST_SWEEP_BPS: tuple[float, ...] = tuple(TurnoverConfig().cost_sweep_bps)


DAILY = Knobs(0.0, 0.0)
"""The daily book: no smoothing, no buffer."""


def score_panel(scores: pd.DataFrame) -> pd.DataFrame:
    """``date`` x ``ticker`` panel of a long ``date``, ``ticker``, ``score`` frame (tickers sorted by name, the
    tie order of ``positions``)."""
    missing = {"date", "ticker", "score"} - set(scores.columns)
    require(not missing, f"book scores lack the columns {sorted(missing)}")
    require(not scores.duplicated(["date", "ticker"]).any(), "book scores have a (date, ticker) twice")
    return scores.pivot(index="date", columns="ticker", values="score").sort_index().sort_index(axis=1)


def smooth_scores(panel: pd.DataFrame, half_life: float) -> pd.DataFrame:
    """Each day's scores ranked within the day (in [-0.5, 0.5]), then averaged exponentially per ticker with
    ``half_life`` (0: the ranks themselves); NaN where the ticker has no score that day."""
    long = panel.stack(future_stack=True)
    ranked = pd.Series(cross_sectional(long.to_numpy(), long.index.get_level_values(0).to_numpy()),
                       index=long.index).unstack().reindex(index=panel.index, columns=panel.columns)
    if half_life == 0:
        return ranked
    return ranked.ewm(halflife=half_life, adjust=False, ignore_na=True).mean().where(ranked.notna())


def _leg(pos: np.ndarray, held: np.ndarray, m: int, exit_zone: int, allowed: np.ndarray) -> np.ndarray:
    """The m names of a leg: held names whose rank ``pos`` is inside ``exit_zone`` first, then the best."""
    n = len(pos)
    priority = np.where(allowed, pos - n * (held & (pos < exit_zone)), np.inf)
    pick = np.argsort(priority, kind="stable")[:m]
    out = np.zeros(n, bool)
    out[pick[np.isfinite(priority[pick])]] = True
    return out


def buffered_positions(smoothed: pd.DataFrame, kind: str, quantile: float, band) -> pd.DataFrame:
    """Target weights (signal day x ticker) of the no-trade buffer book on ``smoothed`` scores; ``band``: one
    number or one per day. With ``band = 0`` the weights of :func:`finsae.trading.backtest.positions`."""
    require(kind in ("long_short", "long_only"), f"unknown strategy {kind!r}")
    s = smoothed.to_numpy(np.float64)
    bands = np.broadcast_to(np.asarray(band, np.float64), (len(s),))
    w = np.zeros_like(s)
    held_long = np.zeros(s.shape[1], bool)
    held_short = held_long.copy()
    for t in range(len(s)):
        valid = np.isfinite(s[t])
        n = int(valid.sum())
        if n == 0 or (kind == "long_short" and n < 2):
            held_long[:], held_short[:] = False, False
            continue
        order = np.lexsort((np.arange(len(valid)), -np.where(valid, s[t], -np.inf)))[:n]
        pos = np.full(len(valid), np.inf)
        pos[order] = np.arange(n)
        m = max(1, math.floor(n * quantile))
        zone = max(m, math.floor(n * (quantile + bands[t])))
        held_long = _leg(pos, held_long, m, zone, valid)
        if kind == "long_only":
            w[t] = np.where(held_long, 1.0 / m, 0.0)
            continue
        held_short = _leg(n - 1 - pos, held_short, m, zone, valid & ~held_long)
        w[t] = np.where(held_long, 0.5 / m, 0.0) - np.where(held_short, 0.5 / m, 0.0)
    return pd.DataFrame(w, index=smoothed.index, columns=smoothed.columns)


class _Daily(NamedTuple):
    """A book's daily pieces by signal day, enough for its net return over any leading window."""

    gross: pd.Series
    turnover: pd.Series
    exposure: pd.Series
    """sum |w_d|: what a final exit on day d trades."""


def _daily(weights: pd.DataFrame, realized: pd.DataFrame) -> _Daily:
    r = realized.reindex(index=weights.index, columns=weights.columns).fillna(0.0)
    return _Daily((weights * r).sum(axis=1), (weights - weights.shift(1).fillna(0.0)).abs().sum(axis=1),
                  weights.abs().sum(axis=1))


def _net_until(d: _Daily, first, last, cost_bps: float) -> pd.Series:
    """Net returns of the book traded from ``first`` to ``last`` (signal days) and then closed, as
    :func:`strategy_returns` would give for the weights of those days."""
    keep = (d.gross.index >= first) & (d.gross.index <= last)
    turnover = d.turnover[keep].copy()
    if len(turnover):
        turnover.iloc[0] = d.exposure[keep].iloc[0]  # entered from cash
        turnover.iloc[-1] += d.exposure[keep].iloc[-1]  # the final exit
    return d.gross[keep] - turnover * cost_bps / 1e4


def _grid_books(panel: pd.DataFrame, realized: pd.DataFrame, grid: list[Knobs], kind: str,
                quantile: float) -> dict[Knobs, _Daily]:
    smoothed = {h: smooth_scores(panel, h) for h in {k.half_life for k in grid}}
    return {k: _daily(buffered_positions(smoothed[k.half_life], kind, quantile, k.band), realized) for k in grid}


class TurnoverBook(NamedTuple):
    """The turnover-aware book over the walk-forward test days."""

    weights: pd.DataFrame
    """Target weights, signal day x ticker."""
    returns: Returns
    """Its daily net / gross / turnover / cost at ``cost_bps``, indexed by entry day."""
    knobs: pd.DataFrame
    """One row per fold: ``fold``, ``train_start``, ``train_end`` (the training window's signal days: the
    choice reads scores and realized returns of these days only), ``test_start``, ``test_end``, ``half_life``,
    ``band`` (chosen), ``train_sharpe`` (its annualised net Sharpe on the training window), ``n_train_days``
    (scored training days; below ``min_choice_days`` the daily book is traded)."""
    n_configs: int
    """Configurations tried in each training window: the trials the choice adds."""
    config_returns: pd.DataFrame
    """Net return (entry day x configuration label) of every configuration held fixed over the test days: each
    tried configuration's series, for the trial ledger."""


class Choice(NamedTuple):
    """The knobs one training window chose."""

    knobs: Knobs
    """The winning configuration (the daily book when the window has too few scored days)."""
    train_sharpe: float
    """Its annualised net Sharpe on the training window (NaN when not chosen)."""
    n_train_days: int
    """Scored signal days in the training window."""


def choose_knobs(panel: pd.DataFrame, realized: pd.DataFrame, fold: Fold, cfg: TurnoverConfig, kind: str,
                 quantile: float, cost_bps: float, books: dict[Knobs, _Daily] | None = None) -> Choice:
    """The :class:`Choice` of ``fold``: the best configuration of the grid on the training window only (signal days from the first fit day to the last validation day; the
    realized returns of later days are never read). ``books``: the grid's books over ``panel`` when already
    built (they are causal, so one run serves every fold)."""
    first, last = fold.fit_days[0], fold.val_days[-1]
    require(last < fold.test_days[0], f"fold {fold.index}: the training window ends after its test days start")
    train = panel.loc[(panel.index >= first) & (panel.index <= last)]
    n_days = int(train.notna().any(axis=1).sum())
    if n_days < cfg.min_choice_days:
        return Choice(DAILY, float("nan"), n_days)
    if books is None:
        books = _grid_books(train, realized.loc[realized.index <= last], cfg.grid, kind, quantile)
    best, best_sr = DAILY, -np.inf
    for k in cfg.grid:
        sr = per_period_sharpe(_net_until(books[k], first, last, cost_bps))
        if np.isfinite(sr) and sr > best_sr:
            best, best_sr = k, sr
    return Choice(best, float(best_sr * math.sqrt(PERIODS)) if np.isfinite(best_sr) else float("nan"), n_days)


def turnover_aware_book(scores: pd.DataFrame, realized: pd.DataFrame, entry_day: pd.Series, fold_list: list[Fold],
                        cfg: TurnoverConfig, kind: str, quantile: float, cost_bps: float,
                        train_scores: pd.DataFrame | None = None) -> TurnoverBook:
    """The turnover-aware book on the test days of ``fold_list``, its knobs chosen per fold by
    :func:`choose_knobs`.

    ``scores``: the out-of-sample ``date``, ``ticker``, ``score``; ``realized``: ``ret_exec`` as signal day x
    ticker; ``entry_day``: signal day -> entry day (as :func:`strategy_returns`). ``train_scores``: the scores
    the knobs are chosen on, either one frame for every fold or with a ``fold`` column (e.g. each fold's model on
    its own training days); None: the out-of-sample ``scores`` of earlier folds that lie in the training window."""
    require(kind in ("long_short", "long_only"), f"unknown strategy {kind!r}")
    require(0 < quantile <= 0.5, f"the book's quantile must be in (0, 0.5], got {quantile}")
    panel = score_panel(scores)
    panel = panel.loc[panel.index.isin(np.concatenate([f.test_days for f in fold_list]))]
    require(len(panel) > 0, "the turnover-aware book has no scored test day in the walk-forward folds")
    grid = cfg.grid
    per_fold = train_scores is not None and "fold" in train_scores.columns
    if not per_fold:
        train_panel = panel if train_scores is None else score_panel(train_scores)
        shared = _grid_books(train_panel, realized, grid, kind, quantile)
    records = []
    day_half_life = pd.Series(0.0, index=panel.index)
    day_band = pd.Series(0.0, index=panel.index)
    for f in fold_list:
        if per_fold:
            own = score_panel(train_scores[train_scores["fold"] == f.index])
            k, sr, n = choose_knobs(own, realized, f, cfg, kind, quantile, cost_bps)
        else:
            k, sr, n = choose_knobs(train_panel, realized, f, cfg, kind, quantile, cost_bps, books=shared)
        records.append({"fold": f.index, "train_start": f.fit_days[0], "train_end": f.val_days[-1],
                        "test_start": f.test_days[0], "test_end": f.test_days[-1], "half_life": k.half_life,
                        "band": k.band, "train_sharpe": sr, "n_train_days": n})
        in_fold = panel.index.isin(f.test_days)
        day_half_life[in_fold], day_band[in_fold] = k.half_life, k.band
    smoothed = {h: smooth_scores(panel, h) for h in {k.half_life for k in grid} | set(day_half_life)}
    mixed = pd.DataFrame(np.nan, index=panel.index, columns=panel.columns)
    for h, s in smoothed.items():
        rows = (day_half_life == h).to_numpy()
        mixed.loc[rows] = s.loc[rows]
    weights = buffered_positions(mixed, kind, quantile, day_band.to_numpy())
    config_returns = pd.DataFrame({
        k.label: strategy_returns(buffered_positions(smoothed[k.half_life], kind, quantile, k.band), realized,
                                  entry_day, cost_bps).net for k in grid})
    return TurnoverBook(weights, strategy_returns(weights, realized, entry_day, cost_bps), pd.DataFrame(records),
                        len(grid), config_returns)


def at_cost(r: Returns, cost_bps: float) -> Returns:
    """The same book charged ``cost_bps`` per side instead (same weights, same turnover)."""
    cost = r.turnover * cost_bps / 1e4
    return Returns((r.gross - cost).rename("net"), r.gross, r.turnover, cost.rename("cost"))


class BookMetrics(NamedTuple):
    """One book's costs and returns (annualised Sharpe ratios)."""

    book: str
    """Which book (``daily``, ``turnover_aware``, ...)."""
    cost_bps: float
    """Cost charged, per side."""
    gross_sharpe: float
    """Sharpe before costs."""
    net_sharpe: float
    """Sharpe after costs."""
    net_sharpe_lo: float
    """Lower end of the day-block bootstrap interval of ``net_sharpe``."""
    net_sharpe_hi: float
    """Upper end."""
    turnover: float
    """Mean daily turnover, sum |w_d - w_{d-1}| (gross book 1)."""
    cost_drag: float
    """Costs per year: mean daily cost x 252."""
    breakeven_bps: float
    """Cost per side at which the mean net return is 0: mean gross / mean turnover, in bps."""
    breakeven_lo: float
    """Lower end of its day-block bootstrap interval."""
    breakeven_hi: float
    """Upper end."""
    n_days: int
    """Days in the series."""


def breakeven_ci(r: Returns, block: int, draws: int, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Day-block bootstrap interval of the breakeven cost (gross and turnover resampled on the same days)."""
    g, t = r.gross.to_numpy(np.float64), r.turnover.to_numpy(np.float64)
    if len(g) < 3:
        return float("nan"), float("nan")
    vals = [g[i].mean() / t[i].mean() * 1e4 if t[i].mean() > 0 else np.nan
            for i in block_bootstrap(len(g), block, draws, seed)]
    lo, hi = np.nanpercentile(vals, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(lo), float(hi)


def cost_columns(r: Returns, block: int, draws: int, seed: int = 0) -> dict[str, float]:
    """What the book ``r`` pays, at the cost it was charged (metrics.csv's columns): ``cost_drag`` (costs per
    year: mean daily cost x 252), ``breakeven_bps`` (cost per side at which the mean net return is 0: mean
    gross / mean turnover, in bps) and its day-block bootstrap interval ``breakeven_lo`` / ``breakeven_hi``."""
    mean_turnover = turnover_mean(r.turnover)
    lo, hi = breakeven_ci(r, block, draws, seed)
    breakeven = r.gross.mean() / mean_turnover * 1e4 if mean_turnover > 0 else float("nan")
    return {"cost_drag": float(r.cost.mean() * PERIODS), "breakeven_bps": float(breakeven),
            "breakeven_lo": lo, "breakeven_hi": hi}


def book_metrics(name: str, r: Returns, cost_bps: float, block: int, draws: int, seed: int = 0) -> BookMetrics:
    """Gross and net Sharpe, turnover, cost drag and breakeven cost of the book ``r`` charged ``cost_bps``."""
    r = at_cost(r, cost_bps)
    annual = math.sqrt(PERIODS)
    lo, hi = sharpe_ci(r.net, block, draws, seed)
    c = cost_columns(r, block, draws, seed)
    return BookMetrics(name, float(cost_bps), per_period_sharpe(r.gross) * annual,
                       per_period_sharpe(r.net) * annual, lo, hi, turnover_mean(r.turnover), c["cost_drag"],
                       c["breakeven_bps"], c["breakeven_lo"], c["breakeven_hi"], int(len(r.net)))


def book_table(books: dict[str, Returns], cost_bps: float, block: int, draws: int, seed: int = 0) -> pd.DataFrame:
    """:class:`BookMetrics` of each book, side by side (one row each)."""
    return pd.DataFrame([book_metrics(n, r, cost_bps, block, draws, seed) for n, r in books.items()],
                        columns=list(BookMetrics._fields))


def cost_sweep(books: dict[str, Returns], costs_bps=COST_SWEEP_BPS, block: int = 10, draws: int = 1000,
               seed: int = 0) -> pd.DataFrame:
    """Each book's net Sharpe (with its day-block interval) charged each cost of ``costs_bps``: ``book``,
    ``cost_bps``, ``net_sharpe``, ``net_sharpe_lo``, ``net_sharpe_hi``. The books are held fixed (a
    turnover-aware book keeps the knobs it chose at its own cost)."""
    require(len(costs_bps) > 0 and all(c >= 0 for c in costs_bps), f"costs must be >= 0, got {list(costs_bps)}")
    rows = []
    for name, r in books.items():
        for c in costs_bps:
            net = at_cost(r, c).net
            lo, hi = sharpe_ci(net, block, draws, seed)
            rows.append({"book": name, "cost_bps": float(c), "net_sharpe": per_period_sharpe(net) * math.sqrt(PERIODS),
                         "net_sharpe_lo": lo, "net_sharpe_hi": hi})
    return pd.DataFrame(rows)


def cost_sweep_table(returns: pd.DataFrame, costs_bps, eval_start: str, block: int, draws: int,
                     seed: int = 0) -> pd.DataFrame:
    """:func:`cost_sweep` of every book of ``returns`` (the backtest's long table: ``date``, ``set``,
    ``strategy``, ``book``, ``gross``, ``turnover``, ...) over the full period and from ``eval_start`` (the
    headline period): ``set``, ``strategy``, ``book``, ``period``, ``cost_bps``, ``net_sharpe`` and its
    interval."""
    start = pd.Timestamp(eval_start)
    out = []
    for (name, kind, book), g in returns.groupby(["set", "strategy", "book"], sort=False):
        g = g.set_index("date").sort_index()
        for period, part in (("full", g), ("headline", g[g.index >= start])):
            if len(part) < 5:
                continue
            r = Returns(part["net"], part["gross"], part["turnover"], part["cost"])
            sweep = cost_sweep({book: r}, costs_bps, block, draws, seed)
            out.append(sweep.assign(set=name, strategy=kind, period=period))
    cols = ["set", "strategy", "book", "period", "cost_bps", "net_sharpe", "net_sharpe_lo", "net_sharpe_hi"]
    return pd.concat(out, ignore_index=True)[cols] if out else pd.DataFrame(columns=cols)
