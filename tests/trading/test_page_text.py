"""The backtest page's generated paragraphs and the summary's book headline, from small tables whose answer is
known: which horizon a signal is still alive at, which book is best, what is said when a piece did not run."""

from __future__ import annotations

import math

import pandas as pd

from finsae.trading.claim import claim_paragraph
from finsae.trading.page_text import backtest_paragraphs, book_headline, book_paragraph, decay_paragraph


def decay_rows(name: str, ics: dict[int, float], half_width: float, period: str = "headline") -> list[dict]:
    return [{"set": name, "period": period, "window": w, "horizon": h, "ic": ic, "lo": ic - half_width,
             "hi": ic + half_width, "n_days": 100, "block_days": max(10, h)}
            for h, ic in ics.items() for w in ("day", "cumulative")]


def metric_row(name, strategy, book, sharpe, turnover, breakeven, lo, period="headline", cost=10.0) -> dict:
    return {"set": name, "strategy": strategy, "book": book, "period": period, "sharpe": sharpe,
            "gross_sharpe": sharpe + 3.0, "dsr": 0.1, "turnover": turnover,
            "cost_drag": turnover * cost / 1e4 * 252,
            "breakeven_bps": breakeven, "breakeven_lo": lo, "breakeven_hi": breakeven + 5, "cost_bps": cost}


def test_the_decay_paragraph_names_the_last_horizon_a_signal_is_alive_at():
    decay = pd.DataFrame(decay_rows("slow", {1: 0.05, 5: 0.03, 10: 0.012, 20: 0.001}, 0.01)
                         + decay_rows("noise", {1: 0.002, 5: -0.001, 10: 0.0, 20: 0.001}, 0.01)
                         + decay_rows("slow", {1: 0.9, 5: 0.9, 10: 0.9, 20: 0.9}, 0.01, period="full"))
    text = decay_paragraph(decay)
    assert "headline period" in text and "h = 1, 5, 10, 20" in text
    assert "slow +0.0500 [+0.0400, +0.0600] at 1 day(s), still above 0 at 10 day(s)" in text
    assert "holds 0 at every horizon for noise" in text and "+0.9000" not in text  # the full period unused
    flat = pd.DataFrame(decay_rows("noise", {1: 0.0, 5: 0.0}, 0.01))
    assert "no set's score carries information at any horizon" in decay_paragraph(flat)


def test_the_book_headline_and_paragraph_compare_both_books():
    metrics = pd.DataFrame([
        metric_row("a", "long_short", "daily", -4.0, 1.3, 6.0, 2.0),
        metric_row("b", "long_short", "daily", -2.0, 1.2, 8.0, 3.0),
        metric_row("a", "long_short", "turnover_aware", 0.8, 0.2, 40.0, 12.0),
        metric_row("b", "long_short", "turnover_aware", 0.2, 0.3, 15.0, 4.0),
        metric_row("a", "long_short", "daily", 9.0, 1.3, 6.0, 2.0, period="full"),
        {"set": "sp500", "strategy": "benchmark", "book": "benchmark", "period": "headline", "sharpe": 5.0,
         "cost_bps": 0.0, "turnover": 0.0}])
    heads = book_headline(metrics)
    assert set(heads) == {"daily", "turnover_aware"}
    d, t = heads["daily"], heads["turnover_aware"]
    assert (d["best_set"], d["best_net_sharpe"], d["n_books"]) == ("b", -2.0, 2)  # headline, no benchmark
    assert (t["best_set"], t["best_net_sharpe"]) == ("a", 0.8)
    assert math.isclose(d["median_turnover"], 1.25) and math.isclose(t["median_breakeven_bps"], 27.5)
    assert (d["n_breakeven_above_cost"], t["n_breakeven_above_cost"]) == (0, 1)
    text = book_paragraph(metrics)
    assert text.startswith("At 10 bps per side (headline period, 2 books), the daily books turn over a "
                           "median 1.25")
    assert "The best daily book is b long_short: net Sharpe -2.00" in text
    assert ("median net Sharpe is +0.50 against the daily books' -3.00; the best is a long_short: net "
            "Sharpe +0.80") in text
    daily_only = metrics[metrics["book"] != "turnover_aware"]
    assert book_paragraph(daily_only).endswith("The turnover-aware books did not run.")


def test_the_page_paragraphs_come_in_page_order_and_only_for_what_ran():
    metrics = pd.DataFrame([metric_row("a", "long_short", "daily", -1.0, 1.3, 6.0, 2.0)])
    decay = pd.DataFrame(decay_rows("a", {1: 0.05}, 0.01))
    claim = pd.DataFrame(columns=["comparison", "set", "baseline", "metric", "strategy", "period", "diff"])
    assert backtest_paragraphs(metrics) == [book_paragraph(metrics)]
    assert backtest_paragraphs(metrics, decay, claim) == [decay_paragraph(decay), book_paragraph(metrics),
                                                          claim_paragraph(claim)]
