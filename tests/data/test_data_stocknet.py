"""StockNet prices, ticker table and tweets (both layouts) on the real archive, plus a fake one."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pandas as pd
import pytest

from finsae.data import (
    load_stock_table,
    load_stocknet_prices,
    load_stocknet_tweets,
    load_stocknet_tweets_preprocessed,
    load_stocknet_tweets_raw,
    stocknet_tickers,
)
from finsae.data._io import MalformedRowsWarning
from finsae.errors import FinsaeError

PRICE_COLS = ["ticker", "date", "open", "high", "low", "close", "adj_close", "volume"]


def test_prices_shape_and_known_values(data_dir):
    tickers = stocknet_tickers(data_dir)
    assert len(tickers) == 88 and "AAPL" in tickers and tickers == sorted(tickers)
    p = load_stocknet_prices(data_dir)
    assert list(p.columns) == PRICE_COLS
    assert str(p["date"].dtype) == "datetime64[ns]"
    assert all(p[c].dtype == "float64" for c in PRICE_COLS[2:])
    assert p["ticker"].nunique() == 88 and len(p) == 108592
    assert p.attrs["malformed_rows"] == 0
    aapl = p[p["ticker"] == "AAPL"]
    first = aapl.iloc[0]
    assert first["date"] == pd.Timestamp("2012-09-04")
    assert first["close"] == pytest.approx(96.424286) and first["adj_close"] == pytest.approx(87.121140)
    assert first["volume"] == 91973000
    assert aapl["date"].iloc[-1] == pd.Timestamp("2017-09-01")
    assert aapl["date"].is_monotonic_increasing


def test_prices_null_is_nan_not_zero(data_dir):
    p = load_stocknet_prices(data_dir, tickers=["PTR", "REX", "SNP"])
    day = p[p["date"] == pd.Timestamp("2016-06-29")]
    assert len(day) == 3
    assert day[PRICE_COLS[2:]].isna().all().all()
    full = load_stocknet_prices(data_dir)
    assert int(full["close"].isna().sum()) == 3
    assert not (full[PRICE_COLS[2:6]] == 0).any().any()


def test_prices_ticker_filter(data_dir):
    p = load_stocknet_prices(data_dir, tickers="AAPL")
    assert set(p["ticker"]) == {"AAPL"}
    with pytest.raises(FinsaeError, match="Unknown StockNet ticker"):
        load_stocknet_prices(data_dir, tickers=["NOPE"])


def test_cached_frames_are_not_shared(data_dir):
    a = load_stocknet_prices(data_dir)
    a["close"] = 0.0
    a["extra"] = 1
    b = load_stocknet_prices(data_dir)
    assert "extra" not in b.columns and (b["close"] != 0).any()


def test_stock_table(data_dir):
    t = load_stock_table(data_dir)
    assert list(t.columns) == ["ticker", "company", "sector"] and len(t) == 88
    assert set(t["ticker"]) == set(stocknet_tickers(data_dir))
    assert t.loc[t["ticker"] == "XOM", "company"].item() == "Exxon Mobil Corporation"


def test_raw_tweets(data_dir):
    r = load_stocknet_tweets_raw(data_dir)
    assert len(r) == 119844
    assert list(r.columns[:6]) == ["ticker", "id_str", "created_at", "user_id_str", "text", "file_date"]
    assert str(r["created_at"].dtype) == "datetime64[ns, UTC]"
    assert str(r["file_date"].dtype) == "datetime64[ns]"
    assert r.attrs["malformed_rows"] == 0
    row = r[(r["id_str"] == "418229860210057216") & (r["ticker"] == "AAPL")].iloc[0]
    assert row["created_at"] == pd.Timestamp("2014-01-01 03:59:03", tz="UTC")
    assert row["text"].startswith("RT @philstockworld: Summary of Yesterday's Webcast")
    assert r["created_at"].min() >= pd.Timestamp("2013-12-31", tz="UTC")
    assert r["created_at"].max() < pd.Timestamp("2016-04-01", tz="UTC")
    assert r["ticker"].nunique() == 87
    assert load_stocknet_tweets(data_dir, tickers=["AAPL"])["ticker"].eq("AAPL").all()


def test_preprocessed_tweets(data_dir):
    p = load_stocknet_tweets_preprocessed(data_dir)
    assert len(p) == 106338
    assert str(p["created_at"].dtype) == "datetime64[ns, UTC]"
    assert p["id_str"].isna().all()
    assert p.attrs["malformed_rows"] == 0
    # "Wed Jan 01 03:59:03 +0000 2014": the same tweet as in the raw-text file
    hit = p[p["created_at"] == pd.Timestamp("2014-01-01 03:59:03", tz="UTC")]
    assert len(hit) >= 1 and hit["text"].iloc[0].startswith("rt AT_USER summary of yesterday's webcast")
    # token lists are joined with single spaces
    assert not p["text"].str.contains("  ").any()
    # the per-day files are bucketed by a UTC-ish date: never use file_date to align with prices
    local_date = p["created_at"].dt.tz_convert("America/New_York").dt.tz_localize(None).dt.normalize()
    assert (local_date != p["file_date"]).mean() > 0.05
    assert load_stocknet_tweets(data_dir, source="preprocessed").shape == p.shape
    with pytest.raises(FinsaeError):
        load_stocknet_tweets(data_dir, source="nope")


def test_raw_and_preprocessed_agree_on_times(data_dir):
    r = load_stocknet_tweets_raw(data_dir, tickers=["AAPL"])
    p = load_stocknet_tweets_preprocessed(data_dir, tickers=["AAPL"])
    common = np.intersect1d(r["created_at"].to_numpy(), p["created_at"].to_numpy())
    assert len(common) > 0.9 * p["created_at"].nunique()


def _tar_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_fake_archive_layout_null_and_malformed(tmp_path):
    header = b"Date,Open,High,Low,Close,Adj Close,Volume\n"
    members = {
        # GitHub-archive layout: one top-level folder
        "stocknet-dataset-master/price/raw/AAA.csv": header + b"2015-03-06,1,2,0.5,1.5,1.4,100\n"
                                                     b"2015-03-09,null,null,null,null,null,null\n"
                                                     b"2015-03-10,1,2,0.5,oops,1.4,100\n",
        "stocknet-dataset-master/price/raw/BBB.csv": header + b"2015-03-06,3,4,2,3.5,3.5,0\n",
        "stocknet-dataset-master/tweet/preprocessed/AAA/2015-03-06":
            b'{"text": ["$", "aaa", "up"], "created_at": "Fri Mar 06 20:59:59 +0000 2015", "user_id_str": "1"}\n'
            b'not json\n',
    }
    target = tmp_path / "stocknet" / "stocknet-dataset.tar.gz"
    target.parent.mkdir(parents=True)
    target.write_bytes(_tar_bytes(members))
    with pytest.warns(MalformedRowsWarning, match="1 malformed"):
        p = load_stocknet_prices(tmp_path)
    assert stocknet_tickers(tmp_path) == ["AAA", "BBB"]
    assert len(p) == 3 and p.attrs["malformed_rows"] == 1
    assert p.loc[p["date"] == pd.Timestamp("2015-03-09"), "close"].isna().all()
    assert p.loc[p["ticker"] == "BBB", "volume"].item() == 0.0  # a real 0 stays 0
    with pytest.warns(MalformedRowsWarning):
        t = load_stocknet_tweets_preprocessed(tmp_path)
    assert t["text"].tolist() == ["$ aaa up"] and t.attrs["malformed_rows"] == 1
    assert t["created_at"].iloc[0] == pd.Timestamp("2015-03-06 20:59:59", tz="UTC")
