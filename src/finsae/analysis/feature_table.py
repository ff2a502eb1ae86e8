"""The independent-SAE comparison's per-latent outputs of one layer: ``features.parquet`` rows (one per latent of
both SAEs) and the contexts of each model's financial and control latents for labeling."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

from finsae.analysis.config import AnalysisConfig
from finsae.analysis.contexts import build_contexts
from finsae.analysis.heldout import BROAD, HeldoutSet
from finsae.analysis.selectivity import ci_or_nan

if TYPE_CHECKING:
    from finsae.analysis.compare import LayerInputs
    from finsae.analysis.overlaps import LayerMatches


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
        lo_b, hi_b = ci_or_nan(s.boot_broad)
        lo_g, hi_g = ci_or_nan(s.boot_genre)
        n_lat = len(o2o)
        active = np.asarray((scores[key].max > 0).sum(0)).ravel()
        dom = key == "domain"
        f = pd.DataFrame({
            "model": name, "role": key, "layer": inp.layer, "latent": np.arange(n_lat),
            "match": o2o, "match_cos": o2o_cos, "best_match": best, "best_match_cos": best_cos,
            "auroc_broad": s.broad.auroc, "auroc_broad_ci_low": lo_b, "auroc_broad_ci_high": hi_b,
            "q_broad": s.broad.q, f"auroc_broad_{'mean' if cfg.score == 'max' else 'max'}": s.broad_other.auroc,
            "auroc_genre": s.genre.auroc, "auroc_genre_ci_low": lo_g, "auroc_genre_ci_high": hi_g,
            "q_genre": s.genre.q, "financial": s.financial,
            "specialized": specialized if dom else np.zeros(n_lat, bool),
            "improvement": impr_by_dom if dom else np.full(n_lat, np.nan),
            "improvement_ci_low": impr_lo_dom if dom else np.full(n_lat, np.nan),
            "improvement_ci_high": impr_hi_dom if dom else np.full(n_lat, np.nan),
            "pair_corr": corr_by_dom if dom else corr_by_base,
            "best_category": cats[key][0], "best_category_auroc": cats[key][1],
            "n_active_docs": active.astype(np.int64),
        })
        feats.append(f)
    return pd.concat(feats, ignore_index=True)


def layer_contexts(inp: LayerInputs, cfg: AnalysisConfig, sel: dict, scores: dict,
                   codes: dict) -> dict[str, pd.DataFrame]:
    """Top and sampled contexts of each model's financial latents and as many active control latents."""
    held = inp.heldout
    n_docs = len(held.corpus.frame)
    contexts = {}
    frame = held.corpus.frame
    corpus_of_doc = corpus_of_docs(held)
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


def corpus_of_docs(held: HeldoutSet) -> list[str]:
    """The first named group of each passage, most specific first (a category before a broad side)."""
    out = [""] * len(held.corpus.frame)
    for g in sorted(held.groups, key=lambda g: (g in BROAD, g)):
        for i in held.groups[g]:
            if not out[i]:
                out[i] = g
    return out
