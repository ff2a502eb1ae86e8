"""StockNet daily prices (Yahoo, 88 tickers, 2012-09-04..2017-09-01) and the ticker table."""

from __future__ import annotations

import functools
import io
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from finsae.data._io import file_key, handout, report_malformed, resolve_data_dir
from finsae.data.stocknet_archive import _members, archive_members, stocknet_tar_path
from finsae.errors import DataMissingError, FinsaeError

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "adj_close", "volume")
_RENAME = {"Date": "date", "Open": "open", "High": "high", "Low": "low", "Close": "close",
           "Adj Close": "adj_close", "Volume": "volume"}


def _parse_price_csvs(files: dict[str, bytes]) -> tuple[pd.DataFrame, list[str]]:
    """Parse all price CSVs in one ``read_csv`` call (ticker prefixed to every line)."""
    chunks = []
    for ticker, raw in files.items():
        lines = raw.decode("utf-8", errors="replace").splitlines()
        header = [c.strip() for c in lines[0].split(",")] if lines else []
        if [_RENAME.get(c, c) for c in header] != ["date", *PRICE_COLUMNS]:
            raise FinsaeError(f"StockNet price file for {ticker}: unexpected header {header}")
        chunks.extend(f"{ticker},{line}" for line in lines[1:] if line.strip())
    names = ["ticker", "date", *PRICE_COLUMNS]
    df = pd.read_csv(io.StringIO("\n".join(chunks)), header=None, names=names, dtype=str,
                     keep_default_na=False, on_bad_lines="skip")
    out = pd.DataFrame({"ticker": df["ticker"].astype("str")})
    out["date"] = pd.to_datetime(df["date"], format="%Y-%m-%d", errors="coerce").astype("datetime64[ns]")
    bad = out["date"].isna().to_numpy().copy()
    for col in PRICE_COLUMNS:
        txt = df[col].fillna("").str.strip()
        val = pd.to_numeric(txt.where(txt != "null"), errors="coerce").astype("float64")
        # a value that is neither a number nor the literal `null` marks the row as malformed
        bad |= (val.isna() & (txt != "null")).to_numpy()
        out[col] = val
    examples = [",".join(map(str, r)) for r in df.loc[bad].to_numpy().tolist()]
    n_skipped_by_csv = len(chunks) - len(df)
    examples += ["(rows with a wrong number of fields)"] * n_skipped_by_csv
    return out.loc[~bad], examples


@functools.lru_cache(maxsize=2)
def _all_prices(key: tuple[str, int, int]) -> pd.DataFrame:
    members = _members(key)
    files = {n[len("price/raw/"):-len(".csv")]: members[n] for n in sorted(members) if n.startswith("price/raw/")}
    if not files:
        raise DataMissingError("StockNet price files (price/raw/*.csv)", f"{key[0]}!price/raw/",
                               "The archive holds no price files; re-download it with "
                               "`python -m finsae.data.fetch --only stocknet`.")
    df, bad = _parse_price_csvs(files)
    df = df.sort_values(["ticker", "date"], ignore_index=True)
    return report_malformed(df, len(bad), "StockNet prices", bad)


def stocknet_tickers(data_dir: str | Path | None = None) -> list[str]:
    """The tickers that have a price file in the archive (88), sorted."""
    members = archive_members(data_dir)
    return sorted(n[len("price/raw/"):-len(".csv")] for n in members if n.startswith("price/raw/"))


def load_stocknet_prices(data_dir: str | Path | None = None, tickers: Iterable[str] | None = None) -> pd.DataFrame:
    """Daily prices of the StockNet tickers, sorted by (ticker, date).

    Returns columns: ``ticker`` (str), ``date`` (datetime64[ns], naive, the trading date),
    ``open``, ``high``, ``low``, ``close``, ``adj_close``, ``volume`` (float64). The literal
    ``null`` in the files becomes NaN, never 0 (e.g. 2016-06-29 for PTR, REX, SNP). Rows with an
    unparsable date or value are skipped and counted in ``attrs["malformed_rows"]``.
    ``tickers``: keep only these (unknown ticker → ``FinsaeError``).
    """
    df = _all_prices(file_key(stocknet_tar_path(data_dir)))
    if tickers is not None:
        want = [tickers] if isinstance(tickers, str) else list(tickers)
        unknown = sorted(set(want) - set(df["ticker"].unique()))
        if unknown:
            raise FinsaeError(f"Unknown StockNet ticker(s) {unknown}; available: {sorted(df['ticker'].unique())}")
        out = df[df["ticker"].isin(want)].reset_index(drop=True)
        out.attrs = dict(df.attrs)
        return out
    return handout(df)


def load_stock_table(data_dir: str | Path | None = None) -> pd.DataFrame:
    """StockNet's ``StockTable``: one row per target stock, in file order.

    Returns columns: ``ticker`` (str, without the ``$``), ``company`` (str), ``sector`` (str,
    as published, typos included). Read from ``stocknet/StockTable`` if present, else from the
    archive.
    """
    loose = resolve_data_dir(data_dir) / "stocknet" / "StockTable"
    if loose.is_file():
        raw = loose.read_bytes()
    else:
        raw = archive_members(data_dir).get("StockTable")
        if raw is None:
            raise DataMissingError("StockNet StockTable", loose,
                                   "Get it with `python -m finsae.data.fetch --only stocknet`.")
    df = pd.read_csv(io.BytesIO(raw), sep="\t", dtype=str, keep_default_na=False)
    df.columns = [c.strip() for c in df.columns]
    return pd.DataFrame({
        "ticker": df["Symbol"].str.strip().str.lstrip("$").astype("str"),
        "company": df["Company"].str.strip().astype("str"),
        "sector": df["Sector"].str.strip().astype("str"),
    })
