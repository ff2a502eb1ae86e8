"""The warm start's rule and its nulls, on drifts alone (:mod:`finsae.analysis.warmstart` measures the
drifts and builds the table): control A's drift thresholds (:class:`Thresholds`), the rule that flags a
latent (:func:`flagged`), the count of changed latents with its interval (:func:`changed_count`) and what
the affine null and control B say at one layer (:func:`null_checks`)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from finsae.analysis.config import WarmstartConfig

QUANTILE = WarmstartConfig.quantile
"""``analysis.warmstart.quantile``'s default."""
N_BOOT = WarmstartConfig.n_boot
"""``analysis.warmstart.n_boot``'s default."""


def drift_threshold(drift_control: np.ndarray, q: float = QUANTILE) -> float:
    """The control's ``q`` quantile of drift."""
    d = np.asarray(drift_control, np.float64)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        raise ValueError("no finite control drift to take a threshold from")
    return float(np.quantile(d, q))


class Thresholds(NamedTuple):
    """Control A's drift thresholds, one per kind of latent."""

    live: float
    """Control A's ``q`` quantile of its live latents' drifts: what a live latent of a run must exceed."""
    silent: float
    """The same over the latents silent in the start and in control A (the wander of a decoder row with no
    reconstruction gradient, under AuxK): what a born latent must exceed (inf: no latent is silent)."""

    def per_latent(self, live: np.ndarray, born: np.ndarray) -> np.ndarray:
        """Each latent's threshold (inf for a latent that is neither live nor born: it cannot be flagged)."""
        return np.where(live, self.live, np.where(born, self.silent, np.inf))


def thresholds(drift_control: np.ndarray, live: np.ndarray, silent: np.ndarray, q: float) -> Thresholds:
    """:class:`Thresholds` of control A's drifts (``live`` and ``silent`` as in ``warmstart.parquet``)."""
    dc = np.asarray(drift_control, np.float64)
    quiet = dc[np.asarray(silent, bool)]
    return Thresholds(drift_threshold(dc[np.asarray(live, bool)], q),
                      drift_threshold(quiet, q) if np.isfinite(quiet).any() else np.inf)


def above(x: np.ndarray, thr) -> np.ndarray:
    return np.nan_to_num(x, nan=-np.inf) > thr


def flagged(drift: np.ndarray, beyond_null: np.ndarray | None, threshold) -> np.ndarray:
    """The rule: ``drift`` above the threshold and, with a null run, ``beyond_null`` (the drift from where
    the null put the latent) above it too."""
    out = above(drift, threshold)
    return out if beyond_null is None else out & above(beyond_null, threshold)


class ChangedCount(NamedTuple):
    """Latents changed by fine-tuning at one layer (``layers.parquet`` columns)."""

    n_changed: int
    """Live or born latents the rule (:func:`flagged`) flags against control A and the affine null."""
    n_changed_lo: float
    n_changed_hi: float
    """95% percentile interval over resamples of both runs' latents."""
    n_changed_control: int
    """Control A's live latents above its own threshold (in sample: ~``1 - quantile`` by construction)."""
    drift_threshold: float
    """Control A's quantile of its live latents' drift."""
    drift_threshold_silent: float
    """Control A's quantile of its silent latents' drift (born latents; inf: none silent)."""
    n_live_warmstart: int


