"""One model's activations seen through a fixed map, computed on the fly chunk by chunk (the warm start's
affine-map null trains on ``A·h_base + c``, the twin's affine image of the base, without writing it to disk).

A :class:`MappedStore` offers what ``ActivationBatches``, ``split_rows`` and the SAE's evaluation read from a
store (``array``, ``table``, ``manifest``, ``path``, ``d``, ``len``), as
:class:`~finsae.activations.PairedStore` does, so the SAE's data path trains on it unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from finsae.activations.store import ActivationStore


class RowMap(Protocol):
    """A map of ``[n, d_in]`` activation rows to ``[n, d_out]`` float32 rows (e.g. an affine map)."""

    def apply(self, rows: np.ndarray) -> np.ndarray: ...


class MappedArray:
    """``[N, d_out]`` fp32 view of an ``[N, d_in]`` array through ``row_map`` (reads and maps on demand)."""

    def __init__(self, source, row_map: RowMap, d_out: int):
        self.source, self.row_map = source, row_map
        self.shape = (len(source), int(d_out))
        self.dtype = np.dtype(np.float32)
        self.ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    def _map(self, rows) -> np.ndarray:
        x = np.asarray(rows, np.float32)
        if x.ndim == 1:  # one row
            return self.row_map.apply(x[None])[0]
        return np.asarray(self.row_map.apply(x), np.float32)

    def take(self, index) -> np.ndarray:
        return self._map(self.source.take(index))

    def __getitem__(self, key):
        return self._map(self.source[key])


class MappedStore:
    """A store whose row ``i`` is ``row_map(store.array[i])``, labelled ``name`` in its key."""

    def __init__(self, store: ActivationStore, row_map: RowMap, d_out: int, name: str):
        self.source, self.row_map = store, row_map
        self.table = store.table
        self.path = Path(store.path)
        self.manifest = {**store.manifest, "key": f"{store.key}>{name}", "d": int(d_out)}
        self.array = MappedArray(store.array, row_map, d_out)

    @property
    def key(self) -> str:
        return self.manifest["key"]

    @property
    def layer(self) -> int:
        return self.source.layer

    @property
    def d(self) -> int:
        return self.array.shape[1]

    def __len__(self) -> int:
        return len(self.source)

    def __repr__(self) -> str:
        return f"MappedStore({self.key}, rows={len(self)}, d={self.d})"
