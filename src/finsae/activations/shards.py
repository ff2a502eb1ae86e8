"""fp16 row shards on disk: a streaming writer that hashes while it writes, a checker, and a reader.

A ``[N, d]`` array is stored as consecutive ``.npy`` files (``{prefix}_{k:05d}.npy``) of at most
``rows_per_shard`` rows, so no single file grows past a size that is awkward to copy or hash, and any row
range can be memory-mapped without reading the rest.
"""

from __future__ import annotations

import hashlib
import io
import os
import queue
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from finsae.activations.atomic import REBUILD_HINT, check_size
from finsae.errors import CacheCorruptError

STORE_DTYPE = np.dtype("<f2")


class ShardInfo(NamedTuple):
    """One shard file as the manifest records it."""

    file: str
    """File name, relative to the entry directory."""
    rows: int
    """Rows in this shard."""
    bytes: int
    """Exact file size, .npy header included."""
    sha256: str
    """sha256 of the whole file."""


def rows_per_shard(d: int, shard_mb: float) -> int:
    return max(1, int(shard_mb * 2**20) // (d * STORE_DTYPE.itemsize))


def _npy_header(rows: int, d: int) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.lib.format.dtype_to_descr(STORE_DTYPE), "fortran_order": False, "shape": (rows, d)}
    )
    return buf.getvalue()


class ShardWriter:
    """Appends rows, in order, to the shards of a ``[n_rows, d]`` fp16 array whose size is known up front."""

    def __init__(self, directory: Path, prefix: str, n_rows: int, d: int, shard_rows: int):
        self.directory, self.prefix = Path(directory), prefix
        self.n_rows, self.d, self.shard_rows = n_rows, d, shard_rows
        self.done: list[ShardInfo] = []
        self._fh = None
        self._hash = None
        self._left = 0
        self._size = 0

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=STORE_DTYPE)
        i = 0
        while i < len(block):
            if self._fh is None:
                self._open_next()
            take = min(len(block) - i, self._left)
            self._emit(memoryview(block[i:i + take]).cast("B"))
            self._left -= take
            i += take
            if self._left == 0:
                self._finish_current()

    def close(self) -> list[ShardInfo]:
        written = sum(s.rows for s in self.done)
        if self._fh is not None or written != self.n_rows:
            raise RuntimeError(f"{self.prefix}: {written} rows written, {self.n_rows} declared")
        return self.done

    def _open_next(self) -> None:
        k = len(self.done)
        rows = min(self.shard_rows, self.n_rows - k * self.shard_rows)
        if rows <= 0:
            raise RuntimeError(f"{self.prefix}: more rows written than the {self.n_rows} declared")
        self._name = f"{self.prefix}_{k:05d}.npy"
        self._fh = open(self.directory / self._name, "wb")
        self._hash = hashlib.sha256()
        self._left, self._rows, self._size = rows, rows, 0
        self._emit(_npy_header(rows, self.d))

    def _emit(self, data) -> None:
        self._fh.write(data)
        self._hash.update(data)
        self._size += len(data)

    def _finish_current(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None
        self.done.append(ShardInfo(self._name, self._rows, self._size, self._hash.hexdigest()))


class BackgroundWriter:
    """Runs write jobs in order on one thread, so disk writes and hashing overlap the next forward pass.

    ``submit`` blocks while ``max_pending`` jobs wait, which bounds the result buffers alive in RAM.
    """

    def __init__(self, max_pending: int):
        self._jobs: queue.Queue = queue.Queue(maxsize=max(1, max_pending))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="finsae-shard-writer", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable, *args) -> None:
        self._raise()
        self._jobs.put((fn, args))

    def close(self) -> None:
        """Wait until every submitted job ran; re-raise the first error of any."""
        self._jobs.put(None)
        self._thread.join()
        self._raise()

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is None:
            self.close()
            return
        # Failing already: skip what is queued, but never leave the thread writing into a directory that
        # the caller is about to delete.
        self._error = self._error or RuntimeError("aborted")
        self._jobs.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self._error is None:
                try:
                    job[0](*job[1])
                except BaseException as e:  # handed to the main thread by _raise
                    self._error = e

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error


