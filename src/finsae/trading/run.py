"""The stage's two protocols end to end, each over a typed :class:`~finsae.trading.config.BacktestConfig`,
writing its files into the staging folder through :mod:`finsae.trading.artifacts` and returning its fields of
the stage summary: the walk-forward (sets, canaries, backtests, accuracy, rank IC, plots, tearsheets) and the
published StockNet protocol (beside the protocol's own price input, with its spread over LightGBM seeds)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from finsae.trading import artifacts
from finsae.trading.claim import claim_table
from finsae.trading.canaries import DESCRIPTIONS, flipped_block, masks, oracle_block, shuffle_days, sign_block
from finsae.trading.config import BacktestConfig
from finsae.trading.dataset import Panel, price_block
from finsae.trading.encode import Encoded
from finsae.trading.features import Block
from finsae.trading.book import cost_sweep_table
from finsae.trading.decay import forward_returns, rank_ic_decay
from finsae.trading.outputs import cost_sweep_figure, decay_figure, equity_figure, label_importance, tearsheet
from finsae.trading.page_text import backtest_paragraphs, book_headline
from finsae.trading.pipeline import (
    book_model, direction_accuracy, evaluate_backtests, market_benchmarks, rank_ic_table, stocknet_benchmark,
    stocknet_seed_spread, walk_forward_predictions,
)
from finsae.trading.prices import PRICE_FEATURES, price_features
from finsae.trading.sets import assemble_sets, text_blocks
from finsae.trading.stocknet import PUBLISHED, PUBLISHED_COUNTS, acl18_price_block, stocknet_samples, window_pairs
from finsae.trading.inputs import Tweets
from finsae.trading.text_features import trading_day_pairs
from finsae.trading.walk_forward import folds


class Inputs(NamedTuple):
    """What both protocols read."""

    panel: Panel
    sp500: pd.DataFrame
    tweets: Tweets
    """Raw-text tweets, one row per mention, and each row's document in the encoded corpus."""
    enc: Encoded
    roles: dict
    """``{"base": model, "domain": model}``."""
    allowed: Callable
    """``allowed(model, layer)``: the SAE latents a block may select from (None: all)."""
    labels: pd.DataFrame | None = None
    """The labeling stage's table of the pair (None: it has not run): the importance table's labels."""
    pools: Callable | None = None
    """``pools(model, layer)``: the latent pools of the ``changed_sae`` / ``unchanged_sae`` / ``random_sae``
    blocks (:class:`~finsae.trading.latent_pools.LatentPools`; None: no such block)."""


class WalkForwardFields(NamedTuple):
    """The walk-forward's fields of the stage summary (``BacktestSummary``)."""

    strategies: list[dict]
    accuracy: list[dict]
    rank_ic: list[dict]
    canaries: dict
    n_folds: int
    n_trials: int
    n_trials_eff: int
    claim: list[dict]
    """``claim.csv``'s rows (:mod:`finsae.trading.claim`; empty when no changed_sae set was paired)."""
    books: dict
    """Per book, its headline (:func:`finsae.trading.page_text.book_headline`)."""
    decay: list[dict]
    """The decay table's headline-period rows."""


class StocknetFields(NamedTuple):
    """The StockNet protocol's fields of the stage summary."""

    stocknet: dict
    stocknet_seeds: dict
    stocknet_counts: dict


class Outcome(NamedTuple):
    """What a protocol hands back to the stage besides the files it wrote."""

    windows: list[dict]
    """Every fitted object's record (``check_fit_windows`` reads them)."""
    trials: list[dict]
    """Headline trials to record when the run publishes."""
    figures: dict
    """Matplotlib figures by name, for the run's tracker."""
    tables: dict
    """DataFrames by name, for the run's tracker."""
    fields: WalkForwardFields | StocknetFields
    """Its fields of the stage summary."""


STRATEGY_FIELDS = ("set", "strategy", "book", "model", "period", "start", "end", "sharpe", "sortino",
                   "max_drawdown", "cagr", "calmar", "win_rate", "psr", "dsr", "n_trials", "dsr_eff", "n_trials_eff",
                   "cost_bps", "turnover", "cost_drag", "breakeven_bps", "breakeven_lo", "breakeven_hi",
                   "sharpe_lo", "sharpe_hi", "gross_sharpe", "n_days")
"""The metrics the summary keeps per (set, strategy, book, period) (all of them are in metrics.csv)."""


