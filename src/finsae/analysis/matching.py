"""Matching the latents of two SAEs by their decoder directions.

Two independently trained SAEs number their latents arbitrarily, so latent #f of one means nothing to latent
#f of the other: latents are compared only through a matching on decoder-direction cosine.

* :func:`match_decoders` — chunked cosine (never the full matrix above ``dense_max`` entries): each latent's best
  match both ways, mutual nearest neighbours, and a one-to-one assignment that maximises the summed cosine
  (a latent may stay unmatched, which is worth cosine 0). Small problems use
  ``scipy.optimize.linear_sum_assignment`` on the dense matrix; large ones
  ``scipy.sparse.csgraph.min_weight_full_bipartite_matching`` on a sparse graph of each latent's top
  candidates both ways, padded with "unmatched" dummy nodes so that a full matching always exists. On the same
  candidate edges both solve the same problem (tested); the sparse one only drops pairs that are in neither
  latent's top ``candidates``.
* :func:`overlap_curve` — share of latents whose one-to-one match has cosine >= tau, over a grid of tau.
* Controls: :func:`random_unit_rows` (random decoders of the same shape: the chance level of the matching
  itself) and :func:`index_cosine` (latent #f vs latent #f, the write-up's comparison: what no matching gives).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from finsae.analysis.config import AnalysisConfig
from finsae.errors import ConfigError

DENSE_MAX = 4096 * 4096
"""Largest cosine matrix (entries) matched exactly with the dense solver."""
TAUS = np.round(np.arange(0.30, 0.951, 0.05), 2)
DEFAULT_TAU = AnalysisConfig.tau
"""``analysis.tau``'s default (for the callers outside the analysis stage: the stability report)."""


@dataclass
class Matching:
    """Decoder matching of SAE ``a`` (rows) against SAE ``b`` (columns); index -1 = no partner."""

    best_ab: np.ndarray
    """[n_a] index in b of each a latent's most similar b latent."""
    best_ab_cos: np.ndarray
    best_ba: np.ndarray
    """[n_b] index in a of each b latent's most similar a latent."""
    best_ba_cos: np.ndarray
    one_to_one: np.ndarray
    """[n_a] partner in b under the one-to-one assignment (-1: unmatched)."""
    one_to_one_cos: np.ndarray
    """[n_a] cosine of that pair (0 when unmatched)."""
    solver: str
    """``dense`` (linear_sum_assignment) or ``sparse`` (candidate graph)."""

    @property
    def mutual(self) -> np.ndarray:
        """[n_a] bool: a's best match in b has a as its own best match."""
        return self.best_ba[self.best_ab] == np.arange(len(self.best_ab))

    def b_one_to_one(self, n_b: int) -> tuple[np.ndarray, np.ndarray]:
        """The assignment seen from b: partner in a (-1: none) and cosine, per b latent."""
        idx = np.full(n_b, -1, np.int64)
        cos = np.zeros(n_b, np.float32)
        ok = self.one_to_one >= 0
        idx[self.one_to_one[ok]] = np.flatnonzero(ok)
        cos[self.one_to_one[ok]] = self.one_to_one_cos[ok]
        return idx, cos


def unit_rows(w: torch.Tensor | np.ndarray) -> torch.Tensor:
    w = torch.as_tensor(w, dtype=torch.float32)
    return w / torch.linalg.vector_norm(w, dim=1, keepdim=True).clamp_min(1e-12)


