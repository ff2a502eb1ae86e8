"""Turnover-aware books on a planted slow signal: the buffer book reproduces the daily book at band 0, keeps names
inside its wider zone, profits after 10-20 bps where the daily book loses, chooses its knobs on training data
only; breakeven cost and the cost sweep by their definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finsae.errors import ConfigError
from finsae.trading.backtest import positions, strategy_returns
from finsae.trading.book import (
    DAILY, Knobs, TurnoverConfig, at_cost, book_metrics, buffered_positions, cost_sweep,
    score_panel, smooth_scores, turnover_aware_book,
)
from finsae.trading.config import WalkForwardConfig
from finsae.trading.outputs import cost_sweep_figure
from finsae.trading.targets import targets
from finsae.trading.walk_forward import folds

GRID = TurnoverConfig(half_lives=[0, 3, 10], bands=[0, 0.15, 0.3])
WF = WalkForwardConfig(refit_days=63, min_train_days=126, val_days=42)


def planted(persistence: float, beta: float, noise: float, n: int = 60, days: int = 600, seed: int = 0):
    """(adjusted prices, scores): a latent AR(1) alpha per ticker (``persistence`` per day) drives the executed
    return of the next day (open of d+1 to open of d+2, 2% idiosyncratic noise); the score of day d is the
    alpha of d plus ``noise`` times as much independent noise."""
    rng = np.random.default_rng(seed)
    alpha = np.zeros((days, n))
    alpha[0] = rng.normal(size=n)
    for t in range(1, days):
        alpha[t] = persistence * alpha[t - 1] + np.sqrt(1 - persistence ** 2) * rng.normal(size=n)
    step = np.zeros((days, n))  # open of t-1 -> open of t
    step[2:] = beta * alpha[:-2] + 0.02 * rng.normal(size=(days - 2, n))
    px = 100 * np.cumprod(1 + step, axis=0)
    dates = np.repeat(pd.bdate_range("2014-01-01", periods=days), n)
    tickers = np.tile([f"T{i:02d}" for i in range(n)], days)
    adj = pd.DataFrame({"ticker": tickers, "date": dates, "adj_open": px.ravel(), "adj_close": px.ravel()})
    score = alpha + noise * rng.normal(size=(days, n))
    return adj.sort_values(["ticker", "date"], ignore_index=True), pd.DataFrame(
        {"date": dates, "ticker": tickers, "score": score.ravel()})


def market(adj: pd.DataFrame):
    """(realized ret_exec as signal day x ticker, signal day -> entry day), as the pipeline builds them."""
    t = targets(adj)
    return (t.pivot_table(index="date", columns="ticker", values="ret_exec"),
            t.drop_duplicates("date").set_index("date")["entry_date"])


def run_books(adj, scores, cost_bps: float, **kw):
    realized, entry = market(adj)
    fl = folds(np.sort(scores["date"].unique()), WF)
    oos = scores[scores["date"] >= fl[0].test_days[0]]
    book = turnover_aware_book(oos, realized, entry, fl, GRID, "long_short", 0.2, cost_bps,
                               train_scores=kw.pop("train_scores", scores), **kw)
    daily = strategy_returns(positions(oos, "long_short", 0.2), realized, entry, cost_bps)
    return book, daily, fl


@pytest.fixture(scope="module")
def slow():
    """A signal whose information decays over ~10 days, observed under twice its size of daily noise."""
    return planted(persistence=0.9, beta=0.0015, noise=2.0)


@pytest.fixture(scope="module")
def books20(slow):
    """(turnover-aware book, daily book, folds) on the slow signal at 20 bps per side."""
    return run_books(*slow, cost_bps=20.0)


def test_band_zero_is_the_daily_book_and_every_day_stays_neutral():
    rng = np.random.default_rng(1)
    s = pd.DataFrame({"date": np.repeat(pd.bdate_range("2015-01-01", periods=30), 12),
                      "ticker": np.tile([f"X{i:02d}" for i in range(12)], 30),
                      "score": rng.integers(0, 5, 360).astype(float)})  # many ties: broken by ticker name
    s = s.drop(index=rng.choice(360, 40, replace=False))  # tickers missing on some days
    for kind in ("long_short", "long_only"):
        want = positions(s, kind, 0.25)
        got = buffered_positions(smooth_scores(score_panel(s), 0), kind, 0.25, 0.0)
        pd.testing.assert_frame_equal(got, want.reindex_like(got).fillna(0.0), check_names=False)
        wide = buffered_positions(smooth_scores(score_panel(s), 2), kind, 0.25, 0.3)
        assert np.allclose(wide.abs().sum(axis=1), 1.0)
        assert np.allclose(wide.sum(axis=1), 0.0 if kind == "long_short" else 1.0)


def test_buffer_keeps_held_names_inside_the_wider_zone():
    days = pd.bdate_range("2015-01-01", periods=2)
    names = list("ABCDEFGHIJ")
    first = dict(zip(names, range(10, 0, -1), strict=True))  # A best ... J worst
    second = {**first, "A": 6.5, "B": 5.5}  # A falls to rank 4 (inside 0.2 + 0.2 of 10), B to rank 6 (outside)
    s = pd.DataFrame([{"date": d, "ticker": k, "score": float(v)} for d, sc in zip(days, (first, second), strict=True)
                      for k, v in sc.items()])
    w = buffered_positions(smooth_scores(score_panel(s), 0), "long_short", 0.2, 0.2)
    assert w.loc[days[1]][w.loc[days[1]] > 0].index.tolist() == ["A", "C"]  # A kept, B replaced by the best
    assert w.loc[days[1]][w.loc[days[1]] < 0].index.tolist() == ["I", "J"]
    assert w.loc[days[1], "A"] == pytest.approx(0.25)


def test_smoothing_is_causal_and_exponential():
    _, s = planted(0.9, 0.0, 1.0, n=8, days=40)
    panel = score_panel(s)
    sm = smooth_scores(panel, 3.0)
    later = panel.copy()
    later.iloc[20:] = -later.iloc[20:]
    assert np.allclose(smooth_scores(later, 3.0).iloc[:20], sm.iloc[:20])
    ranks = smooth_scores(panel, 0)
    a = 1 - 0.5 ** (1 / 3.0)
    x = ranks["T03"].to_numpy()
    want = [x[0]]
    for v in x[1:]:
        want.append((1 - a) * want[-1] + a * v)
    assert np.allclose(sm["T03"], want)
    assert ranks.max(axis=1).max() == pytest.approx(0.5) and ranks.min(axis=1).min() == pytest.approx(-0.5)


def test_turnover_aware_book_profits_after_costs_where_the_daily_book_loses(books20):
    book, daily, _ = books20
    assert book.n_configs == len(GRID.grid) == 9
    assert list(book.config_returns.columns) == [k.label for k in GRID.grid]
    assert (book.knobs["half_life"] > 0).all() and (book.knobs["band"] > 0).all()
    sweep = cost_sweep({"daily": daily, "turnover_aware": book.returns}, draws=300)
    by = sweep.set_index(["book", "cost_bps"])
    for cost in (10.0, 20.0):
        assert by.loc[("daily", cost), "net_sharpe"] <= 0
        assert by.loc[("turnover_aware", cost), "net_sharpe"] > 1.0
        assert by.loc[("turnover_aware", cost), "net_sharpe_lo"] > 0
    for _, g in sweep.groupby("book"):
        assert (np.diff(g.sort_values("cost_bps")["net_sharpe"]) < 0).all()
    m = book_metrics("turnover_aware", book.returns, 20.0, 10, 300)
    d = book_metrics("daily", daily, 20.0, 10, 300)
    assert m.turnover < 0.5 * d.turnover and m.cost_drag < 0.5 * d.cost_drag
    assert m.breakeven_bps > 20.0 > d.breakeven_bps


def test_knobs_are_chosen_on_training_data_only(slow, books20):
    adj, scores = slow
    book, _, fl = books20
    k = 3
    start = fl[k].test_days[0]
    later = adj["date"] >= start  # every price from fold k's first test day on, and every later score
    adj2 = adj.assign(adj_open=np.where(later, adj["adj_open"] * np.exp(np.sin(np.arange(len(adj)))), adj["adj_open"]))
    scores2 = scores.assign(score=np.where(scores["date"] >= start, -scores["score"], scores["score"]))
    moved, _, _ = run_books(adj2, scores2, cost_bps=20.0)
    cols = ["half_life", "band", "train_sharpe"]
    pd.testing.assert_frame_equal(moved.knobs[cols].iloc[:k + 1], book.knobs[cols].iloc[:k + 1])
    assert not moved.returns.net.equals(book.returns.net)
    # the training data do drive the choice: the same move one fold earlier changes fold k's training Sharpe
    early = fl[k - 1].test_days[0]
    scores3 = scores.assign(score=np.where(scores["date"] >= early, -scores["score"], scores["score"]))
    moved3, _, _ = run_books(adj, scores3, cost_bps=20.0)
    assert moved3.knobs["train_sharpe"].iloc[k] != pytest.approx(book.knobs["train_sharpe"].iloc[k])


def test_per_fold_training_scores_give_the_same_choice_as_one_shared_panel(slow, books20):
    adj, scores = slow
    shared, _, fl = books20
    per_fold = pd.concat([scores.assign(fold=f.index) for f in fl[:3]], ignore_index=True)
    own, _, _ = run_books(adj, scores, cost_bps=20.0, train_scores=per_fold)
    cols = ["half_life", "band", "n_train_days"]
    pd.testing.assert_frame_equal(own.knobs[cols].iloc[:3], shared.knobs[cols].iloc[:3])
    assert np.allclose(own.knobs["train_sharpe"].iloc[:3], shared.knobs["train_sharpe"].iloc[:3])
    assert (own.knobs[["half_life", "band"]].iloc[3:] == 0).all().all()  # no training scores: the daily book


def test_a_fast_signal_without_costs_is_not_smoothed():
    book, _, _ = run_books(*planted(persistence=0.0, beta=0.001, noise=0.0), cost_bps=0.0)
    assert (book.knobs["half_life"] == 0).mean() > 0.5


def test_breakeven_of_a_zero_cost_book_is_gross_over_turnover(slow):
    adj, scores = slow
    realized, entry = market(adj)
    daily = strategy_returns(positions(scores, "long_short", 0.2), realized, entry, 0.0)
    m = book_metrics("daily", daily, 0.0, 10, 300)
    assert m.cost_drag == 0.0 and m.net_sharpe == pytest.approx(m.gross_sharpe)
    assert m.breakeven_bps == pytest.approx(daily.gross.mean() / daily.turnover.mean() * 1e4, rel=1e-12)
    assert at_cost(daily, m.breakeven_bps).net.mean() == pytest.approx(0.0, abs=1e-12)
    assert m.breakeven_lo < m.breakeven_bps < m.breakeven_hi


def test_cost_sweep_plot_has_one_line_per_book(books20):
    book, daily, _ = books20
    sweep = cost_sweep({"daily": daily, "turnover_aware": book.returns}, costs_bps=[0, 5, 10, 20], draws=50)
    fig = cost_sweep_figure(sweep.assign(set="slow", strategy="long_short", period="full"))
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert [line.get_label() for line in lines][:2] == ["slow (daily)", "slow (turnover_aware)"]
    assert list(lines[0].get_xdata()) == [0, 5, 10, 20]
    assert lines[0].get_linestyle() == "-" and lines[1].get_linestyle() == "--"


def test_bad_knobs_and_inputs_are_refused_in_one_line(slow):
    for bad in ({"bands": [1.0]}, {"half_lives": [-1]}, {"half_lives": []}, {"min_choice_days": 1},
                {"cost_sweep_bps": [-5]}):
        with pytest.raises(ConfigError):
            TurnoverConfig(**bad)
    adj, scores = slow
    realized, entry = market(adj)
    fl = folds(np.sort(scores["date"].unique()), WF)
    with pytest.raises(ConfigError, match="unknown strategy"):
        turnover_aware_book(scores, realized, entry, fl, GRID, "short_only", 0.2, 10.0)
    with pytest.raises(ConfigError, match="lack the columns"):
        turnover_aware_book(scores.drop(columns="score"), realized, entry, fl, GRID, "long_short", 0.2, 10.0)
    with pytest.raises(ConfigError, match="twice"):
        turnover_aware_book(pd.concat([scores, scores.iloc[:1]]), realized, entry, fl, GRID, "long_short", 0.2, 10.0)
    with pytest.raises(ConfigError, match="no scored test day"):
        turnover_aware_book(scores[scores["date"] < fl[0].test_days[0]], realized, entry, fl, GRID,
                            "long_short", 0.2, 10.0)
    assert DAILY == Knobs(0.0, 0.0) and DAILY.label == "hl0_band0"


def test_training_sharpe_is_the_backtest_of_the_training_window(slow, books20):
    adj, scores = slow
    book, _, fl = books20
    realized, entry = market(adj)
    f, row = fl[2], book.knobs.iloc[2]
    panel = score_panel(scores)
    train = panel.loc[(panel.index >= f.fit_days[0]) & (panel.index <= f.val_days[-1])]
    w = buffered_positions(smooth_scores(train, row["half_life"]), "long_short", 0.2, row["band"])
    net = strategy_returns(w, realized, entry, 20.0).net
    assert row["train_sharpe"] == pytest.approx(net.mean() / net.std() * np.sqrt(252), rel=1e-9)
    assert row["n_train_days"] == len(train)


def test_without_training_scores_the_earlier_out_of_sample_days_choose(slow):
    book, _, fl = run_books(*slow, cost_bps=20.0, train_scores=None)
    first = book.knobs.iloc[0]
    assert (first["half_life"], first["band"], first["n_train_days"]) == (0.0, 0.0, 0)  # none yet: daily book
    later = book.knobs.iloc[1:]
    assert (later["n_train_days"] >= GRID.min_choice_days).all()
    assert (later["half_life"] > 0).mean() > 0.5
    assert later["n_train_days"].iloc[0] == sum(d <= fl[1].val_days[-1] for d in fl[0].test_days)
