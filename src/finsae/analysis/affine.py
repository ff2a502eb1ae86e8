"""The affine map of the twin's activations from the base's, ``h_twin ≈ h_base @ weight + bias``, per layer.

It separates what fine-tuning did to a layer into a global part (a re-centring plus one linear map of the
whole space: rotations, rescalings, mixtures of directions) and the rest, which no single linear map of the
base explains. The activation lens scores it on held-out documents (affine R²); the warm start's affine-map
null trains on ``apply(h_base)``; the causal test patches ``apply(h_base)`` into the twin.

The fit is ridge regression from streamed moments (:class:`PairMoments`: sums and Gram matrices, accumulated
in float64 on rows shifted by a fixed vector so that the centred covariance loses no digits to a large mean),
so it runs on hundreds of thousands of token rows without holding them in float64. The ridge is relative:
``ridge`` times the mean variance per dimension of the base, added to the base covariance's diagonal. The same
moments give the lens its covariance measures (:meth:`PairMoments.spectrum`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.linalg
import scipy.sparse

from finsae.errors import ConfigError, require

CHUNK_ROWS = 32_768
"""Rows read and multiplied at a time (bounds the float32 temporaries at a few tens of MB)."""


@dataclass
class AffineStudyConfig:
    """Knobs every study of the affine map shares (the lens, the causal test): its percentile bootstrap and
    the ridge of its fits. A study subclasses it, names itself in :attr:`study` and adds its own knobs. Not
    frozen: a study's config is also its Hydra schema (``analysis.lens.*``), which overrides must set."""

    study: ClassVar[str] = "affine"
    """How the study's errors name it."""

    n_boot: int = 200
    """Bootstrap draws (of the lens's documents, of the causal test's texts)."""
    ci: float = 0.95
    """Level of the percentile intervals."""
    seed: int = 0
    """Seeds the bootstrap draws and each study's other draws (separate streams)."""
    ridge: float = 1e-4
    """Ridge of the affine fits, relative to the base's mean variance per dimension."""

    def __post_init__(self):
        require(self.n_boot >= 2, f"{self.study} n_boot must be >= 2, got {self.n_boot}")
        require(0 < self.ci < 1, f"{self.study} ci must be in (0, 1), got {self.ci}")
        require(self.ridge >= 0, f"{self.study} ridge must be >= 0, got {self.ridge}")


def estimate_columns(measures: str, level: str, over: str) -> dict[str, str]:
    """The columns ``measure``, ``value``, ``lo``, ``hi`` of a study's long table (one estimate a row):
    ``measures`` names the list of its measures, ``level`` the knob of the interval's level and ``over``
    what the bootstrap draws."""
    return {
        "measure": f"str: one of {measures}",
        "value": f"float: the point estimate over the {over}",
        "lo": f"float: lower end of the percentile bootstrap interval over {over} (level {level})",
        "hi": "float: upper end of that interval",
    }


