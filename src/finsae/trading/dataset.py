"""The dataset: one row per (ticker, trading day d) in [start, end], its price features and targets.

Rows are the price rows of the chosen tickers; every feature is computed from prices up to d's close
(``finsae.trading.prices``), every target starts after it (``finsae.trading.targets``). Text blocks join by
row index (``finsae.trading.text_features``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from finsae.trading.features import Block
from finsae.trading.prices import PRICE_FEATURES, adjusted, price_features
from finsae.trading.targets import targets


class Panel(NamedTuple):
    """Rows and what they were built from."""

    rows: pd.DataFrame
    """``ticker``, ``date``, ``entry_date``, ``ret_exec``, ``up_exec``, ``move_next`` and ``PRICE_FEATURES``; rows
    without an executed return (the last two days of a ticker) are dropped."""
    adj: pd.DataFrame
    """Adjusted prices of the tickers over the whole price span."""
    calendar: pd.DatetimeIndex
    """Trading days (every day some ticker has a close)."""


def build_panel(prices: pd.DataFrame, sp500: pd.DataFrame, start: str, end: str, execution: str = "open") -> Panel:
    adj = adjusted(prices)
    feats = price_features(adj, sp500)
    tg = targets(adj, execution)
    rows = feats.merge(tg, on=["ticker", "date"], how="left")
    rows = rows[(rows["date"] >= pd.Timestamp(start)) & (rows["date"] <= pd.Timestamp(end))]
    rows = rows[rows["ret_exec"].notna()].sort_values(["date", "ticker"], ignore_index=True)
    cal = pd.DatetimeIndex(np.sort(adj["date"].unique()), name="date")
    return Panel(rows, adj, cal)


def price_block(rows: pd.DataFrame) -> Block:
    return Block("price", "plain", rows[list(PRICE_FEATURES)].to_numpy(np.float32), list(PRICE_FEATURES))


def count_block(count: np.ndarray) -> Block:
    return Block("count", "plain", np.asarray(count, np.float32).reshape(-1, 1), ["tweet_count"])
