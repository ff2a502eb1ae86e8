"""`python backtest.py`: the StockNet tweets through both models' SAEs, walk-forward LightGBM on price + text
features, the published StockNet protocol, and a backtest after costs, published in
``artifacts/backtest/{pair}/`` in one rename.

Steps: check every prerequisite (price files, models, SAEs) before work; encode the tweets once per model into the
activation cache (inference-only: eval-period tweets are encoded, never trained on) and reduce them per tweet
(cached); aggregate per row; run the science in :mod:`finsae.trading.pipeline`; check the recorded fit windows;
write tables, plots, tearsheets and ``summary.json``; log to W&B.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm.auto import tqdm

from finsae.atomic import SPACE_RESERVE_GB, check_replaceable, check_writable, locked, publish, staging_dir, write_json
from finsae.data.index_prices import load_sp500
from finsae.data.stocknet_prices import load_stocknet_prices
from finsae.data.stocknet_tweets import load_stocknet_tweets_preprocessed, load_stocknet_tweets_raw
from finsae.errors import ConfigError, DataMissingError, FinsaeError
from finsae.glue.app import resolved_config
from finsae.glue.schemas import pair_name
from finsae.glue.tracking import stage_run
from finsae.sae.io import check_weights
from finsae.paths import activations_root, analysis_dir, backtest_dir, sae_dir
from finsae.trading.canaries import flipped_block, oracle_block, shuffle_days
from finsae.trading.config import parse_set
from finsae.trading.dataset import build_panel, count_block, price_block
from finsae.trading.features import Block
from finsae.trading.guards import check_fit_windows, check_text_fit
from finsae.trading.ledger import LEDGER_FILE, append_trials, read_trials, trial_stats
from finsae.trading.pipeline import (
    direction_accuracy, evaluate_backtests, market_benchmarks, stocknet_benchmark, walk_forward_predictions,
)
from finsae.trading.prices import PRICE_FEATURES
from finsae.trading.stocknet import PUBLISHED, PUBLISHED_COUNTS, stocknet_samples, window_pairs
from finsae.trading.summary import BacktestSummary
from finsae.trading.text_cache import cached_docs, file_hash
from finsae.trading.text_features import (
    RowText, aggregate_dense, aggregate_rows, encode_docs, sentiment_docs, trading_day_pairs, tweet_corpus,
)

log = logging.getLogger("finsae")


# ---------------------------------------------------------------------------------------------------- checks
def _roles(cfg) -> dict[str, str]:
    return {"base": cfg.pair.base, "domain": cfg.pair.domain}


def needed(cfg) -> dict[str, set[str]]:
    """Per role (base, domain): which text encodings the chosen sets need (``sae``, ``dense``, ``sentiment``)."""
    out: dict[str, set[str]] = {"base": set(), "domain": set()}
    for b in cfg.features.blocks:
        if b == "sentiment":
            out["domain"].add("sentiment")
        elif b.endswith("_sae") or b.endswith("_dense"):
            role, kind = b.split("_", 1)
            out[role].add(kind)
    return out


def check_prerequisites(cfg) -> None:
    """Fail in one line, before any work, naming what is missing and the command that makes it."""
    from finsae.models import check_layer, get_spec
    from finsae.models.loading import model_config, task_kind

    artifacts = Path(cfg.paths.artifacts)
    load_stocknet_prices(cfg.paths.data_dir, cfg.features.tickers)  # DataMissingError names the fetch command
    load_sp500(cfg.paths.data_dir)
    for role, kinds in needed(cfg).items():
        if not kinds:
            continue
        name = _roles(cfg)[role]
        spec = get_spec(name)
        try:
            shape = model_config(spec, artifacts)
        except (OSError, FinsaeError):
            how = "`python train.py task=finetune`" if name == "minilm_fin" else f"model.path=/dir for {name}"
            raise DataMissingError(f"model {name!r}", artifacts / "models" / name, f"Make it with {how}.") from None
        for layer in cfg.features.layers:
            check_layer(int(layer), shape.num_hidden_layers)
            if "sae" in kinds:
                d = sae_dir(artifacts, name, int(layer), cfg.features.tag)
                if not (d / "cfg.json").is_file() or not (d / "sae.safetensors").is_file():
                    raise DataMissingError(
                        f"SAE of {name} layer {layer} (tag {cfg.features.tag})", d,
                        f"Make it with `python train.py experiment=demo model={name} layer={layer}"
                        + ("" if cfg.features.tag == "demo" else f" tag={cfg.features.tag}") + "`.")
                check_weights(d)  # a garbage or cut file named now, not after the tweet encoding
        if "sentiment" in kinds and task_kind(spec, artifacts) != "classifier":
            raise ConfigError(f"features.sets uses sentiment, but {name} has no classifier head; drop the "
                              f"sentiment set or use a pair whose domain model is a classifier")


# ------------------------------------------------------------------------------------------------ text blocks
class Encoded:
    """Per-tweet encodings of the chosen models and layers."""

    def __init__(self):
        self.docs: dict[tuple[str, int], object] = {}
        self.sentiment: np.ndarray | None = None
        self.labels: list[str] = []
        self.seconds = 0.0
        self.n_tokens = 0


def encode_tweets(cfg, corpus, progress: bool) -> Encoded:
    import torch

    from finsae.activations import build_activations
    from finsae.models import get_spec, load_model
    from finsae.sae import load, read_meta

    artifacts = Path(cfg.paths.artifacts)
    enc = Encoded()
    t0 = time.time()
    for role, kinds in needed(cfg).items():
        if not kinds:
            continue
        name = _roles(cfg)[role]
        spec = get_spec(name)
        loaded = load_model(spec, artifacts, kind="classifier" if "sentiment" in kinds else "encoder")
        layers = [int(i) for i in cfg.features.layers]
        if "sentiment" in kinds:
            layers = sorted(set(layers) | {loaded.num_layers - 1})
        ecfg = dataclasses.replace(cfg.activations, store_special=cfg.activations.store_special or "sentiment" in kinds)
        torch.set_num_threads(max(1, torch.get_num_threads()))
        stores = build_activations(loaded, corpus, layers, activations_root(artifacts), ecfg, progress=progress,
                                   eval_start=cfg.data.eval_start, inference_only=True)
        for layer in cfg.features.layers:
            store = stores[int(layer)]
            enc.n_tokens = len(store)
            sae, key = None, f"{store.key}-dense"
            if "sae" in kinds:
                d = sae_dir(artifacts, name, int(layer), cfg.features.tag)
                sae = load(d, expected_d_in=store.d)
                key = f"{store.key}-sae{read_meta(d)['num_latents']}-{file_hash(d / 'sae.safetensors')}"
            bar = tqdm(total=len(store), desc=f"encode {name} L{layer}", unit="tok", disable=not progress,
                       leave=False, mininterval=5)

            def compute(store=store, sae=sae, bar=bar):
                return encode_docs(store, sae, cfg.features.encode_batch_tokens, progress=bar.update)

            enc.docs[(role, int(layer))], _ = cached_docs(backtest_root(artifacts) / "cache", key, compute)
            bar.close()
        if "sentiment" in kinds:
            special = stores[loaded.num_layers - 1].special
            enc.sentiment = sentiment_docs(special, loaded)
            id2label = loaded.model.config.id2label
            enc.labels = [str(id2label[i]) for i in range(len(id2label))]
    enc.seconds = time.time() - t0
    return enc


def backtest_root(artifacts: Path) -> Path:
    return Path(artifacts) / "backtest"


def financial_latents(cfg, model: str, layer: int) -> np.ndarray | None:
    """The analysis stage's financial latents of (model, layer), when ``features.latents=financial``."""
    if cfg.features.latents != "financial":
        return None
    path = analysis_dir(Path(cfg.paths.artifacts), pair_name(cfg)) / "features.parquet"
    if not path.is_file():
        raise DataMissingError("the analysis stage's feature table", path,
                               "Make it with `python analyze.py`, or use features.latents=top_ic.")
    t = pd.read_parquet(path)
    sel = t[(t["model"] == model) & (t["layer"] == layer) & t["financial"].astype(bool)]
    return np.sort(sel["latent"].to_numpy(np.int64))