def _boot_quantile(x: np.ndarray, q: float, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``q`` quantile of each of ``n_boot`` resamples of the finite values of ``x`` (inf when there are
    none)."""
    x = x[np.isfinite(x)]
    if not len(x):
        return np.full(n_boot, np.inf)
    return np.quantile(x[rng.integers(0, len(x), (n_boot, len(x)))], q, axis=1)


def changed_count(drift_domain: np.ndarray, drift_control: np.ndarray, q: float = QUANTILE,
                  n_boot: int = N_BOOT, seed: int = 0, live: np.ndarray | None = None,
                  beyond_null: np.ndarray | None = None, born: np.ndarray | None = None,
                  silent: np.ndarray | None = None) -> ChangedCount:
    """``n_changed``: live latents (default: all) and ``born`` ones that the rule flags (:func:`flagged`, with
    ``beyond_null`` when given) at control A's :class:`Thresholds` (from its ``live`` and ``silent`` latents),
    with a 95% interval over resamples of the latents of both runs (the thresholds move too)."""
    dom, ctl = np.asarray(drift_domain, np.float64), np.asarray(drift_control, np.float64)
    if dom.shape != ctl.shape:
        raise ValueError(f"domain and control drifts must cover the same latents, got {dom.shape} and "
                         f"{ctl.shape}")
    masks = [np.ones(dom.shape, bool) if live is None else np.asarray(live, bool),
             *(np.zeros(dom.shape, bool) if a is None else np.asarray(a, bool) for a in (born, silent))]
    beyond = None if beyond_null is None else np.asarray(beyond_null, np.float64)
    if any(a.shape != dom.shape for a in (*masks, *([] if beyond is None else [beyond]))):
        raise ValueError(f"live, born, silent and beyond_null must have one entry per latent ({len(dom)})")
    live, born, silent = masks
    thr = thresholds(ctl, live, silent, q)
    cand = live | born
    d, b, is_born = dom[cand], None if beyond is None else beyond[cand], born[cand]
    rng = np.random.default_rng(seed)
    t_live, t_silent = (_boot_quantile(ctl[mask], q, n_boot, rng)[:, None] for mask in (live, silent))
    pick = rng.integers(0, len(d), (n_boot, len(d)))
    t = np.where(is_born[pick], t_silent, t_live)
    counts = flagged(d[pick], None if b is None else b[pick], t).sum(1)
    lo, hi = np.quantile(counts, [0.025, 0.975])
    n = int(flagged(d, b, thr.per_latent(live, born)[cand]).sum())
    ctl_live = ctl[live]
    return ChangedCount(n, float(lo), float(hi), int(above(ctl_live, thr.live).sum()), thr.live, thr.silent,
                        int(live.sum()))


class NullChecks(NamedTuple):
    """What the warm start's nulls say at one layer (``layers.parquet`` columns)."""

    n_changed_vs_control: int
    """Live or born latents whose domain drift exceeds control A's threshold, before the affine null."""
    affine_null: bool
    """The affine-map null run was there (else ``n_changed`` = ``n_changed_vs_control``)."""
    n_moved_affine: float
    """Live latents the affine null alone drifts beyond the threshold (the global change; NaN: no null)."""
    n_tested_control_b: float
    """Latents live or born in control B (NaN: no control B)."""
    n_changed_control_b: float
    """Of them, those the domain run's rule flags when control B stands in for the domain run and control A
    for its null (the base model's affine image of itself is the identity): false positives out of sample."""
    fp_rate_control_b: float
    fp_rate_control_b_lo: float
    fp_rate_control_b_hi: float
    """``n_changed_control_b / n_tested_control_b`` and its 95% Wilson interval."""
    fp_nominal: float
    """The rate the threshold promises, ``1 - quantile``."""
    n_died: int
    """Latents firing in the start and control A that fire on no held-out row after the domain run."""
    n_died_control_b: float
    """The same after control B (NaN: no control B): how many die without fine-tuning."""
    n_born: int
    """Latents silent in the start and control A that fire after the domain run."""
    n_born_control_b: float
    """The same after control B (NaN: no control B)."""
    drift_ratio: float
    """Median decoder drift of the live latents, domain over control A: the layer's effect in units of its own
    control (comparable across layers trained at different k and lr)."""
    drift_ratio_beyond_affine: float
    """Median drift of the domain run from the affine null, over control A's median drift (NaN: no null)."""


def _wilson(k: int, n: int) -> tuple[float, float, float]:
    """``k / n`` and its 95% Wilson interval (NaN when ``n`` is 0)."""
    if not n:
        return float("nan"), float("nan"), float("nan")
    ci = binomtest(k, n).proportion_ci(method="wilson")
    return k / n, float(ci.low), float(ci.high)


def null_checks(table: pd.DataFrame, thr: Thresholds, q: float) -> NullChecks:
    """The :class:`NullChecks` of one layer's ``warmstart.parquet`` rows at control A's thresholds ``thr``."""
    flag = {c: table[c].to_numpy(bool) for c in ("live", "died", "born", "live_control_b", "died_control_b",
                                                   "born_control_b", "changed_vs_control")}
    col = {c: table[c].to_numpy(np.float64) for c in ("drift_domain", "drift_control", "drift_control_b",
                                                         "drift_affine", "drift_beyond_affine",
                                                         "drift_control_b_from_a")}
    live, nan = flag["live"], float("nan")
    has_affine = bool(np.isfinite(col["drift_affine"]).any())
    has_b = bool(np.isfinite(col["drift_control_b"]).any())
    tested_b = flag["live_control_b"] | flag["born_control_b"]
    hits_b = flagged(col["drift_control_b"], col["drift_control_b_from_a"] if has_affine else None,
                     thr.per_latent(flag["live_control_b"], flag["born_control_b"]))
    fp = _wilson(int(hits_b.sum()), int(tested_b.sum())) if has_b else (nan, nan, nan)
    scale = float(np.nanmedian(col["drift_control"][live])) if live.any() else nan

    def ratio(name: str) -> float:
        x = col[name][live]
        return float(np.nanmedian(x)) / scale if np.isfinite(x).any() and scale > 0 else nan

    def count_b(name: str) -> float:
        return float(flag[name].sum()) if has_b else nan

    return NullChecks(
        int(flag["changed_vs_control"].sum()), has_affine,
        float(above(col["drift_affine"][live], thr.live).sum()) if has_affine else nan,
        float(tested_b.sum()) if has_b else nan, float(hits_b.sum()) if has_b else nan, *fp, 1.0 - q,
        int(flag["died"].sum()), count_b("died_control_b"), int(flag["born"].sum()),
        count_b("born_control_b"),
        ratio("drift_domain"), ratio("drift_beyond_affine"))
