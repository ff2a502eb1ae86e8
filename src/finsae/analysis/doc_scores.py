"""Per-document latent scores and matched-pair agreement, from the cached activations of held-out passages.

One pass over the token rows of a layer encodes them with an SAE (``encode_rows``: the top-k codes, kept for every
later reader); ``doc_scores`` reduces them, per (document, latent), to the max and the sum of the activation over
the document's real tokens ([CLS]/[SEP] are never in the store). Scores stay sparse (``scipy.sparse.csr_matrix``:
a document touches a few hundred of the latents).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from finsae.sae import TopKSAE

CHUNK_ROWS = 8192


@dataclass
class DocScores:
    """Scores of every latent on every document: ``max`` and ``mean`` activation, ``[n_docs, m]`` CSR."""

    max: sp.csr_matrix
    mean: sp.csr_matrix
    n_tokens: np.ndarray
    """[n_docs] real tokens per document."""

    def dense(self, docs: np.ndarray, latents: np.ndarray | None = None, kind: str = "max") -> np.ndarray:
        m = self.max if kind == "max" else self.mean
        sub = m[docs]
        if latents is not None:
            sub = sub[:, latents]
        return sub.toarray()


def row_chunks(array, rows: np.ndarray | None = None, chunk: int = CHUNK_ROWS) -> Iterable[tuple[np.ndarray, torch.Tensor]]:
    """``(row ids, fp32 activations)`` chunks of ``array`` (all rows in order, or ``rows``)."""
    n = len(array) if rows is None else len(rows)
    for lo in range(0, n, chunk):
        ids = np.arange(lo, min(lo + chunk, n)) if rows is None else np.asarray(rows[lo:lo + chunk])
        x = array[ids] if rows is not None else array[lo:lo + len(ids)]
        yield ids, torch.from_numpy(np.asarray(x, dtype=np.float32))


@dataclass
class Codes:
    """The top-k code of one SAE on every token row of a layer, computed once (``encode_rows``) and read by the
    document scores, the pair agreement, the SAE's own reconstruction error and the contexts."""

    indices: torch.Tensor
    """[N, k] latent ids (int64)."""
    acts: torch.Tensor
    """[N, k] their activations (fp32)."""
    num_latents: int

    def dense(self, rows: np.ndarray) -> torch.Tensor:
        """``[len(rows), m]`` activations of ``rows`` (zeros off the top-k)."""
        r = torch.from_numpy(np.asarray(rows, np.int64))
        out = torch.zeros(len(r), self.num_latents)
        return out.scatter_(1, self.indices[r], self.acts[r])

    def latent(self, latent: int, rows: np.ndarray) -> np.ndarray:
        """Activation of one latent on ``rows`` ([len(rows)], 0 where it is off the top-k)."""
        r = torch.from_numpy(np.asarray(rows, np.int64))
        return (self.acts[r] * (self.indices[r] == latent)).sum(1).numpy()


def encode_rows(sae: TopKSAE, array, *, chunk: int = CHUNK_ROWS) -> Codes:
    """``sae``'s top-k code of every row of ``array`` ([N, d_in], any array-like: a memory-mapped store)."""
    idx, acts = [], []
    with torch.no_grad():
        for _, x in row_chunks(array, chunk=chunk):
            code = sae.encode(x)
            idx.append(code.latent_indices.long()), acts.append(code.latent_acts.float())
    k = sae.k
    return Codes(torch.cat(idx) if idx else torch.zeros(0, k, dtype=torch.long),
                 torch.cat(acts) if acts else torch.zeros(0, k), sae.num_latents)


def doc_scores(codes: Codes, doc_of_row: np.ndarray, n_docs: int, *, chunk: int = CHUNK_ROWS) -> DocScores:
    """Max and mean activation of each latent over each document's token rows (``doc_of_row [N]``)."""
    m = codes.num_latents
    doc_of_row = torch.from_numpy(np.asarray(doc_of_row, np.int64))
    keys, maxs, sums = [], [], []
    for lo in range(0, len(doc_of_row), chunk):
        hi = min(lo + chunk, len(doc_of_row))
        k = (doc_of_row[lo:hi].unsqueeze(1) * m + codes.indices[lo:hi]).reshape(-1)
        v = codes.acts[lo:hi].reshape(-1)
        live = v > 0
        u, mx, sm = _reduce(k[live], v[live], v[live])
        keys.append(u), maxs.append(mx), sums.append(sm)
    if keys:
        u, mx, sm = _reduce(torch.cat(keys), torch.cat(maxs), torch.cat(sums))
    else:
        u, mx, sm = torch.zeros(0, dtype=torch.long), torch.zeros(0), torch.zeros(0)
    n_tok = np.bincount(doc_of_row.numpy(), minlength=n_docs).astype(np.int64)
    r, c = (u // m).numpy(), (u % m).numpy()
    shape = (n_docs, m)
    mx_m = sp.csr_matrix((mx.numpy(), (r, c)), shape=shape)
    mean = sm.numpy() / np.maximum(n_tok[r], 1)
    return DocScores(mx_m, sp.csr_matrix((mean.astype(np.float32), (r, c)), shape=shape), n_tok)


def _reduce(keys: torch.Tensor, v_max: torch.Tensor, v_sum: torch.Tensor):
    u, inv = torch.unique(keys, return_inverse=True)
    mx = torch.zeros(len(u)).scatter_reduce_(0, inv, v_max, "amax", include_self=False)
    sm = torch.zeros(len(u)).scatter_add_(0, inv, v_sum)
    return u, mx, sm


def pair_correlation(codes_a: Codes, codes_b: Codes, pairs_a: np.ndarray, pairs_b: np.ndarray, rows: np.ndarray,
                     chunk: int = 2048) -> np.ndarray:
    """Pearson correlation, over the same token rows, of latent ``pairs_a[i]`` of code ``codes_a`` with latent
    ``pairs_b[i]`` of ``codes_b`` (NaN where either never fires on these rows)."""
    ia, ib = torch.from_numpy(np.asarray(pairs_a)), torch.from_numpy(np.asarray(pairs_b))
    s = torch.zeros(5, len(ia), dtype=torch.float64)  # sum a, b, a^2, b^2, ab
    n = 0
    for lo in range(0, len(rows), chunk):
        ids = rows[lo:lo + chunk]
        a = codes_a.dense(ids)[:, ia].double()
        b = codes_b.dense(ids)[:, ib].double()
        s += torch.stack([a.sum(0), b.sum(0), (a * a).sum(0), (b * b).sum(0), (a * b).sum(0)])
        n += len(ids)
    sa, sb, saa, sbb, sab = s.numpy()
    cov = sab / n - sa * sb / n**2
    va, vb = saa / n - (sa / n) ** 2, sbb / n - (sb / n) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        r = cov / np.sqrt(va * vb)
    return np.where((va > 0) & (vb > 0), r, np.nan)