def match_decoders(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, *, candidates: int = 16,
                   chunk: int = 2048, dense_max: int = DENSE_MAX) -> Matching:
    """Match the rows of decoder ``a [n_a, d]`` with those of ``b [n_b, d]`` (normalised here)."""
    a, b = unit_rows(a), unit_rows(b)
    if a.shape[1] != b.shape[1]:
        raise ConfigError(f"decoders have different widths (d_in {a.shape[1]} vs {b.shape[1]}): SAEs of different "
                          f"layers or models cannot be matched")
    n_a, n_b = a.shape[0], b.shape[0]
    c = max(1, min(candidates, n_a, n_b))
    dense = n_a * n_b <= dense_max
    full = torch.empty(n_a, n_b) if dense else None
    best_ab = np.empty(n_a, np.int64)
    best_ab_cos = np.empty(n_a, np.float32)
    col_best = torch.full((n_b,), -2.0)
    col_arg = torch.zeros(n_b, dtype=torch.int64)
    col_top_v = torch.full((c, n_b), -2.0)
    col_top_i = torch.zeros((c, n_b), dtype=torch.int64)
    rows, cols, vals = [], [], []
    with torch.no_grad():
        for lo in range(0, n_a, chunk):
            s = a[lo:lo + chunk] @ b.T
            v, i = s.max(1)
            best_ab[lo:lo + len(s)], best_ab_cos[lo:lo + len(s)] = i.numpy(), v.numpy()
            cv, ci = s.max(0)
            better = cv > col_best
            col_best = torch.where(better, cv, col_best)
            col_arg = torch.where(better, ci + lo, col_arg)
            if dense:
                full[lo:lo + len(s)] = s
                continue
            tv, ti = s.topk(c, dim=1)
            rows.append(np.repeat(np.arange(lo, lo + len(s)), c))
            cols.append(ti.reshape(-1).numpy())
            vals.append(tv.reshape(-1).numpy())
            # running top-c of each column over the chunks seen so far
            merged_v = torch.cat([col_top_v, s], 0)
            merged_i = torch.cat([col_top_i, torch.arange(lo, lo + len(s)).unsqueeze(1).expand(-1, n_b)], 0)
            top = merged_v.topk(c, dim=0)
            col_top_v, col_top_i = top.values, torch.gather(merged_i, 0, top.indices)
    best_ba, best_ba_cos = col_arg.numpy(), col_best.numpy().astype(np.float32)
    if dense:
        o2o, o2o_cos = _dense_assignment(full.numpy())
        return Matching(best_ab, best_ab_cos, best_ba, best_ba_cos, o2o, o2o_cos, "dense")
    rows.append(col_top_i.reshape(-1).numpy())
    cols.append(np.tile(np.arange(n_b), c))
    vals.append(col_top_v.reshape(-1).numpy())
    o2o, o2o_cos = sparse_assignment(np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), n_a, n_b)
    return Matching(best_ab, best_ab_cos, best_ba, best_ba_cos, o2o, o2o_cos, "sparse")


