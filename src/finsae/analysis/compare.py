"""The independent-SAE comparison of one layer: match the base and domain SAEs, measure selectivity, and put
every number beside its control (:func:`compare_layer`, a short sequence of typed steps: matchings and overlaps
in :mod:`finsae.analysis.overlaps`, selectivity in :mod:`finsae.analysis.selectivity`, floors and
cross-reconstruction in :mod:`finsae.analysis.controls`; the per-latent table and contexts in
:mod:`finsae.analysis.feature_table`).

Definitions (README "Feature comparison" repeats them):

* **overlap** — share of base latents whose one-to-one decoder match in the domain SAE has cosine >= tau.
* **seed ceiling** — the same overlap between two seeds of the *same* model and layer: what SAE instability
  alone allows; base-vs-domain overlap is also reported as a fraction of it.
* **cross-seed overlap** — base seed 0 vs domain seed 1: base-vs-domain under the ceiling's conditions (two
  different initialisations). The plain overlap compares two SAEs started from the same seed, which keeps a few
  latents near their common random start (the same-index share shows how many) and so reads higher.
* **seed ceilings** are reported per model (``overlap_seed_ceiling_base`` / ``_domain``); their mean
  (``overlap_seed_ceiling``) is kept for the ratios ``overlap_of_ceiling``.
* **nulls** — ``overlap_null``: rows drawn from the covariance of the layer's base activations, normalised (the
  chance level of a dictionary that knows the layer's anisotropy); ``overlap_null_adjacent``: the base SAE of
  an adjacent layer; ``overlap_random``: isotropic random unit rows, 0 at tau = 0.7 by construction (kept and
  labelled so); ``overlap_index``: the same-index cosine (latent #f vs #f, what comparing indices measures).
* **max-cardinality count** — ``overlap_count_max_cardinality``: the most one-to-one pairs at cosine >= tau,
  beside ``n_matched`` (pairs >= tau in the summed-cosine assignment).
* **financial** latent — :mod:`finsae.analysis.selectivity` (FDR and AUROC floor in both contrasts).
* **specialized** domain latent — financial, and its best base match has cosine < tau.
* **seed floor, on one latent set** — the financial latents of domain seed 1: ``n_specialized_seed1`` counts
  those unmatched (< tau) in base seed 0, ``n_specialized_seed_floor`` those unmatched in domain seed 0 (what
  SAE instability flags with no fine-tuning at all), ``specialized_over_floor`` their ratio.
* **cross-reconstruction** — raw (``fvu_base_on_domain``) and with the input scale and offset re-estimated on
  the target activations (``cross_fvu_corrected_*``).
* **intervals** — bootstrap over source documents within each side of a contrast; counts over a threshold
  get the basic interval (:func:`finsae.analysis.selectivity.basic_ci`). ``*_seed1`` columns: the seed spread.
* **improvement** of a matched pair (one-to-one, cosine >= tau) — the domain latent's broad-contrast AUROC
  minus its base partner's, with a paired bootstrap CI over documents; never a ratio of raw activations. Per
  layer: its mean over the pairs with a financial member (``improvement``: selected by one member passing the
  rule, so it leans toward that member, as any selected comparison does) and over all matched pairs
  (``improvement_all``: no selection).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from finsae.analysis.config import AnalysisConfig
from finsae.analysis.controls import Reconstruction, SeedFloor, reconstruction, seed_floor
from finsae.analysis.doc_scores import DocScores, doc_scores, encode_rows, pair_correlation
from finsae.analysis.feature_table import MatchedPairs, features_table, layer_contexts
from finsae.analysis.heldout import BROAD, GENRE, HeldoutSet
from finsae.analysis.rows import RowFields
from finsae.analysis.overlaps import (
    LayerMatches,
    MatchGeometry,
    NullOverlaps,
    OverlapFields,
    match_geometry,
    match_layer,
    null_overlaps,
    overlap_curves,
    overlap_fields,
)
from finsae.analysis.selectivity import (
    LatentSelectivity,
    basic_ci,
    bootstrap_selectivity,
    category_profile,
    ci_or_nan,
    contrast_weights,
    financial_selectivity,
    percentile_ci,
)
from finsae.errors import ConfigError
from finsae.sae import TopKSAE


@dataclass
class LayerInputs:
    """Everything one layer's comparison reads. Activation arrays share their rows (same token table)."""

    layer: int
    base_name: str
    domain_name: str
    base: TopKSAE
    domain: TopKSAE
    base_acts: object
    domain_acts: object
    doc_of_row: np.ndarray
    """[N] index into ``heldout.corpus.frame`` of each token row."""
    char_start: np.ndarray
    """[N] first character of each token row in its document's text."""
    heldout: HeldoutSet
    base_seed: TopKSAE | None = None
    """A second seed of the base SAE (same setting): seed ceiling."""
    domain_seed: TopKSAE | None = None
    """A second seed of the domain SAE: seed ceiling and seed floor."""
    adjacent: TopKSAE | None = None
    """The base SAE of an adjacent layer (same tag): a null dictionary that shares the residual stream's basis
    but not the layer."""
    adjacent_layer: int | None = None


