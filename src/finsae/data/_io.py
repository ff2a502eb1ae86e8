"""Plumbing shared by the loaders: locating files, missing or damaged data errors, caching, malformed rows.

Parsed sources are cached per process with ``functools.lru_cache`` keyed by the resolved path
plus its size and mtime (a file replaced on disk is re-read). Loaders hand out shallow copies
(pandas copy-on-write), so a caller that adds or changes columns never alters the cache.
"""

from __future__ import annotations

import functools
import gzip
import logging
import re
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from finsae.data.sources import how_to_get
from finsae.errors import DataMissingError, FinsaeError
from finsae.paths import default_data_dir

log = logging.getLogger("finsae.data")

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class MalformedRowsWarning(UserWarning):
    """Some rows of a source could not be parsed; they were counted and skipped."""


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """``data_dir`` resolved to an absolute path, or ``finsae.paths.default_data_dir()``."""
    if data_dir is None:
        return default_data_dir()
    return Path(data_dir).expanduser().resolve()


def require_path(data_dir: str | Path | None, rel: str, what: str, source: str, kind: str = "file") -> Path:
    """Absolute path of ``rel`` under the data dir; ``DataMissingError`` if it is not there.

    The error names the file, its expected location, the data dir in use and how to get it.
    """
    root = resolve_data_dir(data_dir)
    path = root / rel
    ok = path.is_dir() if kind == "dir" else path.is_file()
    if not ok:
        extra = "" if root.is_dir() else f" (the data folder {root} itself does not exist)"
        raise DataMissingError(f"{what} ({rel}){extra}", path, how_to_get(source))
    return path


class CorruptDataError(FinsaeError):
    """A data file is there but cannot be read as the archive or compressed file it should be."""

    def __init__(self, path, source: str, reason: str):
        self.path = path
        super().__init__(f"data file {path} is damaged or truncated ({reason}); delete it, then "
                         f"{how_to_get(source)[0].lower()}{how_to_get(source)[1:]}")


ARCHIVE_ERRORS = (zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error)
"""What reading a truncated or garbled zip, tar or gzip file raises."""


def reads_archive(source: str) -> Callable:
    """Decorate a parser whose first argument is a ``file_key``: a damaged archive becomes one
    ``CorruptDataError`` naming the file and the fetch command of ``source``, not a traceback."""

    def wrap(parse: Callable) -> Callable:
        @functools.wraps(parse)
        def parse_or_refuse(key: tuple[str, int, int], *args, **kwargs):
            try:
                return parse(key, *args, **kwargs)
            except ARCHIVE_ERRORS as e:
                reason = " ".join(f"{type(e).__name__}: {e}".split())[:120]
                raise CorruptDataError(key[0], source, reason) from None

        return parse_or_refuse

    return wrap


def file_key(path: Path) -> tuple[str, int, int]:
    """Cache key for a file: (resolved path, size, mtime_ns)."""
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def split_lines(text: str) -> list[str]:
    """Split on CRLF, lone CR or LF only (``str.splitlines`` would also split on U+0085 etc.)."""
    return _LINE_BREAK.split(text)


def report_malformed(df: pd.DataFrame, n: int, what: str, examples: list[str] | None = None,
                     action: str = "skipped") -> pd.DataFrame:
    """Record ``n`` malformed rows in ``df.attrs["malformed_rows"]`` and warn once when ``n > 0``."""
    df.attrs["malformed_rows"] = int(n)
    if n:
        ex = "; ".join(repr(e[:80]) for e in (examples or [])[:3])
        msg = f"{what}: {n} malformed row(s) {action}" + (f" (e.g. {ex})" if ex else "")
        warnings.warn(msg, MalformedRowsWarning, stacklevel=3)  # entry points route warnings to the log: one line
    return df


def handout(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of a cached frame that callers may modify freely (cheap under copy-on-write)."""
    out = df.copy(deep=False)
    out.attrs = dict(df.attrs)
    return out