def _dense_assignment(cos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one assignment maximising the summed ``max(cos, 0)`` (a pair at cosine <= 0 counts as none)."""
    gain = np.clip(cos, 0.0, None)
    r, c = linear_sum_assignment(gain, maximize=True)
    idx = np.full(cos.shape[0], -1, np.int64)
    out = np.zeros(cos.shape[0], np.float32)
    keep = gain[r, c] > 0
    idx[r[keep]] = c[keep]
    out[r[keep]] = cos[r[keep], c[keep]]
    return idx, out


def sparse_assignment(rows: np.ndarray, cols: np.ndarray, cos: np.ndarray, n_a: int, n_b: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The assignment of :func:`_dense_assignment`, restricted to the candidate edges ``(rows, cols, cos)``.

    Graph: left = a latents + one dummy per b latent, right = b latents + one dummy per a latent. A real edge
    weighs ``cos + 2``, "a_i unmatched" (a_i -> its dummy) and "b_j unmatched" (b_j's dummy -> b_j) weigh 1,
    and each real edge (i, j) has a twin between the dummies of b_j and a_i weighing a hair above 0, so that
    every matched pair frees exactly one dummy pair. Total weight = sum of matched cosines + constant, and a full
    matching always exists (everything unmatched).
    """
    keep = cos > 0
    rows, cols, cos = rows[keep], cols[keep], cos[keep].astype(np.float64)
    # an edge found from both sides appears twice with the same cosine: keep one
    _, first = np.unique(rows.astype(np.int64) * n_b + cols, return_index=True)
    pi, pj, w = rows[first].astype(np.int64), cols[first].astype(np.int64), cos[first]
    eps = 1e-9
    r = np.concatenate([pi, np.arange(n_a), n_a + np.arange(n_b), n_a + pj])
    c = np.concatenate([pj, n_b + np.arange(n_a), np.arange(n_b), n_b + pi])
    v = np.concatenate([w + 2.0, np.ones(n_a), np.ones(n_b), np.full(len(pi), eps)])
    graph = coo_matrix((v, (r, c)), shape=(n_a + n_b, n_b + n_a)).tocsr()
    ri, ci = min_weight_full_bipartite_matching(graph, maximize=True)
    idx = np.full(n_a, -1, np.int64)
    out = np.zeros(n_a, np.float32)
    real = (ri < n_a) & (ci < n_b)
    idx[ri[real]] = ci[real]
    out[ri[real]] = np.asarray(graph[ri[real], ci[real]]).reshape(-1) - 2.0
    return idx, out


def overlap_curve(one_to_one_cos: np.ndarray, taus: np.ndarray = TAUS) -> np.ndarray:
    """Share of latents whose one-to-one match has cosine >= tau, for each tau."""
    x = np.asarray(one_to_one_cos)
    return np.array([(x >= t).mean() if len(x) else np.nan for t in taus])


def overlap(one_to_one_cos: np.ndarray, tau: float = DEFAULT_TAU) -> float:
    return float(overlap_curve(one_to_one_cos, np.array([tau]))[0])


def random_unit_rows(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """``n`` random unit directions in R^d (the matching's chance level against a real dictionary)."""
    g = torch.Generator().manual_seed(seed)
    return unit_rows(torch.randn(n, d, generator=g))


def index_cosine(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> np.ndarray:
    """Cosine of latent #f of ``a`` with latent #f of ``b`` (no matching: what comparing indices measures)."""
    a, b = unit_rows(a), unit_rows(b)
    n = min(a.shape[0], b.shape[0])
    return (a[:n] * b[:n]).sum(1).numpy()


def max_matching_at(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, tau: float = DEFAULT_TAU, *,
                    chunk: int = 2048) -> int:
    """The largest number of one-to-one pairs (a_i, b_j) with decoder cosine >= ``tau``: a maximum-cardinality
    matching on those edges (``scipy.sparse.csgraph.maximum_bipartite_matching``). The summed-cosine assignment
    of :func:`match_decoders` may trade one pair at 0.75 for two at 0.65 and so count fewer pairs at tau."""
    from scipy.sparse.csgraph import maximum_bipartite_matching

    a, b = unit_rows(a), unit_rows(b)
    if a.shape[1] != b.shape[1]:
        raise ConfigError(f"decoders have different widths (d_in {a.shape[1]} vs {b.shape[1]})")
    rows, cols = [], []
    with torch.no_grad():
        for lo in range(0, a.shape[0], chunk):
            r, c = torch.nonzero(a[lo:lo + chunk] @ b.T >= tau, as_tuple=True)
            rows.append(r.numpy() + lo), cols.append(c.numpy())
    r, c = np.concatenate(rows), np.concatenate(cols)
    if not len(r):
        return 0
    graph = coo_matrix((np.ones(len(r), np.int8), (r, c)), shape=(a.shape[0], b.shape[0])).tocsr()
    return int((maximum_bipartite_matching(graph, perm_type="column") >= 0).sum())


def covariance_rows(x: np.ndarray, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` unit directions drawn from N(0, cov(x)) (``x [rows, d]``: a layer's activations): the anisotropy-
    matched null dictionary. Random *isotropic* unit rows in a few hundred dimensions have cosine < 0.3 with
    everything, so their overlap at tau = 0.7 is 0 by construction; rows drawn from the activations' covariance
    crowd into its dominant directions as a real dictionary does, so their overlap is the chance level of a
    dictionary that knows only the layer's second moments."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ConfigError(f"covariance_rows needs a [rows >= 2, d] array, got shape {x.shape}")
    vals, vecs = np.linalg.eigh(np.cov(x, rowvar=False))
    z = np.random.default_rng(seed).standard_normal((n, x.shape[1]))
    return unit_rows(torch.from_numpy((z * np.sqrt(np.clip(vals, 0, None))) @ vecs.T))