def row_chunks(rows: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
    """``rows`` (sorted row indices) in consecutive pieces of at most ``chunk_rows``."""
    for start in range(0, len(rows), chunk_rows):
        yield rows[start:start + chunk_rows]


def read_rows(array, rows: np.ndarray) -> np.ndarray:
    """``array[rows]`` as float32 (works on in-memory arrays and memory maps); refuses non-finite values."""
    out = np.asarray(array[rows], dtype=np.float32)
    if not np.isfinite(out).all():
        raise ConfigError(f"activations hold NaN or inf in rows {int(rows[0])}..{int(rows[-1])}: the cache "
                          "is damaged or the model diverged; rebuild the activation cache")
    return out


def sample_mean(array, rows: np.ndarray, n_sample: int = 2048) -> np.ndarray:
    """Mean of up to ``n_sample`` evenly spaced rows: the shift that keeps the moments well conditioned."""
    pick = rows[np.linspace(0, len(rows) - 1, num=min(n_sample, len(rows))).astype(np.int64)]
    return read_rows(array, np.unique(pick)).astype(np.float64).mean(axis=0)


def row_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row dot products of two ``[m, d]`` arrays, as float64 (each row summed in the inputs' precision:
    4x faster than a float64 einsum, and d terms lose no digit that matters before the float64 totals)."""
    return np.einsum("ij,ij->i", a, b).astype(np.float64)


def scatter_rows(codes: np.ndarray, values: np.ndarray, out: np.ndarray) -> None:
    """``out[codes[j]] += values[j]`` for every row j (a sparse one-hot product, not a Python loop)."""
    present, local = np.unique(codes, return_inverse=True)
    onehot = scipy.sparse.csr_matrix((np.ones(len(codes)), (local, np.arange(len(codes)))),
                                     shape=(len(present), len(codes)))
    out[present] += onehot @ values


@dataclass(frozen=True)
class PairSpectrum:
    """Paired covariances and the scalars that CKA, participation ratio and top-3 share are built of."""

    n: int
    """Rows behind the moments."""
    delta: tuple[np.ndarray, np.ndarray]
    """Mean of the shifted rows, base and twin (float32): what centres them."""
    mats: tuple[np.ndarray, ...]
    """float32 C_xx, C_yy, C_xy, then the top-3 eigenvectors ([d, 3]) of C_xx and of C_yy."""
    trace: tuple[float, float]
    """tr C_xx, tr C_yy."""
    frob: tuple[float, float]
    """||C_xx||_F, ||C_yy||_F."""
    f_xy2: float
    """||C_xy||_F²."""
    top3: tuple[float, float]
    """Sums of the 3 largest eigenvalues of C_xx and of C_yy."""


class PairMoments:
    """Streaming first and second moments of paired rows (base ``x``, twin ``y``), shifted by fixed vectors.

    Moments with the same shifts add (``+``), so per-group moments combine into any union of groups.
    """

    def __init__(self, shift_base: np.ndarray, shift_twin: np.ndarray):
        self.shift_base = np.asarray(shift_base, np.float64)
        self.shift_twin = np.asarray(shift_twin, np.float64)
        d_x, d_y = len(self.shift_base), len(self.shift_twin)
        self.n = 0
        self.sum_x, self.sum_y = np.zeros(d_x), np.zeros(d_y)
        self.gram_xx, self.gram_yy = np.zeros((d_x, d_x)), np.zeros((d_y, d_y))
        self.gram_xy = np.zeros((d_x, d_y))

    def add_shifted(self, zx: np.ndarray, zy: np.ndarray) -> None:
        """Add rows already shifted (``x - shift_base``, ``y - shift_twin``), float32 [m, d]."""
        if not len(zx):
            return
        self.n += len(zx)
        self.sum_x += zx.sum(axis=0, dtype=np.float64)
        self.sum_y += zy.sum(axis=0, dtype=np.float64)
        self.gram_xx += zx.T @ zx
        self.gram_yy += zy.T @ zy
        self.gram_xy += zx.T @ zy

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        """Add raw rows of the base (``x``) and the twin (``y``)."""
        self.add_shifted((x - self.shift_base).astype(np.float32), (y - self.shift_twin).astype(np.float32))

    def __add__(self, other: PairMoments) -> PairMoments:
        if not (np.array_equal(self.shift_base, other.shift_base) and np.array_equal(self.shift_twin,
                                                                                      other.shift_twin)):
            raise ValueError("PairMoments with different shifts cannot be added")
        out = PairMoments(self.shift_base, self.shift_twin)
        out.n = self.n + other.n
        for name in ("sum_x", "sum_y", "gram_xx", "gram_yy", "gram_xy"):
            setattr(out, name, getattr(self, name) + getattr(other, name))
        return out

    @property
    def mean_x(self) -> np.ndarray:
        return self.sum_x / self.n + self.shift_base

    @property
    def mean_y(self) -> np.ndarray:
        return self.sum_y / self.n + self.shift_twin

    def covariances(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(C_xx, C_yy, C_xy)``: population covariances (divided by ``n``)."""
        require(self.n >= 2, f"covariances need at least 2 rows, have {self.n}")
        mx, my = self.sum_x / self.n, self.sum_y / self.n
        c_xx = self.gram_xx / self.n - np.outer(mx, mx)
        c_yy = self.gram_yy / self.n - np.outer(my, my)
        c_xy = self.gram_xy / self.n - np.outer(mx, my)
        return (c_xx + c_xx.T) / 2, (c_yy + c_yy.T) / 2, c_xy

    def spectrum(self) -> PairSpectrum | None:
        """What the lens's CKA, participation ratio and top-3 share are computed from; None under 2 rows."""
        if self.n < 2:
            return None
        c_xx, c_yy, c_xy = self.covariances()
        (ev_x, vec_x), (ev_y, vec_y) = np.linalg.eigh(c_xx), np.linalg.eigh(c_yy)
        k = min(3, len(ev_x), len(ev_y))
        mats = tuple(m.astype(np.float32) for m in (c_xx, c_yy, c_xy, vec_x[:, -k:], vec_y[:, -k:]))
        delta = (self.sum_x / self.n).astype(np.float32), (self.sum_y / self.n).astype(np.float32)
        frob = float(np.linalg.norm(c_xx)), float(np.linalg.norm(c_yy))
        return PairSpectrum(self.n, delta, mats, (float(np.trace(c_xx)), float(np.trace(c_yy))), frob,
                            float(np.sum(c_xy ** 2)), (float(ev_x[-k:].sum()), float(ev_y[-k:].sum())))


@dataclass(frozen=True)
class AffineMap:
    """``h_twin ≈ h_base @ weight + bias``, fitted by ridge regression on some rows."""

    weight: np.ndarray
    """[d_base, d_twin] float64: the linear part (row-vector convention, so the transpose of A in A·h + c)."""
    bias: np.ndarray
    """[d_twin] float64: the offset c."""
    ridge: float
    """The absolute ridge that was added to the base covariance's diagonal."""
    n_fit: int
    """Rows the map was fitted on."""

    def apply(self, h_base, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
        """The affine image of base activations ``[n, d_base]`` (array or memmap): float32 ``[n, d_twin]``."""
        h = np.asarray(h_base) if not hasattr(h_base, "shape") else h_base
        if h.ndim != 2 or h.shape[1] != self.weight.shape[0]:
            raise ConfigError(f"AffineMap.apply needs [n, {self.weight.shape[0]}] activations, got {h.shape}")
        out = np.empty((h.shape[0], self.weight.shape[1]), np.float32)
        weight, bias = self.weight.astype(np.float32), self.bias.astype(np.float32)
        for start in range(0, h.shape[0], chunk_rows):
            piece = np.asarray(h[start:start + chunk_rows], np.float32)
            out[start:start + chunk_rows] = piece @ weight + bias
        return out

    def residual_sq(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Per-row ``||y - (x @ weight + bias)||^2`` (float64 [m]) of raw float32 rows."""
        r = y - (x @ self.weight.astype(np.float32) + self.bias.astype(np.float32))
        return row_dot(r, r)


def fit_affine_from_moments(moments: PairMoments, ridge: float = 1e-4) -> AffineMap:
    """Ridge fit of the twin from the base on the rows behind ``moments`` (relative ``ridge``: module doc)."""
    require(ridge >= 0, f"ridge must be >= 0, got {ridge}")
    c_xx, _, c_xy = moments.covariances()
    alpha = ridge * float(np.trace(c_xx)) / len(c_xx)
    if not alpha > 0 and np.linalg.matrix_rank(c_xx) < len(c_xx):
        raise ConfigError(f"the base covariance of the {moments.n} fit rows is singular: give ridge > 0")
    try:
        weight = scipy.linalg.solve(c_xx + alpha * np.eye(len(c_xx)), c_xy, assume_a="pos")
    except np.linalg.LinAlgError as e:
        raise ConfigError(f"the affine fit on {moments.n} rows failed ({e}): give ridge > 0 or more rows") \
            from None
    bias = moments.mean_y - moments.mean_x @ weight
    return AffineMap(weight=weight, bias=bias, ridge=alpha, n_fit=moments.n)


def fit_affine(h_base, h_twin, rows: np.ndarray | None = None, ridge: float = 1e-4,
               chunk_rows: int = CHUNK_ROWS) -> AffineMap:
    """Fit ``h_twin ≈ h_base @ weight + bias`` on ``rows`` (default all) of two row-aligned ``[n, d]`` arrays.

    Streams the rows in chunks, so memory maps of any length work. Fit it on other documents than the ones it
    is scored or patched on (the lens splits by document).
    """
    if h_base.ndim != 2 or h_twin.ndim != 2 or h_base.shape[0] != h_twin.shape[0]:
        raise ConfigError(f"fit_affine needs row-aligned [n, d] arrays, got {h_base.shape}, {h_twin.shape}")
    rows = np.arange(h_base.shape[0]) if rows is None else np.sort(np.asarray(rows, np.int64))
    require(len(rows) >= 2, f"fit_affine needs at least 2 rows, got {len(rows)}")
    moments = PairMoments(sample_mean(h_base, rows), sample_mean(h_twin, rows))
    for piece in row_chunks(rows, chunk_rows):
        moments.add(read_rows(h_base, piece), read_rows(h_twin, piece))
    return fit_affine_from_moments(moments, ridge)
