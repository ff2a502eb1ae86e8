"""Financial selectivity of latents: AUROC of per-document scores between two groups, with FDR and bootstrap CIs.

A latent's score on a document is its max (or mean) activation over the document's real tokens. For a
contrast (positive vs negative documents) its effect is the AUROC = P(score of a random positive document >
score of a random negative one), ties counting one half; p-values are the two-sided Mann-Whitney test
(``scipy.stats.mannwhitneyu``, vectorised over latents), corrected across latents with Benjamini-Hochberg
(``scipy.stats.false_discovery_control``). Bootstrap CIs resample documents within each group; they use
:class:`RankedScores`, which sorts each latent's scores once and recomputes AUROC (and the tie-corrected
normal-approximation p-value, equal to scipy's ``method="asymptotic", use_continuity=False``) for any
multiset of documents given as integer weights, without re-sorting.

**Financial latent** (the rule this project uses): BH-adjusted p <= 0.05 *and* AUROC >= 0.6 in both the broad
contrast (financial vs general text) and the genre-matched one (AG Business vs AG World/Sports/Sci-Tech).
Why 0.6: with thousands of documents per side, p-values alone flag effects far too small to matter (AUROC 0.52
is "significant" at n = 3,000); 0.6 means a financial document outscores a non-financial one 60% of the time,
a modest but real preference, and it is the conventional floor of a "weak but useful" discriminator. The
genre-matched contrast removes latents that only detect a register (tweets, ``$`` tickers, Wikipedia markup).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr
from scipy.stats import false_discovery_control, mannwhitneyu

from finsae.analysis.config import AnalysisConfig
from finsae.analysis.doc_scores import DocScores
from finsae.analysis.heldout import BROAD, CATEGORY_FAMILIES, GENRE, HeldoutSet

FDR = AnalysisConfig.fdr
"""The rule's false-discovery rate (``analysis.fdr``'s default)."""
MIN_AUROC = AnalysisConfig.min_auroc
"""The rule's effect floor (``analysis.min_auroc``'s default)."""
CI = 0.95


@dataclass
class Contrast:
    """Per-latent statistics of one contrast (arrays over latents)."""

    auroc: np.ndarray
    p: np.ndarray
    q: np.ndarray
    """BH-adjusted p-values."""
    n_pos: int
    n_neg: int

    def selected(self, fdr: float = FDR, min_auroc: float = MIN_AUROC) -> np.ndarray:
        return (self.q <= fdr) & (self.auroc >= min_auroc)


def contrast(pos: np.ndarray, neg: np.ndarray) -> Contrast:
    """AUROC, Mann-Whitney p and BH q of every column of ``pos [n_pos, L]`` vs ``neg [n_neg, L]``."""
    pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    n1, n2 = len(pos), len(neg)
    if n1 == 0 or n2 == 0:
        raise ValueError(f"a contrast needs documents on both sides (got {n1} and {n2})")
    res = mannwhitneyu(pos, neg, axis=0, alternative="two-sided", method="asymptotic", use_continuity=False)
    auroc = np.asarray(res.statistic, np.float64) / (n1 * n2)
    p = np.nan_to_num(np.asarray(res.pvalue, np.float64), nan=1.0)  # a column constant on both sides: no effect
    return Contrast(auroc, p, false_discovery_control(p, method="bh"), n1, n2)


class RankedScores:
    """Scores ``x [n, L]`` of ``n`` documents (``is_pos [n]``: which side) sorted once per column, for fast
    weighted AUROC / p-values (bootstrap resamples as integer document weights).

    With weights as multiplicities, the items of a tie group ``g`` holding total weight ``T_g`` after weight
    ``C_g`` in its column share the midrank ``C_g + (T_g + 1) / 2``; the positives' rank sum gives U, and
    ``sum T_g^3 - T_g`` the tie correction. Only per-group sums are needed (``np.add.reduceat`` over the runs).
    """

    def __init__(self, x: np.ndarray, is_pos: np.ndarray):
        x = np.asarray(x, np.float32)
        n, cols = x.shape
        self.n, self.cols = n, cols
        self.is_pos = np.asarray(is_pos, bool)
        order = np.argsort(x, axis=0, kind="stable")
        xs = np.take_along_axis(x, order, 0)
        new = np.ones(xs.shape, bool)
        new[1:] = xs[1:] != xs[:-1]
        # column-major flattening: each column's rows contiguous, a new group at every column's first row;
        # groups are contiguous runs, so their sums are np.add.reduceat over the run starts
        self.doc = order.T.reshape(-1)
        self.starts = np.flatnonzero(new.T.reshape(-1))
        self.n_groups = len(self.starts)
        self.group_col = self.starts // n
        self.col_starts = np.searchsorted(self.group_col, np.arange(cols))
        """First group of each column (every column has at least one)."""
        self.pos_flat = self.is_pos[self.doc].astype(np.float64)

    def auroc_p(self, w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """AUROC and two-sided p per column with document weights ``w [n]`` (None: all 1)."""
        w = np.ones(self.n) if w is None else np.asarray(w, np.float64)
        n1 = float(w[self.is_pos].sum())
        n2 = float(w.sum()) - n1
        ws = w[self.doc]
        t = np.add.reduceat(ws, self.starts)
        tp = np.add.reduceat(ws * self.pos_flat, self.starts)
        before = np.cumsum(t) - t - self.group_col * (n1 + n2)  # weight before the group, within its column
        r_pos = np.add.reduceat(tp * (before + (t + 1) / 2), self.col_starts)
        ties = np.add.reduceat(t ** 3 - t, self.col_starts)
        u = r_pos - n1 * (n1 + 1) / 2
        big_n = n1 + n2
        var = n1 * n2 / 12.0 * ((big_n + 1) - ties / (big_n * (big_n - 1)))
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (u - n1 * n2 / 2.0) / np.sqrt(var)
        p = np.where(var > 0, 2 * ndtr(-np.abs(np.nan_to_num(z))), 1.0)
        return u / (n1 * n2), p


def stratified_weights(is_pos: np.ndarray, n_boot: int, seed: int = 0) -> np.ndarray:
    """``[n_boot, n]`` integer weights: each row resamples the positive and the negative documents with
    replacement, each side keeping its size."""
    rng = np.random.default_rng(seed)
    is_pos = np.asarray(is_pos, bool)
    out = np.zeros((n_boot, len(is_pos)))
    for side in (is_pos, ~is_pos):
        idx = np.flatnonzero(side)
        out[:, idx] = rng.multinomial(len(idx), np.full(len(idx), 1.0 / len(idx)), size=n_boot)
    return out


def document_weights(is_pos: np.ndarray, source: np.ndarray, n_boot: int, seed: int = 0) -> np.ndarray:
    """``[n_boot, n]`` integer passage weights from resampling *source documents* with replacement, within each
    side (``is_pos``); ``source [n]`` names each passage's document (passages cut from one Reuters article or
    one Brown file share it). A passage's weight is how often its document was drawn, so the passages of one
    document move together and the CI covers the dependence between them."""
    rng = np.random.default_rng(seed)
    is_pos, source = np.asarray(is_pos, bool), np.asarray(source)
    if len(source) != len(is_pos):
        raise ValueError(f"document_weights: {len(source)} source ids for {len(is_pos)} passages")
    out = np.zeros((n_boot, len(is_pos)))
    for side in (is_pos, ~is_pos):
        idx = np.flatnonzero(side)
        if not len(idx):
            continue
        _, doc = np.unique(source[idx], return_inverse=True)
        n_doc = int(doc.max()) + 1
        draws = rng.multinomial(n_doc, np.full(n_doc, 1.0 / n_doc), size=n_boot)
        out[:, idx] = draws[:, doc]
    return out


def basic_ci(samples: np.ndarray, point, ci: float = CI, axis: int = 0, floor: float | None = 0.0):
    """Basic (reverse-percentile) bootstrap interval ``[2 point - q_hi, 2 point - q_lo]`` (Davison & Hinkley
    1997, eq. 5.6), clipped below at ``floor``. For a count of latents passing a threshold, resampling pushes
    marginal latents over the threshold more often than under it, so the bootstrap counts sit above the point
    estimate and the percentile interval starts at it ("8 [7, 15]"); the basic interval reflects that bias
    around the point instead."""
    q_lo, q_hi = percentile_ci(samples, ci, axis)
    lo, hi = 2 * np.asarray(point) - q_hi, 2 * np.asarray(point) - q_lo
    if floor is not None:
        lo, hi = np.maximum(lo, floor), np.maximum(hi, floor)
    return lo, hi


def percentile_ci(samples: np.ndarray, ci: float = CI, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = (1 - ci) / 2, 1 - (1 - ci) / 2
    return np.quantile(samples, lo, axis=axis), np.quantile(samples, hi, axis=axis)


# -- the financial rule over a dictionary's latents (one path for every diffing method) ---------------------------
BOOT_MARGIN = 0.05
"""Latents more than this below ``min_auroc`` in either contrast are not resampled: their bootstrap AUROC does
not reach the floor (its bootstrap SD is <= 0.015 at these sample sizes: 0.05 is over 3 SDs), so they count as
non-financial in every resample and get no CI (a shortcut, not a knob: it changes no count)."""
COLUMN_CHUNK = 2048
"""Latent columns densified at once (a [documents, chunk] block and its sort order)."""


@dataclass
class LatentSelectivity:
    """The financial rule on every latent of one dictionary (arrays over latents)."""

    broad: Contrast
    genre: Contrast
    broad_other: Contrast | None
    """The broad contrast on the other score (mean when the rule uses max); None when not asked for."""
    financial: np.ndarray
    boot_broad: np.ndarray | None = None
    """[n_boot, m] bootstrap AUROCs of the broad contrast (NaN for latents not resampled)."""
    boot_genre: np.ndarray | None = None
    boot_financial: np.ndarray | None = None
    """[n_boot, m] the financial rule under each resample."""

    def candidates(self, min_auroc: float) -> np.ndarray:
        """The latents worth resampling (within :data:`BOOT_MARGIN` of the floor in both contrasts)."""
        floor = min_auroc - BOOT_MARGIN
        return (self.broad.auroc >= floor) & (self.genre.auroc >= floor)


def contrast_sides(held: HeldoutSet, groups: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """The positive and negative passages of a contrast (a passage in both groups counts as positive)."""
    pos = held.groups[groups[0]]
    return pos, np.setdiff1d(held.groups[groups[1]], pos)


def contrast_all(scores: DocScores, pos: np.ndarray, neg: np.ndarray, kind: str) -> Contrast:
    """The contrast of every latent, :data:`COLUMN_CHUNK` columns at a time."""
    m = scores.max.shape[1]
    parts = [contrast(scores.dense(pos, cols, kind), scores.dense(neg, cols, kind))
             for cols in np.array_split(np.arange(m), max(1, -(-m // COLUMN_CHUNK)))]
    auroc, p = np.concatenate([c.auroc for c in parts]), np.concatenate([c.p for c in parts])
    return Contrast(auroc, p, false_discovery_control(p, method="bh"), len(pos), len(neg))


def financial_selectivity(scores: DocScores, held: HeldoutSet, kind: str, fdr: float, min_auroc: float,
                          other_score: bool = False) -> LatentSelectivity:
    """The project's financial rule on every latent (module doc): both contrasts BH q <= ``fdr`` and AUROC >=
    ``min_auroc`` on the ``kind`` score; ``other_score``: also the broad contrast on the other score."""
    broad = contrast_all(scores, *contrast_sides(held, BROAD), kind)
    genre = contrast_all(scores, *contrast_sides(held, GENRE), kind)
    other = (contrast_all(scores, *contrast_sides(held, BROAD), "mean" if kind == "max" else "max")
             if other_score else None)
    fin = broad.selected(fdr, min_auroc) & genre.selected(fdr, min_auroc)
    return LatentSelectivity(broad, genre, other, fin)


def _resample(scores: DocScores, pos: np.ndarray, neg: np.ndarray, kind: str, cols: np.ndarray, w: np.ndarray):
    """Bootstrap AUROC and p ``[n_boot, len(cols)]`` of the latents ``cols``."""
    docs = np.concatenate([pos, neg])
    is_pos = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
    out_a, out_p = [], []
    for chunk in np.array_split(cols, max(1, -(-len(cols) // COLUMN_CHUNK))):
        ranked = RankedScores(scores.dense(docs, chunk, kind), is_pos)
        boots = [ranked.auroc_p(wi) for wi in w]
        out_a.append(np.stack([a for a, _ in boots])), out_p.append(np.stack([q for _, q in boots]))
    return np.concatenate(out_a, 1), np.concatenate(out_p, 1)


def bootstrap_selectivity(sel: LatentSelectivity, scores: DocScores, held: HeldoutSet, kind: str, fdr: float,
                          min_auroc: float, cols: np.ndarray, w_broad: np.ndarray, w_genre: np.ndarray) -> None:
    """Fill ``sel``'s bootstrap fields for ``cols``; the other latents keep their point p-values in each
    resample's BH step (they cannot pass the AUROC floor anyway)."""
    m, n_boot = len(sel.financial), len(w_broad)
    full = {}
    for name, groups, w, point in (("broad", BROAD, w_broad, sel.broad), ("genre", GENRE, w_genre, sel.genre)):
        a = np.full((n_boot, m), np.nan)
        p = np.tile(point.p, (n_boot, 1))
        if len(cols):
            a[:, cols], p[:, cols] = _resample(scores, *contrast_sides(held, groups), kind, cols, w)
        full[name] = (a, p)

    def rule(a, p):
        return (false_discovery_control(p, method="bh", axis=-1) <= fdr) & (np.nan_to_num(a) >= min_auroc)

    sel.boot_broad, sel.boot_genre = full["broad"][0], full["genre"][0]
    sel.boot_financial = rule(*full["broad"]) & rule(*full["genre"])


