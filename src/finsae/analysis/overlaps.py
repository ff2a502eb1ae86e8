"""Decoder matchings of one layer and the overlaps read from them, each beside its null (definitions:
:mod:`finsae.analysis.compare`): the base-vs-domain overlap with its latent-resampling interval, the seed
ceilings, the cross-seed overlap, the null dictionaries (isotropic random rows, rows drawn from the activations'
covariance, an adjacent layer's SAE), the same-index comparison and the overlap curve over tau."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

from finsae.analysis.config import AnalysisConfig
from finsae.analysis.matching import (
    TAUS,
    Matching,
    covariance_rows,
    index_cosine,
    match_decoders,
    max_matching_at,
    overlap,
    overlap_curve,
    random_unit_rows,
)
from finsae.analysis.selectivity import percentile_ci

if TYPE_CHECKING:
    from finsae.analysis.compare import LayerInputs


class LayerMatches(NamedTuple):
    """Every decoder matching of one layer."""

    main: Matching
    """Base seed 0 (rows) vs domain seed 0 (columns)."""
    random: Matching
    """Isotropic random unit rows vs the domain SAE (0 at tau = 0.7 by construction; kept, labelled so)."""
    index_cos: np.ndarray
    """Cosine of latent #f with latent #f (the write-up's comparison)."""
    cross_seed: Matching | None
    """Base seed 0 vs domain seed 1: different initialisations, as in the seed ceiling (two SAEs that share their
    init seed keep some latents near the same random start, which inflates the same-seed overlap)."""
    seed1: Matching | None
    """Base seed 1 vs domain seed 1: the seed spread of the overlap."""
    seed: dict
    """``base`` / ``domain`` -> seed 1 (rows) vs seed 0 (columns) of that model: the seed ceilings."""

    @property
    def ceilings(self) -> dict[str, np.ndarray]:
        """One-to-one cosines of each model's seed pair."""
        return {k: v.one_to_one_cos for k, v in self.seed.items()}


def match_layer(inp: LayerInputs, cfg: AnalysisConfig) -> LayerMatches:
    wb, wd = inp.base.W_dec.detach(), inp.domain.W_dec.detach()

    def match(a, b):
        return match_decoders(a, b, candidates=cfg.candidates)

    seed = {name: match(seed_sae.W_dec.detach(), sae.W_dec.detach())
            for name, sae, seed_sae in (("base", inp.base, inp.base_seed), ("domain", inp.domain, inp.domain_seed))
            if seed_sae is not None}
    ds, bs = inp.domain_seed, inp.base_seed
    return LayerMatches(
        main=match(wb, wd), random=match(random_unit_rows(*wb.shape, seed=cfg.seed + 1), wd),
        index_cos=index_cosine(wb, wd), cross_seed=match(wb, ds.W_dec.detach()) if ds is not None else None,
        seed1=match(bs.W_dec.detach(), ds.W_dec.detach()) if bs is not None and ds is not None else None, seed=seed)


class OverlapFields(NamedTuple):
    """The layer's overlaps at tau (``layers.parquet`` columns)."""

    overlap: float
    overlap_ci_low: float
    overlap_ci_high: float
    """Percentile interval over resamples of the base latents (``analysis.independent.overlap_n_boot``)."""
    overlap_seed_ceiling: float
    """Mean of the two seed ceilings (the ratios' denominator)."""
    overlap_seed_ceiling_base: float
    overlap_seed_ceiling_domain: float
    overlap_of_ceiling: float
    overlap_cross_seed: float
    overlap_cross_seed_of_ceiling: float
    overlap_random: float
    overlap_index: float


