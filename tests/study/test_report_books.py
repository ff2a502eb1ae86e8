"""The backtest section (finsae.report.trading_sections) on planted backtest folders: both books side by
side, the signal-decay table, the generated paragraphs, the claim folder as a pair of its own, and an old
metrics.csv (no ``book``) shown as its one "rerun" line instead of a crash."""

from __future__ import annotations

import pandas as pd
from report_rendering import html_tables, md_tables

from finsae.report import markdown, page
from finsae.report.study import Study
from finsae.report.trading_sections import backtest_blocks, books_side_by_side, decay_table
from finsae.trading import artifacts as backtest_files
from finsae.trading.page_text import book_headline
from finsae.trading.summary import BacktestSummary

BOOK_ROWS = {  # (book, sharpe, gross, breakeven): the turnover-aware book turns a loss into a gain
    "daily": (-4.25, 1.5, 3.5), "turnover_aware": (0.75, 1.25, 31.5), "benchmark": (0.5, 0.5, float("nan"))}


def _metrics(with_book: bool = True) -> pd.DataFrame:
    rows = []
    for set_, period in ((s, p) for s in ("price", "sentiment") for p in ("headline", "full")):
        for book, (sharpe, gross, breakeven) in BOOK_ROWS.items():
            strategy = "benchmark" if book == "benchmark" else "long_short"
            rows.append({"set": set_, "strategy": strategy, "book": book, "period": period,
                         "start": "2015-01-02", "end": "2015-12-31", "n_days": 250, "sharpe": sharpe,
                         "sharpe_lo": sharpe - 1, "sharpe_hi": sharpe + 1, "gross_sharpe": gross, "psr": 0.5,
                         "dsr": 0.25, "n_trials": 9, "cost_bps": 10.0, "cost_drag": 0.625,
                         "turnover": 1.25 if book == "daily" else 0.125, "breakeven_bps": breakeven,
                         "breakeven_lo": breakeven - 2, "breakeven_hi": breakeven + 2})
    m = pd.DataFrame(rows)
    return m if with_book else m.drop(columns="book")


def _decay() -> pd.DataFrame:
    return pd.DataFrame([{"set": "price", "period": "headline", "window": window, "horizon": h,
                          "ic": 0.05 / h, "lo": 0.05 / h - 0.02, "hi": 0.05 / h + 0.02, "n_days": 200,
                          "block_days": 5} for h in (1, 2, 5, 10, 20) for window in ("day", "cumulative")])


def _claim() -> pd.DataFrame:
    return pd.DataFrame([{"comparison": "changed - unchanged", "set": "changed_warmstart", "baseline":
                          "unchanged_warmstart", "metric": "rank_ic", "strategy": "long_short",
                          "period": "headline", "diff": 0.0125, "diff_lo": -0.0025, "diff_hi": 0.0275,
                          "n_days": 200, "changed": 12}])


def _folder(art, name, metrics, decay=None, claim=None):
    folder = art / "backtest" / name
    folder.mkdir(parents=True)
    books = book_headline(metrics) if "book" in metrics else {}
    BacktestSummary(pair=name, protocols=["walk_forward"], sets=["price"], eval_start="2015-01-02",
                    cost_bps=10.0, books=books).write(folder)
    metrics.to_csv(backtest_files.table_path(folder, "metrics"), index=False)
    for name_, t in (("rank_ic_decay", decay), ("claim", claim)):
        if t is not None:
            t.to_csv(backtest_files.table_path(folder, name_), index=False)
    return folder


def test_books_side_by_side_one_row_per_set_and_strategy():
    wide = books_side_by_side(_metrics())
    assert len(wide) == 2  # one per set, of the headline period only, the benchmark's rows apart
    row = wide.iloc[0]
    assert row["sharpe daily"] == -4.25 and row["sharpe turnover_aware"] == 0.75
    assert row["breakeven_bps turnover_aware"] == 31.5 and row["gross_sharpe daily"] == 1.5


def test_decay_table_is_set_by_horizon_of_day_windows():
    t = decay_table(_decay())
    assert list(t.columns) == ["set", "1 day", "2 days", "5 days", "10 days", "20 days"]
    assert t.iloc[0]["1 day"] == "+0.0500 [+0.0300, +0.0700]"


def test_backtest_section_shows_both_books_the_decay_and_the_claim_folder(tmp_path):
    art = tmp_path / "artifacts"
    _folder(art, "minilm_fin", _metrics(), decay=_decay())
    _folder(art, "minilm_fin_claim", _metrics(), claim=_claim())
    blocks = backtest_blocks(Study(art))
    html, md = page.render(blocks), markdown.render(blocks)
    assert html_tables(html) == md_tables(md)
    for text in (html, md):
        assert "minilm_fin_claim" in text and "changed - unchanged" in text
        assert "+0.0500 [+0.0300, +0.0700]" in text  # the decay table's cell
        assert "Signal decay" in text and "turnover-aware books" in text  # the generated paragraphs
        assert "best net Sharpe (turnover-aware)" in text
        assert "median breakeven (bps per side) (daily)" in text
    tables = md_tables(md)
    side = next(t for t in tables if "sharpe turnover_aware" in t[0])
    assert side[0][:4] == ["set", "strategy", "sharpe daily", "sharpe turnover_aware"]
    assert side[1][2:4] == ["-4.25", "0.75"]
    metrics = next(t for t in tables if "breakeven_lo" in t[0])
    assert "book" in metrics[0] and "gross_sharpe" in metrics[0] and "cost_drag" in metrics[0]
    books = [r[metrics[0].index("book")] for r in metrics[1:]]
    assert sorted(books) == sorted(["daily", "turnover_aware", "benchmark"] * 4)  # each row once, named


def test_old_metrics_without_book_show_the_rerun_line(tmp_path):
    art = tmp_path / "artifacts"
    _folder(art, "minilm_fin", _metrics(with_book=False), decay=_decay())
    blocks = backtest_blocks(Study(art))
    md = markdown.render(blocks)
    assert md.count("lacks columns ['book']") == 1 and "rerun `python backtest.py`" in md
    assert "No book was backtested." not in md  # the refusal is the books' only line
    assert "+0.0500 [+0.0300, +0.0700]" in md  # what is readable is still shown
