"""Uncertainty that includes seeds (issue 33 §3): mean ± seed SD, a hierarchical bootstrap over (seed, source
document), and a "no power" verdict where a test cannot move.

A statistic is computed per seed (one SAE, crosscoder or warm-start run) from per-document contributions: a
count of financial latents, an overlap, a mean. It is given as ``statistic(seed, weights)``: ``weights`` is an
``[m, n_docs]`` array of document weights (integer resampling counts; a row of ones is the data as they are),
and the function returns the ``[m]`` values of seed ``seed``'s statistic under each row, vectorised over rows
(:func:`sum_statistic` builds one from ``[n_docs]`` contributions; the selectivity code already takes
document weights). One bootstrap replicate draws ``n_seeds`` seeds with replacement and, for each drawn seed,
the documents with replacement, and averages the drawn seeds' statistics; the interval is the percentile
interval of those means. Documents are drawn afresh for each drawn seed (``documents="within_seed"``: the
two-stage bootstrap of a nested design) or once per replicate for all of its seeds (``"shared"``: when every
seed is scored on the same documents, so that a document's effect is common to the seeds).

Where each seed's document resamples are already computed (the analysis draws one set of document weights per
layer, stratified by contrast, and scores every SAE of the layer under it), :func:`replicate_estimate` takes
the ``[n_seeds, B]`` replicates instead of a statistic of weights: replicate ``b`` of every seed came from the
same document draw, so ``"shared"`` picks one column per replicate for all drawn seeds and ``"within_seed"``
one per slot. Statistics with no document term (an overlap of two decoders) pass none: only the seeds are
resampled. Counts of latents over a threshold take the basic interval (reflected around the mean over seeds,
as :func:`finsae.analysis.selectivity.basic_ci` does for one SAE): resampling documents pushes marginal
latents over the threshold more often than under it.

No power: where every seed's value sits at the bound the test can reach (a seed floor at which every financial
latent is unmatched in both SAEs: nothing can fall below it), where a value is undefined, or where no resample
moves it, the result says so (:attr:`SeedEstimate.power` False, with the reason) and its text is "no power
(reason)", never a bare number such as 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from finsae.errors import ConfigError, require

DOCUMENT_MODES = ("within_seed", "shared")
"""How documents are resampled in a replicate (module doc)."""
Statistic = Callable[[int, np.ndarray], np.ndarray]
"""``statistic(seed, weights [m, n_docs]) -> [m]``: one seed's statistic under m document weightings."""
SEED_COLUMNS: dict[str, str] = {
    "name": "str: what the row measures",
    "value": "float: mean over seeds of the per-seed statistic (read only where power is True)",
    "seed_sd": "float: SD over seeds (ddof 1; NaN with one seed)",
    "lo": "float: lower end of the hierarchical bootstrap percentile interval (seeds, then documents)",
    "hi": "float: upper end of that interval",
    "n_seeds": "int: seeds behind the value",
    "n_docs": "int: documents per seed (the fewest of any seed)",
    "power": "bool: False where the test cannot move (reason says why)",
    "reason": "str: why there is no power ('' where there is)",
}
"""Columns of :func:`seed_table`."""
_CHUNK = 256
"""Weight rows handed to the statistic at a time (bounds memory at 256 × n_docs floats)."""


@dataclass(frozen=True)
class SeedBootstrapConfig:
    """Knobs of the hierarchical bootstrap."""

    n_boot: int = 1000
    """Bootstrap replicates."""
    ci: float = 0.95
    """Level of the percentile interval."""
    seed: int = 0
    """Seeds the draws of seeds and of documents (separate streams)."""
    documents: str = "within_seed"
    """``within_seed`` or ``shared`` (module doc)."""
    resample_seeds: bool = True
    """False: the seeds stay fixed and only documents are drawn (the interval that ignores the seed term)."""

    def __post_init__(self):
        require(self.n_boot >= 2, f"seed bootstrap n_boot must be >= 2, got {self.n_boot}")
        require(0 < self.ci < 1, f"seed bootstrap ci must be in (0, 1), got {self.ci}")
        require(self.documents in DOCUMENT_MODES,
                f"seed bootstrap documents must be one of {DOCUMENT_MODES}, got {self.documents!r}")


@dataclass(frozen=True)
class Power:
    """Whether a test can move at all."""

    power: bool
    """False where the statistic cannot move (saturated at a bound, undefined, or fixed under resampling)."""
    reason: str
    """Why not, in words ('' where there is power)."""


