"""Issue 21 §1: the long-short book's model and its latent selection look within each day. A planted feature that
tracks only the day's market move has no per-day rank IC, is not selected by the cross-sectional rule (but is by
the pooled Pearson rule it replaces); the rank IC table and the model labels of each book."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from finsae.trading.config import StrategyConfig
from finsae.trading.features import Block, column_ic, day_rank_ic, fit_block
from finsae.trading.pipeline import evaluate_backtests, rank_ic_table
from finsae.trading.targets import cross_sectional


def market_world(n_days=200, n_tickers=30, seed=0):
    """ret = market_d + idio; ``market`` knows market_d only (with noise), ``cross`` knows idio only (weakly)."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2015-01-01", periods=n_days)
    d = np.repeat(days.to_numpy(), n_tickers)
    mkt = np.repeat(rng.normal(0, 0.02, n_days), n_tickers)
    idio = rng.normal(0, 0.01, len(d))
    ret = mkt + idio
    market = mkt + rng.normal(0, 0.002, len(d))
    cross = idio + rng.normal(0, 0.02, len(d))
    return d, ret, market, cross


def test_a_market_timing_feature_has_no_per_day_rank_ic_and_is_selected_only_by_the_pooled_rule():
    d, ret, market, cross = market_world()
    x = np.c_[market, cross]
    pooled = column_ic(x, ret)
    daily = day_rank_ic(x, ret, d)
    assert pooled[0] > 0.8 and pooled[0] > pooled[1] + 0.3  # pooled Pearson rewards market timing
    assert abs(daily[0]) < 0.05  # zero within days (sd of the mean about 0.013 here)
    assert daily[1] > 0.3
    block = Block("domain_sae_L3", "sae", sp.csr_matrix(np.c_[x, x]), ["m_mean", "c_mean", "m_max", "c_max"])
    rows = np.arange(len(ret))
    by_day = fit_block(block, rows, ret, "top_ic", 1, None, days=d)
    by_pool = fit_block(block, rows, ret, "top_ic_pooled", 1, None)
    assert by_day.columns.tolist() == [1, 3] and by_day.names == ["c_mean", "c_max"]
    assert by_pool.columns.tolist() == [0, 2]
    with pytest.raises(ValueError, match="ranks within days"):
        fit_block(block, rows, ret, "top_ic", 1, None)


def test_day_rank_ic_by_hand_with_ties_and_a_constant_day():
    d = np.array(["a"] * 4 + ["b"] * 3)
    x = np.array([1.0, 2.0, 2.0, 4.0, 5.0, 5.0, 5.0])  # day b constant: IC 0 that day
    y = np.array([0.1, 0.3, 0.2, 0.4, 1.0, 2.0, 3.0])
    rx, ry = np.array([1, 2.5, 2.5, 4]), np.array([1, 3, 2, 4.0])
    rx, ry = rx - rx.mean(), ry - ry.mean()
    ic_a = (rx @ ry) / np.sqrt((rx @ rx) * (ry @ ry))
    np.testing.assert_allclose(day_rank_ic(x[:, None], y, d), [ic_a / 2], rtol=1e-12)
    np.testing.assert_allclose(day_rank_ic(sp.csr_matrix(x[:, None]), y, d), [ic_a / 2], rtol=1e-12)


def test_cross_sectional_targets_by_hand():
    d = np.array([1, 1, 1, 2, 2, 3])
    r = np.array([0.03, -0.01, 0.01, 0.05, np.nan, 0.2])
    np.testing.assert_allclose(cross_sectional(r, d, "rank"), [0.5, -0.5, 0.0, 0.0, np.nan, 0.0], atol=1e-12)
    np.testing.assert_allclose(cross_sectional(r, d, "demean"), [0.02, -0.02, 0.0, 0.0, np.nan, 0.0], atol=1e-12)


def test_the_long_short_book_trades_the_cross_sectional_model_and_rank_ic_is_reported_per_model():
    d, ret, market, cross = market_world(n_days=120, n_tickers=20)
    dates = pd.DatetimeIndex(d)
    rows = pd.DataFrame({"date": dates, "ticker": np.tile([f"T{i}" for i in range(20)], 120), "ret_exec": ret})
    preds = pd.DataFrame({"row": np.arange(len(rows)), "set": "s", "pred_ret": market, "pred_cs": cross})
    cal = pd.DatetimeIndex(sorted(set(dates)))
    entry = pd.Series(cal[1:].append(pd.DatetimeIndex([cal[-1] + pd.Timedelta(days=1)])), index=cal)
    bench = {"sp500": pd.Series(np.random.default_rng(1).normal(0, 0.01, len(entry)), index=entry.to_numpy())}
    bt = evaluate_backtests(rows, preds, StrategyConfig(bootstrap=20), bench, "2015-04-01", entry, [], "r")
    m = bt.metrics.set_index(["strategy", "period"])
    assert m.loc[("long_short", "full"), "model"] == "cross_section_rank"
    assert m.loc[("long_only", "full"), "model"] == "raw_return"
    assert m.loc[("long_short", "full"), "gross_sharpe"] > 3  # it ranks the idiosyncratic part
    ic = rank_ic_table(rows, preds, "2015-04-01", 5, 200).set_index(["model", "period"])
    assert abs(ic.loc[("raw_return", "full"), "rank_ic"]) < 0.06
    assert ic.loc[("raw_return", "full"), "rank_ic_lo"] < 0 < ic.loc[("raw_return", "full"), "rank_ic_hi"]
    assert ic.loc[("cross_section", "full"), "rank_ic_lo"] > 0.3
    assert ic.loc[("cross_section", "headline"), "n_days"] < ic.loc[("cross_section", "full"), "n_days"]


def test_the_sparse_rank_ic_path_equals_the_dense_one_with_ties_and_empty_columns():
    rng = np.random.default_rng(3)
    d = np.repeat(np.arange(25), 9)[rng.random(225) < 0.9]
    a = np.round(rng.random((len(d), 30)), 1) * (rng.random((len(d), 30)) < 0.3)  # ties, many zeros
    a[:, 3] = 0.0
    a[:4, 4] = 1.0
    y = np.round(rng.normal(size=len(d)), 1)
    dense = day_rank_ic(a, y, d)
    np.testing.assert_allclose(day_rank_ic(sp.csr_matrix(a), y, d), dense, rtol=1e-9, atol=1e-12)
    assert dense[3] == 0.0 and np.abs(dense).max() > 0.05