def text_blocks(cfg, enc: Encoded, pairs: pd.DataFrame, n_rows: int) -> dict[str, list[Block]]:
    """Blocks per block name (``count``, ``domain_sae``, ...) for rows linked to tweets by ``pairs``."""
    count = np.bincount(pairs["row"].to_numpy(), minlength=n_rows) if len(pairs) else np.zeros(n_rows)
    out: dict[str, list[Block]] = {"count": [count_block(count)]}
    for (role, layer), docs in enc.docs.items():
        rt: RowText = aggregate_rows(pairs, n_rows, docs)
        name = _roles(cfg)[role]
        if docs.sae_sum is not None:
            m = docs.sae_sum.shape[1]
            bname = f"{role}_sae_L{layer}"
            cols = [f"{name}:L{layer}:mean:{i}" for i in range(m)] + [f"{name}:L{layer}:max:{i}" for i in range(m)]
            mat = sp.hstack([rt.sae_mean, rt.sae_max], format="csr", dtype=np.float32)
            out.setdefault(f"{role}_sae", []).append(Block(bname, "sae", mat, cols, financial_latents(cfg, name, layer)))
        d = rt.dense_mean.shape[1]
        out.setdefault(f"{role}_dense", []).append(
            Block(f"{role}_dense_L{layer}", "dense", rt.dense_mean, [f"{name}:L{layer}:dense:{i}" for i in range(d)]))
    if enc.sentiment is not None:
        s = aggregate_dense(pairs, n_rows, enc.sentiment)
        out["sentiment"] = [Block("sentiment", "plain", s, [f"sentiment:{lbl}" for lbl in enc.labels])]
    return out


