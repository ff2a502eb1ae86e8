"""The stage's science in three calls, each pure (data in, tables out):

* ``walk_forward_predictions``: every feature set's out-of-sample predictions over the walk-forward folds;
* ``evaluate_backtests``: positions, returns after costs, metrics (quantstats, PSR, DSR, bootstrap CI) per
  feature set and strategy, beside the S&P 500 and the equal-weight universe;
* ``stocknet_benchmark``: the published ACL18 protocol, one fit per feature set (dev for early stopping and the
  grid, test touched once).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pandas as pd

from finsae.trading.backtest import (
    Returns, equal_weight_buy_and_hold, index_returns, positions, strategy_returns,
)
from finsae.trading.book import DAILY, cost_columns, turnover_aware_book
from finsae.trading.config import Knobs
from finsae.trading.features import Block
from finsae.trading.ledger import effective_trials, merge_trials, trial_key, trial_stats
from finsae.trading.targets import cross_sectional
from finsae.trading.metrics import (
    PERIODS, classification_ci, daily_rank_ic, mcc, mean_ci, paired_accuracy_diff, per_period_sharpe,
    quantstats_metrics, sharpe_ci, sharpe_stats, turnover_mean,
)
from finsae.trading.walk_forward import Fold, folds, run_fold
from finsae.workers import one_thread, one_thread_pool, worker_state


class WalkForward(NamedTuple):
    predictions: pd.DataFrame
    """``row``, ``set``, ``fold``, ``pred_ret`` (raw-return model), ``pred_cs`` (cross-sectional model),
    ``prob_up``."""
    fit_windows: pd.DataFrame
    """One row per fitted object: ``set``, ``fold``, ``what``, ``fit_start``, ``fit_end``, ``val_start``,
    ``val_end``, ``test_start``, ``test_end``."""
    importance: pd.DataFrame
    """``set``, ``feature``, ``gain``, ``shap`` summed over folds."""
    folds: list[Fold]


def walk_forward_predictions(rows: pd.DataFrame, sets: dict[str, list[Block]], wf_cfg, lgbm_cfg, feat_cfg,
                             progress: Callable[[], None] | None = None,
                             cross_section: str | None = "rank") -> WalkForward:
    """Out-of-sample predictions of every set in ``sets`` (name -> blocks) on ``rows``.

    The (set, fold) fits run ``wf_cfg.jobs`` at a time in worker processes (LightGBM is not safe to run in
    several threads of one process); each worker receives the data once and then only (set, fold) names. Every
    fit is single-threaded (LightGBM ``num_threads``, BLAS limited to one thread in the workers and here), so the
    result does not depend on ``jobs``. ``cross_section``: the long-short model's target
    (:func:`finsae.trading.targets.cross_sectional`; None: no such model)."""
    dates = rows["date"].to_numpy()
    fs = folds(np.unique(dates), wf_cfg)
    ret = rows["ret_exec"].to_numpy(np.float64)
    y_cs = None if cross_section is None else cross_sectional(ret, dates, cross_section)
    data = _FoldData(sets, dates, ret, rows["up_exec"].to_numpy(np.float64),
                     lgbm_cfg, feat_cfg.latents, feat_cfg.top_n, feat_cfg.dense_pca, y_cs)
    jobs = [(name, f) for name in sets for f in fs]
    preds, windows, imps = [], [], []

    def collect(results):
        for (name, f), res in zip(jobs, results, strict=True):  # in submission order
            preds.append(res.predictions.assign(set=name, fold=f.index))
            windows.extend({**w, "set": name} for w in res.fit_windows)
            imps.append(res.importance.assign(set=name))
            if progress is not None:
                progress()

    n_jobs = max(1, min(wf_cfg.jobs, len(jobs)))
    if n_jobs == 1:
        with one_thread():
            collect(data.fit(name, f) for name, f in jobs)
    else:
        with one_thread_pool(n_jobs, data) as pool:
            collect(pool.map(_fit_in_worker, jobs))
    imp = pd.concat(imps, ignore_index=True).groupby(["set", "feature"], as_index=False)[["gain", "shap"]].sum()
    return WalkForward(pd.concat(preds, ignore_index=True), pd.DataFrame(windows), imp, fs)


class _FoldData(NamedTuple):
    """What every fit reads; sent to each worker process once."""

    sets: dict[str, list[Block]]
    dates: np.ndarray
    y_ret: np.ndarray
    y_up: np.ndarray
    lgbm_cfg: object
    latents: str
    top_n: int
    dense_pca: int | None
    y_cs: np.ndarray | None

    def fit(self, name: str, fold: Fold):
        return run_fold(fold, self.sets[name], self.dates, self.y_ret, self.y_up, self.lgbm_cfg, self.latents,
                        self.top_n, self.dense_pca, y_cs=self.y_cs)


def _fit_in_worker(job):
    return worker_state().fit(*job)


def market_benchmarks(adj: pd.DataFrame, sp500: pd.DataFrame, days, tickers, execution: str) -> dict[str, pd.Series]:
    """The S&P 500 and the equal-weight buy-and-hold of ``tickers``, as pandas Series over ``days``."""
    col = "adj_open" if execution == "open" else "adj_close"
    px = adj[adj["ticker"].isin(tickers)].pivot_table(index="date", columns="ticker", values=col)
    return {"sp500": index_returns(sp500, days, execution), "equal_weight": equal_weight_buy_and_hold(px, days)}


class Backtests(NamedTuple):
    returns: pd.DataFrame
    """``date`` (entry day), ``set``, ``strategy``, ``book``, ``net``, ``gross``, ``turnover``, ``cost``."""
    positions: pd.DataFrame
    """``date`` (signal day), ``set``, ``strategy``, ``book``, ``ticker``, ``weight`` (nonzero only)."""
    metrics: pd.DataFrame
    """One row per (set, strategy, book, period): quantstats metrics, turnover, gross Sharpe, cost drag, the
    breakeven cost with its interval (:func:`finsae.trading.book.cost_columns`), Sharpe CI, PSR, the DSR
    deflated by the raw count of trials (``dsr``, ``n_trials``) and by the effective number of independent
    ones (``dsr_eff``, ``n_trials_eff``); the market benchmarks' rows have ``book`` = ``benchmark``."""
    trials: list[dict]
    """This run's headline trials (keyed), to record in the ledger when the run publishes."""
    knobs: pd.DataFrame
    """The turnover-aware book's knobs per (set, strategy, fold) (:class:`finsae.trading.book.TurnoverBook`;
    empty when it did not run)."""


