"""S&P 500 and NASDAQ Composite daily index prices (1999-01-04..2018-12-31, ``arch`` data)."""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd

from finsae.data._io import file_key, handout, reads_archive, report_malformed, require_path
from finsae.errors import FinsaeError

INDEX_FILES: dict[str, str] = {"sp500": "prices/sp500.csv.gz", "nasdaq": "prices/nasdaq.csv.gz"}
_RENAME = {"Date": "date", "Open": "open", "High": "high", "Low": "low", "Close": "close",
           "Adj Close": "adj_close", "Volume": "volume"}
_VALUES = ("open", "high", "low", "close", "adj_close", "volume")


@functools.lru_cache(maxsize=4)
@reads_archive("index_prices")
def _parse(key: tuple[str, int, int]) -> pd.DataFrame:
    raw = pd.read_csv(key[0], dtype=str, keep_default_na=False).rename(columns=_RENAME)
    missing = {"date", *_VALUES} - set(raw.columns)
    if missing:
        raise FinsaeError(f"{key[0]}: missing columns {sorted(missing)}")
    df = pd.DataFrame({"date": pd.to_datetime(raw["date"].str.strip(), format="%m/%d/%Y", errors="coerce")
                       .astype("datetime64[ns]")})
    bad = df["date"].isna().to_numpy().copy()
    for col in _VALUES:
        txt = raw[col].str.strip()
        val = pd.to_numeric(txt.where(~txt.isin(["null", ""])), errors="coerce").astype("float64")
        bad |= (val.isna() & ~txt.isin(["null", ""])).to_numpy()
        df[col] = val
    examples = [",".join(r) for r in raw.loc[bad].to_numpy().tolist()]
    df = df.loc[~bad].sort_values("date", ignore_index=True)
    return report_malformed(df, len(examples), f"index prices {Path(key[0]).name}", examples)


def load_index_prices(name: str = "sp500", data_dir: str | Path | None = None) -> pd.DataFrame:
    """Daily prices of index ``name`` (``"sp500"`` or ``"nasdaq"``), sorted by date.

    Returns columns: ``date`` (datetime64[ns], naive; parsed from M/D/YYYY), ``open``, ``high``,
    ``low``, ``close``, ``adj_close``, ``volume`` (float64; ``null``/empty → NaN).
    5,031 rows each on the shared data.
    """
    key = name.lower().replace("&", "").replace(" ", "")
    key = {"s&p500": "sp500", "spx": "sp500", "gspc": "sp500", "ixic": "nasdaq"}.get(key, key)
    if key not in INDEX_FILES:
        raise FinsaeError(f"Unknown index {name!r}; choose one of {list(INDEX_FILES)}.")
    path = require_path(data_dir, INDEX_FILES[key], f"{key} index prices", "index_prices")
    return handout(_parse(file_key(path)))


def load_sp500(data_dir: str | Path | None = None) -> pd.DataFrame:
    """``load_index_prices("sp500")``."""
    return load_index_prices("sp500", data_dir)


def load_nasdaq(data_dir: str | Path | None = None) -> pd.DataFrame:
    """``load_index_prices("nasdaq")``."""
    return load_index_prices("nasdaq", data_dir)