def assemble_sets(cfg, price: Block, text: dict[str, list[Block]]) -> dict[str, list[Block]]:
    out = {}
    for name in cfg.features.sets:
        blocks, has_count = [], False
        for b in parse_set(name):
            if b == "price":
                blocks.append(price)
                continue
            if not has_count:
                blocks += text["count"]
                has_count = True
            if b != "count":
                blocks += text[b]
        out[name] = blocks
    return out


# ------------------------------------------------------------------------------------------------ outputs
def equity_figure(returns: pd.DataFrame, benchmarks: dict[str, pd.Series], kind: str, eval_start: str):
    fig, ax = plt.subplots(figsize=(8, 4))
    r = returns[returns["strategy"] == kind]
    for name, g in r.groupby("set", sort=False):
        s = g.set_index("date")["net"]
        ax.plot(s.index, (1 + s).cumprod(), lw=1.2, label=name)
    idx = pd.DatetimeIndex(sorted(r["date"].unique()))
    for bname, b in benchmarks.items():
        s = b.reindex(idx).fillna(0.0)
        ax.plot(s.index, (1 + s).cumprod(), lw=1.6, ls="--", color="k" if bname == "sp500" else "grey", label=bname)
    ax.axvline(pd.Timestamp(eval_start), color="r", lw=0.8, ls=":")
    ax.set_title(f"{kind}: net of costs (out of sample); headline period from {eval_start}", fontsize=9)
    ax.set_ylabel("equity")
    ax.legend(fontsize=7, ncol=2)
    fig.autofmt_xdate()
    return fig


def tearsheet(net: pd.Series, bench: pd.Series, path: Path, title: str) -> None:
    """Offline quantstats HTML (benchmark passed as a Series, never a ticker string)."""
    import warnings

    import quantstats as qs

    if not isinstance(bench, pd.Series):
        raise TypeError("the tearsheet benchmark must be a pandas Series")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qs.reports.html(net.rename("strategy"), benchmark=bench.reindex(net.index).fillna(0.0).rename("sp500"),
                        output=str(path), title=title, download_filename=str(path))
    plt.close("all")