def overlap_fields(mt: LayerMatches, cfg: AnalysisConfig) -> OverlapFields:
    tau, cos = cfg.tau, mt.main.one_to_one_cos
    ov = overlap(cos, tau)
    boot_lat = np.random.default_rng(cfg.seed + 2).integers(0, len(cos), (cfg.independent.overlap_n_boot, len(cos)))
    ov_lo, ov_hi = percentile_ci((cos[boot_lat] >= tau).mean(1))
    ceilings = mt.ceilings
    ceil_vals = [overlap(c, tau) for c in ceilings.values()]
    ceiling = float(np.mean(ceil_vals)) if ceil_vals else np.nan
    has_ceiling = bool(ceiling) and np.isfinite(ceiling)
    cross = overlap(mt.cross_seed.one_to_one_cos, tau) if mt.cross_seed is not None else None
    return OverlapFields(
        overlap=ov, overlap_ci_low=float(ov_lo), overlap_ci_high=float(ov_hi), overlap_seed_ceiling=ceiling,
        overlap_seed_ceiling_base=overlap(ceilings["base"], tau) if "base" in ceilings else np.nan,
        overlap_seed_ceiling_domain=overlap(ceilings["domain"], tau) if "domain" in ceilings else np.nan,
        overlap_of_ceiling=ov / ceiling if has_ceiling else np.nan,
        overlap_cross_seed=cross if cross is not None else np.nan,
        overlap_cross_seed_of_ceiling=cross / ceiling if cross is not None and has_ceiling else np.nan,
        overlap_random=overlap(mt.random.one_to_one_cos, tau), overlap_index=float((mt.index_cos >= tau).mean()))


class NullOverlaps(NamedTuple):
    """Overlap at tau of null dictionaries against the domain SAE (``layers.parquet`` columns)."""

    overlap_null: float
    """Rows drawn from N(0, cov) of the layer's base activations, normalised (:func:`covariance_rows`)."""
    overlap_null_adjacent: float
    """The base SAE of an adjacent layer (NaN when none was trained)."""
    null_adjacent_layer: float
    """Which layer that was."""


def null_overlaps(inp: LayerInputs, cfg: AnalysisConfig, rows: np.ndarray) -> NullOverlaps:
    wd = inp.domain.W_dec.detach()
    drawn = covariance_rows(np.asarray(inp.base_acts[rows], np.float32), inp.base.num_latents, seed=cfg.seed + 3)
    null = overlap(match_decoders(drawn, wd, candidates=cfg.candidates).one_to_one_cos, cfg.tau)
    if inp.adjacent is None or inp.adjacent.d_in != wd.shape[1]:
        return NullOverlaps(null, np.nan, np.nan)
    adj = match_decoders(inp.adjacent.W_dec.detach(), wd, candidates=cfg.candidates).one_to_one_cos
    return NullOverlaps(null, overlap(adj, cfg.tau), float(inp.adjacent_layer))


class MatchGeometry(NamedTuple):
    """Other reads of the main matching (``layers.parquet`` columns)."""

    overlap_count_max_cardinality: int
    """The most one-to-one pairs at cosine >= tau (beside ``n_matched``, the summed-cosine assignment's)."""
    overlap_seed1: float
    """Overlap of the seed-1 pair (the overlap's seed spread)."""
    mutual_nn: float
    median_best_cos: float


def match_geometry(inp: LayerInputs, mt: LayerMatches, tau: float) -> MatchGeometry:
    return MatchGeometry(
        overlap_count_max_cardinality=max_matching_at(inp.base.W_dec.detach(), inp.domain.W_dec.detach(), tau),
        overlap_seed1=overlap(mt.seed1.one_to_one_cos, tau) if mt.seed1 is not None else np.nan,
        mutual_nn=float(mt.main.mutual.mean()), median_best_cos=float(np.median(mt.main.best_ab_cos)))


def overlap_curves(mt: LayerMatches, layer: int) -> pd.DataFrame:
    """The overlap over tau (``curves.parquet`` rows): base vs domain, seed ceiling, random rows, same index."""
    ceilings = mt.ceilings
    return pd.DataFrame({
        "tau": TAUS, "overlap": overlap_curve(mt.main.one_to_one_cos),
        "seed_ceiling": np.mean([overlap_curve(c) for c in ceilings.values()], 0) if ceilings else np.nan,
        "random": overlap_curve(mt.random.one_to_one_cos), "index": overlap_curve(mt.index_cos),
    }).assign(layer=layer)
