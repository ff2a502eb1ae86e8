"""Price features of row (ticker, d), each known at the close of d, from the `ta` library and pandas.

``adjusted(prices)`` adds split/dividend-adjusted open/high/low (``x * adj_close / close``);
``price_features(adjusted, index)`` computes, per ticker and only from rows up to d: lagged adjusted-close
returns over 1, 2, 5 and 10 trading days, 20-day realised volatility, the 14-day ATR relative to the close
(``ta``), the 14-day RSI (``ta``), the 20-day volume z-score, and the S&P 500's return on d.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from ta.momentum import RSIIndicator
from ta.volatility import AverageTrueRange

PRICE_FEATURES: tuple[str, ...] = (
    "ret_1", "ret_2", "ret_5", "ret_10", "vol_20", "atr_14", "rsi_14", "volume_z20", "sp500_ret_1")


def adjusted(prices: pd.DataFrame) -> pd.DataFrame:
    """Rows with a close, sorted by (ticker, date), plus ``adj_open``, ``adj_high``, ``adj_low``."""
    df = prices.dropna(subset=["close", "adj_close"]).sort_values(["ticker", "date"], ignore_index=True).copy()
    factor = df["adj_close"] / df["close"]
    for col in ("open", "high", "low"):
        df[f"adj_{col}"] = df[col] * factor
    return df


def _one_ticker(g: pd.DataFrame) -> pd.DataFrame:
    close = g["adj_close"]
    out = pd.DataFrame(index=g.index)
    for k in (1, 2, 5, 10):
        out[f"ret_{k}"] = close.pct_change(k, fill_method=None)
    out["vol_20"] = out["ret_1"].rolling(20, min_periods=10).std()
    high, low = g["adj_high"].fillna(close), g["adj_low"].fillna(close)
    if len(g) > 14:
        out["atr_14"] = AverageTrueRange(high, low, close, window=14, fillna=False).average_true_range() / close
        out["rsi_14"] = RSIIndicator(close, window=14, fillna=False).rsi()
    else:
        out["atr_14"] = np.nan
        out["rsi_14"] = np.nan
    out.loc[out["atr_14"] == 0, "atr_14"] = np.nan  # ta writes 0 for its warm-up rows
    vol = g["volume"].astype("float64")
    mean, std = vol.rolling(20, min_periods=10).mean(), vol.rolling(20, min_periods=10).std()
    out["volume_z20"] = (vol - mean) / std.replace(0, np.nan)
    return out


def price_features(adj: pd.DataFrame, index: pd.DataFrame) -> pd.DataFrame:
    """``ticker``, ``date`` and the ``PRICE_FEATURES`` columns for every row of ``adj`` (from ``adjusted``).

    ``index``: the S&P 500 frame of ``finsae.data.index_prices.load_sp500`` (``date``, ``adj_close``)."""
    parts = [_one_ticker(g) for _, g in adj.groupby("ticker", sort=False)]
    feats = pd.concat(parts).loc[adj.index]
    out = pd.concat([adj[["ticker", "date"]], feats], axis=1)
    sp = index[["date", "adj_close"]].dropna().sort_values("date")
    sp = pd.DataFrame({"date": sp["date"], "sp500_ret_1": sp["adj_close"].pct_change(fill_method=None)})
    out = out.merge(sp, on="date", how="left")
    return out[["ticker", "date", *PRICE_FEATURES]]
