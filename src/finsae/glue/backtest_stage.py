"""`python backtest.py`: config into calls. The science is in :mod:`finsae.trading` (inputs in ``inputs``,
encoding in ``encode``, sets in ``sets``, the two protocols in ``run``, the files in ``artifacts``);
this module checks every prerequisite before work, runs the protocols inside one W&B run and one lock, checks
the recorded fit windows, and publishes ``artifacts/backtest/{pair}/`` (or ``{folder_name}/``) in one rename
together with the run's trials (``finsae.trading.ledger``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

from finsae.atomic import SPACE_RESERVE_GB, check_replaceable, check_writable, locked, publish, staging_dir
from finsae.timing import fmt_seconds
from finsae.glue.app import resolved_config
from finsae.glue.base_schema import pair_name
from finsae.glue.tracking import stage_run
from finsae.paths import activations_root, backtest_dir, backtest_root, tweet_cache_dir
from finsae.trading import artifacts as contract
from finsae.trading import run as trading_run
from finsae.trading.blocks import needed, uses_sae
from finsae.trading.encode import Encoded, check_encoders, encode_tweets, role_kinds
from finsae.trading.guards import check_fit_windows, check_text_fit
from finsae.trading.inputs import (
    check_data, check_headline_period, chosen_tickers, load_labels, load_market, load_stocknet_tweets,
    load_tweets,
)
from finsae.trading.latent_pools import latent_pools
from finsae.trading.ledger import check_ledger, read_trials, record_trials
from finsae.trading.sets import allowed_latents
from finsae.trading.summary import BacktestSummary
from finsae.summary import is_published

log = logging.getLogger("finsae")


def _roles(cfg) -> dict[str, str]:
    return {"base": cfg.pair.base, "domain": cfg.pair.domain}


def check_prerequisites(cfg) -> None:
    """Fail in one line, before any work, naming what is missing and the command that makes it."""
    artifacts = Path(cfg.paths.artifacts)
    check_data(cfg.paths.data_dir, cfg.features)  # DataMissingError names the fetch command
    check_ledger(contract.ledger_path(backtest_root(artifacts)))  # a cut last line repaired, damage refused
    check_encoders(_roles(cfg), cfg.features, artifacts)
    allowed_latents(artifacts, pair_name(cfg), _roles(cfg), cfg.features)  # latents=financial without any
    latent_pools(artifacts, pair_name(cfg), _roles(cfg), cfg.features)  # changed_sae without a changed latent


precheck = check_prerequisites
"""The stage's checks before any work (what ``--multirun`` prechecks run)."""


def encode_only(cfg) -> None:
    """``encode_only=ROLE``: that role's tweet encodings into the caches (the backtest's own, under the same
    config), nothing published; the backtest that follows reads them."""
    artifacts = Path(cfg.paths.artifacts)
    role = cfg.encode_only
    roles = {role: _roles(cfg)[role]}
    fc = cfg.features
    check_data(cfg.paths.data_dir, fc)
    check_encoders(roles, fc, artifacts)
    if not role_kinds(fc)[role]:
        print(f"backtest: features.sets use no encoding of the {role} model ({roles[role]}); nothing to encode")
        return None
    corpus = load_tweets(cfg.paths.data_dir, chosen_tickers(cfg.paths.data_dir, fc)).corpus
    enc = encode_tweets(roles, fc, cfg.activations, artifacts, tweet_cache_dir(artifacts), cfg.data.eval_start,
                        corpus, cfg.progress_bar)
    print(f"backtest: {len(corpus.frame):,} unique tweets ({enc.n_tokens:,} tokens) of {roles[role]} at layer(s) "
          f"{list(fc.layers)} encoded into the caches in {fmt_seconds(enc.seconds)}")
    return None