def walk_forward(inp: Inputs, cfg: BacktestConfig, ledger: list[dict], run_id: str, out: Path) -> Outcome:
    """The walk-forward protocol: its tables and figures into ``out``; its fits' windows, new trials and
    summary fields returned."""
    rows = inp.panel.rows
    pairs = trading_day_pairs(inp.tweets.frame, inp.tweets.doc_of, rows, inp.panel.calendar)
    price = price_block(rows)
    text = text_blocks(inp.roles, inp.enc, pairs, len(rows), inp.allowed, inp.pools)
    sets = assemble_sets(cfg.features.sets, price, text)
    return walk_forward_sets(inp.panel, inp.sp500, sets, cfg, ledger, run_id, out, inp.labels)


def walk_forward_sets(panel: Panel, sp500: pd.DataFrame, sets: dict[str, list[Block]], cfg: BacktestConfig,
                      ledger: list[dict], run_id: str, out: Path,
                      labels: pd.DataFrame | None = None) -> Outcome:
    """:func:`walk_forward` once the feature sets are built (``sets``: name -> blocks over ``panel.rows``)."""
    fc, rows, sc = cfg.features, panel.rows, cfg.strategy
    n_folds = len(folds(np.unique(rows["date"].to_numpy()), cfg.walk_forward))
    bar = tqdm(total=n_folds * (len(sets) + (4 if cfg.canaries else 0)), desc="walk-forward", unit="fit",
               disable=not cfg.progress_bar, leave=False, mininterval=5)
    wf = walk_forward_predictions(rows, sets, cfg.walk_forward, cfg.lgbm, fc, progress=bar.update,
                                  cross_section=sc.cross_section)
    cal = panel.calendar
    entry = pd.Series(cal[1:], index=cal[:-1])
    entry_days = entry.reindex(np.unique(rows["date"].to_numpy())).dropna().to_numpy()
    benchmarks = market_benchmarks(panel.adj, sp500, entry_days, rows["ticker"].unique(), sc.execution)
    eval_start = cfg.eval_start
    bt = evaluate_backtests(rows, wf.predictions, sc, benchmarks, eval_start, entry, ledger, run_id,
                            fold_list=wf.folds)
    signal = signal_tables(rows, panel.adj, wf.predictions, bt, sc, eval_start)
    acc = direction_accuracy(rows, wf.predictions, eval_start, cfg.benchmark.bootstrap)
    ric = rank_ic_table(rows, wf.predictions, eval_start, sc.block_days, sc.bootstrap)
    claim = claim_table(rows, wf.predictions, bt.returns, sc.kinds,
                        lambda kind, p: book_model(kind, p, sc)[0], eval_start, sc.block_days, sc.bootstrap,
                        fc.changed)
    windows = wf.fit_windows.assign(protocol="walk_forward").to_dict("records") + knob_windows(bt.knobs)
    canaries = {}
    if cfg.canaries:
        canaries, cw = run_canaries(rows, price_block(rows), benchmarks, entry, ledger + bt.trials, cfg,
                                    bar.update)
        windows += cw
    bar.close()

    p = wf.predictions["row"].to_numpy()
    preds = wf.predictions.assign(**{c: rows[c].to_numpy()[p] for c in ("ticker", "date", "ret_exec", "up_exec")})
    artifacts.write_walk_forward(out, artifacts.WalkForwardTables(
        preds.drop(columns="row"), bt.positions, bt.returns, bt.metrics, acc, ric,
        label_importance(wf.importance, labels), pd.DataFrame(dict(benchmarks)).rename_axis("date"),
        canaries, signal.decay, bt.knobs, signal.sweep))
    artifacts.write_claim(out, claim)
    figures = {**_figures(bt.returns, benchmarks, cfg, out), **signal_figures(signal, out)}
    equity = bt.returns.groupby(["set", "strategy", "book"])["net"].transform(lambda s: (1 + s).cumprod())
    eq = bt.returns.assign(equity=equity)[["date", "set", "strategy", "book", "equity"]]
    tables = {"equity": eq.assign(date=lambda d: d["date"].astype(str)),
              "metrics": bt.metrics, "accuracy": acc, "rank_ic": ric, "rank_ic_decay": signal.decay,
              "cost_sweep": signal.sweep, **({"book_knobs": bt.knobs} if len(bt.knobs) else {}),
              **({"claim": claim} if len(claim) else {})}
    fields = WalkForwardFields(
        strategies=json.loads(bt.metrics[[c for c in STRATEGY_FIELDS if c in bt.metrics]]
                              .to_json(orient="records")),
        accuracy=json.loads(acc.to_json(orient="records")), rank_ic=json.loads(ric.to_json(orient="records")),
        canaries=canaries, n_folds=len(wf.folds), n_trials=int(bt.metrics["n_trials"].max()),
        n_trials_eff=int(bt.metrics["n_trials_eff"].max()), claim=json.loads(claim.to_json(orient="records")),
        books=book_headline(bt.metrics),
        decay=json.loads(signal.decay[signal.decay["period"] == "headline"].to_json(orient="records")))
    return Outcome(windows, bt.trials, figures, tables, fields)


