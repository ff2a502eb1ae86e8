"""Positions and cost accounting on toy series worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finsae.trading.backtest import equal_weight_buy_and_hold, positions, strategy_returns


def test_cost_accounting_on_a_two_day_toy_series():
    """Day 1: buy A (turnover 1). Day 2: sell A, buy B (turnover 2), then exit B at the end (turnover 1).
    At 10 bps per side: cost 0.001 on day 1 and 0.003 on day 2."""
    d = pd.to_datetime(["2015-01-05", "2015-01-06"])
    w = pd.DataFrame({"A": [1.0, 0.0], "B": [0.0, 1.0]}, index=d)
    realized = pd.DataFrame({"A": [0.02, 0.05], "B": [-0.01, 0.01]}, index=d)
    entry = pd.Series(pd.to_datetime(["2015-01-06", "2015-01-07"]), index=d)
    r = strategy_returns(w, realized, entry, cost_bps=10)
    assert r.gross.tolist() == pytest.approx([0.02, 0.01])
    assert r.turnover.tolist() == pytest.approx([1.0, 2.0 + 1.0])
    assert r.cost.tolist() == pytest.approx([0.001, 0.003])
    assert r.net.tolist() == pytest.approx([0.019, 0.007])
    assert list(r.net.index) == list(entry)  # indexed by the entry day, never the signal day
    zero = strategy_returns(w, realized, entry, cost_bps=0)
    assert zero.net.tolist() == pytest.approx(zero.gross.tolist())


def test_positions_long_short_and_long_only():
    s = pd.DataFrame({"date": pd.Timestamp("2015-01-05"), "ticker": list("ABCDE"),
                      "score": [0.5, -0.2, 0.1, -0.9, 0.0]})
    ls = positions(s, "long_short", 0.2).iloc[0]
    assert ls["A"] == pytest.approx(0.5) and ls["D"] == pytest.approx(-0.5)
    assert ls.sum() == pytest.approx(0.0) and ls.abs().sum() == pytest.approx(1.0)
    lo = positions(s, "long_only", 0.4).iloc[0]
    assert lo["A"] == pytest.approx(0.5) and lo["C"] == pytest.approx(0.5) and lo.sum() == pytest.approx(1.0)


def test_equal_weight_buy_and_hold_by_hand():
    d = pd.bdate_range("2015-01-05", periods=3)
    px = pd.DataFrame({"A": [10.0, 11.0, 12.1], "B": [20.0, 18.0, 18.0]}, index=d)
    r = equal_weight_buy_and_hold(px, d)
    v = np.array([1.0, (1.1 + 0.9) / 2, (1.21 + 0.9) / 2])
    assert r.tolist() == pytest.approx((v[1:] / v[:-1] - 1).tolist())


def test_walk_forward_gives_the_same_predictions_whatever_the_number_of_jobs():
    import dataclasses

    import scipy.sparse as sp

    from finsae.trading.config import FeatureConfig, LgbmConfig, WalkForwardConfig
    from finsae.trading.features import Block
    from finsae.trading.pipeline import walk_forward_predictions

    rng = np.random.default_rng(0)
    days = pd.bdate_range("2014-01-01", periods=160)
    tickers = [f"T{i}" for i in range(12)]
    rows = pd.DataFrame([(d, t) for d in days for t in tickers], columns=["date", "ticker"])
    n = len(rows)
    price = rng.standard_normal((n, 5))
    rows["ret_exec"] = 0.01 * price[:, 0] + 0.02 * rng.standard_normal(n)
    rows["up_exec"] = (rows["ret_exec"] > 0).astype(float)
    sae = sp.random(n, 40, density=0.05, random_state=1, format="csr")
    dense = rng.standard_normal((n, 16))
    sets = {"price": [Block("price", "plain", price, [f"p{i}" for i in range(5)])],
            "price_sae_dense": [Block("price", "plain", price, [f"p{i}" for i in range(5)]),
                                Block("domain_sae_L3", "sae", sae, [f"s{i}" for i in range(40)]),
                                Block("domain_dense_L3", "dense", dense, [f"d{i}" for i in range(16)])]}
    wf = WalkForwardConfig(refit_days=10, min_train_days=60, val_days=15, jobs=1)
    lgbm = LgbmConfig(num_leaves=[4, 8], n_estimators=30, early_stopping=5, min_child_samples=20)
    feats = FeatureConfig(latents="top_ic", top_n=10, dense_pca=4)
    one = walk_forward_predictions(rows, sets, wf, lgbm, feats)
    two = walk_forward_predictions(rows, sets, dataclasses.replace(wf, jobs=2), lgbm, feats)
    assert len(one.predictions) and one.predictions["set"].nunique() == 2
    pd.testing.assert_frame_equal(one.predictions, two.predictions, check_exact=True)
    pd.testing.assert_frame_equal(one.fit_windows, two.fit_windows)
    pd.testing.assert_frame_equal(one.importance, two.importance, check_exact=True)