class LatentCounts(NamedTuple):
    """Financial latents of each model and specialized domain latents, with basic bootstrap intervals."""

    n_financial_base: int
    n_financial_base_ci_low: float
    n_financial_base_ci_high: float
    n_financial: int
    """Of the domain SAE."""
    n_financial_ci_low: float
    n_financial_ci_high: float
    n_specialized: int
    """Financial domain latents whose best base match is below tau."""
    n_specialized_ci_low: float
    n_specialized_ci_high: float


class SeedCounts(NamedTuple):
    """Financial latents of the seed repeats (NaN without them): the seed spread of the counts."""

    n_financial_seed1: float
    n_financial_base_seed1: float


class PairChange(NamedTuple):
    """Selectivity change of the matched pairs (domain AUROC - base AUROC) and their activation agreement."""

    n_matched: int
    n_matched_financial: int
    """Pairs with a financial member."""
    improvement: float
    """Mean broad-contrast change over the pairs with a financial member, with its percentile interval."""
    improvement_ci_low: float
    improvement_ci_high: float
    improvement_all: float
    """The same over all matched pairs (no selection)."""
    improvement_all_ci_low: float
    improvement_all_ci_high: float
    improvement_genre: float
    """On the genre-matched contrast, whose sides share length and register."""
    improvement_genre_all: float
    improvement_genre_ci_low: float
    improvement_genre_ci_high: float
    median_pair_corr: float


class HeldoutCounts(NamedTuple):
    """What the layer was measured on."""

    n_docs_financial: int
    n_docs_general: int
    n_docs_ag_business: int
    n_docs_ag_other: int
    agreement_tokens: int
    heldout_tokens: int


@dataclass
class IndependentRow(RowFields):
    """The independent-SAE comparison's ``layers.parquet`` fields of one layer."""

    num_latents_base: int
    num_latents_domain: int
    k: int
    overlaps: OverlapFields
    nulls: NullOverlaps
    geometry: MatchGeometry
    counts: LatentCounts
    floor: SeedFloor
    seed_counts: SeedCounts
    pairs: PairChange
    reconstruction: Reconstruction
    docs: HeldoutCounts


@dataclass
class LayerResult:
    row: IndependentRow
    features: pd.DataFrame
    contexts: dict[str, pd.DataFrame] = field(default_factory=dict)
    curves: pd.DataFrame | None = None
    """Overlap curve over tau: columns tau, overlap, seed_ceiling, random."""
    scores: dict[str, DocScores] = field(default_factory=dict)
    """The held-out document scores of each SAE compared (``base``, ``domain``, ``base_seed``,
    ``domain_seed`` where they exist): the per-seed statistics reuse them."""


