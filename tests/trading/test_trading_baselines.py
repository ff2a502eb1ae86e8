"""Issue 21 §2: every direction table has its always-up row and each set's paired difference from it; the
protocol's own price input (no index feature) by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finsae.trading.metrics import paired_accuracy_diff
from finsae.trading.pipeline import direction_accuracy
from finsae.trading.stocknet import acl18_price_block


def test_paired_difference_from_always_up_by_hand():
    y = np.array([1, 0, 1, 1, 0, 0, 1, 1])
    pred = np.array([1, 0, 0, 1, 0, 1, 1, 0])  # 5/8 right; always-up 5/8 right
    days = np.repeat([1, 2, 3, 4], 2)
    r = paired_accuracy_diff(y, pred, np.ones(8), days, draws=500)
    assert r["vs_always_up"] == pytest.approx(0.0, abs=1e-12)
    assert r["vs_always_up_lo"] < 0 < r["vs_always_up_hi"]
    same = paired_accuracy_diff(y, np.ones(8), np.ones(8), days, draws=50)  # paired: identical calls, no spread
    assert same == {"vs_always_up": 0.0, "vs_always_up_lo": 0.0, "vs_always_up_hi": 0.0}
    better = paired_accuracy_diff(y, y, np.ones(8), days, draws=500)
    assert better["vs_always_up"] == pytest.approx(3 / 8, abs=1e-12) and better["vs_always_up_lo"] >= 0  # no day worse


def test_direction_table_starts_with_always_up_per_period():
    rng = np.random.default_rng(0)
    days = pd.bdate_range("2015-06-01", periods=60)
    rows = pd.DataFrame({"date": np.repeat(days, 10), "up_exec": (rng.random(600) < 0.55).astype(float)})
    preds = pd.concat([pd.DataFrame({"row": np.arange(600), "set": s, "prob_up": rng.random(600)}) for s in "ab"])
    t = direction_accuracy(rows, preds, "2015-07-01", 100)
    assert t["set"].tolist() == ["always_up", "a", "b", "always_up", "a", "b"]
    up = t[(t["set"] == "always_up") & (t["period"] == "full")].iloc[0]
    assert up["accuracy"] == pytest.approx(rows["up_exec"].mean(), abs=1e-12) and up["mcc"] == 0.0
    a = t[(t["set"] == "a") & (t["period"] == "full")].iloc[0]
    assert a["vs_always_up"] == pytest.approx(a["accuracy"] - up["accuracy"], abs=1e-12)
    assert a["vs_always_up_lo"] <= a["vs_always_up"] <= a["vs_always_up_hi"]


def test_acl18_price_input_by_hand():
    d = pd.bdate_range("2015-01-05", periods=4)
    adj = pd.DataFrame({"ticker": "A", "date": d, "adj_close": [10.0, 11.0, 12.1, 11.0],
                        "adj_high": [10.5, 11.5, 12.5, 12.0], "adj_low": [9.5, 10.0, 11.0, 10.5]})
    samples = pd.DataFrame({"ticker": ["A"], "prev_date": [d[3]]})
    b = acl18_price_block(adj, samples, n_rows=2)
    assert b.columns == ["high_1", "low_1", "close_1", "high_2", "low_2", "close_2"]
    np.testing.assert_allclose(b.matrix[0], [12 / 12.1 - 1, 10.5 / 12.1 - 1, 11 / 12.1 - 1,
                                             12.5 / 11 - 1, 11 / 11 - 1, 12.1 / 11 - 1], rtol=1e-6)
    assert not any(c.startswith("sp500") for c in b.columns)
