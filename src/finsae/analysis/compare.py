"""One layer of a pair: match the base and domain SAEs, measure selectivity, and put every number beside its
control.

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
import torch
from scipy.stats import false_discovery_control

from finsae.analysis.config import AnalysisConfig
from finsae.analysis.contexts import build_contexts
from finsae.analysis.doc_scores import Codes, DocScores, doc_scores, encode_rows, pair_correlation, row_chunks
from finsae.analysis.heldout import BROAD, CATEGORY_FAMILIES, GENRE, HeldoutSet
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
from finsae.analysis.selectivity import Contrast, RankedScores, basic_ci, contrast, document_weights, percentile_ci
from finsae.sae import TopKSAE, evaluate
from finsae.sae.evaluate import ReconstructionSums


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


@dataclass
class LayerResult:
    row: dict
    features: pd.DataFrame
    contexts: dict[str, pd.DataFrame] = field(default_factory=dict)
    curves: pd.DataFrame | None = None
    """Overlap curve over tau: columns tau, overlap, seed_ceiling, random."""


BOOT_MARGIN = 0.05
"""Latents more than this below ``min_auroc`` in either contrast are not resampled: their bootstrap AUROC does
not reach the floor (its bootstrap SD is <= 0.015 at these sample sizes: 0.05 is over 3 SDs), so they count as
non-financial in every resample and get no CI."""
COLUMN_CHUNK = 2048
"""Latent columns densified at once (a [documents, chunk] block and its sort order)."""


@dataclass
class _Selectivity:
    broad: Contrast
    genre: Contrast
    broad_other: Contrast
    """The broad contrast on the other score (mean when the rule uses max)."""
    financial: np.ndarray
    boot_broad: np.ndarray | None = None
    """[n_boot, m] bootstrap AUROCs of the broad contrast (NaN for latents not resampled)."""
    boot_genre: np.ndarray | None = None
    boot_financial: np.ndarray | None = None
    """[n_boot, m] the financial rule under each resample."""

    def candidates(self, cfg: AnalysisConfig) -> np.ndarray:
        floor = cfg.min_auroc - BOOT_MARGIN
        return (self.broad.auroc >= floor) & (self.genre.auroc >= floor)


def _sides(held: HeldoutSet, groups: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    pos = held.groups[groups[0]]
    return pos, np.setdiff1d(held.groups[groups[1]], pos)


def _contrast_all(scores: DocScores, pos: np.ndarray, neg: np.ndarray, kind: str) -> Contrast:
    """The contrast of every latent, ``COLUMN_CHUNK`` columns at a time."""
    m = scores.max.shape[1]
    parts = [contrast(scores.dense(pos, cols, kind), scores.dense(neg, cols, kind))
             for cols in np.array_split(np.arange(m), max(1, -(-m // COLUMN_CHUNK)))]
    auroc, p = np.concatenate([c.auroc for c in parts]), np.concatenate([c.p for c in parts])
    return Contrast(auroc, p, false_discovery_control(p, method="bh"), len(pos), len(neg))


def _point(scores: DocScores, held: HeldoutSet, cfg: AnalysisConfig) -> _Selectivity:
    other = "mean" if cfg.score == "max" else "max"
    broad = _contrast_all(scores, *_sides(held, BROAD), cfg.score)
    genre = _contrast_all(scores, *_sides(held, GENRE), cfg.score)
    broad_other = _contrast_all(scores, *_sides(held, BROAD), other)
    fin = broad.selected(cfg.fdr, cfg.min_auroc) & genre.selected(cfg.fdr, cfg.min_auroc)
    return _Selectivity(broad, genre, broad_other, fin)


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


def _bootstrap(sel: _Selectivity, scores: DocScores, held: HeldoutSet, cfg: AnalysisConfig, cols: np.ndarray,
               w_broad: np.ndarray, w_genre: np.ndarray) -> None:
    """Fill ``sel``'s bootstrap fields for ``cols``; the other latents keep their point p-values in each
    resample's BH step (they cannot pass the AUROC floor anyway)."""
    m, n_boot = len(sel.financial), len(w_broad)
    full = {}
    for name, groups, w, point in (("broad", BROAD, w_broad, sel.broad), ("genre", GENRE, w_genre, sel.genre)):
        a = np.full((n_boot, m), np.nan)
        p = np.tile(point.p, (n_boot, 1))
        if len(cols):
            a[:, cols], p[:, cols] = _resample(scores, *_sides(held, groups), cfg.score, cols, w)
        full[name] = (a, p)

    def rule(a, p):
        return (false_discovery_control(p, method="bh", axis=-1) <= cfg.fdr) & (np.nan_to_num(a) >= cfg.min_auroc)

    sel.boot_broad, sel.boot_genre = full["broad"][0], full["genre"][0]
    sel.boot_financial = rule(*full["broad"]) & rule(*full["genre"])