def label_importance(imp: pd.DataFrame, artifacts: Path, pair: str) -> pd.DataFrame:
    """Join latent labels from the labeling stage when it has run."""
    path = Path(artifacts) / "labels" / pair / "labels.parquet"
    parts = imp["feature"].str.extract(r"^(?P<model>[^:]+):L(?P<layer>\d+):(?P<agg>mean|max):(?P<latent>\d+)$")
    out = pd.concat([imp.reset_index(drop=True), parts.reset_index(drop=True)], axis=1)
    if path.is_file():
        lab = pd.read_parquet(path)
        keep = [c for c in ("model", "layer", "latent", "label", "description") if c in lab.columns]
        lab = lab[keep].astype({"layer": str, "latent": str}).drop_duplicates(["model", "layer", "latent"])
        out = out.merge(lab, on=["model", "layer", "latent"], how="left")
    return out.sort_values(["set", "gain"], ascending=[True, False], ignore_index=True)


# --------------------------------------------------------------------------------------------------- run
def run(cfg, raw) -> BacktestSummary:
    t0 = time.time()
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # quantstats asks for Arial
    artifacts = Path(cfg.paths.artifacts)
    pair = pair_name(cfg)
    done = backtest_dir(artifacts, pair) / "summary.json"
    if cfg.skip_if_done and done.is_file():
        summary = BacktestSummary.read(done)
        print(f"backtest: {done.parent} is complete ({len(summary.sets)} feature sets); skipping")
        return summary
    check_writable(backtest_root(artifacts), "artifacts folder")
    for folder, what in ((activations_root(artifacts), "activation cache"), (backtest_root(artifacts) / "cache",
                                                                             "tweet-encoding cache")):
        check_writable(folder, what, make=False, reserve_gb=SPACE_RESERVE_GB)
    check_replaceable(backtest_dir(artifacts, pair))  # before the walk-forward, not at its publish
    check_prerequisites(cfg)
    fc, bar_on = cfg.features, cfg.progress_bar
    prices = load_stocknet_prices(cfg.paths.data_dir, fc.tickers)
    sp500 = load_sp500(cfg.paths.data_dir)
    tickers = sorted(prices["ticker"].unique())
    panel = build_panel(prices, sp500, fc.start, fc.end, cfg.strategy.execution)
    rows = panel.rows
    tweets = load_stocknet_tweets_raw(cfg.paths.data_dir, tickers)
    corpus, doc_of = tweet_corpus(tweets)
    enc = encode_tweets(cfg, corpus, bar_on) if any(needed(cfg).values()) else Encoded()

    run_dir = Path(cfg.paths.output_dir)
    protocols = list(cfg.benchmark.protocols)
    summary = BacktestSummary(pair=pair, protocols=protocols, sets=list(fc.sets), eval_start=cfg.data.eval_start,
                              cost_bps=cfg.strategy.cost_bps, encode_seconds=round(enc.seconds, 1))
    with stage_run("backtest", resolved_config(raw), run_dir, cfg.logger, group=cfg.logger.group or "backtest",
                   tags=list(cfg.logger.tags) + [pair], name=f"backtest-{pair}") as tracker:
        with locked([backtest_dir(artifacts, pair)]):
            tmp = staging_dir(backtest_dir(artifacts, pair))
            t_model = time.time()
            windows = []
            if "walk_forward" in protocols:
                windows += _walk_forward(cfg, panel, sp500, tweets, doc_of, enc, tmp, summary, tracker)
            if "stocknet" in protocols:
                windows += _stocknet(cfg, panel, tweets, doc_of, enc, tmp, summary, tracker, tickers)
            fit = pd.DataFrame(windows)
            check_fit_windows(fit, panel.calendar, cfg.walk_forward.gap if "walk_forward" in protocols else 0)
            for kinds in needed(cfg).values():
                # The SAEs were trained by `train.py` on text dated before data.eval_start (its corpus filter):
                # the headline period, which starts there, is the one no SAE has seen.
                if "sae" in kinds and "walk_forward" in protocols:
                    check_text_fit(cfg.data.eval_start, summary_headline_start(summary, cfg.data.eval_start))
            if len(fit):
                fit.to_parquet(tmp / "fit_windows.parquet", index=False)
            summary.model_seconds = round(time.time() - t_model, 1)
            summary.n_rows = int(len(rows))
            summary.seconds = round(time.time() - t0, 1)
            summary.write(tmp)
            publish(tmp, backtest_dir(artifacts, pair))
        out = backtest_dir(artifacts, pair)
        tracker.log({k: v for k, v in summary.scalars().items() if isinstance(v, (int, float))})
        for html in sorted(out.glob("tearsheet_*.html")):
            tracker.log_artifact(html, f"tearsheet-{pair}-{html.stem}", "tearsheet")
        tracker.finish(summary.scalars())
    _print(summary, out)
    return summary


