"""Signal decay on planted signals: a slow signal (information decaying over ~10 days) is found at horizons 1-10
and decays; a one-day signal is gone after a day; forward returns start at d's execution like ``ret_exec``; the
walk-forward purge grows with the horizon."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finsae.errors import ConfigError, FinsaeError
from finsae.trading import artifacts
from finsae.trading.config import WalkForwardConfig
from finsae.trading.decay import (
    DECAY_COLUMNS, HORIZONS, forward_returns, horizon_gap, purged_folds, rank_ic_by_day, rank_ic_decay,
)
from finsae.trading.metrics import daily_rank_ic, mean_ci
from finsae.trading.targets import targets


def planted(n: int = 60, days: int = 600, seed: int = 0):
    """(adjusted prices, scores): the executed return of day d (open of d+1 to open of d+2) is driven by a slow
    AR(1) alpha (persistence 0.9 a day, so its information decays over ~10 days) and a fast one-day alpha, plus
    2% noise. The ``slow`` and ``fast`` scores of day d are the two alphas of d."""
    rng = np.random.default_rng(seed)
    slow = np.zeros((days, n))
    slow[0] = rng.normal(size=n)
    for t in range(1, days):
        slow[t] = 0.9 * slow[t - 1] + np.sqrt(1 - 0.81) * rng.normal(size=n)
    fast = rng.normal(size=(days, n))
    step = np.zeros((days, n))  # open of t-1 -> open of t
    step[2:] = 0.002 * slow[:-2] + 0.002 * fast[:-2] + 0.02 * rng.normal(size=(days - 2, n))
    px = 100 * np.cumprod(1 + step, axis=0)
    dates = np.repeat(pd.bdate_range("2014-01-01", periods=days), n)
    tickers = np.tile([f"T{i:02d}" for i in range(n)], days)
    adj = pd.DataFrame({"ticker": tickers, "date": dates, "adj_open": px.ravel(), "adj_close": px.ravel() * 1.01})
    scores = pd.concat([pd.DataFrame({"set": name, "date": dates, "ticker": tickers, "score": x.ravel()})
                        for name, x in (("slow", slow), ("fast", fast))], ignore_index=True)
    return adj.sort_values(["ticker", "date"], ignore_index=True), scores


@pytest.fixture(scope="module")
def table():
    adj, scores = planted()
    return rank_ic_decay(scores, forward_returns(adj), draws=500).set_index(["set", "window", "horizon"])


def test_forward_returns_start_at_the_execution_of_the_next_day():
    adj, _ = planted(n=3, days=40)
    adj = adj.drop(index=adj.index[(adj["ticker"] == "T01") & (adj["date"] == adj["date"].unique()[10])])
    fwd = forward_returns(adj, horizons=(1, 3))
    t = targets(adj).set_index(["ticker", "date"])["ret_exec"]
    f = fwd.set_index(["ticker", "date"])
    assert np.allclose(f["cum_1"], t.reindex(f.index), equal_nan=True)
    assert np.allclose(f["day_1"], t.reindex(f.index), equal_nan=True)
    g = adj[adj["ticker"] == "T01"].reset_index(drop=True)  # the ticker's own rows: a missing day is skipped
    p = g["adj_open"].to_numpy()
    row = f.loc["T01"]
    for i in (5, 9, 10):
        assert row["cum_3"].iloc[i] == pytest.approx(p[i + 4] / p[i + 1] - 1)
        assert row["day_3"].iloc[i] == pytest.approx(p[i + 4] / p[i + 3] - 1)
    assert row["cum_3"].iloc[-4:].isna().all() and row["cum_3"].iloc[:-4].notna().all()
    close = forward_returns(adj, horizons=(2,), execution="close").set_index(["ticker", "date"]).loc["T01"]
    c = g["adj_close"].to_numpy()
    assert close["cum_2"].iloc[3] == pytest.approx(c[6] / c[4] - 1)


def test_rank_ic_by_day_is_daily_rank_ic():
    rng = np.random.default_rng(3)
    days, tickers = pd.bdate_range("2015-01-01", periods=25), [f"X{i}" for i in range(9)]
    s = pd.DataFrame(rng.integers(0, 4, (25, 9)).astype(float), index=days, columns=tickers)  # ties
    r = pd.DataFrame(rng.normal(size=(25, 9)), index=days, columns=tickers)
    s[rng.random((25, 9)) < 0.2] = np.nan
    r[rng.random((25, 9)) < 0.2] = np.nan
    s.iloc[3] = 1.0  # a constant day
    r.iloc[4, 2:] = np.nan  # a day with at most 2 tickers
    got = rank_ic_by_day(s, r)
    ls, lr = s.stack(future_stack=True), r.stack(future_stack=True)
    want = daily_rank_ic(ls.to_numpy(), lr.to_numpy(), ls.index.get_level_values(0).to_numpy())
    assert days[3] not in got.index and days[4] not in got.index
    pd.testing.assert_series_equal(got, want, check_names=False, check_freq=False, check_index_type=False)


def test_the_slow_signal_is_found_up_to_ten_days_and_decays(table):
    slow = table.loc["slow"]
    for h in (1, 2, 5, 10):
        assert slow.loc[("cumulative", h), "lo"] > 0
        assert slow.loc[("day", h), "lo"] > 0
    day = slow.loc["day", "ic"]
    assert day[1] > day[5] > day[10] > day[20]
    assert day[20] < 0.4 * day[1]
    assert (table["lo"] <= table["ic"]).all() and (table["ic"] <= table["hi"]).all()


def test_a_one_day_signal_is_gone_after_a_day(table):
    fast = table.loc["fast"]
    assert fast.loc[("day", 1), "lo"] > 0.05
    for h in (2, 5, 10, 20):
        lo, ic, hi = fast.loc[("day", h), ["lo", "ic", "hi"]]
        assert lo < 0 < hi and abs(ic) < 0.02
    cum = fast.loc["cumulative", "ic"]  # its one day of information is diluted by h days of noise
    assert cum[1] > cum[5] > cum[20]
    assert table.loc[("slow", "cumulative", 10), "ic"] > table.loc[("fast", "cumulative", 10), "ic"]


def test_the_bootstrap_block_is_at_least_the_horizon():
    adj, scores = planted(n=20, days=120)
    fwd = forward_returns(adj)
    tab = rank_ic_decay(scores, fwd, block_days=5, draws=200, seed=4)
    assert tab["block_days"].tolist() == [max(5, h) for _ in range(4) for h in HORIZONS]
    one = scores[scores["set"] == "slow"].set_index(["date", "ticker"])
    ic = rank_ic_by_day(one["score"].unstack(), fwd.set_index(["date", "ticker"])["cum_20"].unstack())
    row = tab[(tab["set"] == "slow") & (tab["window"] == "cumulative") & (tab["horizon"] == 20)].iloc[0]
    assert (row["lo"], row["hi"]) == pytest.approx(mean_ci(ic, 20, 200, 4))
    assert row["n_days"] == len(ic) == 120 - 21
    assert list(tab.columns) == list(DECAY_COLUMNS)


def test_the_purge_grows_with_the_horizon():
    cfg = WalkForwardConfig(refit_days=21, min_train_days=126, val_days=42, purge_days=2, embargo_days=3)
    assert horizon_gap(1, cfg) == cfg.gap == 5
    assert horizon_gap(10, cfg) == 14
    days = pd.bdate_range("2014-01-01", periods=400).to_numpy()
    pos = {d: i for i, d in enumerate(days)}
    for h in (1, 5, 20):
        fl = purged_folds(days, cfg, h)
        assert len(fl) > 3
        for f in fl:  # the target of the last row of a window ends before the next part's first day
            assert pos[f.fit_days[-1]] + 1 + h < pos[f.val_days[0]]
            assert pos[f.val_days[-1]] + 1 + h < pos[f.test_days[0]]
            assert pos[f.test_days[0]] - pos[f.val_days[-1]] - 1 == horizon_gap(h, cfg)


def test_the_table_round_trips_and_bad_input_is_refused(tmp_path):
    adj, scores = planted(n=10, days=60)
    tab = rank_ic_decay(scores, forward_returns(adj, horizons=(1, 2)), horizons=(1, 2), draws=20,
                        periods={"full": None, "late": "2014-02-15"})
    late = rank_ic_decay(scores[scores["date"] >= "2014-02-15"], forward_returns(adj, horizons=(1, 2)),
                         horizons=(1, 2), draws=20)  # a period is the table of its days alone
    got = tab[tab["period"] == "late"].drop(columns="period").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, late.drop(columns="period"))
    assert (tab[tab["period"] == "full"]["n_days"].to_numpy() > got["n_days"].to_numpy()).all()
    assert artifacts.TABLES["rank_ic_decay"].columns == DECAY_COLUMNS  # the contract reads what the core writes
    path = artifacts.table_path(tmp_path, "rank_ic_decay")
    tab.to_csv(path, index=False)
    pd.testing.assert_frame_equal(artifacts.read_decay(tmp_path), tab, check_dtype=False)
    tab.drop(columns="lo").to_csv(path, index=False)
    with pytest.raises(FinsaeError, match=r"rank_ic_decay.csv.*python backtest.py"):
        artifacts.read_decay(tmp_path)
    for bad in ([0], [1.5], []):
        with pytest.raises(ConfigError, match="whole trading days"):
            forward_returns(adj, horizons=bad)
    with pytest.raises(ConfigError, match="same horizons"):
        rank_ic_decay(scores, forward_returns(adj, horizons=(1,)), horizons=(1, 5))
    with pytest.raises(ConfigError, match="lack the columns"):
        rank_ic_decay(scores.drop(columns="set"), forward_returns(adj))
    with pytest.raises(ConfigError, match="execution"):
        forward_returns(adj, execution="vwap")
