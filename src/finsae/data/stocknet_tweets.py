"""StockNet tweets, from the original preprocessed layout or from the raw-text file.

* ``tweet/preprocessed/{TICKER}/{YYYY-MM-DD}`` in the archive: JSON lines
  ``{"text": [tokens], "created_at": "Wed Jan 01 03:59:03 +0000 2014", "user_id_str"}``;
  106,338 tweets 2014-01-01..2015-12-31, lower-cased, URLs/users masked, no tweet id.
* ``stocknet/stocknet_tweets_raw_text.jsonl.gz``: the same tweets' raw text (preferred for BERT),
  ``{ticker, date, id_str, created_at: "2014-01-01T03:59:03+00:00", user_id_str, text, lang,
  retweet_count, followers_count}``, 119,844 rows 2014-01-01..2016-03-31.

Both are bucketed into per-day files by the dataset's own (UTC-ish) date, kept as ``file_date``;
never use ``file_date`` to align with prices: use ``finsae.data.trading_calendar.assign_trading_day``
on ``created_at``. One tweet can appear under several tickers (one row per ticker here).
"""

from __future__ import annotations

import functools
import gzip
import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from finsae.data._io import file_key, handout, reads_archive, report_malformed, require_path
from finsae.data.stocknet_archive import _members, stocknet_tar_path
from finsae.errors import FinsaeError

RAW_TEXT_FILE = "stocknet/stocknet_tweets_raw_text.jsonl.gz"
TWEET_SOURCES: tuple[str, ...] = ("raw", "preprocessed")
_PREPROCESSED_FMT = "%a %b %d %H:%M:%S %z %Y"
_COMMON = ["ticker", "id_str", "created_at", "user_id_str", "text", "file_date"]


_MONTHS = {m: f"{i:02d}" for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}
_TWITTER_RE = r"^[A-Z][a-z]{2} ([A-Z][a-z]{2}) (\d{2}) (\d{2}:\d{2}:\d{2}) ([+-]\d{4}) (\d{4})$"


def _twitter_to_iso(values: pd.Series) -> pd.Series:
    """``"Wed Jan 01 03:59:03 +0000 2014"`` → ``"2014-01-01T03:59:03+0000"`` (vectorised); bad → NaN."""
    parts = values.astype("str").str.extract(_TWITTER_RE)
    month = parts[0].map(_MONTHS)
    return parts[4] + "-" + month + "-" + parts[1] + "T" + parts[2] + parts[3]


def _finish(df: pd.DataFrame, created_raw: pd.Series, fmt: str | None, what: str, bad: list[str]) -> pd.DataFrame:
    """Parse ``created_at`` (rows that fail are malformed), type and sort the frame."""
    if fmt == _PREPROCESSED_FMT:
        created_raw, fmt = _twitter_to_iso(created_raw), "ISO8601"
    created = pd.to_datetime(created_raw, format=fmt, utc=True, errors="coerce")
    file_date = pd.to_datetime(df["file_date"], format="%Y-%m-%d", errors="coerce")
    ok = (created.notna() & file_date.notna()).to_numpy()
    bad = bad + [f"{t} {c}" for t, c in zip(df.loc[~ok, "ticker"], created_raw[~ok], strict=True)]
    df = df.loc[ok].copy()
    df["created_at"] = created[ok].astype("datetime64[ns, UTC]")
    df["file_date"] = file_date[ok].astype("datetime64[ns]")
    for col in ("ticker", "text", "user_id_str"):
        df[col] = df[col].astype("str")
    df["id_str"] = df["id_str"].astype("object")
    cols = _COMMON + [c for c in df.columns if c not in _COMMON]
    df = df[cols].sort_values(["ticker", "created_at"], kind="stable", ignore_index=True)
    return report_malformed(df, len(bad), what, bad)


_PRE_SCHEMA = (("text", "list"), ("created_at", "str"), ("user_id_str", "str"))
_RAW_SCHEMA = (("ticker", "str"), ("date", "str"), ("id_str", "str"), ("created_at", "str"),
               ("user_id_str", "str"), ("text", "str"), ("lang", "str"),
               ("retweet_count", "int"), ("followers_count", "int"))


