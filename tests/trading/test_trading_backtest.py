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