BOOKS = ("daily", "turnover_aware")
"""The books of every (set, strategy): rebalanced to the day's quantiles; smoothed with a no-trade band."""


def book_model(kind: str, predictions: pd.DataFrame, strat_cfg) -> tuple[str, str]:
    """(prediction column, label) of the model a book trades: the long-short book the cross-sectional model
    (``pred_cs``) when there is one, the long-only book the raw-return model (``pred_ret``)."""
    if kind == "long_short" and "pred_cs" in predictions and predictions["pred_cs"].notna().any():
        return "pred_cs", f"cross_section_{strat_cfg.cross_section}"
    return "pred_ret", "raw_return"


def evaluate_backtests(rows: pd.DataFrame, predictions: pd.DataFrame, strat_cfg, benchmarks: dict[str, pd.Series],
                       eval_start: str, entry_day: pd.Series, ledger: list[dict], run_id: str,
                       count_new: bool = True, fold_list: list[Fold] | None = None) -> Backtests:
    """Backtest every (set, strategy) on ``predictions``; metrics for the full walk-forward period and the
    headline period from ``eval_start``.

    With ``fold_list`` (the walk-forward's folds) and ``strat_cfg.turnover.enabled``, each (set, strategy) has
    two books: the daily one and the turnover-aware one (:func:`finsae.trading.book.turnover_aware_book`, its
    knobs chosen inside each training window). A trial is one (set, strategy, configuration) on the headline
    period, keyed by a hash of its predictions and knobs (:func:`finsae.trading.ledger.trial_key`): the daily
    book, and every other configuration of the turnover-aware book's grid (the chosen book switches between
    them, so it is no trial of its own). ``ledger`` holds the trials recorded so far. The DSR of every row
    deflates by the ledger's trials plus this run's new ones (``count_new``; the canaries pass False: they are
    not trials). The new trials are returned in ``Backtests.trials`` for the caller to record when it
    publishes."""
    realized = rows.pivot_table(index="date", columns="ticker", values="ret_exec")
    start = pd.Timestamp(eval_start)
    turnover = fold_list is not None and strat_cfg.turnover.enabled
    series, weights, new, knobs = {}, {}, [], []
    for name, p in predictions.groupby("set", sort=False):
        for kind in strat_cfg.kinds:
            col, _ = book_model(kind, p, strat_cfg)
            r = p["row"].to_numpy()
            scores = pd.DataFrame({"date": rows["date"].to_numpy()[r], "ticker": rows["ticker"].to_numpy()[r],
                                   "score": p[col].to_numpy()})
            keyed = functools.partial(trial_key, r, p[col].to_numpy(), strategy=kind,
                                      quantile=strat_cfg.quantile, cost_bps=strat_cfg.cost_bps,
                                      execution=strat_cfg.execution)
            w = positions(scores, kind, strat_cfg.quantile)
            series[name, kind, "daily"], weights[name, kind, "daily"] = (
                strategy_returns(w, realized, entry_day, strat_cfg.cost_bps), w)
            new += _trials(run_id, name, kind, {DAILY: series[name, kind, "daily"].net}, start, keyed)
            if not turnover:
                continue
            tb = turnover_aware_book(scores, realized, entry_day, fold_list, strat_cfg.turnover, kind,
                                     strat_cfg.quantile, strat_cfg.cost_bps)
            series[name, kind, "turnover_aware"] = tb.returns
            weights[name, kind, "turnover_aware"] = tb.weights
            knobs.append(tb.knobs.assign(set=name, strategy=kind))
            tried = {k: tb.config_returns[k.label] for k in strat_cfg.turnover.grid if k != DAILY}
            new += _trials(run_id, name, kind, tried, start, keyed)
    counted = merge_trials(ledger, new) if count_new else list(ledger)
    deflate = _Deflate(*trial_stats(counted), effective_trials(counted))
    models = {name: {k: book_model(k, p, strat_cfg)[1] for k in strat_cfg.kinds}
              for name, p in predictions.groupby("set", sort=False)}
    out = [m for (name, kind, book), r in series.items()
           for m in _metric_rows(r, {"set": name, "strategy": kind, "book": book,
                                     "model": models[name][kind]}, strat_cfg, benchmarks["sp500"], start, deflate)]
    out += _benchmark_rows(benchmarks, next(iter(series.values())).net.index, start)
    knob_table = pd.concat(knobs, ignore_index=True) if knobs else pd.DataFrame()
    return Backtests(_long_returns(series), _long_positions(weights), pd.DataFrame(out), new, knob_table)