def _read_jsonl_fast(blob: bytes, schema) -> pd.DataFrame | None:
    """Parse JSON lines with pyarrow (fast path); ``None`` if pyarrow is absent or any line fails."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.json as pj
    except ImportError:  # pragma: no cover - pyarrow ships with the project's pandas
        return None
    types = {"str": pa.string(), "int": pa.int64(), "list": pa.list_(pa.string())}
    fields = [(name, types[t]) for name, t in schema]
    try:
        table = pj.read_json(pa.py_buffer(blob), parse_options=pj.ParseOptions(
            explicit_schema=pa.schema(fields), unexpected_field_behavior="ignore"))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    required = [name for name, t in schema if name not in ("lang", "retweet_count", "followers_count")]
    if any(table.column(c).null_count for c in required if c != "user_id_str"):
        return None  # missing required keys: let the slow path count them
    cols = {}
    for name, t in schema:
        col = table.column(name)
        if t == "list":
            col = pc.binary_join(col, " ")
        cols[name] = col.to_pandas()
    return pd.DataFrame(cols)


def _read_jsonl_slow(lines: list[str], schema) -> tuple[pd.DataFrame, list[int], list[str]]:
    """Line-by-line parse; returns the frame, the kept line numbers and the malformed lines."""
    names = [n for n, _ in schema]
    optional = {"lang", "retweet_count", "followers_count", "user_id_str"}
    recs: dict[str, list] = {n: [] for n in names}
    kept, bad = [], []
    for i, line in enumerate(lines):
        try:
            r = json.loads(line)
            row = [r.get(n) if n in optional else r[n] for n in names]
            if not isinstance(r["text"], (str, list)) or not isinstance(r["created_at"], str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            bad.append(line)
            continue
        for (n, t), v in zip(schema, row, strict=True):
            recs[n].append(" ".join(map(str, v)) if t == "list" and isinstance(v, list) else v)
        kept.append(i)
    return pd.DataFrame(recs), kept, bad


@functools.lru_cache(maxsize=2)
def _parse_preprocessed(key: tuple[str, int, int]) -> pd.DataFrame:
    members = _members(key)
    lines: list[str] = []
    tickers: list[str] = []
    days: list[str] = []
    for name in sorted(n for n in members if n.startswith("tweet/preprocessed/")):
        _, _, ticker, day = name.split("/")
        file_lines = [ln for ln in members[name].decode("utf-8", errors="replace").splitlines() if ln.strip()]
        lines.extend(file_lines)
        tickers.extend([ticker] * len(file_lines))
        days.extend([day] * len(file_lines))
    df = _read_jsonl_fast("\n".join(lines).encode("utf-8"), _PRE_SCHEMA)
    bad: list[str] = []
    if df is None:
        df, kept, bad = _read_jsonl_slow(lines, _PRE_SCHEMA)
        tickers = [tickers[i] for i in kept]
        days = [days[i] for i in kept]
    df.insert(0, "ticker", tickers)
    df["file_date"] = days
    df["id_str"] = None
    created = df.pop("created_at")
    return _finish(df, created, _PREPROCESSED_FMT, "StockNet preprocessed tweets", bad)


@functools.lru_cache(maxsize=2)
@reads_archive("stocknet_raw_text")
def _parse_raw(key: tuple[str, int, int]) -> pd.DataFrame:
    with gzip.open(key[0], "rb") as fh:
        blob = fh.read()
    df = _read_jsonl_fast(blob, _RAW_SCHEMA)
    bad: list[str] = []
    if df is None:
        lines = [ln for ln in blob.decode("utf-8", errors="replace").splitlines() if ln.strip()]
        df, _, bad = _read_jsonl_slow(lines, _RAW_SCHEMA)
    df = df.rename(columns={"date": "file_date"})
    df["id_str"] = df["id_str"].astype("str").astype("object")
    df["lang"] = df["lang"].astype("str")
    for col in ("retweet_count", "followers_count"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    created = df.pop("created_at")
    return _finish(df, created, "ISO8601", "StockNet raw-text tweets", bad)


def _filter_tickers(df: pd.DataFrame, tickers: Iterable[str] | None) -> pd.DataFrame:
    if tickers is None:
        return handout(df)
    want = [tickers] if isinstance(tickers, str) else list(tickers)
    out = df[df["ticker"].isin(want)].reset_index(drop=True)
    out.attrs = dict(df.attrs)
    return out


def load_stocknet_tweets_raw(data_dir: str | Path | None = None, tickers: Iterable[str] | None = None) -> pd.DataFrame:
    """Raw-text StockNet tweets (one row per ticker mention), sorted by (ticker, created_at).

    Returns columns: ``ticker`` (str), ``id_str`` (object: str), ``created_at``
    (datetime64[ns, UTC]), ``user_id_str`` (str), ``text`` (str, raw), ``file_date``
    (datetime64[ns], naive: the dataset's per-day bucket), ``lang`` (str), ``retweet_count``,
    ``followers_count`` (Int64). 119,844 rows. ``attrs["malformed_rows"]`` counts unparsable lines.
    """
    path = require_path(data_dir, RAW_TEXT_FILE, "StockNet raw-text tweets", "stocknet_raw_text")
    return _filter_tickers(_parse_raw(file_key(path)), tickers)


def load_stocknet_tweets_preprocessed(data_dir: str | Path | None = None,
                                      tickers: Iterable[str] | None = None) -> pd.DataFrame:
    """Tweets from the archive's ``tweet/preprocessed`` layout, sorted by (ticker, created_at).

    Returns columns: ``ticker`` (str), ``id_str`` (object: always None, the layout has no ids),
    ``created_at`` (datetime64[ns, UTC], parsed from ``"Wed Jan 01 03:59:03 +0000 2014"``),
    ``user_id_str`` (str), ``text`` (str: the token list joined with spaces), ``file_date``
    (datetime64[ns], naive: the folder's file name). 106,338 rows.
    """
    return _filter_tickers(_parse_preprocessed(file_key(stocknet_tar_path(data_dir))), tickers)


def load_stocknet_tweets(data_dir: str | Path | None = None, tickers: Iterable[str] | None = None,
                         source: str = "raw") -> pd.DataFrame:
    """StockNet tweets from ``source="raw"`` (default, raw text) or ``"preprocessed"`` (tokens).

    Columns: see ``load_stocknet_tweets_raw`` / ``load_stocknet_tweets_preprocessed``; both share
    ``ticker, id_str, created_at, user_id_str, text, file_date``.
    """
    if source == "raw":
        return load_stocknet_tweets_raw(data_dir, tickers)
    if source == "preprocessed":
        return load_stocknet_tweets_preprocessed(data_dir, tickers)
    raise FinsaeError(f"Unknown StockNet tweet source {source!r}; choose one of {list(TWEET_SOURCES)}.")
