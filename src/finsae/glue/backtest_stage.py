"""`python backtest.py`: config into calls. The science is in :mod:`finsae.trading` (encoding in ``encode``, sets
in ``sets``, the two protocols in ``protocols``); this module checks every prerequisite before work, loads the
data, runs the protocols inside one W&B run and one lock, checks the recorded fit windows, and publishes
``artifacts/backtest/{pair}/`` in one rename together with the run's trials (``finsae.trading.ledger``).
"""

from __future__ import annotations

import logging
import time
from functools import partial
from pathlib import Path

import pandas as pd

from finsae.atomic import SPACE_RESERVE_GB, check_replaceable, check_writable, locked, publish, staging_dir
from finsae.data.index_prices import load_sp500
from finsae.data.stocknet_prices import load_stocknet_prices
from finsae.data.stocknet_tweets import load_stocknet_tweets_preprocessed, load_stocknet_tweets_raw
from finsae.timing import fmt_seconds
from finsae.glue.app import resolved_config
from finsae.glue.schemas import pair_name
from finsae.glue.tracking import stage_run
from finsae.paths import activations_root, backtest_dir, backtest_root, tweet_cache_dir
from finsae.trading import protocols
from finsae.trading.dataset import build_panel
from finsae.trading.encode import Encoded, check_encoders, encode_tweets, needed
from finsae.trading.guards import check_fit_windows, check_text_fit
from finsae.trading.ledger import LEDGER_FILE, check_ledger, read_trials, record_trials
from finsae.trading.sets import financial_latents
from finsae.trading.summary import BacktestSummary
from finsae.summary import is_published
from finsae.trading.text_features import tweet_corpus

log = logging.getLogger("finsae")


def _roles(cfg) -> dict[str, str]:
    return {"base": cfg.pair.base, "domain": cfg.pair.domain}


def check_prerequisites(cfg) -> None:
    """Fail in one line, before any work, naming what is missing and the command that makes it."""
    artifacts = Path(cfg.paths.artifacts)
    load_stocknet_prices(cfg.paths.data_dir, cfg.features.tickers)  # DataMissingError names the fetch command
    load_sp500(cfg.paths.data_dir)
    check_ledger(backtest_root(artifacts) / LEDGER_FILE)  # a cut last line repaired, other damage refused, now
    check_encoders(_roles(cfg), cfg.features, artifacts)


def _tweets(cfg, prices: pd.DataFrame):
    """The tickers of ``prices``, their raw-text tweets, the tweets' unique-text corpus and each row's document."""
    tickers = sorted(prices["ticker"].unique())
    tweets = load_stocknet_tweets_raw(cfg.paths.data_dir, tickers)
    return (tickers, tweets, *tweet_corpus(tweets))


def encode_only(cfg) -> None:
    """``encode_only=ROLE``: that role's tweet encodings into the caches (the backtest's own, under the same
    config), nothing published; the backtest that follows reads them."""
    artifacts = Path(cfg.paths.artifacts)
    role = cfg.encode_only
    roles = {role: _roles(cfg)[role]}
    fc = cfg.features
    prices = load_stocknet_prices(cfg.paths.data_dir, fc.tickers)  # DataMissingError names the fetch command
    check_encoders(roles, fc, artifacts)
    if not needed(fc.blocks)[role]:
        print(f"backtest: features.sets use no encoding of the {role} model ({roles[role]}); nothing to encode")
        return None
    corpus = _tweets(cfg, prices)[2]
    enc = encode_tweets(roles, fc, cfg.activations, artifacts, tweet_cache_dir(artifacts), cfg.data.eval_start,
                        corpus, cfg.progress_bar)
    print(f"backtest: {len(corpus.frame):,} unique tweets ({enc.n_tokens:,} tokens) of {roles[role]} at layer(s) "
          f"{list(fc.layers)} encoded into the caches in {fmt_seconds(enc.seconds)}")
    return None


