"""Trading calendar and the text → trading-day rule that keeps the future out of features.

A text counts for trading day ``d`` only if it was created strictly before the close of ``d``
(16:00 America/New_York, DST-correct). Texts at or after the close, or on weekends and holidays,
go to the next trading session; texts after the last calendar day's close get NaT.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from finsae.data.stocknet_prices import load_stocknet_prices
from finsae.errors import FinsaeError

MARKET_TZ = "America/New_York"
CLOSE_TIME = "16:00"
# NYSE 13:00 half days in the StockNet price span (opt-in: pass as ``early_closes``; the
# default rule is a 16:00 close every day).
NYSE_EARLY_CLOSES_2012_2017: dict[str, str] = {
    d: "13:00" for d in (
        "2012-11-23", "2012-12-24", "2013-07-03", "2013-11-29", "2013-12-24",
        "2014-07-03", "2014-11-28", "2014-12-24", "2015-11-27", "2015-12-24", "2016-11-25",
        "2017-07-03",
    )
}


def trading_calendar(data_dir: str | Path | None = None) -> pd.DatetimeIndex:
    """Trading dates: every date on which at least one StockNet ticker has a non-null close.

    Returns a sorted, unique ``DatetimeIndex`` (datetime64[ns], naive, midnight), named ``date``;
    1,258 dates from 2012-09-04 to 2017-09-01 on the shared data.
    """
    prices = load_stocknet_prices(data_dir)
    dates = prices.loc[prices["close"].notna(), "date"].unique()
    return pd.DatetimeIndex(np.sort(dates), name="date").astype("datetime64[ns]")


def close_times_utc(calendar, early_closes: Mapping | None = None) -> pd.DatetimeIndex:
    """UTC timestamp of each trading day's close (16:00 New York unless ``early_closes`` says).

    ``early_closes``: optional mapping date-like → ``"HH:MM"`` New York close (e.g. 13:00 half
    days). Returns ``DatetimeIndex`` datetime64[ns, UTC], same length and order as ``calendar``.
    """
    days = pd.DatetimeIndex(calendar).astype("datetime64[ns]")
    if days.tz is not None:
        raise FinsaeError("calendar must hold naive trading dates, not tz-aware timestamps")
    days = days.normalize()
    hours = pd.TimedeltaIndex([pd.Timedelta(f"{CLOSE_TIME}:00")] * len(days))
    if early_closes:
        override = {pd.Timestamp(k).normalize(): pd.Timedelta(f"{v}:00") for k, v in early_closes.items()}
        hours = pd.TimedeltaIndex([override.get(d, h) for d, h in zip(days, hours, strict=True)])
    local = (days + hours).tz_localize(MARKET_TZ, ambiguous="raise", nonexistent="raise")
    return local.tz_convert("UTC").astype("datetime64[ns, UTC]")


def assign_trading_day(created_at, calendar=None, early_closes: Mapping | None = None,
                       data_dir: str | Path | None = None):
    """Map tz-aware creation times to the trading day they may inform (no look-ahead).

    A time ``t`` goes to the first trading day ``d`` with ``t < close(d)`` (strictly before
    16:00 New York, DST-aware): at/after the close, weekends and holidays roll to the next
    session; after the last calendar day's close → NaT; NaT stays NaT. Vectorised with
    ``np.searchsorted`` over the UTC close timestamps.

    ``created_at``: Series, DatetimeIndex or array-like of tz-aware timestamps (naive input is
    refused: its zone is unknown). ``calendar``: trading dates (default ``trading_calendar(data_dir)``).
    Returns a Series (same index, named ``trading_day``) when given a Series, else a
    ``DatetimeIndex``; dtype datetime64[ns], naive, midnight of the trading date.
    """
    if calendar is None:
        calendar = trading_calendar(data_dir)
    days = pd.DatetimeIndex(calendar).astype("datetime64[ns]").normalize()
    if len(days) == 0:
        raise FinsaeError("trading calendar is empty")
    if not days.is_monotonic_increasing or days.has_duplicates:
        days = days.unique().sort_values()
    closes = close_times_utc(days, early_closes).asi8

    is_series = isinstance(created_at, pd.Series)
    times = pd.DatetimeIndex(created_at)
    if times.tz is None:
        if len(times) and times.notna().any():
            raise FinsaeError("assign_trading_day needs tz-aware created_at (e.g. .dt.tz_localize('UTC'))")
        times = times.tz_localize("UTC")
    t_ns = times.tz_convert("UTC").astype("datetime64[ns, UTC]").asi8
    nat = times.isna()
    idx = np.searchsorted(closes, t_ns, side="right")  # t == close(d) → next day
    out = np.full(len(t_ns), np.datetime64("NaT"), dtype="datetime64[ns]")
    ok = (~nat) & (idx < len(days))
    out[ok] = days.to_numpy()[idx[ok]]
    result = pd.DatetimeIndex(out, name="trading_day")
    if is_series:
        return pd.Series(result, index=created_at.index, name="trading_day")
    return result