def _trials(run_id: str, name: str, kind: str, nets: dict[Knobs, pd.Series], start, keyed) -> list[dict]:
    """The headline trial of each configuration's net returns (the daily one keyed as it always was)."""
    out = []
    for k, net in nets.items():
        x = net[net.index >= start]
        if len(x) < 2:
            continue
        span = {"start": str(x.index[0].date()), "end": str(x.index[-1].date())}
        knobs = {} if k == DAILY else {"half_life": k.half_life, "band": k.band}
        sd = x.std(ddof=1)
        out.append({"key": keyed(**span, **knobs), "run": run_id, "set": name, "strategy": kind,
                    "period": "headline", **span, "n_obs": int(len(x)),
                    "sr_daily": float(x.mean() / sd) if sd > 0 else None,
                    "returns": {str(d.date()): float(v) for d, v in x.items()},
                    **({} if k == DAILY else {"book": "turnover_aware", "knobs": k.label})})
    return out


class _Deflate(NamedTuple):
    """What every DSR deflates by: the ledger's headline trials with this run's."""

    n_trials: int
    sr_var: float
    n_eff: int


def _metric_rows(r: Returns, ident: dict, strat_cfg, sp500: pd.Series, start,
                 deflate: _Deflate) -> list[dict]:
    """The metrics rows of one book (``ident``: its set, strategy, book and model), per period."""
    out = []
    for period in ("full", "headline"):
        mask = np.ones(len(r.net), bool) if period == "full" else np.asarray(r.net.index >= start)
        part = Returns(*(s[mask] for s in r))
        x = part.net
        if len(x) < 5:
            continue
        m = {**ident, "period": period, "start": str(x.index[0].date()), "end": str(x.index[-1].date()),
             "n_days": int(len(x)), "cost_bps": strat_cfg.cost_bps,
             **quantstats_metrics(x, sp500.reindex(x.index)),
             "turnover": turnover_mean(part.turnover),
             "gross_sharpe": per_period_sharpe(part.gross) * np.sqrt(PERIODS),
             **cost_columns(part, strat_cfg.block_days, strat_cfg.bootstrap)}
        lo, hi = sharpe_ci(x, strat_cfg.block_days, strat_cfg.bootstrap)
        m.update(sharpe_lo=lo, sharpe_hi=hi, **sharpe_stats(x, deflate.n_trials, deflate.sr_var),
                 n_trials=deflate.n_trials, dsr_eff=sharpe_stats(x, deflate.n_eff, deflate.sr_var)["dsr"],
                 n_trials_eff=deflate.n_eff)
        out.append(m)
    return out


