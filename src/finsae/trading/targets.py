"""Targets of row (ticker, d): what happens after the close of d, never at it.

* ``ret_exec``: the executed return of a position signalled by d's features: adjusted open of d+1 to
  adjusted open of d+2 (``execution="open"``), or close of d+1 to close of d+2 (``"close"``);
* ``up_exec``: its sign (1 if > 0);
* ``move_next``: the StockNet target of the next trading day d+1: adjusted close of d+1 over adjusted close of d,
  minus 1 (ACL18's "movement percent" of day d+1, predicted from what was known by d).
d+1, d+2 are the ticker's next rows with a price.
"""

from __future__ import annotations

import pandas as pd

TARGETS: tuple[str, ...] = ("ret_exec", "up_exec", "move_next", "entry_date")


def targets(adj: pd.DataFrame, execution: str = "open") -> pd.DataFrame:
    """``ticker``, ``date`` and ``TARGETS`` for each row of ``adj`` (``finsae.trading.prices.adjusted``).

    ``entry_date`` is the trading day d+1 on which the position is entered."""
    px = adj["adj_open"] if execution == "open" else adj["adj_close"]
    g = adj.groupby("ticker", sort=False)
    p1, p2 = px.groupby(adj["ticker"]).shift(-1), px.groupby(adj["ticker"]).shift(-2)
    out = adj[["ticker", "date"]].copy()
    out["ret_exec"] = p2 / p1 - 1
    out["up_exec"] = (out["ret_exec"] > 0).astype("float64").where(out["ret_exec"].notna())
    c = adj["adj_close"]
    out["move_next"] = c.groupby(adj["ticker"]).shift(-1) / c - 1
    out["entry_date"] = g["date"].shift(-1)
    return out


def cross_sectional(ret, dates, how: str = "rank"):
    """``ret`` made cross-sectional within each day: ``rank`` (average ranks scaled to [-0.5, 0.5]; 0 for a
    day's only row) or ``demean`` (minus the day's mean). NaN stays NaN."""
    import numpy as np

    ret = np.asarray(ret, np.float64)
    s = pd.Series(ret)
    g = s.groupby(np.asarray(dates))
    if how == "demean":
        return (s - g.transform("mean")).to_numpy()
    if how != "rank":
        raise ValueError(f"unknown cross-sectional target {how!r}")
    r, n = g.rank(method="average"), g.transform("count")
    return ((r - 1) / (n - 1).where(n > 1) - 0.5).fillna(0.0).where(s.notna()).to_numpy()
