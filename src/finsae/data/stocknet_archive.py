"""Reading the StockNet archive (``stocknet/stocknet-dataset.tar.gz``) without extracting it.

Member names are normalised: a leading ``./`` or one top-level folder (as in GitHub's
``stocknet-dataset-master/`` archives) is dropped, so ``price/raw/AAPL.csv``,
``tweet/preprocessed/AAPL/2014-01-02`` and ``StockTable`` are found in either layout. A gzip tar
must be read start to end, so one pass collects every member the loaders use, cached per file.
"""

from __future__ import annotations

import functools
import re
import tarfile
from pathlib import Path

from finsae.data._io import file_key, reads_archive, require_path

STOCKNET_TAR = "stocknet/stocknet-dataset.tar.gz"
_WANTED = re.compile(r"(?:^|/)(price/raw/[^/]+\.csv|tweet/preprocessed/[^/]+/[^/]+|StockTable)$")


def stocknet_tar_path(data_dir: str | Path | None = None) -> Path:
    """Absolute path of the StockNet archive; ``DataMissingError`` when it is missing."""
    return require_path(data_dir, STOCKNET_TAR, "StockNet archive", "stocknet")


@functools.lru_cache(maxsize=2)
@reads_archive("stocknet")
def _members(key: tuple[str, int, int]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with tarfile.open(key[0], mode="r:*") as tf:
        for m in tf:
            if not m.isfile():
                continue
            hit = _WANTED.search(m.name)
            if hit is None or hit.group(1) in out:
                continue
            f = tf.extractfile(m)
            if f is not None:
                out[hit.group(1)] = f.read()
    return out


def archive_members(data_dir: str | Path | None = None) -> dict[str, bytes]:
    """Normalised member name → bytes for price files, preprocessed tweets and StockTable.

    The dict is shared (cached); treat it as read-only.
    """
    return _members(file_key(stocknet_tar_path(data_dir)))
