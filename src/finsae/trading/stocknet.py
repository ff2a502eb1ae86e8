"""The published StockNet benchmark (Xu & Cohen, ACL 2018), reproduced sample for sample.

A sample is (ticker, target day t) for every price row t in [train_start, test_end) with a price row before its
lag window: its label is the sign of t's adjusted-close move from that row, and moves in [drop_low, drop_high) are
dropped. That alone gives 20,344 / 2,555 / 3,720 samples (the paper: 20,339 / 2,555 / 3,720; always-up 51.29% on
test): the original DataPipe's rule that every trading day of the lag window receive a tweet would leave 4,990 /
656 / 1,008, so the published table did not apply it. The 5 extra train samples come from the original's price
files, not from any feature: those files normalise each row by the previous close, so a ticker's first row is not
in them (BABA 2014-09-24/25/26 and AGFS 2014-11-25, the two tickers listed after 2014-01-01, lose their first lag
window), and they store the move to 6 decimals (CHL 2014-04-11 moved -0.0050001, which rounds into the dropped
band). ``exact_counts=True`` applies both rules and gives the paper's counts exactly. The lag window: the tweet files
dated t - lag_days .. t - 1 (the dataset's own per-day buckets, as the original reads them) and the price rows up
to the previous row. Splits by t: train [train_start, dev_start), dev [dev_start, test_start), test
[test_start, test_end).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

SPLITS: tuple[str, ...] = ("train", "dev", "test")
PUBLISHED = pd.DataFrame([
    ("always up", 51.3, None), ("random", 50.89, -0.002), ("HAN", 57.64, 0.052),
    ("StockNet (HedgeFundAnalyst)", 58.23, 0.081), ("Adv-ALSTM", 57.20, 0.148), ("CMIN", 62.69, 0.209),
    ("CausalStock", 63.42, 0.217),
], columns=["model", "accuracy", "mcc"])
"""Published test accuracy (%) and MCC on this protocol."""
PUBLISHED_COUNTS = {"train": 20339, "dev": 2555, "test": 3720}
"""Sample counts of the paper."""


class StockNetSamples(NamedTuple):
    """The protocol's samples and what they were built from."""

    frame: pd.DataFrame
    """One row per sample: ``ticker``, ``date`` (t), ``prev_date`` (the last price row before t: the feature row
    whose close is the move's base), ``window_start`` (t - lag_days, first tweet file day), ``move``, ``label``
    (1 up, 0 down), ``split``."""
    counts: dict[str, int]
    """Samples per split."""


def stocknet_samples(adj: pd.DataFrame, tweets: pd.DataFrame, cfg) -> StockNetSamples:
    """Samples of the protocol. ``adj``: adjusted prices (``finsae.trading.prices.adjusted``); ``tweets``: the
    preprocessed StockNet tweets (``ticker``, ``file_date``, ``text``); ``cfg``: a ``BenchmarkConfig``."""
    t0, t1 = (pd.Timestamp(x).to_datetime64().astype("datetime64[D]").astype("int64")
              for x in (cfg.train_start, cfg.test_end))
    lag = int(cfg.lag_days)
    if getattr(cfg, "exact_counts", False):
        adj = adj[adj.groupby("ticker", sort=False).cumcount() > 0]
    rounding = 6 if getattr(cfg, "exact_counts", False) else None
    rows = []
    for ticker, g in adj.groupby("ticker", sort=True):
        days = g["date"].to_numpy().astype("datetime64[D]").astype("int64")
        close = g["adj_close"].to_numpy()
        j = np.flatnonzero((days >= t0) & (days < t1))
        # the original reads one price row before the window's first day (t - (lag - 1))
        j = j[np.searchsorted(days, days[j] - (lag - 1)) > 0]
        move = close[j] / close[j - 1] - 1
        band = move if rounding is None else np.round(move, rounding)
        keep = np.isfinite(move) & ~((band >= cfg.drop_low) & (band < cfg.drop_high))
        j, move = j[keep], move[keep]
        rows.append(pd.DataFrame({"ticker": ticker, "date": days[j], "prev_date": days[j - 1],
                                  "window_start": days[j] - lag, "move": move}))
    tweets_ok = tweets[tweets["text"].str.len() > 0]
    df = pd.concat(rows, ignore_index=True)
    for col in ("date", "prev_date", "window_start"):
        df[col] = pd.to_datetime(df[col].astype("int64"), unit="D").astype("datetime64[ns]")
    df["label"] = (df["move"] > 0).astype("int64")
    df["split"] = np.select([df["date"] < pd.Timestamp(cfg.dev_start), df["date"] < pd.Timestamp(cfg.test_start)],
                            ["train", "dev"], "test")
    df = df.sort_values(["date", "ticker"], ignore_index=True)
    n = tweets_ok.groupby(["ticker", "file_date"]).size().rename("n").reset_index()
    win = window_pairs(df, n.rename(columns={"file_date": "day"}), lag)
    df["n_tweets"] = win.groupby("sample")["n"].sum().reindex(df.index, fill_value=0).to_numpy()
    counts = {s: int((df["split"] == s).sum()) for s in SPLITS}
    return StockNetSamples(df, counts)


def window_pairs(samples: pd.DataFrame, days: pd.DataFrame, lag: int) -> pd.DataFrame:
    """(sample, day) pairs: the rows of ``days`` (``ticker``, ``day`` and any payload) whose day lies in
    sample i's lag window [date - lag, date - 1] for the same ticker; ``sample`` is the index into ``samples``."""
    out = []
    for k in range(1, lag + 1):
        key = pd.DataFrame({"ticker": samples["ticker"].to_numpy(),
                            "day": samples["date"].to_numpy() - np.timedelta64(k, "D"),
                            "sample": np.arange(len(samples))})
        out.append(key.merge(days, on=["ticker", "day"], how="inner"))
    return pd.concat(out, ignore_index=True)


def acl18_price_block(adj: pd.DataFrame, samples: pd.DataFrame, n_rows: int = 5):
    """The protocol's own price input, no index feature: for the ``n_rows`` price rows up to each sample's
    ``prev_date`` (k = 1 the latest), the adjusted high, low and close over the previous row's adjusted close,
    minus 1 (ACL18's normalised high / low / close). NaN where a ticker has fewer rows."""
    from finsae.trading.features import Block

    cols, frames = [], []
    for _, g in adj.groupby("ticker", sort=False):
        prev = g["adj_close"].shift(1)
        f = pd.DataFrame({"ticker": g["ticker"], "prev_date": g["date"]})
        for k in range(1, n_rows + 1):
            for name, src in (("high", "adj_high"), ("low", "adj_low"), ("close", "adj_close")):
                f[f"{name}_{k}"] = (g[src] / prev - 1).shift(k - 1)
        frames.append(f)
    cols = [f"{n}_{k}" for k in range(1, n_rows + 1) for n in ("high", "low", "close")]
    allf = pd.concat(frames, ignore_index=True)
    x = samples[["ticker", "prev_date"]].merge(allf, on=["ticker", "prev_date"], how="left")[cols]
    return Block("price_acl18", "plain", x.to_numpy(np.float32), cols)