def _walk_forward(cfg, panel, sp500, tweets, doc_of, enc, tmp: Path, summary, tracker) -> list[dict]:
    fc, rows = cfg.features, panel.rows
    pairs = trading_day_pairs(tweets, doc_of, rows, panel.calendar)
    text = text_blocks(cfg, enc, pairs, len(rows))
    price = price_block(rows)
    sets = assemble_sets(cfg, price, text)
    bar = tqdm(total=1, desc="walk-forward", unit="fit", disable=not cfg.progress_bar, leave=False,
               mininterval=5)
    tick = bar.update
    from finsae.trading.walk_forward import folds

    n_folds = len(folds(np.unique(rows["date"].to_numpy()), cfg.walk_forward))
    bar.total = n_folds * (len(sets) + (3 if cfg.canaries else 0))
    wf = walk_forward_predictions(rows, sets, cfg.walk_forward, cfg.lgbm, fc, progress=tick)
    cal = panel.calendar
    entry = pd.Series(cal[1:], index=cal[:-1])
    days = np.unique(rows["date"].to_numpy())
    entry_days = entry.reindex(days).dropna().to_numpy()
    benchmarks = market_benchmarks(panel.adj, sp500, entry_days, rows["ticker"].unique(), cfg.strategy.execution)
    ledger = backtest_root(Path(cfg.paths.artifacts)) / LEDGER_FILE
    run_id = f"{summary.pair}:{Path(cfg.paths.output_dir).name}"

    def trials(new):
        append_trials(ledger, new)
        return trial_stats(read_trials(ledger))

    bt = evaluate_backtests(rows, wf.predictions, cfg.strategy, benchmarks, cfg.data.eval_start, entry, trials, run_id)
    acc = direction_accuracy(rows, wf.predictions, cfg.data.eval_start, cfg.benchmark.bootstrap)
    windows = wf.fit_windows.assign(protocol="walk_forward").to_dict("records")

    canaries = {}
    if cfg.canaries:
        canaries, cw = _canaries(cfg, rows, price, benchmarks, entry, ledger, tick)
        windows += cw
    bar.close()

    preds = wf.predictions.assign(ticker=rows["ticker"].to_numpy()[wf.predictions["row"]],
                                  date=rows["date"].to_numpy()[wf.predictions["row"]],
                                  ret_exec=rows["ret_exec"].to_numpy()[wf.predictions["row"]],
                                  up_exec=rows["up_exec"].to_numpy()[wf.predictions["row"]])
    preds.drop(columns="row").to_parquet(tmp / "predictions.parquet", index=False)
    bt.positions.to_parquet(tmp / "positions.parquet", index=False)
    bt.returns.to_parquet(tmp / "returns.parquet", index=False)
    bt.metrics.to_csv(tmp / "metrics.csv", index=False)
    acc.to_csv(tmp / "accuracy.csv", index=False)
    imp = label_importance(wf.importance, Path(cfg.paths.artifacts), summary.pair)
    imp.to_csv(tmp / "importance.csv", index=False)
    pd.DataFrame({k: v for k, v in benchmarks.items()}).rename_axis("date").to_csv(tmp / "benchmarks.csv")
    write_json(tmp / "canaries.json", canaries)
    (tmp / "plots").mkdir(exist_ok=True)
    for kind in cfg.strategy.kinds:
        fig = equity_figure(bt.returns, benchmarks, kind, cfg.data.eval_start)
        fig.savefig(tmp / "plots" / f"equity_{kind}.png", dpi=110, bbox_inches="tight")
        tracker.log_figure(f"equity_{kind}", fig)
    for name in cfg.features.sets:
        r = bt.returns[(bt.returns["set"] == name) & (bt.returns["strategy"] == cfg.strategy.kinds[0])]
        tearsheet(r.set_index("date")["net"], benchmarks["sp500"], tmp / f"tearsheet_{name}_{cfg.strategy.kinds[0]}.html",
                  f"{name} {cfg.strategy.kinds[0]} (out of sample, {cfg.strategy.cost_bps:g} bps)")
    eq = bt.returns.assign(equity=bt.returns.groupby(["set", "strategy"])["net"].transform(lambda s: (1 + s).cumprod()))
    tracker.log_table("equity", eq[["date", "set", "strategy", "equity"]].assign(date=lambda d: d["date"].astype(str)))
    tracker.log_table("metrics", bt.metrics)
    tracker.log_table("accuracy", acc)
    keep = ["set", "strategy", "period", "start", "end", "sharpe", "sortino", "max_drawdown", "cagr", "calmar", "win_rate", "psr",
            "dsr", "n_trials", "cost_bps", "turnover", "sharpe_lo", "sharpe_hi", "gross_sharpe", "n_days"]
    summary.strategies = json.loads(bt.metrics[[c for c in keep if c in bt.metrics]].to_json(orient="records"))
    summary.accuracy = json.loads(acc.to_json(orient="records"))
    summary.canaries = canaries
    summary.n_folds = len(wf.folds)
    summary.n_trials = int(bt.metrics["n_trials"].max())
    return windows


