"""Model inputs cut from the token table: chunks of consecutive windows, length-sorted batches inside each.

A chunk is a run of whole windows in table order whose results fit the write buffer; sorting by length
inside it keeps padding low while every chunk still fills one contiguous block of rows that is appended
to the shards in order (sequential writes, no scatter over the whole file).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch


class Chunk(NamedTuple):
    """Windows ``[w0, w1)`` whose real tokens are token rows ``[r0, r1)``."""

    w0: int
    """First window."""
    w1: int
    """One past the last window."""
    r0: int
    """First token row."""
    r1: int
    """One past the last token row."""


class ModelBatch(NamedTuple):
    """One forward pass worth of windows, and where each hidden state goes."""

    input_ids: torch.Tensor
    """[b, L] int64 ids: [CLS] window [SEP] [PAD]..."""
    attention_mask: torch.Tensor
    """[b, L] int64, 1 on [CLS], real tokens and [SEP]."""
    src: torch.Tensor
    """[n] int64 flat indices into ``[b * L]`` of the real tokens."""
    dst: torch.Tensor
    """[n] int64 destination rows relative to the chunk's ``r0``."""
    special_src: torch.Tensor
    """[2b] flat indices of each window's [CLS] and [SEP]."""
    special_dst: torch.Tensor
    """[2b] destination rows relative to ``2 * w0`` ([CLS] then [SEP] per window)."""
    n_tokens: int
    """Real tokens in the batch."""


def rows_per_chunk(buffer_mb: float, n_layers: int, d: int, max_length: int) -> int:
    """Token rows per chunk so that one chunk's fp16 results of all layers fit ``buffer_mb``."""
    return max(max_length, int(buffer_mb * 2**20) // (n_layers * d * 2))


def plan_chunks(win_row: np.ndarray, win_len: np.ndarray, max_rows: int) -> list[Chunk]:
    """Cut the windows into chunks of at most ``max_rows`` token rows (at least one window each)."""
    chunks = []
    ends = win_row.astype(np.int64) + win_len
    w0 = 0
    while w0 < len(win_row):
        # Last window that still ends within the budget (always at least w0 itself).
        w1 = max(w0 + 1, int(np.searchsorted(ends, win_row[w0] + max_rows, side="right")))
        chunks.append(Chunk(w0, w1, int(win_row[w0]), int(ends[w1 - 1])))
        w0 = w1
    return chunks


def chunk_batches(
    token_ids: np.ndarray, win_row: np.ndarray, win_len: np.ndarray, chunk: Chunk, batch_size: int,
    cls_id: int, sep_id: int, pad_id: int,
) -> Iterator[ModelBatch]:
    """The batches of ``chunk``, shortest windows first (stable sort: deterministic)."""
    order = chunk.w0 + np.argsort(win_len[chunk.w0:chunk.w1], kind="stable")
    for b0 in range(0, len(order), batch_size):
        yield make_batch(token_ids, win_row, win_len, order[b0:b0 + batch_size], chunk, cls_id, sep_id, pad_id)


def make_batch(
    token_ids: np.ndarray, win_row: np.ndarray, win_len: np.ndarray, windows: np.ndarray, chunk: Chunk,
    cls_id: int, sep_id: int, pad_id: int,
) -> ModelBatch:
    n = win_len[windows].astype(np.int64)
    rows0 = win_row[windows].astype(np.int64)
    b, seq = len(windows), int(n.max()) + 2
    pos = np.arange(seq)[None, :]
    real = (pos >= 1) & (pos <= n[:, None])
    rows = (rows0[:, None] + pos - 1)[real]
    ids = np.full((b, seq), pad_id, np.int64)
    ids[real] = token_ids[rows]
    ids[:, 0] = cls_id
    ids[np.arange(b), n + 1] = sep_id
    mask = (pos <= n[:, None] + 1).astype(np.int64)
    special_src = np.stack([np.arange(b) * seq, np.arange(b) * seq + n + 1], 1).reshape(-1)
    special_dst = np.stack([2 * (windows - chunk.w0), 2 * (windows - chunk.w0) + 1], 1).reshape(-1)
    return ModelBatch(
        torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(np.flatnonzero(real)),
        torch.from_numpy(rows - chunk.r0), torch.from_numpy(special_src), torch.from_numpy(special_dst.astype(np.int64)),
        int(n.sum()),
    )
