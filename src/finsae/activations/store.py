"""A finished layer entry on disk, opened read-only and checked before anything is read from it.

Checks on open: the manifest parses, its token table is the one it was built on (content hash), every shard
has its recorded size and a matching .npy header. The sha256 of every shard is checked too on the first open
after the build (then a ``verified.json`` marker is written) and whenever ``verify=True``: hashing runs at
~1.5 GB/s, too slow to repeat on every open of a multi-GB layer, while sizes and headers catch truncation
and overwrites for free. Bytes flipped inside the data after the first verification are found only with
``verify=True``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from finsae.activations.atomic import REBUILD_HINT, mark_verified, read_manifest, was_verified
from finsae.activations.shards import ShardedArray, check_shard
from finsae.activations.token_table import TokenTable
from finsae.errors import CacheCorruptError


class SpecialActivations(NamedTuple):
    """[CLS]/[SEP] hidden states of one layer, kept apart from the main store."""

    array: ShardedArray
    """[2 * windows, d] fp16: [CLS] then [SEP] of each window, in window order."""
    tokens: pd.DataFrame
    """Row index: ``token_id``, ``doc_id``, ``window_id``, ``position`` (0 for [CLS], n + 1 for [SEP])."""


class ActivationStore:
    """One layer of one model over one corpus: ``[N, d]`` fp16 rows, row i = token row i of ``table``."""

    def __init__(self, path: Path, manifest: dict, table: TokenTable, fresh: bool = False):
        self.path = Path(path)
        self.manifest = manifest
        """The entry's ``manifest.json`` (model, layer, corpus, shapes, shards, extraction config)."""
        self.table = table
        """The shared token table these rows line up with."""
        self.fresh = fresh
        """True when the call that returned this store computed it (False: reused from disk)."""
        self.array = _sharded(self.path, manifest["shards"], self.d)
        """Memory-mapped ``[N, d]`` fp16 rows; index it (``a[rows]``) to read only those rows."""

    @property
    def key(self) -> str:
        return self.manifest["key"]

    @property
    def layer(self) -> int:
        return int(self.manifest["layer"])

    @property
    def d(self) -> int:
        return int(self.manifest["d"])

    def __len__(self) -> int:
        return int(self.manifest["n_tokens"])

    @property
    def tokens(self) -> pd.DataFrame:
        """Token rows (see ``TokenTable.frame``), loaded on first use."""
        return self.table.frame

    @functools.cached_property
    def special(self) -> SpecialActivations | None:
        """The [CLS]/[SEP] store, when the entry was built with ``store_special=True``."""
        sp = self.manifest.get("special")
        if not sp:
            return None
        return SpecialActivations(
            _sharded(self.path, sp["shards"], self.d), self.table.special_frame(sp["cls_id"], sp["sep_id"])
        )

    def mean_sq_norm(self, sample: int = 65536, seed: int = 0) -> float:
        """Mean squared L2 norm of the rows, estimated on ``sample`` random rows (all rows if fewer)."""
        rng = np.random.default_rng(seed)
        n = len(self)
        idx = np.arange(n) if sample >= n else np.sort(rng.choice(n, size=sample, replace=False))
        x = self.array.take(idx).astype(np.float32)
        return float(np.einsum("ij,ij->i", x, x).mean())

    def __repr__(self) -> str:
        return f"ActivationStore({self.key}, rows={len(self)}, d={self.d})"


def open_store(
    path: str | Path, verify: bool | None = None, *, fresh: bool = False, table: TokenTable | None = None
) -> ActivationStore:
    """Open the entry at ``path`` after checking it (see the module doc). ``verify``: True = hash every
    shard now; False = sizes and headers only; None = hash on the first open after the build.
    ``table``: its token table, already open (stores of one corpus then share one table object)."""
    path = Path(path)
    manifest = read_manifest(path)
    table_info = manifest["token_table"]
    table_path = path.parent / table_info["path"]
    if table is None or table.path.resolve() != table_path.resolve():
        table = TokenTable.open(table_path, verify=verify)
    if table.content_hash != table_info["content_hash"]:
        raise CacheCorruptError(
            f"{path} was built on token table {table_info['content_hash']} but {table.path} now holds "
            f"{table.content_hash}; {REBUILD_HINT}"
        )
    full = verify if verify is not None else not was_verified(path)
    d = int(manifest["d"])
    shards = list(manifest["shards"]) + list((manifest.get("special") or {}).get("shards", []))
    for info in shards:
        check_shard(path / info["file"], info, d, full)
    if full:
        mark_verified(path)
    return ActivationStore(path, manifest, table, fresh=fresh)


def _sharded(path: Path, shards: list[dict], d: int) -> ShardedArray:
    return ShardedArray([path / s["file"] for s in shards], [s["rows"] for s in shards], d)