def compare_layer(inp: LayerInputs, cfg: AnalysisConfig, progress=None) -> LayerResult:
    """All statistics of one layer (see module doc); ``progress(msg)`` is told what runs."""
    say = progress or (lambda msg: None)
    if inp.base.d_in != inp.domain.d_in:
        raise ConfigError(f"layer {inp.layer}: the SAEs read different widths (d_in {inp.base.d_in} vs "
                          f"{inp.domain.d_in}); a pair must share the layer width")
    say("matching decoders")
    mt = match_layer(inp, cfg)
    say("encoding held-out tokens")
    codes = encode_all(inp)
    say("scoring held-out documents")
    scores = {k: doc_scores(c, inp.doc_of_row, len(inp.heldout.corpus.frame)) for k, c in codes.items()}
    for seed_key in ("domain_seed", "base_seed"):  # scored: their codes are not read again
        codes.pop(seed_key, None)
    say(f"selectivity and bootstrap ({cfg.n_boot} resamples)")
    sel = layer_selectivity(inp, cfg, scores, mt)
    specialized = sel["domain"].financial & (mt.main.best_ba_cos < cfg.tau)
    say("activation agreement and cross-reconstruction")
    rng = np.random.default_rng(cfg.seed)
    n_rows = len(inp.doc_of_row)
    rows = np.sort(rng.choice(n_rows, size=min(cfg.agreement_tokens, n_rows), replace=False))
    pairs, change = matched_pairs(mt, sel, codes, rows, cfg)
    fvu = reconstruction(inp, codes, rows)
    say("null dictionaries")
    null_rows = np.sort(rng.choice(n_rows, size=min(cfg.null_tokens, n_rows), replace=False))
    nulls = null_overlaps(inp, cfg, null_rows)
    wb, held = inp.base.W_dec, inp.heldout
    row = IndependentRow(
        num_latents_base=int(wb.shape[0]), num_latents_domain=int(inp.domain.W_dec.shape[0]), k=int(inp.base.k),
        overlaps=overlap_fields(mt, cfg), nulls=nulls, geometry=match_geometry(inp, mt, cfg.tau),
        counts=latent_counts(sel, specialized, mt, cfg.tau),
        floor=seed_floor(sel.get("domain_seed"), mt.cross_seed, mt.seed.get("domain"), cfg.tau),
        seed_counts=SeedCounts(*(int(sel[k].financial.sum()) if k in sel else np.nan
                                 for k in ("domain_seed", "base_seed"))),
        pairs=change, reconstruction=fvu,
        docs=HeldoutCounts(*(len(held.groups[g]) for g in ("financial", "general", "ag_business", "ag_other")),
                           agreement_tokens=int(len(rows)), heldout_tokens=int(n_rows)))
    say("category profiles")
    cats = {k: category_profile(scores[k], held, cfg.score) for k in ("base", "domain")}
    features = features_table(inp, cfg, mt, sel, scores, specialized, pairs, cats)
    say("contexts")
    contexts = layer_contexts(inp, cfg, sel, scores, codes)
    return LayerResult(row, features, contexts, overlap_curves(mt, inp.layer), scores)


def encode_all(inp: LayerInputs) -> dict:
    """Codes of the held-out tokens in each SAE (the seed repeats where they exist)."""
    codes = {"base": encode_rows(inp.base, inp.base_acts), "domain": encode_rows(inp.domain, inp.domain_acts)}
    if inp.domain_seed is not None:
        codes["domain_seed"] = encode_rows(inp.domain_seed, inp.domain_acts)
    if inp.base_seed is not None:
        codes["base_seed"] = encode_rows(inp.base_seed, inp.base_acts)
    return codes


def layer_selectivity(inp: LayerInputs, cfg: AnalysisConfig, scores: dict[str, DocScores],
                      mt: LayerMatches) -> dict[str, LatentSelectivity]:
    """The financial rule on every SAE of the layer, with bootstrap intervals for the latents near the floor
    and for every matched pair (improvement over all pairs and over financial ones)."""
    held = inp.heldout
    w_broad = contrast_weights(held, BROAD, cfg.n_boot, cfg.seed)
    w_genre = contrast_weights(held, GENRE, cfg.n_boot, cfg.seed + 1)
    sel = {k: financial_selectivity(sc, held, cfg.score, cfg.fdr, cfg.min_auroc, other_score=True)
           for k, sc in scores.items()}
    matched = np.flatnonzero(mt.main.one_to_one_cos >= cfg.tau)
    partner = mt.main.one_to_one[matched]
    resampled = {"base": np.union1d(np.flatnonzero(sel["base"].candidates(cfg.min_auroc)), matched),
                 "domain": np.union1d(np.flatnonzero(sel["domain"].candidates(cfg.min_auroc)), partner)}
    if "domain_seed" in sel:
        resampled["domain_seed"] = np.flatnonzero(sel["domain_seed"].candidates(cfg.min_auroc))
    for k, cols in resampled.items():
        bootstrap_selectivity(sel[k], scores[k], held, cfg.score, cfg.fdr, cfg.min_auroc, cols, w_broad, w_genre)
    return sel


