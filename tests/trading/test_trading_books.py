"""The signal's decay and the turnover-aware books through the walk-forward protocol's own steps
(:func:`finsae.trading.run.walk_forward_sets`: LightGBM refits, both books, the tables and plots written
through the contract) on a planted slow signal whose information decays over ~10 days: the decay table the
stage writes finds it, the turnover-aware book profits after 20 bps where the daily book does not, every
configuration tried is a trial of the DSR, and the contract reads every new file back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finsae.trading import artifacts
from finsae.trading import run as trading_run
from finsae.trading.config import (
    BacktestConfig, FeatureConfig, LgbmConfig, StrategyConfig, TurnoverConfig, WalkForwardConfig,
)
from finsae.trading.dataset import Panel
from finsae.trading.features import Block
from finsae.trading.guards import LeakageError, check_fit_windows
from finsae.trading.ledger import merge_trials
from finsae.trading.page_text import backtest_paragraphs
from finsae.trading.targets import targets

GRID = TurnoverConfig(half_lives=[0, 3, 10], bands=[0, 0.15, 0.3])
KINDS = ["long_short", "long_only"]


def planted_panel(n: int = 60, days: int = 600, seed: int = 0) -> tuple[Panel, pd.DataFrame, np.ndarray]:
    """(panel, S&P 500 prices, score per row): a latent AR(1) alpha per ticker (persistence 0.9 a day, so its
    information decays over ~10 days) drives the executed return of the next day (2% noise); each row's score
    is its alpha under as much independent noise. Rows ordered like ``build_panel``'s."""
    rng = np.random.default_rng(seed)
    alpha = np.zeros((days, n))
    alpha[0] = rng.normal(size=n)
    for t in range(1, days):
        alpha[t] = 0.9 * alpha[t - 1] + np.sqrt(1 - 0.81) * rng.normal(size=n)
    step = np.zeros((days, n))  # open of t-1 -> open of t
    step[2:] = 0.0015 * alpha[:-2] + 0.02 * rng.normal(size=(days - 2, n))
    px = 100 * np.cumprod(1 + step, axis=0)
    cal = pd.bdate_range("2014-01-01", periods=days, name="date")
    dates = np.repeat(cal, n)
    tickers = np.tile([f"T{i:02d}" for i in range(n)], days)
    adj = pd.DataFrame({"ticker": tickers, "date": dates, "adj_open": px.ravel(), "adj_close": px.ravel()})
    adj = adj.sort_values(["ticker", "date"], ignore_index=True)
    score = pd.DataFrame({"ticker": tickers, "date": dates,
                          "score": (alpha + rng.normal(size=(days, n))).ravel()})
    rows = targets(adj).merge(score, on=["ticker", "date"])
    rows = rows[rows["ret_exec"].notna()].sort_values(["date", "ticker"], ignore_index=True)
    sp500 = pd.DataFrame({"date": cal, "open": 100 * np.cumprod(1 + 0.01 * rng.normal(size=days))})
    sp500["adj_close"] = sp500["open"]
    return Panel(rows.drop(columns="score"), adj, pd.DatetimeIndex(cal)), sp500, rows["score"].to_numpy()


def config(**strategy) -> BacktestConfig:
    return BacktestConfig(
        features=FeatureConfig(sets=["price"]),
        strategy=StrategyConfig(kinds=KINDS, cost_bps=20.0, bootstrap=200, turnover=GRID, **strategy),
        walk_forward=WalkForwardConfig(refit_days=63, min_train_days=126, val_days=42, jobs=1),
        lgbm=LgbmConfig(n_estimators=40, num_leaves=[7]), eval_start="2015-01-01", canaries=False)


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    """The walk-forward protocol on the planted panel: (outcome, folder it wrote)."""
    panel, sp500, score = planted_panel()
    sets = {"price": [Block("price", "plain", score.astype(np.float32).reshape(-1, 1), ["slow_score"])]}
    out = tmp_path_factory.mktemp("backtest")
    with pytest.MonkeyPatch.context() as mp:  # the quantstats tearsheet (not tested here) takes most time
        mp.setattr(trading_run, "tearsheet", lambda *a, **k: None)
        return trading_run.walk_forward_sets(panel, sp500, sets, config(), [], "planted", out), out


def test_the_decay_table_the_stage_writes_finds_the_slow_signal_and_its_decay(stage):
    outcome, out = stage
    decay = artifacts.read_decay(out)
    assert set(decay["period"]) == {"full", "headline"} and set(decay["horizon"]) == {1, 2, 5, 10, 20}
    full = decay[(decay["set"] == "price") & (decay["period"] == "full")].set_index(["window", "horizon"])
    day = full.loc["day"]
    for h in (1, 2, 5):  # information left h-1 days later
        assert day.loc[h, "lo"] > 0
    assert day.loc[1, "ic"] > day.loc[5, "ic"] > day.loc[20, "ic"]
    assert day.loc[20, "ic"] < 0.5 * day.loc[1, "ic"]
    assert full.loc[("cumulative", 10), "lo"] > 0  # a 10-day holding still earns on it
    assert (day["block_days"] >= day.index).all()
    assert artifacts.decay_plot_path(out).is_file()
    assert {r["period"] for r in outcome.fields.decay} == {"headline"}