class SignalTables(NamedTuple):
    """The walk-forward's tables of how its signals hold up: decay and costs."""

    decay: pd.DataFrame
    """``rank_ic_decay.csv`` (:func:`signal_decay`)."""
    sweep: pd.DataFrame
    """``cost_sweep.csv``: every book's net Sharpe at each cost of ``strategy.turnover.cost_sweep_bps``."""


def signal_decay(rows: pd.DataFrame, adj: pd.DataFrame, predictions: pd.DataFrame, sc, eval_start: str
                 ) -> pd.DataFrame:
    """The decay table of every set (:func:`finsae.trading.decay.rank_ic_decay`): the out-of-sample score the
    long-short book trades (:func:`~finsae.trading.pipeline.book_model`) against the forward returns of
    ``sc.decay_horizons`` from ``adj`` at ``sc.execution``, over the full and the headline period."""
    scores = []
    for name, p in predictions.groupby("set", sort=False):
        r = p["row"].to_numpy()
        scores.append(pd.DataFrame({"set": name, "date": rows["date"].to_numpy()[r],
                                    "ticker": rows["ticker"].to_numpy()[r],
                                    "score": p[book_model("long_short", p, sc)[0]].to_numpy()}))
    forward = forward_returns(adj, sc.decay_horizons, sc.execution)
    return rank_ic_decay(pd.concat(scores, ignore_index=True), forward, sc.decay_horizons, sc.block_days,
                         sc.bootstrap, periods={"full": None, "headline": eval_start})


def signal_tables(rows: pd.DataFrame, adj: pd.DataFrame, predictions: pd.DataFrame, bt, sc,
                  eval_start: str) -> SignalTables:
    """:class:`SignalTables` of a walk-forward's predictions and backtests (``Backtests``)."""
    return SignalTables(signal_decay(rows, adj, predictions, sc, eval_start),
                        cost_sweep_table(bt.returns, sc.turnover.cost_sweep_bps, eval_start, sc.block_days,
                                         sc.bootstrap))


def signal_figures(signal: SignalTables, out: Path) -> dict:
    """The decay and cost-sweep figures, written into ``out``'s plots."""
    figures = {"rank_ic_decay": decay_figure(signal.decay)}
    if len(signal.sweep):
        figures["cost_sweep"] = cost_sweep_figure(signal.sweep)
    paths = {"rank_ic_decay": artifacts.decay_plot_path(out),
             "cost_sweep": artifacts.cost_sweep_plot_path(out)}
    for name, fig in figures.items():
        paths[name].parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(paths[name], dpi=110, bbox_inches="tight")
    return figures


def _figures(returns: pd.DataFrame, benchmarks, cfg: BacktestConfig, out: Path) -> dict:
    """The equity curve of each book, and the first book's tearsheet of each set, written into ``out``."""
    sc = cfg.strategy
    figures = {}
    for kind in sc.kinds:
        fig = equity_figure(returns, benchmarks, kind, cfg.eval_start)
        fig.savefig(artifacts.equity_plot_path(out, kind), dpi=110, bbox_inches="tight")
        figures[f"equity_{kind}"] = fig
    first = sc.kinds[0]
    for name in cfg.features.sets:
        r = returns[(returns["set"] == name) & (returns["strategy"] == first) & (returns["book"] == "daily")]
        tearsheet(r.set_index("date")["net"], benchmarks["sp500"], artifacts.tearsheet_path(out, name, first),
                  f"{name} {first} (out of sample, {sc.cost_bps:g} bps)")
    return figures