def _inputs(cfg) -> tuple[trading_run.Inputs, list[str]]:
    """Everything the protocols read (the tweets encoded unless cached), and the tickers; the headline period
    checked before the encoding."""
    artifacts, fc = Path(cfg.paths.artifacts), cfg.features
    market = load_market(cfg.paths.data_dir, fc, cfg.strategy.execution)
    if "walk_forward" in cfg.benchmark.protocols:
        check_headline_period(market.panel.rows, cfg.data.eval_start, cfg.walk_forward)
    allowed = allowed_latents(artifacts, pair_name(cfg), _roles(cfg), fc)
    pools = latent_pools(artifacts, pair_name(cfg), _roles(cfg), fc)
    tweets = load_tweets(cfg.paths.data_dir, market.tickers)
    enc = Encoded()
    if any(needed(fc.blocks).values()):
        enc = encode_tweets(_roles(cfg), fc, cfg.activations, artifacts, tweet_cache_dir(artifacts),
                            cfg.data.eval_start, tweets.corpus, cfg.progress_bar)
    return trading_run.Inputs(market.panel, market.sp500, tweets, enc, _roles(cfg),
                            lambda model, layer: allowed.get((model, layer)),
                            load_labels(artifacts, pair_name(cfg)),
                            lambda model, layer: pools.get((model, layer))), market.tickers


def _run_protocols(cfg, inp: trading_run.Inputs, tickers: list[str], tmp: Path) -> list[trading_run.Outcome]:
    bc, protos = cfg.backtest_config(), list(cfg.benchmark.protocols)
    done: list[trading_run.Outcome] = []
    if "walk_forward" in protos:
        run_id = f"{pair_name(cfg)}:{Path(cfg.paths.output_dir).name}"
        ledger = read_trials(contract.ledger_path(backtest_root(Path(cfg.paths.artifacts))))
        done.append(trading_run.walk_forward(inp, bc, ledger, run_id, tmp))
    if "stocknet" in protos:
        done.append(trading_run.stocknet(inp, load_stocknet_tweets(cfg.paths.data_dir, tickers), bc, tmp))
    fit = pd.DataFrame([w for o in done for w in o.windows])
    check_fit_windows(fit, inp.panel.calendar, cfg.walk_forward.gap if "walk_forward" in protos else 0)
    if "walk_forward" in protos and uses_sae(cfg.features.blocks):
        # The SAEs were trained by `train.py` on text dated before data.eval_start (its corpus filter): the
        # headline period, which starts there, is the one no SAE has seen.
        strategies = next(o.fields.strategies for o in done
                          if isinstance(o.fields, trading_run.WalkForwardFields))
        check_text_fit(cfg.data.eval_start, trading_run.headline_start(strategies, cfg.data.eval_start))
    contract.write_fit_windows(tmp, fit)
    return done


def run(cfg, raw) -> BacktestSummary | None:
    t0 = time.time()
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # quantstats asks for Arial
    artifacts = Path(cfg.paths.artifacts)
    pair = pair_name(cfg)
    out = backtest_dir(artifacts, cfg.folder_name or pair)
    if cfg.skip_if_done and is_published(out):
        summary = contract.read_summary(out)
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
    inp, tickers = _inputs(cfg)
    ledger_path = contract.ledger_path(backtest_root(artifacts))
    with stage_run("backtest", resolved_config(raw), Path(cfg.paths.output_dir), cfg.logger,
                   group=cfg.logger.group or "backtest", tags=list(cfg.logger.tags) + [pair],
                   name=f"backtest-{out.name}") as tracker:
        with locked([out]):
            tmp = staging_dir(out)
            t_model = time.time()
            done = _run_protocols(cfg, inp, tickers, tmp)
            for o in done:
                for name, fig in o.figures.items():
                    tracker.log_figure(name, fig)
                for name, table in o.tables.items():
                    tracker.log_table(name, table)
            summary = BacktestSummary(
                pair=pair, protocols=list(cfg.benchmark.protocols), sets=list(cfg.features.sets),
                eval_start=cfg.data.eval_start, cost_bps=cfg.strategy.cost_bps,
                **{k: v for o in done for k, v in o.fields._asdict().items()},
                n_rows=int(len(inp.panel.rows)), encode_seconds=round(inp.enc.seconds, 1),
                model_seconds=round(time.time() - t_model, 1), seconds=round(time.time() - t0, 1))
            summary.write(tmp)
            # the trials are counted in the step that publishes, keyed: a killed run adds none, a rerun adds none
            record_trials(ledger_path, [t for o in done for t in o.trials], then=lambda: publish(tmp, out))
        tracker.log({k: v for k, v in summary.scalars().items() if isinstance(v, (int, float))})
        for html in contract.tearsheet_paths(out):
            tracker.log_artifact(html, f"tearsheet-{out.name}-{html.stem}", "tearsheet")
        tracker.finish(summary.scalars())
    trading_run.print_summary(summary, out)
    return summary