def check_shard(path: Path, info: dict, d: int, full: bool) -> None:
    """Raise ``CacheCorruptError`` unless ``path`` has the recorded size and a matching .npy header
    (always), and the recorded sha256 (when ``full``)."""
    size = check_size(path, info["bytes"], "shard")
    try:
        with open(path, "rb") as fh:
            major, _ = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(fh)
            data_start = fh.tell()
            ok = (tuple(shape) == (info["rows"], d) and not fortran and dtype == STORE_DTYPE
                  and data_start + info["rows"] * d * STORE_DTYPE.itemsize == size)
            if ok and full:
                fh.seek(0)
                ok = hashlib.file_digest(fh, "sha256").hexdigest() == info["sha256"]
    except (ValueError, OSError, SyntaxError) as e:
        raise CacheCorruptError(f"shard {path} has a damaged header ({e}); {REBUILD_HINT}") from e
    if not ok:
        what = "its checksum does not match" if full else "its header does not match the manifest"
        raise CacheCorruptError(f"shard {path} is corrupt: {what}; {REBUILD_HINT}")


class ShardedArray:
    """Rows of consecutive ``.npy`` shards seen as one read-only ``[N, d]`` fp16 array.

    Indexing reads only the rows asked for (memory-mapped): ``a[i]``, ``a[i:j]``, ``a[index_array]``,
    ``a.take(index_array)``. ``np.asarray(a)`` loads everything, on purpose only. Pickles as paths.
    """

    def __init__(self, paths: Sequence[Path], rows: Sequence[int], d: int):
        self.paths = [Path(p) for p in paths]
        self.rows = [int(r) for r in rows]
        self.offsets = np.concatenate([[0], np.cumsum(self.rows, dtype=np.int64)])
        self.shape = (int(self.offsets[-1]), int(d))
        self.dtype = STORE_DTYPE
        self.ndim = 2
        self._maps: list[np.memmap] | None = None

    @property
    def shards(self) -> list[np.memmap]:
        """The shards as read-only memmaps (opened on first use)."""
        if self._maps is None:
            self._maps = [np.load(p, mmap_mode="r") for p in self.paths]
        return self._maps

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        if isinstance(key, tuple):
            rows, *rest = key
            return self[rows][(slice(None), *rest)]
        if isinstance(key, (int, np.integer)):
            i = int(key) + (len(self) if key < 0 else 0)
            return self.take(np.array([i]))[0]
        if isinstance(key, slice):
            return self._slice(*key.indices(len(self)))
        return self.take(key)

    def take(self, index) -> np.ndarray:
        """Rows ``index`` (any order; sorted order reads the disk sequentially) as a new ``[k, d]`` array."""
        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} rows")
        if len(self.rows) == 1:
            return self.shards[0][idx]
        out = np.empty((len(idx), self.shape[1]), self.dtype)
        which = np.searchsorted(self.offsets, idx, side="right") - 1
        for s in np.unique(which):
            sel = which == s
            out[sel] = self.shards[s][idx[sel] - self.offsets[s]]
        return out

    def _slice(self, start: int, stop: int, step: int) -> np.ndarray:
        if step != 1:
            return self.take(np.arange(start, stop, step))
        parts = []
        for s, mm in enumerate(self.shards):
            lo, hi = max(start, self.offsets[s]), min(stop, self.offsets[s + 1])
            if lo < hi:
                parts.append(mm[lo - self.offsets[s]:hi - self.offsets[s]])
        return np.concatenate(parts) if parts else np.empty((0, self.shape[1]), self.dtype)

    def __array__(self, dtype=None, copy=None):
        full = self._slice(0, len(self), 1)
        return full if dtype is None else full.astype(dtype)

    def __getstate__(self):
        return {**self.__dict__, "_maps": None}