def latent_counts(sel: dict[str, LatentSelectivity], specialized: np.ndarray, mt: LayerMatches,
                  tau: float) -> LatentCounts:
    boot_specialized = (sel["domain"].boot_financial & (mt.main.best_ba_cos < tau)[None]).sum(1)
    ci = {k: basic_ci(sel[k].boot_financial.sum(1).astype(float), sel[k].financial.sum()) for k in ("base", "domain")}
    spec_lo, spec_hi = basic_ci(boot_specialized.astype(float), specialized.sum())
    return LatentCounts(
        int(sel["base"].financial.sum()), float(ci["base"][0]), float(ci["base"][1]),
        int(sel["domain"].financial.sum()), float(ci["domain"][0]), float(ci["domain"][1]),
        int(specialized.sum()), float(spec_lo), float(spec_hi))


def matched_pairs(mt: LayerMatches, sel: dict[str, LatentSelectivity], codes: dict, rows: np.ndarray,
                  cfg: AnalysisConfig) -> tuple[MatchedPairs, PairChange]:
    """The one-to-one pairs at tau, their AUROC change with paired bootstrap intervals (broad and genre-matched
    contrasts) and their activation correlation on ``rows``."""
    matched = np.flatnonzero(mt.main.one_to_one_cos >= cfg.tau)
    partner = mt.main.one_to_one[matched]
    b, d = sel["base"], sel["domain"]
    d_auroc = d.broad.auroc[partner] - b.broad.auroc[matched]
    d_boot = d.boot_broad[:, partner] - b.boot_broad[:, matched]
    fin_pairs = d.financial[partner] | b.financial[matched]
    d_lo, d_hi = ci_or_nan(d_boot)
    any_fin = fin_pairs.any()
    mean_impr_boot = d_boot[:, fin_pairs].mean(1) if any_fin else np.full(cfg.n_boot, np.nan)
    all_lo, all_hi = percentile_ci(d_boot.mean(1)) if len(matched) else (np.nan, np.nan)
    impr_lo, impr_hi = percentile_ci(mean_impr_boot) if any_fin else (np.nan, np.nan)
    g = d.genre.auroc[partner] - b.genre.auroc[matched]
    g_boot = d.boot_genre[:, partner] - b.boot_genre[:, matched]
    g_lo, g_hi = percentile_ci(g_boot[:, fin_pairs].mean(1)) if any_fin else (np.nan, np.nan)
    corr = pair_correlation(codes["base"], codes["domain"], matched, partner, rows)
    change = PairChange(
        n_matched=int(len(matched)), n_matched_financial=int(fin_pairs.sum()),
        improvement=float(d_auroc[fin_pairs].mean()) if any_fin else np.nan,
        improvement_ci_low=float(impr_lo), improvement_ci_high=float(impr_hi),
        improvement_all=float(d_auroc.mean()) if len(matched) else np.nan,
        improvement_all_ci_low=float(all_lo), improvement_all_ci_high=float(all_hi),
        improvement_genre=float(g[fin_pairs].mean()) if any_fin else np.nan,
        improvement_genre_all=float(g.mean()) if len(g) else np.nan,
        improvement_genre_ci_low=float(g_lo), improvement_genre_ci_high=float(g_hi),
        median_pair_corr=float(np.nanmedian(corr)) if np.isfinite(corr).any() else np.nan)
    return MatchedPairs(matched, partner, corr, d_auroc, d_lo, d_hi), change