def source_documents(held: HeldoutSet) -> np.ndarray:
    """[n_passages] the source document of each passage (``doc_id`` before ``#j``: the passages cut from one
    document share it)."""
    return held.corpus.frame["doc_id"].astype(str).str.split("#", n=1).str[0].to_numpy()


def contrast_weights(held: HeldoutSet, groups: tuple[str, str], n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap weights of the contrast's passages (positives then negatives): source documents resampled
    within each side."""
    pos, neg = contrast_sides(held, groups)
    src = source_documents(held)
    return document_weights(np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)], src[np.r_[pos, neg]],
                            n_boot, seed)


def category_profile(scores: DocScores, held: HeldoutSet, kind: str = "max") -> tuple[np.ndarray, np.ndarray]:
    """Per latent, the category (one vs the rest of its family) it is most selective for, and that AUROC."""
    names, aurocs = [], []
    for family in CATEGORY_FAMILIES.values():
        present = [c for c in family if c in held.groups and len(held.groups[c])]
        if len(present) < 2:
            continue
        union = np.unique(np.concatenate([held.groups[c] for c in present]))
        for c in present:
            pos = held.groups[c]
            neg = np.setdiff1d(union, pos)
            if len(neg) == 0:
                continue
            x_pos, x_neg = scores.dense(pos, kind=kind), scores.dense(neg, kind=kind)
            aurocs.append(contrast(x_pos, x_neg).auroc)
            names.append(c)
    if not names:
        m = scores.max.shape[1]
        return np.full(m, "", object), np.full(m, np.nan)
    a = np.stack(aurocs)
    best = np.nanargmax(np.nan_to_num(a, nan=-1), axis=0)
    return np.array(names, object)[best], a[best, np.arange(a.shape[1])]


def ci_or_nan(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Percentile CI per column; NaN for the columns that were not resampled."""
    lo = np.full(samples.shape[1], np.nan)
    hi = lo.copy()
    ok = np.isfinite(samples).all(0)
    if ok.any():
        lo[ok], hi[ok] = percentile_ci(samples[:, ok])
    return lo, hi