def knob_windows(knobs: pd.DataFrame) -> list[dict]:
    """The turnover-aware book's knob choices as fitted objects (``check_fit_windows`` reads them): each read
    the scores and realized returns of its training window's signal days, up to ``train_end``."""
    if knobs.empty:
        return []
    w = knobs.rename(columns={"train_start": "fit_start", "train_end": "fit_end"})
    w = w.assign(what="book_knobs:" + w["strategy"], rows_start=w["fit_start"], rows_end=w["fit_end"],
                 protocol="walk_forward")
    cols = ["set", "fold", "what", "fit_start", "fit_end", "test_start", "test_end", "rows_start", "rows_end",
            "protocol"]
    return w[cols].to_dict("records")


def run_canaries(rows, price: Block, benchmarks, entry, ledger: list[dict], cfg: BacktestConfig,
                 tick) -> tuple[dict, list[dict]]:
    """The canaries (``finsae.trading.canaries``) through the same walk-forward and backtest; they never enter the
    trials ledger. Returns (per canary: what it is, accuracy, MCC, Sharpe net and gross, DSR, CAGR; fit records)."""
    ret = rows["ret_exec"].to_numpy()
    m = masks(len(ret))
    kw = {"progress": tick, "cross_section": cfg.strategy.cross_section}
    wf = walk_forward_predictions(rows, {"canary_oracle": [price, oracle_block(ret)],
                                         "canary_flip32": [price, flipped_block(ret, m)],
                                         "canary_sign_flip32": [price, sign_block(ret, m)]},
                                  cfg.walk_forward, cfg.lgbm, cfg.features, **kw)
    shuffled = rows.copy()
    shuffled["ret_exec"] = shuffle_days(ret, rows["date"].to_numpy())
    shuffled["up_exec"] = (shuffled["ret_exec"] > 0).astype(float)
    wf_s = walk_forward_predictions(shuffled, {"canary_shuffled": [price]}, cfg.walk_forward, cfg.lgbm, cfg.features,
                                    **kw)
    out = {}
    for r, w in ((rows, wf), (shuffled, wf_s)):
        bt = evaluate_backtests(r, w.predictions, cfg.strategy, benchmarks, cfg.eval_start, entry, ledger,
                                "canary", count_new=False)  # canaries are not trials
        acc = direction_accuracy(r, w.predictions, cfg.eval_start, 200)
        for name in w.predictions["set"].unique():
            a = acc[(acc["set"] == name) & (acc["period"] == "full")].iloc[0]
            met = bt.metrics[(bt.metrics["set"] == name) & (bt.metrics["period"] == "full")]
            out[name] = {"what": DESCRIPTIONS[name], "accuracy": float(a["accuracy"]), "mcc": float(a["mcc"]),
                         **{f"{k}_{row['strategy']}": float(row[k]) for _, row in met.iterrows()
                            for k in ("sharpe", "dsr", "gross_sharpe", "cagr")}}
    return out, pd.concat([wf.fit_windows, wf_s.fit_windows]).assign(protocol="canary").to_dict("records")


