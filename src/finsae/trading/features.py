"""Feature blocks of the dataset and their per-window transforms (latent selection, PCA), fit on training rows.

A ``Block`` is a matrix with one row per dataset row (dense ndarray or CSR) and its column names. A feature set
stacks blocks; ``fit_transform`` fits each block's transform on the rows it is given and applies it to others,
so nothing is learned from a test window. Columns stay sparse (CSR) where the block is sparse.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from finsae.trading.blocks import pca_columns


class Block(NamedTuple):
    """One group of columns."""

    name: str
    """e.g. ``price``, ``count``, ``domain_sae_L3``, ``domain_dense_L3``, ``sentiment``
    (:mod:`finsae.trading.blocks`)."""
    kind: str
    """``plain`` (used as is), ``sae`` (latent selection), ``dense`` (PCA inside each training window)."""
    matrix: np.ndarray | sp.csr_matrix
    """[n_rows, n_columns]."""
    columns: list[str]
    """Column names (:mod:`finsae.trading.blocks`); SAE blocks: each latent's mean, then each latent's max."""
    latents: np.ndarray | None = None
    """SAE blocks: allowed latent ids (the analysis stage's financial latents), None: all."""


def column_ic(x, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of ``x`` (dense or CSR) with ``y`` (the information coefficient);
    0 for constant columns."""
    n = len(y)
    y = y.astype(np.float64)
    my, sy = y.mean(), y.std()
    if sp.issparse(x):
        x = x.tocsc().astype(np.float64)
        mx = np.asarray(x.sum(axis=0)).ravel() / n
        mxx = np.asarray(x.multiply(x).sum(axis=0)).ravel() / n
        mxy = np.asarray(x.T @ y).ravel() / n
    else:
        x = np.nan_to_num(x.astype(np.float64))
        mx, mxx, mxy = x.mean(axis=0), (x * x).mean(axis=0), x.T @ y / n
    sx = np.sqrt(np.maximum(mxx - mx * mx, 0))
    denom = sx * sy
    return np.divide(mxy - mx * my, denom, out=np.zeros_like(denom), where=denom > 1e-12)


def day_rank_ic(x, y: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Mean over days of each column's per-day rank IC: the Spearman correlation of the column with ``y`` among
    the rows of one day (ties averaged), 0 on a day where either is constant. It ignores what moves every row of a
    day together (the market), which a dollar-neutral book cannot trade."""
    from scipy.stats import rankdata

    y = np.asarray(y, np.float64)
    days = np.asarray(days)
    if sp.issparse(x) and x.shape[0] and (x.data >= 0).all():
        return _sparse_day_rank_ic(sp.csr_matrix(x), y, days)
    order = np.argsort(days, kind="stable")
    bounds = np.flatnonzero(np.r_[True, days[order][1:] != days[order][:-1], True])
    dense = not sp.issparse(x)
    x = np.nan_to_num(np.asarray(x, np.float64)) if dense else x.tocsr()
    total = np.zeros(x.shape[1])
    n_days = 0
    for a, b in zip(bounds[:-1], bounds[1:], strict=False):
        idx = order[a:b]
        n_days += 1
        if len(idx) < 3:
            continue
        xd = x[idx] if dense else x[idx].toarray().astype(np.float64)
        ry = rankdata(y[idx])
        rx = rankdata(xd, axis=0)
        ry = ry - ry.mean()
        rx = rx - rx.mean(axis=0)
        den = np.sqrt((rx * rx).sum(axis=0) * (ry * ry).sum())
        total += np.divide(rx.T @ ry, den, out=np.zeros(x.shape[1]), where=den > 1e-12)
    return total / max(n_days, 1)


def _sparse_day_rank_ic(x: sp.csr_matrix, y: np.ndarray, days: np.ndarray) -> np.ndarray:
    """``day_rank_ic`` of a non-negative sparse matrix from its nonzeros only (an SAE block): within a day a
    column's zeros share one average rank, so each (day, column) needs only its nonzero entries ranked."""
    import pandas as pd

    _, g = np.unique(days, return_inverse=True)
    n_days, m = int(g.max()) + 1, x.shape[1]
    n_g = np.bincount(g, minlength=n_days).astype(np.float64)
    ry = pd.Series(y).groupby(g).rank(method="average").to_numpy() - (n_g[g] + 1) / 2
    sy2 = np.bincount(g, ry * ry, minlength=n_days)
    x = x.copy()
    x.eliminate_zeros()
    coo = x.tocoo()
    key = g[coo.row].astype(np.int64) * m + coo.col
    vmax = float(coo.data.max()) if coo.nnz else 1.0
    # one float sort key (group, then value; np.lexsort is ~20x slower): the value scaled into [0, 1)
    order = np.argsort(key + coo.data.astype(np.float64) / (vmax * (1 + 1e-6)), kind="stable")
    key, v, ryv = key[order], coo.data[order], ry[coo.row[order]]
    total = np.zeros(m)
    if len(key) == 0:
        return total
    new_g = np.r_[True, key[1:] != key[:-1]]
    gid = np.cumsum(new_g) - 1
    g_start = np.flatnonzero(new_g)
    new_run = new_g | np.r_[True, v[1:] != v[:-1]]
    rid = np.cumsum(new_run) - 1
    r_start = np.flatnonzero(new_run)
    r_len = np.diff(np.r_[r_start, len(key)])
    within = (r_start[rid] - g_start[gid]) + (r_len[rid] + 1) / 2  # rank among the group's nonzeros
    nz = np.bincount(gid).astype(np.float64)
    gday, gcol = key[g_start] // m, key[g_start] % m
    n = n_g[gday]
    n0 = n - nz
    rx = n0[gid] + within - (n[gid] + 1) / 2  # centered rank of a nonzero; each zero's is -nz / 2
    num = np.bincount(gid, rx * ryv) + nz / 2 * np.bincount(gid, ryv)
    sxx = n0 * (nz / 2) ** 2 + np.bincount(gid, rx * rx)
    den = np.sqrt(sxx * sy2[gday])
    ok = (den > 1e-12) & (n >= 3)
    ic = np.divide(num, den, out=np.zeros_like(den), where=ok)
    return np.bincount(gcol, ic, minlength=m) / n_days


class Fitted(NamedTuple):
    """A block's transform fit on one window."""

    block: str
    what: str
    """``identity``, ``top_ic``, ``top_ic_pooled``, ``financial``, ``all``, ``pca``."""
    columns: np.ndarray | None
    """Kept column indices (selection), None: all."""
    pca: object | None
    """A fitted sklearn PCA (dense blocks with ``dense_pca``)."""
    names: list[str]


def fit_block(block: Block, rows: np.ndarray, y: np.ndarray, latents: str, top_n: int,
              dense_pca: int | None, days: np.ndarray | None = None) -> Fitted:
    """Fit ``block``'s transform on ``rows`` (indices) with target ``y`` (one value per row in ``rows``);
    ``days``: each of those rows' trading day (the ``top_ic`` selection ranks within days)."""
    if block.kind == "sae":
        m = block.matrix.shape[1] // 2
        allowed = np.arange(m) if block.latents is None else np.asarray(block.latents, dtype=np.int64)
        if latents in ("top_ic", "top_ic_pooled"):
            if latents == "top_ic":
                if days is None:
                    raise ValueError("features.latents=top_ic ranks within days: pass each row's day")
                ic = np.abs(day_rank_ic(block.matrix[rows], y, days))
            else:
                ic = np.abs(column_ic(block.matrix[rows], y))
            score = np.maximum(ic[:m], ic[m:])[allowed]
            keep = allowed[np.lexsort((allowed, -score))[:top_n]]
        else:
            keep = allowed
        keep = np.sort(keep)
        cols = np.r_[keep, keep + m]
        return Fitted(block.name, latents, cols, None, [block.columns[i] for i in cols])
    if block.kind == "dense" and dense_pca is not None and dense_pca < block.matrix.shape[1]:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=dense_pca, random_state=0, svd_solver="full").fit(block.matrix[rows])
        return Fitted(block.name, "pca", None, pca, pca_columns(block.name, dense_pca))
    return Fitted(block.name, "identity", None, None, list(block.columns))


def apply_block(block: Block, fitted: Fitted, rows: np.ndarray):
    x = block.matrix[rows]
    if fitted.columns is not None:
        x = x[:, fitted.columns]
    if fitted.pca is not None:
        x = fitted.pca.transform(x).astype(np.float32)
    return x


def stack(parts: list) -> np.ndarray | sp.csr_matrix:
    """Columns side by side: CSR when any part is sparse, else a float32 ndarray."""
    if any(sp.issparse(p) for p in parts):
        return sp.hstack([sp.csr_matrix(p, dtype=np.float32) for p in parts], format="csr", dtype=np.float32)
    return np.hstack([np.asarray(p, dtype=np.float32) for p in parts])