def _benchmark_rows(benchmarks: dict[str, pd.Series], days: pd.DatetimeIndex, start) -> list[dict]:
    out = []
    for bname, b in benchmarks.items():
        for period in ("full", "headline"):
            x = b.reindex(days if period == "full" else days[days >= start]).dropna()
            if len(x) < 5:
                continue
            m = {"set": bname, "strategy": "benchmark", "book": "benchmark", "period": period,
                 "start": str(x.index[0].date()), "end": str(x.index[-1].date()), "n_days": int(len(x)),
                 "cost_bps": 0.0, **quantstats_metrics(x, benchmarks["sp500"].reindex(x.index)),
                 "turnover": 0.0, "cost_drag": 0.0}
            st = sharpe_stats(x, 1, 0.0)
            m.update(**st, n_trials=1, dsr_eff=st["dsr"], n_trials_eff=1)
            out.append(m)
    return out


def _long_returns(series: dict[tuple[str, str, str], Returns]) -> pd.DataFrame:
    return pd.concat([pd.DataFrame(r._asdict()).rename_axis("date").reset_index()
                      .assign(set=name, strategy=kind, book=book)
                      for (name, kind, book), r in series.items()], ignore_index=True)


def _long_positions(weights: dict[tuple[str, str, str], pd.DataFrame]) -> pd.DataFrame:
    parts = []
    for (name, kind, book), w in weights.items():
        long = w.rename_axis(index="date", columns="ticker").stack()
        long = long[long != 0].rename("weight").reset_index()
        parts.append(long.assign(set=name, strategy=kind, book=book))
    return pd.concat(parts, ignore_index=True)


def rank_ic_table(rows: pd.DataFrame, predictions: pd.DataFrame, eval_start: str, block_days: int,
                  draws: int) -> pd.DataFrame:
    """Mean per-day rank IC of every set's predictions (each model: ``cross_section`` and ``raw_return``) with
    the executed return, per period, with a day-block bootstrap interval."""
    ret, dates = rows["ret_exec"].to_numpy(), rows["date"].to_numpy()
    out = []
    for name, p in predictions.groupby("set", sort=False):
        for col, model in (("pred_cs", "cross_section"), ("pred_ret", "raw_return")):
            if col not in p or p[col].isna().all():
                continue
            ic = daily_rank_ic(p[col].to_numpy(), ret[p["row"]], dates[p["row"]])
            for period, x in (("full", ic), ("headline", ic[ic.index >= pd.Timestamp(eval_start)])):
                if len(x) < 3:
                    continue
                lo, hi = mean_ci(x, block_days, draws)
                out.append({"set": name, "model": model, "period": period, "rank_ic": float(x.mean()),
                            "rank_ic_lo": lo, "rank_ic_hi": hi, "n_days": int(len(x))})
    return pd.DataFrame(out)


