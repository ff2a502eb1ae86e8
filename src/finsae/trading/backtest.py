"""Out-of-sample predictions -> daily positions -> returns after costs.

A signal of day d (features known at d's close) is traded from d+1: by default bought at the open of d+1 and
sold at the open of d+2 (``execution="open"``), the row's ``ret_exec``. Positions are re-set each day to target
weights (drift inside the day is ignored); costs are ``cost_bps`` per side on turnover, sum |w_d - w_{d-1}|,
including the first entry and the final exit. Returns are indexed by the entry day d+1.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd


def positions(scores: pd.DataFrame, kind: str, quantile: float) -> pd.DataFrame:
    """Target weights, one row per signal day and one column per ticker (0 where not held).

    ``scores``: ``date``, ``ticker``, ``score`` (predicted return). ``long_short``: +0.5/q on the q top and
    -0.5/q on the q bottom tickers (dollar-neutral, gross 1); ``long_only``: 1/q on the q top; q =
    max(1, floor(n * quantile)) of the day's n tickers; ties broken by ticker name."""
    s = scores.sort_values(["date", "score", "ticker"], ascending=[True, False, True], kind="stable")
    s = s.assign(rank=s.groupby("date").cumcount(), n=s.groupby("date")["ticker"].transform("size"))
    q = np.maximum(1, np.floor(s["n"] * quantile)).astype(int)
    top = s["rank"] < q
    bottom = s["rank"] >= s["n"] - q
    if kind == "long_short":
        w = np.where(top, 0.5 / q, 0.0) - np.where(bottom & ~top, 0.5 / q, 0.0)
        w = np.where(s["n"] >= 2, w, 0.0)
    elif kind == "long_only":
        w = np.where(top, 1.0 / q, 0.0)
    else:
        raise ValueError(f"unknown strategy {kind!r}")
    out = s.assign(weight=w).pivot_table(index="date", columns="ticker", values="weight", fill_value=0.0)
    return out.sort_index()


class Returns(NamedTuple):
    """A strategy's daily series, indexed by entry day."""

    net: pd.Series
    """Return after costs."""
    gross: pd.Series
    """Return before costs."""
    turnover: pd.Series
    """sum |w_d - w_{d-1}| traded at entry (the last day also pays the exit)."""
    cost: pd.Series
    """turnover x cost_bps / 1e4."""


def strategy_returns(weights: pd.DataFrame, realized: pd.DataFrame, entry_day: pd.Series, cost_bps: float) -> Returns:
    """Daily returns of ``weights`` (signal day x ticker) against ``realized`` (the same shape: each row's
    ``ret_exec``); ``entry_day`` maps each signal day to the day the position is entered."""
    r = realized.reindex(index=weights.index, columns=weights.columns).fillna(0.0)
    w = weights.fillna(0.0)
    gross = (w * r).sum(axis=1)
    prev = w.shift(1).fillna(0.0)
    turnover = (w - prev).abs().sum(axis=1)
    if len(w):
        turnover.iloc[-1] += w.iloc[-1].abs().sum()  # the final exit
    cost = turnover * cost_bps / 1e4
    idx = pd.DatetimeIndex(entry_day.reindex(weights.index).to_numpy(), name="date")
    mk = lambda x, n: pd.Series(x.to_numpy(), index=idx, name=n)  # noqa: E731
    return Returns(mk(gross - cost, "net"), mk(gross, "gross"), mk(turnover, "turnover"), mk(cost, "cost"))


def equal_weight_buy_and_hold(prices: pd.DataFrame, days) -> pd.Series:
    """Daily return of holding every ticker of ``prices`` (``date`` x ``ticker`` execution prices) with equal
    money from the first of ``days``, never rebalanced; indexed like the strategies (return from day e to the
    next day at e)."""
    p = prices.reindex(pd.DatetimeIndex(days)).ffill()
    p = p.loc[:, p.iloc[0].notna()]
    value = (p / p.iloc[0]).mean(axis=1)
    return (value.shift(-1) / value - 1).dropna().rename("equal_weight")


def index_returns(index_prices: pd.DataFrame, days, execution: str = "open") -> pd.Series:
    """The S&P 500 from day e to the next trading day, at the same execution price as the strategies."""
    col = "open" if execution == "open" else "adj_close"
    p = index_prices.set_index("date")[col].reindex(pd.DatetimeIndex(days)).ffill()
    return (p.shift(-1) / p - 1).dropna().rename("sp500")
