"""Timing figures of the backtest stage's steps, on real StockNet tweets and prices of a ticker subset.

    OMP_NUM_THREADS=1 .venv/bin/python bench/backtest_stage.py [--tickers PTR,REX,BBL,UL,NGG,HRG] [--model minilm_fin]
        [--layer 3] [--tag demo] [--full-tokens 3945131]

Steps timed, each as the stage runs it: the activation extraction of the tweets (a fresh, inference-only cache
in a temp folder), the SAE encode + per-tweet reduction (``encode_docs``), the per-row aggregation
(``aggregate_rows``), and one walk-forward fold of one feature set (price + count + SAE latents). The SAE is read
from ``artifacts/sae/{model}/layer_{i}/{tag}/`` (sizes from its cfg.json). ``--full-tokens`` extrapolates the
two per-token steps to the whole StockNet tweet corpus (3,945,131 real tokens at max_length 128).
Last line: ``backtest_stage extract_tok_s=.. sae_encode_tok_s=.. aggregate_s=.. fold_s=.. full_encode_min=..``.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tickers", default="PTR,REX,BBL,UL,NGG,HRG")
    ap.add_argument("--model", default="minilm_fin")
    ap.add_argument("--layer", type=int, default=3)
    ap.add_argument("--tag", default="demo")
    ap.add_argument("--full-tokens", type=int, default=3_945_131)
    a = ap.parse_args()
    from finsae.glue.console import quiet_console

    quiet_console()  # no load reports or weight-loading bars between the figures

    from finsae.activations import ExtractConfig, build_activations
    from finsae.data.index_prices import load_sp500
    from finsae.data.stocknet_prices import load_stocknet_prices
    from finsae.data.stocknet_tweets import load_stocknet_tweets_raw
    from finsae.models import get_spec, load_model
    from finsae.paths import default_artifacts_dir, sae_dir
    from finsae.sae import load
    from finsae.trading.config import FeatureConfig, LgbmConfig, StrategyConfig, WalkForwardConfig
    from finsae.trading.dataset import build_panel, count_block, price_block
    from finsae.trading.features import Block
    from finsae.trading.targets import cross_sectional
    from finsae.trading.text_features import aggregate_rows, encode_docs, trading_day_pairs, tweet_corpus
    from finsae.trading.walk_forward import folds, run_fold

    tickers = a.tickers.split(",")
    art = default_artifacts_dir()
    tweets = load_stocknet_tweets_raw(None, tickers)
    corpus, doc_of = tweet_corpus(tweets)
    model = load_model(get_spec(a.model), art)
    with tempfile.TemporaryDirectory() as root:
        t = time.perf_counter()
        store = build_activations(model, corpus, [a.layer], Path(root), ExtractConfig(), progress=False,
                                  inference_only=True)[a.layer]
        t_extract = time.perf_counter() - t
        n_tok = len(store)
        sae = load(sae_dir(art, a.model, a.layer, a.tag), expected_d_in=store.d)
        t = time.perf_counter()
        docs = encode_docs(store, sae)
        t_encode = time.perf_counter() - t
    panel = build_panel(load_stocknet_prices(None, tickers), load_sp500(), "2014-01-01", "2016-03-31")
    rows = panel.rows
    pairs = trading_day_pairs(tweets, doc_of, rows, panel.calendar)
    t = time.perf_counter()
    rt = aggregate_rows(pairs, len(rows), docs)
    t_agg = time.perf_counter() - t
    m = docs.sae_sum.shape[1]
    block = Block("sae", "sae", sp.hstack([rt.sae_mean, rt.sae_max], format="csr"), [str(i) for i in range(2 * m)])
    fc = FeatureConfig()
    f = folds(np.unique(rows["date"].to_numpy()), WalkForwardConfig())[-1]
    t = time.perf_counter()
    y_cs = cross_sectional(rows["ret_exec"].to_numpy(), rows["date"].to_numpy(), StrategyConfig().cross_section)
    run_fold(f, [price_block(rows), count_block(rt.count), block], rows["date"].to_numpy(),
             rows["ret_exec"].to_numpy(), rows["up_exec"].to_numpy(), LgbmConfig(), fc.latents, fc.top_n, fc.dense_pca,
             y_cs=y_cs)
    t_fold = time.perf_counter() - t
    ext, enc = n_tok / t_extract, n_tok / t_encode
    full_min = (a.full_tokens / ext + a.full_tokens / enc) / 60
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"{len(tickers)} tickers, {len(corpus)} tweets, {n_tok} tokens, {len(rows)} rows; SAE {m} latents k={sae.cfg.k}")
    print(f"extract {t_extract:.1f} s ({ext:.0f} tok/s), SAE encode + reduce {t_encode:.1f} s ({enc:.0f} tok/s), "
          f"aggregate {t_agg:.2f} s, one fold {t_fold:.1f} s")
    print(f"backtest_stage extract_tok_s={ext:.0f} sae_encode_tok_s={enc:.0f} aggregate_s={t_agg:.2f} "
          f"fold_s={t_fold:.1f} full_encode_min={full_min:.1f} peak_rss_gb={rss:.2f}")


if __name__ == "__main__":
    main()
