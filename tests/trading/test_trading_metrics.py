"""Metric functions against hand-computed values and the Bailey & Lopez de Prado worked example; quantstats only
ever sees pandas Series."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from finsae.trading.metrics import (
    classification_ci, dsr, expected_max_sharpe, psr, quantstats_metrics, sharpe_ci, sharpe_stats,
)


def test_deflated_sharpe_reproduces_the_papers_worked_example():
    """Bailey & Lopez de Prado (2014), "The Deflated Sharpe Ratio", numerical example: annualised SR 2.5 over
    T = 1,250 daily returns (250 a year), N = 100 trials with V[SR] = 0.5 (annualised), skewness -3, kurtosis 10
    -> SR_0 = 0.1132 per period and DSR = 0.9004; with N = 46 trials DSR = 0.9505."""
    sr = 2.5 / math.sqrt(250)
    var = 0.5 / 250
    assert expected_max_sharpe(100, var) == pytest.approx(0.1132, abs=5e-5)
    assert dsr(sr, 1250, -3.0, 10.0, 100, var) == pytest.approx(0.9004, abs=5e-5)
    assert dsr(sr, 1250, -3.0, 10.0, 46, var) == pytest.approx(0.9505, abs=5e-4)


def test_psr_by_hand():
    # normal returns (skew 0, kurtosis 3): z = SR * sqrt(T-1) / sqrt(1 + SR^2 / 2)
    sr, n = 0.1, 101
    z = sr * 10 / math.sqrt(1 + 0.5 * sr ** 2)
    assert psr(sr, n, 0.0, 3.0) == pytest.approx(0.5 * (1 + math.erf(z / math.sqrt(2))), rel=1e-12)
    assert psr(0.0, 100, 0.0, 3.0) == pytest.approx(0.5)
    assert expected_max_sharpe(1, 1.0) == 0.0
    assert dsr(sr, n, 0.0, 3.0, 1, 0.0) == psr(sr, n, 0.0, 3.0)


def test_quantstats_metrics_match_hand_computed_values():
    idx = pd.bdate_range("2015-01-01", periods=6)
    r = pd.Series([0.01, -0.02, 0.03, 0.0, 0.01, -0.01], index=idx)
    m = quantstats_metrics(r, pd.Series(0.001, index=idx))
    x = r.to_numpy()
    assert m["sharpe"] == pytest.approx(x.mean() / x.std(ddof=1) * math.sqrt(252), rel=1e-9)
    equity = np.cumprod(1 + x)
    peak = np.maximum.accumulate(np.r_[1.0, equity])[1:]
    assert m["max_drawdown"] == pytest.approx((equity / peak - 1).min(), rel=1e-9)
    assert m["total_return"] == pytest.approx(equity[-1] - 1, rel=1e-12)
    assert m["win_rate"] == pytest.approx(3 / 5)  # quantstats counts nonzero days only
    s = sharpe_stats(r, n_trials=1, sr_variance=0.0)
    assert s["sr_daily"] == pytest.approx(x.mean() / x.std(ddof=1))
    assert s["n_obs"] == 6 and s["psr"] == s["dsr"]


def test_quantstats_never_gets_a_ticker_string(monkeypatch, tmp_path):
    """A ticker string makes quantstats download (and offline silently return zeros): every call passes a
    Series, so a download function that raises is never reached, and a string is refused."""
    import quantstats as qs

    def no_network(*a, **k):
        raise AssertionError("quantstats tried to download a benchmark")

    monkeypatch.setattr(qs.utils, "download_returns", no_network)
    idx = pd.bdate_range("2015-01-01", periods=60)
    rng = np.random.default_rng(0)
    r = pd.Series(rng.normal(0, 0.01, 60), index=idx)
    b = pd.Series(rng.normal(0, 0.01, 60), index=idx)
    quantstats_metrics(r, b)
    from finsae.trading.outputs import tearsheet

    tearsheet(r, b, tmp_path / "t.html", "test")
    assert (tmp_path / "t.html").stat().st_size > 1000
    with pytest.raises(TypeError):
        quantstats_metrics(r, "SPY")
    with pytest.raises(TypeError):
        tearsheet(r, "SPY", tmp_path / "u.html", "test")


def test_classification_ci_and_sharpe_ci():
    y = np.array([1, 1, 0, 0, 1, 0, 1, 1])
    p = np.array([1, 0, 0, 1, 1, 0, 1, 0])
    d = np.repeat(np.arange(4), 2)
    r = classification_ci(y, p, d, draws=200)
    assert r["accuracy"] == pytest.approx(5 / 8)
    tp, fp, tn, fn = 3, 1, 2, 2
    assert r["mcc"] == pytest.approx((tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
    assert r["accuracy_lo"] <= r["accuracy"] <= r["accuracy_hi"] and r["n_test"] == 8
    rng = np.random.default_rng(1)
    x = pd.Series(rng.normal(0.001, 0.01, 500))
    lo, hi = sharpe_ci(x, block=10, draws=300)
    point = x.mean() / x.std(ddof=1) * math.sqrt(252)
    assert lo < point < hi
