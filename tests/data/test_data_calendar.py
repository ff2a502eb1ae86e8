"""Trading calendar and the 16:00 New York close rule (DST, weekends, holidays, end of data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finsae.data import assign_trading_day, close_times_utc, load_stocknet_tweets_raw, trading_calendar
from finsae.errors import FinsaeError

NY = "America/New_York"


@pytest.fixture(scope="module")
def cal(data_dir) -> pd.DatetimeIndex:
    return trading_calendar(data_dir)


def _ny(*stamps: str) -> pd.Series:
    return pd.Series(pd.DatetimeIndex(stamps).tz_localize(NY))


def _utc(*stamps: str) -> pd.Series:
    return pd.Series(pd.DatetimeIndex(stamps).tz_localize("UTC"))


def _days(*dates) -> list:
    return [pd.NaT if d is None else pd.Timestamp(d) for d in dates]


def test_calendar_from_prices(cal):
    assert len(cal) == 1258
    assert cal[0] == pd.Timestamp("2012-09-04") and cal[-1] == pd.Timestamp("2017-09-01")
    assert str(cal.dtype) == "datetime64[ns]" and cal.is_monotonic_increasing and cal.is_unique
    assert (cal.dayofweek < 5).all()
    for holiday in ("2015-07-03", "2015-12-25", "2015-01-01", "2012-10-29", "2012-10-30"):
        assert pd.Timestamp(holiday) not in cal
    assert pd.Timestamp("2016-06-29") in cal  # three tickers are null that day, the rest trade


def test_dst_edges_march_2015(cal):
    # Fri 2015-03-06 is EST (close 21:00 UTC); Mon 2015-03-09 is EDT (close 20:00 UTC)
    got = assign_trading_day(_ny("2015-03-06 15:59:00", "2015-03-06 16:00:00", "2015-03-09 15:59:59",
                                 "2015-03-09 16:00:00"), cal)
    assert got.tolist() == _days("2015-03-06", "2015-03-09", "2015-03-09", "2015-03-10")
    got = assign_trading_day(_utc("2015-03-06 20:30", "2015-03-09 20:30", "2015-03-06 21:00",
                                  "2015-03-09 19:59:59.999999"), cal)
    assert got.tolist() == _days("2015-03-06", "2015-03-10", "2015-03-09", "2015-03-09")


def test_winter_vs_summer_same_utc_time(cal):
    got = assign_trading_day(_utc("2015-01-15 20:30", "2015-07-15 20:30", "2015-11-02 20:30",
                                  "2015-10-30 20:30"), cal)
    assert got.tolist() == _days("2015-01-15", "2015-07-16", "2015-11-02", "2015-11-02")


def test_weekends_holidays_and_end(cal):
    got = assign_trading_day(_ny("2015-03-07 12:00", "2015-03-08 23:59", "2015-07-03 10:00",
                                 "2015-07-02 16:00", "2015-12-25 09:00", "2015-12-31 17:00",
                                 "2017-09-01 15:59", "2017-09-01 16:00", "2018-01-01 00:00"), cal)
    assert got.tolist() == _days("2015-03-09", "2015-03-09", "2015-07-06", "2015-07-06", "2015-12-28",
                                 "2016-01-04", "2017-09-01", None, None)


def test_before_first_day_nat_and_types(cal):
    s = pd.Series(pd.DatetimeIndex(["2010-01-01 00:00", None], tz="UTC"), index=[10, 20])
    got = assign_trading_day(s, cal)
    assert isinstance(got, pd.Series) and got.index.tolist() == [10, 20]
    assert str(got.dtype) == "datetime64[ns]"
    assert got.tolist()[0] == pd.Timestamp("2012-09-04") and pd.isna(got.tolist()[1])
    idx = assign_trading_day(pd.DatetimeIndex(["2015-03-06 20:30"], tz="UTC"), cal)
    assert isinstance(idx, pd.DatetimeIndex) and idx[0] == pd.Timestamp("2015-03-06")
    with pytest.raises(FinsaeError, match="tz-aware"):
        assign_trading_day(pd.Series(pd.DatetimeIndex(["2015-03-06 20:30"])), cal)


def test_synthetic_calendar_without_data():
    cal = pd.DatetimeIndex(["2015-11-02", "2015-11-03"])  # Mon, Tue; EST after the Nov 1 switch
    got = assign_trading_day(pd.DatetimeIndex(["2015-10-30 20:30", "2015-11-02 20:59", "2015-11-02 21:00",
                                               "2015-11-03 21:00"], tz="UTC"), cal)
    assert got.tolist() == _days("2015-11-02", "2015-11-02", "2015-11-03", None)
    closes = close_times_utc(cal, early_closes={"2015-11-03": "13:00"})
    assert closes.tolist() == [pd.Timestamp("2015-11-02 21:00", tz="UTC"), pd.Timestamp("2015-11-03 18:00", tz="UTC")]
    got = assign_trading_day(pd.DatetimeIndex(["2015-11-03 18:30"], tz="UTC"), cal, early_closes={"2015-11-03": "13:00"})
    assert pd.isna(got[0])


def test_optional_early_closes_are_trading_days(cal):
    from finsae.data.trading_calendar import NYSE_EARLY_CLOSES_2012_2017 as early

    assert all(pd.Timestamp(d) in cal for d in early)
    s = _ny("2015-11-27 14:00")  # day after Thanksgiving: 13:00 close when early closes are used
    assert assign_trading_day(s, cal).tolist() == _days("2015-11-27")
    assert assign_trading_day(s, cal, early_closes=early).tolist() == _days("2015-11-30")


def test_every_real_tweet_precedes_its_close(data_dir, cal):
    tweets = load_stocknet_tweets_raw(data_dir)
    day = assign_trading_day(tweets["created_at"], cal)
    assert day.notna().all()  # all tweets are before 2017-09-01
    closes = pd.Series(close_times_utc(cal).asi8, index=cal)
    t = pd.DatetimeIndex(tweets["created_at"]).as_unit("ns").asi8
    own_close = closes.reindex(day).to_numpy()
    assert (t < own_close).all()
    pos = np.searchsorted(cal.to_numpy(), day.to_numpy())
    prev_close = np.where(pos > 0, closes.to_numpy()[np.maximum(pos - 1, 0)], np.iinfo(np.int64).min)
    assert (t >= prev_close).all()