def _canaries(cfg, rows, price: Block, benchmarks, entry, ledger: Path, tick) -> tuple[dict, list[dict]]:
    """The three canaries through the same walk-forward and backtest; they never enter the trials ledger."""
    ret = rows["ret_exec"].to_numpy()
    wf = walk_forward_predictions(rows, {"canary_oracle": [price, oracle_block(ret)],
                                         "canary_flip32": [price, flipped_block(ret)]},
                                  cfg.walk_forward, cfg.lgbm, cfg.features, progress=tick)
    shuffled = rows.copy()
    shuffled["ret_exec"] = shuffle_days(ret, rows["date"].to_numpy())
    shuffled["up_exec"] = (shuffled["ret_exec"] > 0).astype(float)
    wf_s = walk_forward_predictions(shuffled, {"canary_shuffled": [price]}, cfg.walk_forward, cfg.lgbm, cfg.features,
                                    progress=tick)
    stats = lambda new: trial_stats(read_trials(ledger))  # noqa: E731 - canaries are not trials
    out = {}
    for r, w in ((rows, wf), (shuffled, wf_s)):
        bt = evaluate_backtests(r, w.predictions, cfg.strategy, benchmarks, cfg.data.eval_start, entry, stats, "canary")
        acc = direction_accuracy(r, w.predictions, cfg.data.eval_start, 200)
        for name in w.predictions["set"].unique():
            a = acc[(acc["set"] == name) & (acc["period"] == "full")].iloc[0]
            m = bt.metrics[(bt.metrics["set"] == name) & (bt.metrics["period"] == "full")]
            out[name] = {"accuracy": float(a["accuracy"]), "mcc": float(a["mcc"]),
                         **{f"{k}_{row['strategy']}": float(row[k]) for _, row in m.iterrows()
                            for k in ("sharpe", "dsr", "gross_sharpe", "cagr")}}
    return out, pd.concat([wf.fit_windows, wf_s.fit_windows]).assign(protocol="canary").to_dict("records")