def source_documents(held: HeldoutSet) -> np.ndarray:
    """[n_passages] the source document of each passage (``doc_id`` before ``#j``: the passages cut from one
    document share it)."""
    return held.corpus.frame["doc_id"].astype(str).str.split("#", n=1).str[0].to_numpy()


def _contrast_weights(held: HeldoutSet, groups: tuple[str, str], n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap weights of the contrast's passages (positives then negatives): source documents resampled
    within each side."""
    pos, neg = _sides(held, groups)
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


def cross_fvu(sae: TopKSAE, acts, rows: np.ndarray) -> float:
    """FVU of ``sae`` on ``rows`` of ``acts`` (another model's activations: cross-reconstruction)."""
    return float(evaluate(sae, (x for _, x in row_chunks(acts, rows, 4096))).fvu)


def cross_fvu_refit(sae: TopKSAE, target_acts, source_acts, rows: np.ndarray) -> float:
    """FVU of ``sae`` on ``rows`` of ``target_acts`` after re-estimating its input scale and offset on them (no
    training): ``norm_scale`` set to the target's inverse RMS norm (what ``init_from_sample`` does), and
    ``b_dec`` moved by the difference of the normalised means of target and source (``source_acts``: what the SAE
    was trained on, same rows). A shift or rescaling of the activations then no longer counts as a change of
    features; what remains is what the dictionary cannot express."""
    import copy

    def moments(acts):
        x = np.concatenate([xi.numpy().astype(np.float64) for _, xi in row_chunks(acts, rows, 8192)])
        return x.mean(0), float(np.sqrt((x ** 2).sum(1).mean()))

    mu_t, rms_t = moments(target_acts)
    mu_s, _ = moments(source_acts)
    scale_s = float(sae.norm_scale)
    scale_t = 1.0 / rms_t if rms_t > 0 else scale_s
    fitted = copy.deepcopy(sae)
    with torch.no_grad():
        fitted.norm_scale.fill_(scale_t)
        fitted.b_dec.add_(torch.from_numpy(mu_t * scale_t - mu_s * scale_s).to(fitted.b_dec.dtype))
    return cross_fvu(fitted, target_acts, rows)


def own_fvu(sae: TopKSAE, codes: Codes, acts, rows: np.ndarray, chunk: int = 4096) -> float:
    """FVU of ``sae`` on ``rows`` of the activations it was encoded from, decoded from its stored ``codes``."""
    sums = ReconstructionSums(sae.d_in, sae.num_latents)
    r = torch.from_numpy(np.asarray(rows, np.int64))
    for lo in range(0, len(r), chunk):
        ids = r[lo:lo + chunk]
        x = torch.from_numpy(np.asarray(acts[ids.numpy()], np.float32))
        idx, a = codes.indices[ids], codes.acts[ids]
        sums.update(x, sae.decode(a, idx), idx, a)
    return float(sums.result().fvu)


class LayerMatches(NamedTuple):
    """Every decoder matching of one layer (step 1 of :func:`compare_layer`)."""

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


class Reconstruction(NamedTuple):
    """Held-out FVU of each SAE on its own and on the other model's activations (``layers.parquet`` columns)."""

    fvu_base: float
    fvu_domain: float
    fvu_base_on_domain: float
    """Base SAE on domain activations, with its own input scale and ``b_dec`` (raw)."""
    fvu_domain_on_base: float
    cross_fvu_corrected_base_on_domain: float
    """The same after re-estimating the scale and offset on the target activations (:func:`cross_fvu_refit`)."""
    cross_fvu_corrected_domain_on_base: float


def reconstruction(inp: LayerInputs, codes: dict, rows: np.ndarray) -> Reconstruction:
    return Reconstruction(
        own_fvu(inp.base, codes["base"], inp.base_acts, rows), own_fvu(inp.domain, codes["domain"], inp.domain_acts, rows),
        cross_fvu(inp.base, inp.domain_acts, rows), cross_fvu(inp.domain, inp.base_acts, rows),
        cross_fvu_refit(inp.base, inp.domain_acts, inp.base_acts, rows),
        cross_fvu_refit(inp.domain, inp.base_acts, inp.domain_acts, rows))


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


def compare_layer(inp: LayerInputs, cfg: AnalysisConfig, progress=None) -> LayerResult:
    """All statistics of one layer (see module doc); ``progress(msg)`` is told what runs."""
    say = progress or (lambda msg: None)
    held, tau = inp.heldout, cfg.tau
    n_docs = len(held.corpus.frame)
    if inp.base.d_in != inp.domain.d_in:
        from finsae.errors import ConfigError

        raise ConfigError(f"layer {inp.layer}: the SAEs read different widths (d_in {inp.base.d_in} vs "
                          f"{inp.domain.d_in}); a pair must share the layer width")
    say("matching decoders")
    mt = match_layer(inp, cfg)
    m, wb, wd = mt.main, inp.base.W_dec.detach(), inp.domain.W_dec.detach()
    base_o2o, base_o2o_cos = m.one_to_one, m.one_to_one_cos
    ceilings = {k: v.one_to_one_cos for k, v in mt.seed.items()}

    say("encoding held-out tokens")
    codes = {"base": encode_rows(inp.base, inp.base_acts), "domain": encode_rows(inp.domain, inp.domain_acts)}
    if inp.domain_seed is not None:
        codes["domain_seed"] = encode_rows(inp.domain_seed, inp.domain_acts)
    if inp.base_seed is not None:
        codes["base_seed"] = encode_rows(inp.base_seed, inp.base_acts)
    say("scoring held-out documents")
    scores = {k: doc_scores(c, inp.doc_of_row, n_docs) for k, c in codes.items()}
    codes.pop("domain_seed", None)
    codes.pop("base_seed", None)
    w_broad = _contrast_weights(held, BROAD, cfg.n_boot, cfg.seed)
    w_genre = _contrast_weights(held, GENRE, cfg.n_boot, cfg.seed + 1)
    say("selectivity")
    sel = {k: _point(sc, held, cfg) for k, sc in scores.items()}
    matched = np.flatnonzero(base_o2o_cos >= tau)
    partner = base_o2o[matched]
    cand_b, cand_d = sel["base"].candidates(cfg), sel["domain"].candidates(cfg)
    # every matched pair is resampled on both sides (improvement over all pairs and over financial ones)
    cols_b = np.union1d(np.flatnonzero(cand_b), matched)
    cols_d = np.union1d(np.flatnonzero(cand_d), partner)
    say(f"bootstrap ({cfg.n_boot} resamples, {len(cols_b)} + {len(cols_d)} latents)")
    _bootstrap(sel["base"], scores["base"], held, cfg, cols_b, w_broad, w_genre)
    _bootstrap(sel["domain"], scores["domain"], held, cfg, cols_d, w_broad, w_genre)
    if "domain_seed" in sel:
        _bootstrap(sel["domain_seed"], scores["domain_seed"], held, cfg,
                   np.flatnonzero(sel["domain_seed"].candidates(cfg)), w_broad, w_genre)

    # specialized: financial domain latents whose best base match is below tau
    specialized = sel["domain"].financial & (m.best_ba_cos < tau)
    boot_specialized = (sel["domain"].boot_financial & (m.best_ba_cos < tau)[None]).sum(1)
    floor = _seed_floor(sel.get("domain_seed"), mt.cross_seed, mt.seed.get("domain"), tau)

    say("improvement of matched pairs")
    d_auroc = sel["domain"].broad.auroc[partner] - sel["base"].broad.auroc[matched]
    d_boot = sel["domain"].boot_broad[:, partner] - sel["base"].boot_broad[:, matched]
    fin_pairs = sel["domain"].financial[partner] | sel["base"].financial[matched]
    d_lo, d_hi = _ci_nan(d_boot)
    mean_impr_boot = d_boot[:, fin_pairs].mean(1) if fin_pairs.any() else np.full(cfg.n_boot, np.nan)
    all_lo, all_hi = percentile_ci(d_boot.mean(1)) if len(matched) else (np.nan, np.nan)

    say("activation agreement and cross-reconstruction")
    rng = np.random.default_rng(cfg.seed)
    n_rows = len(inp.doc_of_row)
    rows = np.sort(rng.choice(n_rows, size=min(cfg.agreement_tokens, n_rows), replace=False))
    corr = pair_correlation(codes["base"], codes["domain"], matched, partner, rows)
    fvu = reconstruction(inp, codes, rows)._asdict()
    say("null dictionaries")
    null_rows = np.sort(rng.choice(n_rows, size=min(cfg.null_tokens, n_rows), replace=False))
    nulls = null_overlaps(inp, cfg, null_rows)._asdict()

    say("category profiles")
    cats = {k: category_profile(scores[k], held, cfg.score) for k in ("base", "domain")}

    ov = overlap(base_o2o_cos, tau)
    boot_lat = np.random.default_rng(cfg.seed + 2).integers(0, len(base_o2o_cos), (1000, len(base_o2o_cos)))
    ov_lo, ov_hi = percentile_ci((base_o2o_cos[boot_lat] >= tau).mean(1))
    ceil_vals = [overlap(c, tau) for c in ceilings.values()]
    ceiling = float(np.mean(ceil_vals)) if ceil_vals else np.nan
    cross = mt.cross_seed.one_to_one_cos if mt.cross_seed is not None else None
    n_fin_lo, n_fin_hi = {}, {}
    for k in ("base", "domain"):
        n_fin_lo[k], n_fin_hi[k] = basic_ci(sel[k].boot_financial.sum(1).astype(float), sel[k].financial.sum())
    spec_lo, spec_hi = basic_ci(boot_specialized.astype(float), specialized.sum())
    impr_lo, impr_hi = percentile_ci(mean_impr_boot) if fin_pairs.any() else (np.nan, np.nan)
    row = {
        "layer": inp.layer, "num_latents_base": int(wb.shape[0]), "num_latents_domain": int(wd.shape[0]),
        "k": int(inp.base.k), "overlap": ov, "overlap_ci_low": float(ov_lo), "overlap_ci_high": float(ov_hi),
        "overlap_seed_ceiling": ceiling,
        "overlap_seed_ceiling_base": overlap(ceilings["base"], tau) if "base" in ceilings else np.nan,
        "overlap_seed_ceiling_domain": overlap(ceilings["domain"], tau) if "domain" in ceilings else np.nan,
        "overlap_of_ceiling": ov / ceiling if ceiling and np.isfinite(ceiling) else np.nan,
        "overlap_cross_seed": overlap(cross, tau) if cross is not None else np.nan,
        "overlap_cross_seed_of_ceiling": (overlap(cross, tau) / ceiling
                                          if cross is not None and ceiling and np.isfinite(ceiling) else np.nan),
        "overlap_random": overlap(mt.random.one_to_one_cos, tau), "overlap_index": float((mt.index_cos >= tau).mean()),
        **nulls,
        "overlap_count_max_cardinality": max_matching_at(wb, wd, tau),
        "overlap_seed1": overlap(mt.seed1.one_to_one_cos, tau) if mt.seed1 is not None else np.nan,
        "mutual_nn": float(m.mutual.mean()), "median_best_cos": float(np.median(m.best_ab_cos)),
        "n_financial_base": int(sel["base"].financial.sum()),
        "n_financial_base_ci_low": float(n_fin_lo["base"]), "n_financial_base_ci_high": float(n_fin_hi["base"]),
        "n_financial": int(sel["domain"].financial.sum()),
        "n_financial_ci_low": float(n_fin_lo["domain"]), "n_financial_ci_high": float(n_fin_hi["domain"]),
        "n_specialized": int(specialized.sum()), "n_specialized_ci_low": float(spec_lo),
        "n_specialized_ci_high": float(spec_hi), **floor,
        "n_financial_seed1": int(sel["domain_seed"].financial.sum()) if "domain_seed" in sel else np.nan,
        "n_financial_base_seed1": int(sel["base_seed"].financial.sum()) if "base_seed" in sel else np.nan,
        "n_matched": int(len(matched)), "n_matched_financial": int(fin_pairs.sum()),
        "improvement": float(d_auroc[fin_pairs].mean()) if fin_pairs.any() else np.nan,
        "improvement_ci_low": float(impr_lo), "improvement_ci_high": float(impr_hi),
        "improvement_all": float(d_auroc.mean()) if len(matched) else np.nan,
        "improvement_all_ci_low": float(all_lo), "improvement_all_ci_high": float(all_hi),
        **_genre_improvement(sel, matched, partner, fin_pairs),
        "median_pair_corr": float(np.nanmedian(corr)) if np.isfinite(corr).any() else np.nan,
        **fvu,
        "n_docs_financial": len(held.groups["financial"]), "n_docs_general": len(held.groups["general"]),
        "n_docs_ag_business": len(held.groups["ag_business"]), "n_docs_ag_other": len(held.groups["ag_other"]),
        "agreement_tokens": int(len(rows)), "heldout_tokens": int(n_rows),
    }
    curves = pd.DataFrame({
        "tau": TAUS, "overlap": overlap_curve(base_o2o_cos),
        "seed_ceiling": np.mean([overlap_curve(c) for c in ceilings.values()], 0) if ceilings else np.nan,
        "random": overlap_curve(mt.random.one_to_one_cos), "index": overlap_curve(mt.index_cos),
    }).assign(layer=inp.layer)

    pairs = MatchedPairs(matched, partner, corr, d_auroc, d_lo, d_hi)
    features = features_table(inp, cfg, mt, sel, scores, specialized, pairs, cats)
    say("contexts")
    contexts = layer_contexts(inp, cfg, sel, scores, codes)
    return LayerResult(row, features, contexts, curves)


class MatchedPairs(NamedTuple):
    """The layer's matched pairs (one-to-one at ``tau``) and what was measured on them."""

    matched: np.ndarray
    """Base latents with a one-to-one partner at cosine >= tau."""
    partner: np.ndarray
    """Their domain partners."""
    corr: np.ndarray
    """Activation correlation of each pair on the agreement tokens."""
    d_auroc: np.ndarray
    """Broad-contrast AUROC change, domain - base, of each pair."""
    d_lo: np.ndarray
    d_hi: np.ndarray
    """Its bootstrap interval."""


def features_table(inp: LayerInputs, cfg: AnalysisConfig, mt: LayerMatches, sel: dict, scores: dict,
                   specialized: np.ndarray, pairs: MatchedPairs, cats: dict) -> pd.DataFrame:
    """One row per latent of both SAEs: matches, selectivity with intervals, financial/specialized, pair change."""
    m, wd = mt.main, inp.domain.W_dec.detach()
    base_o2o, base_o2o_cos = m.one_to_one, m.one_to_one_cos
    dom_o2o, dom_o2o_cos = m.b_one_to_one(wd.shape[0])
    matched, partner, corr, d_auroc, d_lo, d_hi = pairs
    feats = []
    corr_by_base = np.full(len(base_o2o), np.nan)
    corr_by_base[matched] = corr
    impr_by_dom = np.full(wd.shape[0], np.nan)
    impr_lo_dom, impr_hi_dom = impr_by_dom.copy(), impr_by_dom.copy()
    impr_by_dom[partner], impr_lo_dom[partner], impr_hi_dom[partner] = d_auroc, d_lo, d_hi
    corr_by_dom = np.full(wd.shape[0], np.nan)
    corr_by_dom[partner] = corr
    for key, name, o2o, o2o_cos, best, best_cos in (
        ("base", inp.base_name, base_o2o, base_o2o_cos, m.best_ab, m.best_ab_cos),
        ("domain", inp.domain_name, dom_o2o, dom_o2o_cos, m.best_ba, m.best_ba_cos),
    ):
        s = sel[key]
        lo_b, hi_b = _ci_nan(s.boot_broad)
        lo_g, hi_g = _ci_nan(s.boot_genre)
        n_lat = len(o2o)
        active = np.asarray((scores[key].max > 0).sum(0)).ravel()
        f = pd.DataFrame({
            "model": name, "role": key, "layer": inp.layer, "latent": np.arange(n_lat),
            "match": o2o, "match_cos": o2o_cos, "best_match": best, "best_match_cos": best_cos,
            "auroc_broad": s.broad.auroc, "auroc_broad_ci_low": lo_b, "auroc_broad_ci_high": hi_b,
            "q_broad": s.broad.q, f"auroc_broad_{'mean' if cfg.score == 'max' else 'max'}": s.broad_other.auroc,
            "auroc_genre": s.genre.auroc, "auroc_genre_ci_low": lo_g, "auroc_genre_ci_high": hi_g,
            "q_genre": s.genre.q, "financial": s.financial,
            "specialized": specialized if key == "domain" else np.zeros(n_lat, bool),
            "improvement": impr_by_dom if key == "domain" else np.full(n_lat, np.nan),
            "improvement_ci_low": impr_lo_dom if key == "domain" else np.full(n_lat, np.nan),
            "improvement_ci_high": impr_hi_dom if key == "domain" else np.full(n_lat, np.nan),
            "pair_corr": corr_by_dom if key == "domain" else corr_by_base,
            "best_category": cats[key][0], "best_category_auroc": cats[key][1],
            "n_active_docs": active.astype(np.int64),
        })
        feats.append(f)
    return pd.concat(feats, ignore_index=True)


def layer_contexts(inp: LayerInputs, cfg: AnalysisConfig, sel: dict, scores: dict, codes: dict) -> dict[str, pd.DataFrame]:
    """Top and sampled contexts of each model's financial latents and as many active control latents."""
    held = inp.heldout
    n_docs = len(held.corpus.frame)
    contexts = {}
    frame = held.corpus.frame
    corpus_of_doc = _corpus_of_doc(held)
    order = np.argsort(inp.doc_of_row, kind="stable")
    bounds = np.searchsorted(inp.doc_of_row[order], np.arange(n_docs + 1))
    for key, name in (("base", inp.base_name), ("domain", inp.domain_name)):
        fin = np.flatnonzero(sel[key].financial)
        rest = np.setdiff1d(np.flatnonzero(np.asarray((scores[key].max > 0).sum(0)).ravel() > 0), fin)
        n_ctrl = min(len(rest), max(cfg.control_latents, len(fin)))
        ctrl = np.random.default_rng(cfg.seed + inp.layer).choice(rest, size=n_ctrl, replace=False) if n_ctrl else rest
        latents = np.union1d(fin, ctrl)

        def doc_rows(doc: int) -> np.ndarray:
            return order[bounds[doc]:bounds[doc + 1]]

        contexts[name] = build_contexts(latents, scores[key].max, codes[key].latent, doc_rows, frame["text"].tolist(),
                                        inp.char_start, frame["doc_id"].tolist(), corpus_of_doc,
                                        seed=cfg.seed)
    return contexts


def _seed_floor(sel_seed: _Selectivity | None, cross: object, seed_match: object, tau: float) -> dict:
    """The specialized rule and its seed floor on ONE latent set: the financial latents of domain seed 1,
    unmatched (best cosine < tau) in base seed 0 (``n_specialized_seed1``: base vs domain under different
    initialisations) and unmatched in domain seed 0 (``n_specialized_seed_floor``: what seed-to-seed instability
    alone flags); each with a basic bootstrap CI, and their ratio with a CI from the same resamples."""
    keys = ("n_specialized_seed1", "n_specialized_seed_floor", "specialized_over_floor")
    out = {f"{k}{s}": np.nan for k in keys for s in ("", "_lo", "_hi")}
    if sel_seed is None or cross is None or seed_match is None:
        return out
    vs_base = cross.best_ba_cos < tau  # cross: base seed 0 (rows) vs domain seed 1 (columns)
    vs_domain = seed_match.best_ab_cos < tau  # rows: domain seed 1, columns: domain seed 0
    fin, boot = sel_seed.financial, sel_seed.boot_financial
    pt = {"n_specialized_seed1": int((fin & vs_base).sum()), "n_specialized_seed_floor": int((fin & vs_domain).sum())}
    bs = {"n_specialized_seed1": (boot & vs_base[None]).sum(1).astype(float),
          "n_specialized_seed_floor": (boot & vs_domain[None]).sum(1).astype(float)}
    for k in pt:
        out[k] = pt[k]
        out[f"{k}_lo"], out[f"{k}_hi"] = map(float, basic_ci(bs[k], pt[k]))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = bs["n_specialized_seed1"] / bs["n_specialized_seed_floor"]
    point = pt["n_specialized_seed1"] / pt["n_specialized_seed_floor"] if pt["n_specialized_seed_floor"] else np.nan
    out["specialized_over_floor"] = point
    if np.isfinite(point) and np.isfinite(ratio).mean() >= 0.9:
        out["specialized_over_floor_lo"], out["specialized_over_floor_hi"] = map(
            float, percentile_ci(ratio[np.isfinite(ratio)]))
    return out


def _genre_improvement(sel: dict, matched: np.ndarray, partner: np.ndarray, fin_pairs: np.ndarray) -> dict:
    """Matched pairs' AUROC change on the genre-matched contrast (AG Business vs AG other), whose sides have
    the same length and register: the broad contrast's change could be one of length or register."""
    d = sel["domain"].genre.auroc[partner] - sel["base"].genre.auroc[matched]
    boot = sel["domain"].boot_genre[:, partner] - sel["base"].boot_genre[:, matched]
    out = {"improvement_genre": float(d[fin_pairs].mean()) if fin_pairs.any() else np.nan,
           "improvement_genre_all": float(d.mean()) if len(d) else np.nan}
    lo, hi = percentile_ci(boot[:, fin_pairs].mean(1)) if fin_pairs.any() else (np.nan, np.nan)
    out["improvement_genre_ci_low"], out["improvement_genre_ci_high"] = float(lo), float(hi)
    return out


def _ci_nan(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Percentile CI per column; NaN for the columns that were not resampled."""
    lo = np.full(samples.shape[1], np.nan)
    hi = lo.copy()
    ok = np.isfinite(samples).all(0)
    if ok.any():
        lo[ok], hi[ok] = percentile_ci(samples[:, ok])
    return lo, hi


def _corpus_of_doc(held: HeldoutSet) -> list[str]:
    """The first named group of each passage, most specific first (a category before a broad side)."""
    out = [""] * len(held.corpus.frame)
    for g in sorted(held.groups, key=lambda g: (g in BROAD, g)):
        for i in held.groups[g]:
            if not out[i]:
                out[i] = g
    return out
