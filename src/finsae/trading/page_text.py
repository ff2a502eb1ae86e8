"""What the backtest page says in words, and the summary's headline fields of the two books, from the stage's
tables alone (pure: tables in, text out), so the report only calls :func:`backtest_paragraphs`.

* the signal's decay (``rank_ic_decay.csv``): how many days each set's traded score keeps information;
* the books after costs (``metrics.csv``): what the daily books turn over and pay, at what cost they break
  even, and what the turnover-aware books (knobs chosen inside each training window) make instead;
* the seed's claim (``claim.csv``): :func:`finsae.trading.claim.claim_paragraph`.

Every number comes from the headline period when the table has it (else the full one), and an interval that
holds 0 is said to.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd

from finsae.trading.claim import claim_paragraph


class BookHeadline(NamedTuple):
    """One book's headline over every (set, strategy) (``BacktestSummary.books``)."""

    period: str
    """``headline`` when the metrics have it, else ``full``."""
    n_books: int
    """(set, strategy) pairs with this book."""
    best_set: str
    """The set of the highest net Sharpe."""
    best_strategy: str
    """Its strategy."""
    best_net_sharpe: float
    """The highest net Sharpe (annualised) of this book."""
    best_net_sharpe_lo: float
    """The lower end of its 95% interval."""
    best_gross_sharpe: float
    """That book's gross Sharpe."""
    best_dsr: float
    """That book's deflated Sharpe ratio (by every trial of the ledger)."""
    median_net_sharpe: float
    """Median net Sharpe over the (set, strategy) pairs."""
    median_turnover: float
    """Median of the mean daily turnover."""
    median_cost_drag: float
    """Median cost per year."""
    median_breakeven_bps: float
    """Median breakeven cost per side, in bps."""
    n_breakeven_above_cost: int
    """Books whose breakeven interval lies above the cost charged."""
    cost_bps: float
    """The cost charged, per side."""


def _period(table: pd.DataFrame) -> str:
    return "headline" if (table["period"] == "headline").any() else "full"


def _median(x: pd.Series) -> float:
    x = pd.to_numeric(x, errors="coerce").dropna()
    return float(x.median()) if len(x) else float("nan")


def book_headline(metrics: pd.DataFrame) -> dict[str, dict]:
    """Per book of ``metrics`` (``daily``, ``turnover_aware``): its :class:`BookHeadline` as a dict (empty
    without strategy rows)."""
    m = metrics[metrics["strategy"] != "benchmark"]
    if "book" not in m:
        m = m.assign(book="daily")
    if m.empty:
        return {}
    period = _period(m)
    out = {}
    for book, g in m[m["period"] == period].groupby("book", sort=False):
        best = g.loc[g["sharpe"].fillna(-np.inf).idxmax()]
        above = g["breakeven_lo"] > g["cost_bps"] if "breakeven_lo" in g else pd.Series(False, index=g.index)
        out[str(book)] = BookHeadline(
            period, int(len(g)), str(best["set"]), str(best["strategy"]), float(best["sharpe"]),
            float(best.get("sharpe_lo", float("nan"))),
            float(best.get("gross_sharpe", float("nan"))), float(best.get("dsr", float("nan"))),
            _median(g["sharpe"]), _median(g["turnover"]), _median(g.get("cost_drag", pd.Series(dtype=float))),
            _median(g.get("breakeven_bps", pd.Series(dtype=float))), int(above.sum()),
            float(g["cost_bps"].iloc[0]))._asdict()
    return out


def _fmt(x: float, digits: int = 2, sign: bool = True) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def decay_paragraph(decay: pd.DataFrame) -> str:
    """How long each set's traded score keeps information: per set the rank IC with the next day's return and
    the last horizon at which the IC with the one-day return h-1 days later still lies above 0."""
    if decay.empty:
        return "Signal decay was not measured: no rank_ic_decay.csv rows."
    period = _period(decay)
    d = decay[(decay["period"] == period) & (decay["window"] == "day")]
    parts, flat = [], []
    for name, g in d.groupby("set", sort=False):
        g = g.sort_values("horizon")
        alive = g[g["lo"] > 0]
        first = g.iloc[0]
        if alive.empty:
            flat.append(str(name))
            continue
        last = int(alive["horizon"].max())
        parts.append(f"{name} {_fmt(first['ic'], 4)} [{_fmt(first['lo'], 4)}, {_fmt(first['hi'], 4)}] at "
                     f"{int(first['horizon'])} day(s), still above 0 at {last} day(s)")
    horizons = ", ".join(str(int(h)) for h in sorted(d["horizon"].unique()))
    text = (f"Signal decay ({period} period; mean daily rank IC of each set's traded score with the one-day "
            f"return h-1 days later, h = {horizons} trading days, 95% day-block intervals): ")
    text += "; ".join(parts) + "." if parts else "no set's score carries information at any horizon."
    if parts and flat:
        text += f" The interval holds 0 at every horizon for {', '.join(flat)}."
    return text


def _costs(h: dict) -> str:
    return (f"turn over a median {_fmt(h['median_turnover'], 2, False)} of the book a day, which costs "
            f"{_fmt(100 * h['median_cost_drag'], 1, False)}% a year; their median breakeven cost is "
            f"{_fmt(h['median_breakeven_bps'], 1, False)} bps per side, and {h['n_breakeven_above_cost']} of "
            f"them break even above the cost charged (interval above it)")


def _best(h: dict) -> str:
    return (f"{h['best_set']} {h['best_strategy']}: net Sharpe {_fmt(h['best_net_sharpe'])} (gross "
            f"{_fmt(h['best_gross_sharpe'])}, DSR {_fmt(h['best_dsr'], 2, False)})")


def book_paragraph(metrics: pd.DataFrame) -> str:
    """The daily books' turnover, costs and breakeven, beside the turnover-aware books' (when they ran)."""
    heads = book_headline(metrics)
    if "daily" not in heads:
        return "No book was backtested."
    d = heads["daily"]
    text = (f"At {d['cost_bps']:g} bps per side ({d['period']} period, {d['n_books']} books), the daily "
            f"books {_costs(d)}. The best daily book is {_best(d)}.")
    t = heads.get("turnover_aware")
    if t is None:
        return text + " The turnover-aware books did not run."
    return text + (
        f" The turnover-aware books (score smoothing and a no-trade band, chosen inside each training "
        f"window; every configuration tried is a trial of the DSR) {_costs(t)}. Their median net Sharpe is "
        f"{_fmt(t['median_net_sharpe'])} against the daily books' {_fmt(d['median_net_sharpe'])}; the best "
        f"is {_best(t)}.")


def backtest_paragraphs(metrics: pd.DataFrame | None, decay: pd.DataFrame | None = None,
                        claim: pd.DataFrame | None = None) -> list[str]:
    """The backtest page's generated paragraphs, in page order: the signal's decay (when measured), the books
    after costs, the seed's claim (when tested). ``metrics``, ``decay``, ``claim``: the tables as read by
    :mod:`finsae.trading.artifacts` (``read_metrics``, ``read_decay``, ``read_claim``); ``metrics`` None
    (refused by its reader, whose one line the page shows instead) gives no books paragraph."""
    out = [] if decay is None else [decay_paragraph(decay)]
    if metrics is not None:
        out.append(book_paragraph(metrics))
    if claim is not None:
        out.append(claim_paragraph(claim))
    return out