def run(cfg, raw) -> BacktestSummary | None:
    t0 = time.time()
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # quantstats asks for Arial
    artifacts = Path(cfg.paths.artifacts)
    pair = pair_name(cfg)
    out = backtest_dir(artifacts, pair)
    if cfg.skip_if_done and is_published(out):
        summary = BacktestSummary.read(out)
        print(f"backtest: {out} is complete ({len(summary.sets)} feature sets); skipping")
        return summary
    for folder, what in ((activations_root(artifacts), "activation cache"),
                         (tweet_cache_dir(artifacts), "tweet-encoding cache")):
        check_writable(folder, what, make=False, reserve_gb=SPACE_RESERVE_GB)
    if cfg.encode_only:
        return encode_only(cfg)
    check_writable(backtest_root(artifacts), "artifacts folder")
    check_replaceable(out)  # before the walk-forward, not at its publish
    check_prerequisites(cfg)
    fc = cfg.features
    prices = load_stocknet_prices(cfg.paths.data_dir, fc.tickers)
    sp500 = load_sp500(cfg.paths.data_dir)
    panel = build_panel(prices, sp500, fc.start, fc.end, cfg.strategy.execution)
    tickers, tweets, corpus, doc_of = _tweets(cfg, prices)
    enc = Encoded()
    if any(needed(fc.blocks).values()):
        enc = encode_tweets(_roles(cfg), fc, cfg.activations, artifacts, tweet_cache_dir(artifacts),
                            cfg.data.eval_start, corpus, cfg.progress_bar)
    inp = protocols.Inputs(panel, sp500, tweets, doc_of, enc, _roles(cfg),
                           partial(financial_latents, artifacts, pair, fc.latents))

    ledger_path = backtest_root(artifacts) / LEDGER_FILE
    protos = list(cfg.benchmark.protocols)
    summary = BacktestSummary(pair=pair, protocols=protos, sets=list(fc.sets), eval_start=cfg.data.eval_start,
                              cost_bps=cfg.strategy.cost_bps, encode_seconds=round(enc.seconds, 1))
    with stage_run("backtest", resolved_config(raw), Path(cfg.paths.output_dir), cfg.logger,
                   group=cfg.logger.group or "backtest", tags=list(cfg.logger.tags) + [pair],
                   name=f"backtest-{pair}") as tracker:
        with locked([out]):
            tmp = staging_dir(out)
            t_model = time.time()
            done: list[protocols.Outcome] = []
            if "walk_forward" in protos:
                run_id = f"{pair}:{Path(cfg.paths.output_dir).name}"
                done.append(protocols.walk_forward(inp, cfg, read_trials(ledger_path), run_id, artifacts, tmp,
                                                   summary))
            if "stocknet" in protos:
                done.append(protocols.stocknet(inp, load_stocknet_tweets_preprocessed(cfg.paths.data_dir, tickers),
                                               cfg, tmp, summary))
            fit = pd.DataFrame([w for o in done for w in o.windows])
            check_fit_windows(fit, panel.calendar, cfg.walk_forward.gap if "walk_forward" in protos else 0)
            if "walk_forward" in protos and any("sae" in k for k in needed(fc.blocks).values()):
                # The SAEs were trained by `train.py` on text dated before data.eval_start (its corpus filter):
                # the headline period, which starts there, is the one no SAE has seen.
                check_text_fit(cfg.data.eval_start, protocols.headline_start(summary.strategies, cfg.data.eval_start))
            if len(fit):
                fit.to_parquet(tmp / "fit_windows.parquet", index=False)
            for o in done:
                for name, fig in o.figures.items():
                    tracker.log_figure(name, fig)
                for name, table in o.tables.items():
                    tracker.log_table(name, table)
            summary.model_seconds = round(time.time() - t_model, 1)
            summary.n_rows = int(len(panel.rows))
            summary.seconds = round(time.time() - t0, 1)
            summary.write(tmp)
            # the trials are counted in the step that publishes, keyed: a killed run adds none, a rerun adds none
            record_trials(ledger_path, [t for o in done for t in o.trials], then=lambda: publish(tmp, out))
        tracker.log({k: v for k, v in summary.scalars().items() if isinstance(v, (int, float))})
        for html in sorted(out.glob("tearsheet_*.html")):
            tracker.log_artifact(html, f"tearsheet-{pair}-{html.stem}", "tearsheet")
        tracker.finish(summary.scalars())
    protocols.print_summary(summary, out)
    return summary