def stocknet(inp: Inputs, pre_tweets: pd.DataFrame, cfg: BacktestConfig, out: Path) -> Outcome:
    """The published ACL18 protocol on ``cfg.features.sets`` beside ``price_no_index`` (ours without the
    market-wide index feature) and ``price_acl18`` (the protocol's own price input); the three price-only sets
    also refit over ``cfg.benchmark.seeds``."""
    bc = cfg.benchmark
    s = stocknet_samples(inp.panel.adj, pre_tweets, bc)
    samples = s.frame
    allf = price_features(inp.panel.adj, inp.sp500)  # over all dates, not only the walk-forward's
    px = samples[["ticker", "prev_date"]].merge(allf.rename(columns={"date": "prev_date"}), on=["ticker", "prev_date"],
                                               how="left")
    price = Block("price", "plain", px[list(PRICE_FEATURES)].to_numpy(np.float32), list(PRICE_FEATURES))
    own = [c for c in PRICE_FEATURES if not c.startswith("sp500")]
    price_only = {"price": [price],
                  "price_no_index": [Block("price_no_index", "plain", px[own].to_numpy(np.float32), own)],
                  "price_acl18": [acl18_price_block(inp.panel.adj, samples, bc.lag_days)]}
    days = pd.DataFrame({"ticker": inp.tweets.frame["ticker"].to_numpy(),
                         "day": inp.tweets.frame["file_date"].to_numpy(), "doc": inp.tweets.doc_of})
    pairs = window_pairs(samples, days, bc.lag_days).rename(columns={"sample": "row"})[["row", "doc"]]
    text = text_blocks(inp.roles, inp.enc, pairs.drop_duplicates(ignore_index=True), len(samples),
                       inp.allowed, inp.pools)
    sets = {**assemble_sets(cfg.features.sets, price, text), **{k: v for k, v in price_only.items() if k != "price"}}
    bar = tqdm(total=len(sets), desc="stocknet", unit="set", disable=not cfg.progress_bar, leave=False)
    table, windows = stocknet_benchmark(samples, sets, cfg.lgbm, cfg.features, bc.bootstrap, progress=bar.update)
    bar.close()
    spread = stocknet_seed_spread(samples, price_only, cfg.lgbm, cfg.features, list(bc.seeds))
    seeds = {k: {"accuracy_mean": float(g["accuracy"].mean()), "accuracy_min": float(g["accuracy"].min()),
                 "accuracy_max": float(g["accuracy"].max()), "mcc_mean": float(g["mcc"].mean()),
                 "seeds": g["seed"].tolist()} for k, g in spread.groupby("set", sort=False)}
    result = {r["set"]: {k: r[k] for k in ("accuracy", "mcc", "accuracy_lo", "accuracy_hi", "mcc_lo", "mcc_hi",
                                           "vs_always_up", "vs_always_up_lo", "vs_always_up_hi", "n_test")}
              for r in table.to_dict("records")}
    artifacts.write_stocknet(out, artifacts.StocknetBenchmark(result, seeds, s.counts, PUBLISHED_COUNTS,
                                                              PUBLISHED.to_dict("records")))
    return Outcome(windows.assign(protocol="stocknet").to_dict("records"), [], {},
                   {"benchmark_stocknet": table}, StocknetFields(result, seeds, s.counts))


def headline_start(strategies: list[dict], eval_start: str) -> str:
    """First day of the headline rows of the strategies (``eval_start`` when there are none)."""
    starts = [r["start"] for r in strategies if r["period"] == "headline" and r["strategy"] != "benchmark"]
    return min(starts) if starts else eval_start


def print_summary(s, out: Path) -> None:
    print(f"backtest: {s.pair}: {s.n_rows} rows, {s.n_folds} refits, {s.seconds:.0f} s "
          f"(encode {s.encode_seconds:.0f} s, models {s.model_seconds:.0f} s) -> {out}")
    if s.stocknet_counts:
        c = s.stocknet_counts
        print(f"stocknet: samples train/dev/test {c['train']}/{c['dev']}/{c['test']} (paper 20339/2555/3720)")
        for name, r in s.stocknet.items():
            print(f"  {name:<24} test acc {r['accuracy']:.4f} [{r['accuracy_lo']:.4f}, {r['accuracy_hi']:.4f}] "
                  f"mcc {r['mcc']:+.3f}; vs always-up {r['vs_always_up']:+.4f} "
                  f"[{r['vs_always_up_lo']:+.4f}, {r['vs_always_up_hi']:+.4f}]")
        for name, r in s.stocknet_seeds.items():
            print(f"  {name:<24} over {len(r['seeds'])} LightGBM seeds: accuracy {r['accuracy_min']:.4f}.."
                  f"{r['accuracy_max']:.4f} (mean {r['accuracy_mean']:.4f})")
    for r in s.strategies:
        if r["period"] == "headline" and r["strategy"] != "benchmark":
            print(f"  {r['set']:<24} {r['strategy']:<10} {r.get('book', 'daily'):<14} headline sharpe "
                  f"{r['sharpe']:+.2f} (gross {r.get('gross_sharpe', float('nan')):+.2f}, breakeven "
                  f"{r.get('breakeven_bps', float('nan')):.1f} bps) psr {r['psr']:.2f} dsr {r['dsr']:.2f} "
                  f"(n_trials {r['n_trials']}) dsr_eff {r['dsr_eff']:.2f} (effective {r['n_trials_eff']})")
    if s.strategies:
        decay = pd.DataFrame(s.decay) if s.decay else None
        for paragraph in backtest_paragraphs(pd.DataFrame(s.strategies), decay,
                                             pd.DataFrame(s.claim) if s.claim else None):
            print("  " + paragraph)
    for name, c in s.canaries.items():
        print(f"  canary {name} ({c['what']}): accuracy {c['accuracy']:.3f}, long_short sharpe "
              f"{c.get('sharpe_long_short', float('nan')):+.2f} net / "
              f"{c.get('gross_sharpe_long_short', float('nan')):+.2f} gross")
