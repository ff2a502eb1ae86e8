"""Leakage guards, on real prices and tweets of three small tickers, a tiny random BERT and a tiny SAE:
future-perturbation bit-identity, a planted after-close tweet, the eval-period refusal of the activation cache,
and the fit-window check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finsae.activations import ExtractConfig, build_activations, split_rows
from finsae.errors import FinsaeError
from finsae.trading.config import FeatureConfig, LgbmConfig, StrategyConfig, WalkForwardConfig
from finsae.trading.dataset import build_panel, count_block, price_block
from finsae.trading.features import Block
from finsae.trading.guards import LeakageError, check_fit_windows
from finsae.trading.pipeline import walk_forward_predictions
from finsae.trading.backtest import positions
from finsae.trading.text_features import aggregate_rows, encode_docs, trading_day_pairs, tweet_corpus

START, END, T = "2014-01-01", "2014-12-31", pd.Timestamp("2014-09-15")
WF = WalkForwardConfig(refit_days=21, min_train_days=80, val_days=20)
LGBM = LgbmConfig(num_leaves=[4, 8], n_estimators=40, early_stopping=10, min_child_samples=20)
FEATS = FeatureConfig(sets=["price_domain_sae"], latents="top_ic", top_n=8, dense_pca=4, start=START, end=END)


@pytest.fixture(scope="module")
def real(data_dir, small_tickers):
    from finsae.data.index_prices import load_sp500
    from finsae.data.stocknet_prices import load_stocknet_prices
    from finsae.data.stocknet_tweets import load_stocknet_tweets_raw

    return (load_stocknet_prices(data_dir, small_tickers), load_sp500(data_dir),
            load_stocknet_tweets_raw(data_dir, small_tickers))


def pipeline(prices, sp500, tweets, model, sae, root):
    """Everything up to positions, as the stage composes it."""
    panel = build_panel(prices, sp500, START, END)
    rows = panel.rows
    corpus, doc_of = tweet_corpus(tweets)
    store = build_activations(model, corpus, [1], root, ExtractConfig(max_length=64, batch_size=1), progress=False,
                              inference_only=True)[1]
    docs = encode_docs(store, sae, batch_tokens=512)
    pairs = trading_day_pairs(tweets, doc_of, rows, panel.calendar)
    rt = aggregate_rows(pairs, len(rows), docs)
    import scipy.sparse as sp

    m = docs.sae_sum.shape[1]
    sae_block = Block("domain_sae_L1", "sae", sp.hstack([rt.sae_mean, rt.sae_max], format="csr"),
                      [f"mean:{i}" for i in range(m)] + [f"max:{i}" for i in range(m)])
    dense = Block("domain_dense_L1", "dense", rt.dense_mean, [f"d{i}" for i in range(rt.dense_mean.shape[1])])
    blocks = [price_block(rows), count_block(rt.count), sae_block, dense]
    wf = walk_forward_predictions(rows, {"s": blocks}, WF, LGBM, FEATS)
    p = wf.predictions
    scores = pd.DataFrame({"date": rows["date"].to_numpy()[p["row"]], "ticker": rows["ticker"].to_numpy()[p["row"]],
                           "score": p["pred_ret"].to_numpy()})
    w = positions(scores, "long_short", StrategyConfig().quantile)
    return rows, blocks, wf, w


def corrupt(prices, tweets, t):
    """Scale, shuffle and replace every price and tweet after day t."""
    rng = np.random.default_rng(7)
    p = prices.copy()
    late = p["date"] > t
    for col in ("open", "high", "low", "close", "adj_close"):
        p.loc[late, col] = p.loc[late, col].to_numpy() * rng.uniform(0.5, 2.0, late.sum())
    p.loc[late, "volume"] = rng.permutation(p.loc[late, "volume"].to_numpy())
    tw = tweets.copy()
    close_t = (t + pd.Timedelta(hours=16)).tz_localize("America/New_York").tz_convert("UTC")
    late_tw = tw["created_at"] >= close_t
    tw.loc[late_tw, "text"] = rng.permutation(tw.loc[late_tw, "text"].to_numpy())
    tw.loc[late_tw[late_tw].index[::2], "text"] = "totally different words $XYZ"
    return p, tw


def test_future_perturbation_leaves_the_past_bit_identical(real, tiny_model, tiny_sae, tmp_path):
    prices, sp500, tweets = real
    rows_a, blocks_a, wf_a, w_a = pipeline(prices, sp500, tweets, tiny_model, tiny_sae, tmp_path / "a")
    p2, tw2 = corrupt(prices, tweets, T)
    rows_b, blocks_b, wf_b, w_b = pipeline(p2, sp500, tw2, tiny_model, tiny_sae, tmp_path / "b")
    past = (rows_a["date"] <= T).to_numpy()
    assert past.sum() > 300 and (~past).sum() > 100
    assert rows_a[["ticker", "date"]].equals(rows_b[["ticker", "date"]])
    for a, b in zip(blocks_a, blocks_b, strict=True):
        xa, xb = a.matrix[np.flatnonzero(past)], b.matrix[np.flatnonzero(past)]
        xa, xb = (xa.toarray(), xb.toarray()) if hasattr(xa, "toarray") else (xa, xb)
        assert np.array_equal(xa, xb, equal_nan=True), a.name
        fa, fb = a.matrix[np.flatnonzero(~past)], b.matrix[np.flatnonzero(~past)]
        fa, fb = (fa.toarray(), fb.toarray()) if hasattr(fa, "toarray") else (fa, fb)
        if a.name in ("price", "domain_sae_L1"):
            assert not np.array_equal(fa, fb, equal_nan=True), f"the corruption did not reach {a.name}"
    pa, pb = wf_a.predictions, wf_b.predictions
    da = rows_a["date"].to_numpy()[pa["row"]] <= T.to_datetime64()
    assert da.sum() > 50
    assert np.array_equal(pa.loc[da, ["row", "pred_ret", "prob_up"]].to_numpy(),
                          pb.loc[da, ["row", "pred_ret", "prob_up"]].to_numpy())
    assert not np.array_equal(pa.loc[~da, "pred_ret"].to_numpy(), pb.loc[~da, "pred_ret"].to_numpy())
    assert w_a.loc[:T].equals(w_b.loc[:T])


def test_planted_after_close_tweet_never_reaches_its_day(real):
    from finsae.data.trading_calendar import trading_calendar

    prices, sp500, tweets = real
    panel = build_panel(prices, sp500, START, END)
    rows = panel.rows
    d = pd.Timestamp("2014-06-11")  # a Wednesday, EDT
    plant = pd.DataFrame({"ticker": ["PTR", "PTR"], "text": ["before the close", "after the close"],
                          "created_at": pd.to_datetime(["2014-06-11 19:59:59", "2014-06-11 20:00:01"], utc=True)})
    tw = pd.concat([tweets[["ticker", "text", "created_at"]], plant], ignore_index=True)
    corpus, doc_of = tweet_corpus(tw)
    pairs = trading_day_pairs(tw, doc_of, rows, trading_calendar())
    base_corpus, base_doc = tweet_corpus(tweets)
    base = trading_day_pairs(tweets, base_doc, rows, trading_calendar())
    row_d = rows.index[(rows["ticker"] == "PTR") & (rows["date"] == d)][0]
    row_next = rows.index[(rows["ticker"] == "PTR") & (rows["date"] == pd.Timestamp("2014-06-12"))][0]
    n = lambda p, r: int((p["row"] == r).sum())  # noqa: E731
    assert n(pairs, row_d) == n(base, row_d) + 1  # 15:59:59 ET counts for d
    assert n(pairs, row_next) == n(base, row_next) + 1  # 16:00:01 ET goes to d+1
    after = int(doc_of[-1])
    assert row_d not in set(pairs.loc[pairs["doc"] == after, "row"])


def test_inference_only_cache_takes_eval_period_text_and_is_refused_for_training(tiny_model, tmp_path):
    from finsae.trading.text_features import TweetCorpus

    frame = pd.DataFrame({"doc_id": ["a", "b", "c"], "text": ["shares rose", "profit fell", "guidance cut"],
                          "date": pd.to_datetime(["2015-07-30", "2015-08-03", "2015-12-01"], utc=True)})
    corpus = TweetCorpus("late_tweets", frame)
    cfg = ExtractConfig(max_length=16, batch_size=4)
    with pytest.raises(FinsaeError, match="evaluation period"):
        build_activations(tiny_model, corpus, [0], tmp_path, cfg, progress=False)
    store = build_activations(tiny_model, corpus, [0], tmp_path, cfg, progress=False, inference_only=True)[0]
    assert store.manifest["inference_only"] is True and store.path.name.endswith("-inference")
    with pytest.raises(FinsaeError, match="inference-only"):
        split_rows(store, "train", 0.05)


def test_fit_window_check_catches_a_window_that_touches_its_test_days():
    cal = pd.bdate_range("2015-01-01", periods=60)
    ok = {"fit_start": cal[0], "fit_end": cal[20], "val_start": cal[26], "val_end": cal[35], "test_start": cal[41],
          "test_end": cal[50], "what": "lgbm_return"}
    check_fit_windows(pd.DataFrame([ok]), cal, gap=5)
    with pytest.raises(LeakageError):
        check_fit_windows(pd.DataFrame([{**ok, "fit_end": cal[38]}]), cal, gap=5)
    with pytest.raises(LeakageError):
        check_fit_windows(pd.DataFrame([{**ok, "val_end": cal[41]}]), cal, gap=5)


def test_a_text_posted_again_is_one_document_and_each_mention_keeps_its_own_day():
    from finsae.data.trading_calendar import trading_calendar

    tw = pd.DataFrame({"ticker": ["AAPL", "MSFT", "AAPL", "AAPL"],
                       "text": ["$AAPL up", "$MSFT down", "$AAPL up", "$AAPL up"],
                       "created_at": pd.to_datetime(["2014-06-11 15:00", "2014-06-11 14:00", "2014-06-12 15:00",
                                                     "2014-06-11 16:00"], utc=True)})
    corpus, doc_of = tweet_corpus(tw)
    assert list(corpus.frame["text"]) == ["$MSFT down", "$AAPL up"]  # order of first creation
    assert corpus.frame["date"].iloc[1] == pd.Timestamp("2014-06-11 15:00", tz="UTC")
    assert list(doc_of) == [1, 0, 1, 1]
    rows = pd.DataFrame({"ticker": ["AAPL", "AAPL", "MSFT"],
                         "date": pd.to_datetime(["2014-06-11", "2014-06-12", "2014-06-11"])})
    pairs = trading_day_pairs(tw, doc_of, rows, trading_calendar())
    # the copy of 2014-06-12 counts on that day; two copies on one day count once
    assert sorted(map(tuple, pairs[["row", "doc"]].to_numpy().tolist())) == [(0, 1), (1, 1), (2, 0)]
