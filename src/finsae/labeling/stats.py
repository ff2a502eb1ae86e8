"""Scores and their uncertainty: AUROC, balanced accuracy, F1, derangements for shuffled-label controls, and
bootstrap CIs (over latents) of a mean score minus its control."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy.stats import rankdata


def auroc(pos: Sequence[float], neg: Sequence[float]) -> float:
    """P(score of a positive > score of a negative), ties counting half (Mann-Whitney U); NaN if a side is empty."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([pos, neg]))
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def balanced_accuracy(truth: Sequence[int], pred: Sequence[int]) -> float:
    """Mean of the recall on positives and on negatives (NaN when either class is absent)."""
    t, p = np.asarray(truth, bool), np.asarray(pred, bool)
    if t.all() or (~t).all():
        return float("nan")
    return float(((p & t).sum() / t.sum() + (~p & ~t).sum() / (~t).sum()) / 2)


def f1(truth: Sequence[int], pred: Sequence[int]) -> float:
    t, p = np.asarray(truth, bool), np.asarray(pred, bool)
    tp = (p & t).sum()
    denom = 2 * tp + (p & ~t).sum() + (~p & t).sum()
    return float(2 * tp / denom) if denom else float("nan")


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation with no fixed point (n >= 2), so every latent gets another latent's label."""
    if n < 2:
        raise ValueError("a derangement needs at least 2 items")
    while True:
        p = rng.permutation(n)
        if not (p == np.arange(n)).any():
            return p


class DiffCI(NamedTuple):
    """Mean score, mean control, their mean paired difference with a percentile bootstrap CI, and the share of
    latents whose score beats their own control."""

    n: int
    """Latents with both numbers."""
    score: float
    control: float
    diff: float
    lo: float
    """2.5th percentile of the bootstrapped mean difference."""
    hi: float
    """97.5th percentile."""
    beats: float
    """Share of latents with score > control."""


def paired_diff_ci(score: Sequence[float], control: Sequence[float], n_boot: int,
                   rng: np.random.Generator) -> DiffCI:
    s, c = np.asarray(score, float), np.asarray(control, float)
    ok = np.isfinite(s) & np.isfinite(c)
    s, c = s[ok], c[ok]
    nan = float("nan")
    if len(s) == 0:
        return DiffCI(0, nan, nan, nan, nan, nan, nan)
    d = s - c
    boots = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    return DiffCI(len(s), float(s.mean()), float(c.mean()), float(d.mean()), float(np.percentile(boots, 2.5)),
                  float(np.percentile(boots, 97.5)), float((d > 0).mean()))


def unpaired_diff_ci(a: Sequence[float], b: Sequence[float], n_boot: int, rng: np.random.Generator) -> DiffCI:
    """Mean of ``a`` minus mean of ``b`` (two groups of latents), each resampled on its own."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    nan = float("nan")
    if len(a) == 0 or len(b) == 0:
        return DiffCI(min(len(a), len(b)), nan, nan, nan, nan, nan, nan)
    boots = (a[rng.integers(0, len(a), size=(n_boot, len(a)))].mean(1)
             - b[rng.integers(0, len(b), size=(n_boot, len(b)))].mean(1))
    return DiffCI(len(a), float(a.mean()), float(b.mean()), float(a.mean() - b.mean()),
                  float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5)), nan)