@dataclass(frozen=True)
class SeedEstimate:
    """A statistic over seeds and documents: mean ± seed SD with a hierarchical bootstrap interval."""

    value: float
    """Mean over seeds of the per-seed statistic (a measurement; a finding only where ``power``)."""
    seed_sd: float
    """SD of the per-seed statistic over seeds (ddof 1; NaN with one seed)."""
    lo: float
    """Lower end of the hierarchical bootstrap percentile interval."""
    hi: float
    """Upper end of that interval."""
    per_seed: np.ndarray
    """[n_seeds] the statistic of each seed on its documents as they are."""
    n_docs: tuple[int, ...]
    """Documents of each seed."""
    power: bool
    """False where the test cannot move (``reason`` says why)."""
    reason: str
    """Why there is no power ('' where there is)."""
    digits: int = 1
    """Decimals of :meth:`text`."""

    @property
    def n_seeds(self) -> int:
        return len(self.per_seed)

    def text(self, digits: int | None = None) -> str:
        """``"36.3 ± 4.1 [32.0, 40.0] (3 seeds)"``, or ``"no power (reason)"``."""
        digits = self.digits if digits is None else digits
        if not self.power:
            return f"no power ({self.reason})"
        sd = "" if self.n_seeds < 2 else f" ± {self.seed_sd:.{digits}f}"
        seeds = f"{self.n_seeds} seed{'s' if self.n_seeds != 1 else ''}"
        if not (np.isfinite(self.lo) and np.isfinite(self.hi)):
            return f"{self.value:.{digits}f}{sd} ({seeds}, no interval)"
        return f"{self.value:.{digits}f}{sd} [{self.lo:.{digits}f}, {self.hi:.{digits}f}] ({seeds})"

    def row(self, name: str) -> dict:
        """One row of :func:`seed_table`."""
        return {"name": name, "value": self.value, "seed_sd": self.seed_sd, "lo": self.lo, "hi": self.hi,
                "n_seeds": self.n_seeds, "n_docs": min(self.n_docs), "power": self.power,
                "reason": self.reason}


def seed_table(estimates: Mapping[str, SeedEstimate]) -> pd.DataFrame:
    """Long table of named estimates (:data:`SEED_COLUMNS`)."""
    return pd.DataFrame([e.row(name) for name, e in estimates.items()], columns=list(SEED_COLUMNS))


def sum_statistic(contributions: Sequence[np.ndarray], mean: bool = False) -> Statistic:
    """The statistic ``Σ_d w_d c_sd`` (``mean``: divided by ``Σ_d w_d``) of per-seed contributions ``c_s``."""
    values = [np.asarray(c, np.float64) for c in contributions]
    require(all(v.ndim == 1 and len(v) > 0 for v in values),
            "per-seed contributions must be non-empty 1-d arrays (one value per document)")

    def statistic(seed: int, weights: np.ndarray) -> np.ndarray:
        total = weights @ values[seed]
        return total / weights.sum(1) if mean else total

    return statistic


def _bound(bound, n_seeds: int, name: str) -> np.ndarray | None:
    if bound is None:
        return None
    out = np.broadcast_to(np.asarray(bound, np.float64), (n_seeds,))
    require(np.isfinite(out).all(), f"the {name} bound must be finite numbers, got {bound!r}")
    return out


def power_check(per_seed: np.ndarray, replicates: np.ndarray | None, lower=None, upper=None) -> Power:
    """Power of a test from its per-seed values, its bootstrap replicates and the bounds it can reach
    (scalars or one per seed, e.g. the number of financial latents a floor can count): none where every seed
    sits at one bound, where a seed's value is undefined, or where no replicate moves (``replicates`` None:
    nothing was resampled, one seed of a statistic without documents: a measurement without an interval, not a
    test without power)."""
    per_seed = np.asarray(per_seed, np.float64)
    n = len(per_seed)
    if not np.isfinite(per_seed).all():
        return Power(False, f"undefined (NaN) in {int((~np.isfinite(per_seed)).sum())} of {n} seeds")
    for name, bound in (("upper", _bound(upper, n, "upper")), ("lower", _bound(lower, n, "lower"))):
        tol = 1e-12 * max(1.0, np.abs(bound).max()) if bound is not None else 0.0
        if bound is not None and np.allclose(per_seed, bound, rtol=0, atol=tol):
            shown = ", ".join(f"{b:g}" for b in np.unique(bound))
            return Power(False, f"saturated: every seed's value equals its {name} bound ({shown}), so the "
                                "test cannot move past it")
    if replicates is None:
        return Power(True, "")
    replicates = np.asarray(replicates, np.float64)
    finite = replicates[np.isfinite(replicates)]
    if not len(finite) or np.ptp(finite) == 0:
        return Power(False, f"fixed at {per_seed.mean():g} in every resample of seeds and documents")
    return Power(True, "")