def test_the_turnover_aware_book_profits_where_the_daily_book_does_not(stage):
    outcome, out = stage
    m = artifacts.read_metrics(out)
    mine = (m["set"] == "price") & (m["strategy"] == "long_short") & (m["period"] == "full")
    rows = m[mine].set_index("book")
    daily, aware = rows.loc["daily"], rows.loc["turnover_aware"]
    assert daily["cost_bps"] == aware["cost_bps"] == 20.0
    assert daily["sharpe"] <= 0 < daily["gross_sharpe"]  # the signal is there; the daily book pays it away
    assert aware["sharpe"] > 0.5 and aware["sharpe"] > daily["sharpe"] + 1.0
    assert aware["turnover"] < 0.5 * daily["turnover"] and aware["cost_drag"] < 0.5 * daily["cost_drag"]
    assert aware["breakeven_bps"] > 20.0 > daily["breakeven_bps"]
    assert aware["breakeven_lo"] <= aware["breakeven_bps"] <= aware["breakeven_hi"]
    sweep = artifacts.read_table(out, "cost_sweep")
    assert sorted(set(sweep["cost_bps"])) == [0.0, 5.0, 10.0, 20.0]
    s = sweep[(sweep["strategy"] == "long_short") & (sweep["period"] == "full")]
    s = s.set_index(["book", "cost_bps"])
    assert s.loc[("turnover_aware", 20.0), "net_sharpe"] == pytest.approx(aware["sharpe"], rel=0.05)
    assert s.loc[("daily", 0.0), "net_sharpe"] > 0 >= s.loc[("daily", 20.0), "net_sharpe"]
    assert artifacts.cost_sweep_plot_path(out).is_file()
    books = outcome.fields.books
    assert books["turnover_aware"]["best_net_sharpe"] > books["daily"]["best_net_sharpe"]
    assert books["turnover_aware"]["median_turnover"] < books["daily"]["median_turnover"]


def test_the_knobs_are_chosen_per_fold_and_the_slow_signal_gets_smoothed_or_buffered(stage):
    _, out = stage
    knobs = artifacts.read_table(out, "book_knobs")
    assert set(knobs["strategy"]) == set(KINDS)
    for _, k in knobs.groupby("strategy"):
        assert k["fold"].tolist() == sorted(k["fold"]) and k["test_start"].is_unique
    chosen = knobs[knobs["n_train_days"] >= GRID.min_choice_days]
    too_few = knobs[knobs["n_train_days"] < GRID.min_choice_days]
    assert len(too_few) and (too_few[["half_life", "band"]] == 0).all().all()  # no training scores yet: daily
    ls = chosen[chosen["strategy"] == "long_short"]
    assert ((ls["half_life"] > 0) | (ls["band"] > 0)).all()


def test_each_knob_choice_is_a_fitted_object_the_leakage_check_reads(stage):
    outcome, _ = stage
    windows = pd.DataFrame(outcome.windows)
    knobs = windows[windows["what"].str.startswith("book_knobs:")]
    assert set(knobs["what"]) == {f"book_knobs:{k}" for k in KINDS}
    assert (knobs["rows_end"] < knobs["test_start"]).all()
    calendar, gap = planted_panel(n=2)[0].calendar, config().walk_forward.gap
    check_fit_windows(windows, calendar, gap)
    late = windows.copy()
    late.loc[knobs.index[-1], "rows_end"] = late.loc[knobs.index[-1], "test_start"]  # read a test day
    with pytest.raises(LeakageError):
        check_fit_windows(late, calendar, gap)


def test_every_configuration_tried_is_a_trial_and_the_dsr_counts_them(stage):
    outcome, out = stage
    trials = outcome.trials
    per_book = len(GRID.grid)  # the daily book's trial, and every other configuration of the grid
    assert len(trials) == len(KINDS) * per_book
    assert len({t["key"] for t in trials}) == len(trials)
    assert sorted(t.get("knobs", "daily") for t in trials if t["strategy"] == "long_short") == sorted(
        ["daily"] + [k.label for k in GRID.grid if k.label != "hl0_band0"])
    assert merge_trials(trials, trials) == trials  # a rerun of the same predictions adds none
    m = artifacts.read_metrics(out)
    strategies = m[m["strategy"] != "benchmark"]
    assert (strategies["n_trials"] == len(trials)).all()
    assert (strategies["dsr"] <= strategies["psr"] + 1e-12).all()
    assert outcome.fields.n_trials == len(trials)


def test_the_page_paragraphs_come_from_the_written_tables(stage):
    _, out = stage
    decay, books = backtest_paragraphs(artifacts.read_metrics(out), artifacts.read_decay(out))
    assert "price" in decay and "still above 0 at" in decay
    assert "20 bps per side" in books and "turnover-aware books" in books