def _stocknet(cfg, panel, tweets, doc_of, enc, tmp: Path, summary, tracker, tickers) -> list[dict]:
    pre = load_stocknet_tweets_preprocessed(cfg.paths.data_dir, tickers)
    s = stocknet_samples(panel.adj, pre, cfg.benchmark)
    samples = s.frame
    feats = panel.rows  # only the walk-forward span; price features for the benchmark are recomputed over all
    from finsae.trading.prices import price_features

    allf = price_features(panel.adj, load_sp500(cfg.paths.data_dir))
    px = samples[["ticker", "prev_date"]].merge(allf.rename(columns={"date": "prev_date"}), on=["ticker", "prev_date"],
                                               how="left")
    del feats
    price = Block("price", "plain", px[list(PRICE_FEATURES)].to_numpy(np.float32), list(PRICE_FEATURES))
    days = pd.DataFrame({"ticker": tweets["ticker"].to_numpy(), "day": tweets["file_date"].to_numpy(), "doc": doc_of})
    pairs = window_pairs(samples, days, cfg.benchmark.lag_days).rename(columns={"sample": "row"})[["row", "doc"]]
    pairs = pairs.drop_duplicates(ignore_index=True)
    text = text_blocks(cfg, enc, pairs, len(samples))
    sets = assemble_sets(cfg, price, text)
    bar = tqdm(total=len(sets), desc="stocknet", unit="set", disable=not cfg.progress_bar, leave=False)
    table, windows = stocknet_benchmark(samples, sets, cfg.lgbm, cfg.features, cfg.benchmark.bootstrap,
                                        progress=bar.update)
    bar.close()
    result = {r["set"]: {k: r[k] for k in ("accuracy", "mcc", "accuracy_lo", "accuracy_hi", "mcc_lo", "mcc_hi",
                                           "n_test")} for r in table.to_dict("records")}
    write_json(tmp / "benchmark_stocknet.json", {
        "sets": result, "counts": s.counts, "published_counts": PUBLISHED_COUNTS,
        "published": PUBLISHED.to_dict("records")})
    tracker.log_table("benchmark_stocknet", table)
    summary.stocknet = result
    summary.stocknet_counts = s.counts
    return windows.assign(protocol="stocknet").to_dict("records")


def summary_headline_start(s: BacktestSummary, eval_start: str) -> str:
    starts = [r["start"] for r in s.strategies if r["period"] == "headline" and r["strategy"] != "benchmark"]
    return min(starts) if starts else eval_start


def _print(s: BacktestSummary, out: Path) -> None:
    print(f"backtest: {s.pair}: {s.n_rows} rows, {s.n_folds} refits, {s.seconds:.0f} s "
          f"(encode {s.encode_seconds:.0f} s, models {s.model_seconds:.0f} s) -> {out}")
    if s.stocknet_counts:
        c = s.stocknet_counts
        print(f"stocknet: samples train/dev/test {c['train']}/{c['dev']}/{c['test']} (paper 20339/2555/3720)")
        for name, r in s.stocknet.items():
            print(f"  {name:<24} test acc {r['accuracy']:.4f} [{r['accuracy_lo']:.4f}, {r['accuracy_hi']:.4f}] "
                  f"mcc {r['mcc']:+.3f}")
    for r in s.strategies:
        if r["period"] == "headline" and r["strategy"] != "benchmark":
            print(f"  {r['set']:<24} {r['strategy']:<10} headline sharpe {r['sharpe']:+.2f} "
                  f"psr {r['psr']:.2f} dsr {r['dsr']:.2f} (n_trials {r['n_trials']})")
    for name, c in s.canaries.items():
        print(f"  canary {name}: accuracy {c['accuracy']:.3f}, long_short sharpe {c.get('sharpe_long_short', float('nan')):+.2f}")