def _seed_slots(n_seeds: int, cfg: SeedBootstrapConfig, rng: np.random.Generator) -> np.ndarray:
    """[n_boot, n_seeds] which seed fills each slot of each replicate."""
    if not cfg.resample_seeds:
        return np.broadcast_to(np.arange(n_seeds), (cfg.n_boot, n_seeds))
    return rng.integers(0, n_seeds, size=(cfg.n_boot, n_seeds))


def _evaluate(statistic: Statistic, seed: int, weights: np.ndarray) -> np.ndarray:
    out = np.asarray(statistic(seed, weights), np.float64)
    if out.shape != (len(weights),):
        raise ConfigError(f"the statistic of seed {seed} returned shape {out.shape} for {len(weights)} "
                          f"weight rows: it must return one value per row")
    return out


def hierarchical_bootstrap(statistic: Statistic, n_docs: Sequence[int],
                           cfg: SeedBootstrapConfig = SeedBootstrapConfig(),
                           lower=None, upper=None) -> SeedEstimate:
    """Mean ± seed SD and the hierarchical bootstrap interval of ``statistic`` over seeds ``0..len(n_docs)-1``
    (seed s has ``n_docs[s]`` documents), with its power (:func:`power_check`, ``lower``/``upper`` the bounds
    the statistic can reach)."""
    n_docs = tuple(int(n) for n in n_docs)
    require(len(n_docs) >= 1 and min(n_docs) >= 1, f"every seed needs at least one document, got {n_docs}")
    shared = cfg.documents == "shared"
    require(not shared or len(set(n_docs)) == 1,
            f"documents='shared' needs the same documents for every seed, got counts {n_docs}")
    rng_seeds, rng_docs = (np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(2))
    per_seed = np.array([_evaluate(statistic, s, np.ones((1, n)))[0] for s, n in enumerate(n_docs)])
    slots = _seed_slots(len(n_docs), cfg, rng_seeds)
    shared_weights = (rng_docs.multinomial(n_docs[0], np.full(n_docs[0], 1 / n_docs[0]), size=cfg.n_boot)
                      if shared else None)
    values = np.empty(slots.shape)
    for s, n in enumerate(n_docs):
        reps, slot = np.nonzero(slots == s)
        for start in range(0, len(reps), _CHUNK):
            b, j = reps[start:start + _CHUNK], slot[start:start + _CHUNK]
            w = shared_weights[b] if shared else rng_docs.multinomial(n, np.full(n, 1 / n), size=len(b))
            values[b, j] = _evaluate(statistic, s, w.astype(np.float64))
    return _estimate(per_seed, values.mean(1), n_docs, cfg, lower, upper)


def _estimate(per_seed: np.ndarray, replicates: np.ndarray | None, n_docs: tuple[int, ...],
              cfg: SeedBootstrapConfig, lower=None, upper=None, basic: bool = False,
              clip: float | None = None, fixed_is_no_power: bool = True) -> SeedEstimate:
    """The :class:`SeedEstimate` of per-seed values and the replicates of their mean (None: nothing resampled,
    no interval); ``basic``: the interval reflected around the mean, clipped below at ``clip``;
    ``fixed_is_no_power``: replicates that never move mean no power (else only the bounds decide)."""
    lo = hi = np.nan
    finite = replicates[np.isfinite(replicates)] if replicates is not None else np.empty(0)
    if len(finite):
        lo, hi = np.quantile(finite, [(1 - cfg.ci) / 2, (1 + cfg.ci) / 2])
        if basic:
            mean = float(per_seed.mean())
            lo, hi = 2 * mean - hi, 2 * mean - lo
            if clip is not None:
                lo, hi = max(lo, clip), max(hi, clip)
    power = power_check(per_seed, replicates if fixed_is_no_power else None, lower, upper)
    sd = float(per_seed.std(ddof=1)) if len(per_seed) > 1 else float("nan")
    return SeedEstimate(float(per_seed.mean()), sd, float(lo), float(hi), per_seed, n_docs,
                        power.power, power.reason)