def direction_accuracy(rows: pd.DataFrame, predictions: pd.DataFrame, eval_start: str, draws: int) -> pd.DataFrame:
    """Accuracy / MCC of the direction model (the sign of the raw return) per set and period (full, headline),
    with day-block CIs; first an ``always_up`` row per period, and each set's difference from it with a paired
    day-block CI (``vs_always_up``)."""
    out, base_done = [], set()
    for name, p in predictions.groupby("set", sort=False):
        y = rows["up_exec"].to_numpy()[p["row"]]
        d = rows["date"].to_numpy()[p["row"]]
        pred = (p["prob_up"].to_numpy() > 0.5).astype(float)
        for period, mask in (("full", np.ones(len(y), bool)), ("headline", d >= np.datetime64(eval_start))):
            if mask.sum() < 10:
                continue
            up = np.ones(int(mask.sum()))
            if period not in base_done:
                base_done.add(period)
                out.append({"set": "always_up", "model": "baseline", "period": period,
                            **classification_ci(y[mask], up, d[mask], draws),
                            "vs_always_up": 0.0, "vs_always_up_lo": 0.0, "vs_always_up_hi": 0.0})
            out.append({"set": name, "model": "direction", "period": period,
                        **classification_ci(y[mask], pred[mask], d[mask], draws),
                        **paired_accuracy_diff(y[mask], pred[mask], up, d[mask], draws)})
    return pd.DataFrame(out).sort_values("period", kind="stable", ignore_index=True)


def stocknet_benchmark(samples: pd.DataFrame, sets: dict[str, list[Block]], lgbm_cfg, feat_cfg, draws: int,
                       progress: Callable[[], None] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Test accuracy / MCC per feature set on the ACL18 splits, first the always-up baseline; each set's
    difference from always-up with a paired day-block CI (``vs_always_up``). Returns (table, fit windows)."""
    split = samples["split"].to_numpy()
    dates = samples["date"].to_numpy()
    test = split == "test"
    rows, windows = [], []
    y_test = samples["label"].to_numpy()[test].astype(int)
    up = np.ones_like(y_test)
    rows.append({"set": "always_up", **classification_ci(y_test, up, dates[test], draws),
                 "vs_always_up": 0.0, "vs_always_up_lo": 0.0, "vs_always_up_hi": 0.0})
    for name, blocks in sets.items():
        pred, res = _stocknet_fit(samples, blocks, lgbm_cfg, feat_cfg)
        rows.append({"set": name, **classification_ci(y_test, pred, dates[test], draws),
                     **paired_accuracy_diff(y_test, pred, up, dates[test], draws)})
        windows += [{**w, "set": name} for w in res.fit_windows]
        if progress is not None:
            progress()
    return pd.DataFrame(rows), pd.DataFrame(windows)


def _stocknet_fit(samples: pd.DataFrame, blocks: list[Block], lgbm_cfg, feat_cfg):
    split = samples["split"].to_numpy()
    dates = samples["date"].to_numpy()
    fold = Fold(0, np.unique(dates[split == "train"]), np.unique(dates[split == "dev"]),
                np.unique(dates[split == "test"]))
    # The return model is fit on the move, the direction model on the label; only the latter is scored.
    res = run_fold(fold, blocks, dates, samples["move"].to_numpy(np.float64), samples["label"].to_numpy(np.float64),
                   lgbm_cfg, feat_cfg.latents, feat_cfg.top_n, feat_cfg.dense_pca, shap_rows=0)
    p = res.predictions.set_index("row").reindex(np.flatnonzero(split == "test"))
    return (p["prob_up"].to_numpy() > 0.5).astype(int), res


def stocknet_seed_spread(samples: pd.DataFrame, sets: dict[str, list[Block]], lgbm_cfg, feat_cfg,
                         seeds: list[int]) -> pd.DataFrame:
    """Test accuracy and MCC of each set refit with each LightGBM seed (``feature_fraction`` draws differ), one
    row per (set, seed): the spread a single seed's number sits in."""
    import dataclasses

    y_test = samples["label"].to_numpy()[samples["split"].to_numpy() == "test"].astype(int)
    out = []
    for name, blocks in sets.items():
        for seed in seeds:
            pred, _ = _stocknet_fit(samples, blocks, dataclasses.replace(lgbm_cfg, seed=int(seed)), feat_cfg)
            out.append({"set": name, "seed": int(seed), "accuracy": float((pred == y_test).mean()),
                        "mcc": mcc(y_test, pred)})
    return pd.DataFrame(out)