def replicate_estimate(per_seed: Sequence[float], doc_replicates: np.ndarray | None = None,
                       cfg: SeedBootstrapConfig = SeedBootstrapConfig(), lower=None, upper=None,
                       basic: bool = False, n_docs: int = 0, clip: float | None = None) -> SeedEstimate:
    """Mean ± seed SD and the hierarchical interval of a statistic whose document resamples are computed
    (module doc): ``per_seed [S]`` on the documents as they are, ``doc_replicates [S, B]`` under B document
    draws shared by the seeds (None: no document term); ``lower``/``upper`` the bounds of :func:`power_check`;
    ``basic`` for counts over a threshold (clipped below at ``clip``: a count is never negative); ``n_docs``
    the documents behind them (recorded, 0 where none). One seed without documents gives no interval. Power is
    decided by the bounds (and NaN): seeds that agree on a value the documents do not move measure it exactly
    (a zero-width interval), where a statistic at its bound cannot move at all."""
    per_seed = np.asarray(per_seed, np.float64)
    require(per_seed.ndim == 1 and len(per_seed) >= 1, f"per-seed values must be a non-empty 1-d array, got "
                                                       f"shape {per_seed.shape}")
    n_seeds = len(per_seed)
    rng_seeds, rng_docs = (np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(2))
    slots = _seed_slots(n_seeds, cfg, rng_seeds)
    if doc_replicates is None:
        resampled = n_seeds > 1 and cfg.resample_seeds
        values = per_seed[slots]
    else:
        reps = np.asarray(doc_replicates, np.float64)
        require(reps.ndim == 2 and reps.shape[0] == n_seeds and reps.shape[1] >= 1,
                f"document replicates must be [n_seeds={n_seeds}, B >= 1], got shape {reps.shape}")
        width = 1 if cfg.documents == "shared" else n_seeds
        draws = rng_docs.integers(0, reps.shape[1], size=(cfg.n_boot, width))
        values, resampled = reps[slots, draws], True
    return _estimate(per_seed, values.mean(1) if resampled else None, (int(n_docs),) * n_seeds, cfg,
                     lower, upper, basic, clip, fixed_is_no_power=False)


@dataclass(frozen=True)
class SeedSample:
    """One statistic at every seed of a layer, before the bootstrap (what a diffing method hands the layer
    job: :attr:`finsae.analysis.methods.base.MethodResult.seeds`)."""

    per_seed: np.ndarray
    """[S] the statistic of each seed on the documents as they are (seed order)."""
    doc_replicates: np.ndarray | None = None
    """[S, B] under B document draws shared by the seeds (None: no document term, e.g. an overlap)."""
    lower: float | np.ndarray | None = None
    """Bound the statistic cannot fall below (per seed or one; None: none): at it on every seed, no power."""
    upper: float | np.ndarray | None = None
    """Bound it cannot rise above (a floor: the seed's financial latents)."""
    basic: bool = False
    """Basic interval (counts over a threshold)."""
    clip: float | None = None
    """The interval's lowest value (0 for a count)."""
    n_docs: int = 0
    """Source documents behind each seed's value (0: none)."""
    digits: int = 1
    """Decimals of its text (3 for a share)."""

    def estimate(self, cfg: SeedBootstrapConfig = SeedBootstrapConfig()) -> SeedEstimate:
        est = replicate_estimate(self.per_seed, self.doc_replicates, cfg, self.lower, self.upper, self.basic,
                                 self.n_docs, self.clip)
        return replace(est, digits=self.digits)


ESTIMATE_COLUMNS: dict[str, str] = {
    "seed_mean": "float: mean over seeds (a measurement; a finding only where power)",
    "seed_sd": "float: SD over seeds (ddof 1; NaN with one seed)",
    "seed_lo": "float: lower end of the hierarchical bootstrap interval over (seed, source document)",
    "seed_hi": "float: its upper end (NaN, both: one seed of a statistic without documents)",
    "n_seeds": "int: seeds behind the value",
    "seed_power": "bool: False where the test cannot move (seed_text says why)",
    "seed_text": "str: '36.3 ± 4.1 [32.0, 40.0] (3 seeds)', or 'no power (reason)', never a bare 0",
}
"""Per statistic ``X`` of a layer, its ``layers.parquet`` columns ``X_{suffix}``
(:func:`estimate_columns`)."""


def estimate_columns(name: str, est: SeedEstimate) -> dict:
    """The ``layers.parquet`` columns of one estimate (:data:`ESTIMATE_COLUMNS`)."""
    return {f"{name}_seed_mean": est.value, f"{name}_seed_sd": est.seed_sd, f"{name}_seed_lo": est.lo,
            f"{name}_seed_hi": est.hi, f"{name}_n_seeds": est.n_seeds, f"{name}_seed_power": est.power,
            f"{name}_seed_text": est.text()}


def hierarchical_sum(contributions: Sequence[np.ndarray], cfg: SeedBootstrapConfig = SeedBootstrapConfig(),
                     mean: bool = False, lower=None, upper=None) -> SeedEstimate:
    """:func:`hierarchical_bootstrap` of a per-seed sum (``mean``: mean) of per-document contributions
    (one ``[n_docs]`` array per seed, or a ``[n_seeds, n_docs]`` array)."""
    contributions = list(contributions)
    return hierarchical_bootstrap(sum_statistic(contributions, mean), [len(c) for c in contributions], cfg,
                                  lower, upper)
