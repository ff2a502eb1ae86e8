"""The independent SAEs at every seed of a layer (issue 33 §3): each count and overlap once per seed, with its
document replicates, for the hierarchical bootstrap of :mod:`finsae.analysis.seeds`.

Seed 0 is the pair's tag; each seed repeat (``{tag}_seed1``, ``{tag}_seed2``, ...) is one more SAE of each
model trained alike with another seed. Per seed ``s`` (all seeds), on the SAEs of that seed:

* ``n_financial`` / ``n_financial_base`` — financial latents of the domain / base SAE
  (:mod:`finsae.analysis.selectivity`);
* ``n_specialized`` — financial domain latents whose best base match (same seed) is below tau;
* ``overlap`` — the one-to-one share at tau of base vs domain (same seed, so same initialisation).

Per repeat ``s`` >= 1, each against seed 0 (two initialisations, like with like):

* ``overlap_cross_seed`` — base seed 0 vs domain seed s; ``overlap_seed_ceiling_base`` / ``_domain`` — seed s
  vs seed 0 of one model (what instability alone allows);
* ``n_specialized_repeat`` — domain seed s's financial latents unmatched (< tau) in base seed 0;
  ``n_specialized_seed_floor`` — the same latents unmatched in domain seed 0 (the floor, on one latent set);
  ``n_specialized_over_floor`` — their difference, the test. A floor at which every financial latent is
  unmatched in both SAEs cannot move: "no power".

Counts carry the document replicates of the financial rule under the layer's shared document draws
(:func:`finsae.analysis.selectivity.contrast_weights` with the analysis seed, the draws every SAE of the layer
is scored under) and take the basic interval; overlaps compare decoders and have no document term.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from finsae.analysis.config import AnalysisConfig
from finsae.analysis.doc_scores import DocScores, doc_scores, encode_rows
from finsae.analysis.heldout import BROAD, GENRE, HeldoutSet
from finsae.analysis.matching import match_decoders, overlap
from finsae.analysis.seeds import SeedSample
from finsae.analysis.selectivity import (
    LatentSelectivity,
    bootstrap_selectivity,
    contrast_weights,
    financial_selectivity,
    source_documents,
)
from finsae.sae import TopKSAE

PER_SEED = ("n_financial", "n_financial_base", "n_specialized", "overlap")
"""Statistics of every seed (seed 0 included)."""
PER_REPEAT = ("overlap_cross_seed", "overlap_seed_ceiling_base", "overlap_seed_ceiling_domain",
              "n_specialized_repeat", "n_specialized_seed_floor", "n_specialized_over_floor")
"""Statistics of each seed repeat against seed 0."""


class SeedSaes(NamedTuple):
    """Both models' SAEs of one seed."""

    tag: str
    base: TopKSAE
    domain: TopKSAE


class SeedRepeatInputs(NamedTuple):
    """What the per-seed statistics of one layer read (activation arrays row-aligned across models)."""

    seeds: list[SeedSaes]
    """Seed 0 first, then the repeats in seed order."""
    base_acts: object
    domain_acts: object
    doc_of_row: np.ndarray
    """[N] index into ``heldout.corpus.frame`` of each token row."""
    heldout: HeldoutSet


class FinancialCount(NamedTuple):
    """The financial rule on one SAE: which latents pass, and under each shared document draw."""

    financial: np.ndarray
    """[m] bool."""
    boot_financial: np.ndarray
    """[n_boot, m] bool (latents far from the floor: False in every draw, as in the point rule)."""


def document_draws(held: HeldoutSet, cfg: AnalysisConfig) -> tuple[np.ndarray, np.ndarray]:
    """The broad and genre contrasts' document resamples every seed is counted under (the layer comparison's
    own: :func:`finsae.analysis.compare.layer_selectivity` draws them with the same seeds)."""
    return contrast_weights(held, BROAD, cfg.n_boot, cfg.seed), contrast_weights(held, GENRE, cfg.n_boot,
                                                                                 cfg.seed + 1)


def count_from_scores(scores: DocScores, held: HeldoutSet, cfg: AnalysisConfig,
                      weights: tuple[np.ndarray, np.ndarray]) -> FinancialCount:
    """The financial rule on an SAE's held-out document scores and its document replicates."""
    sel: LatentSelectivity = financial_selectivity(scores, held, cfg.score, cfg.fdr, cfg.min_auroc)
    cols = np.flatnonzero(sel.candidates(cfg.min_auroc))
    bootstrap_selectivity(sel, scores, held, cfg.score, cfg.fdr, cfg.min_auroc, cols, *weights)
    return FinancialCount(sel.financial, sel.boot_financial)


def financial_count(sae: TopKSAE, acts, inp: SeedRepeatInputs, cfg: AnalysisConfig,
                    weights: tuple[np.ndarray, np.ndarray]) -> FinancialCount:
    """The financial rule on ``sae`` over the held-out tokens ``acts`` and its document replicates."""
    held = inp.heldout
    return count_from_scores(doc_scores(encode_rows(sae, acts), inp.doc_of_row, len(held.corpus.frame)), held,
                             cfg, weights)


def counts_from_layer_scores(scores: dict[str, DocScores], inp: SeedRepeatInputs, seed_tag: str,
                             cfg: AnalysisConfig) -> dict[tuple[str, int], FinancialCount]:
    """The financial counts of the SAEs the layer's comparison already scored (``scores``: its keys ``base``,
    ``domain`` for seed 0 and ``base_seed``, ``domain_seed`` for the repeat ``seed_tag``), by ``(role, seed
    index in inp.seeds)``, for :func:`seed_samples` (``known``) not to encode them again."""
    keys = {0: ("base", "domain")}
    repeat = next((i for i, s in enumerate(inp.seeds) if i and s.tag == seed_tag), None)
    if repeat is not None:
        keys[repeat] = ("base_seed", "domain_seed")
    weights = document_draws(inp.heldout, cfg)
    return {(role, i): count_from_scores(scores[key], inp.heldout, cfg, weights)
            for i, pair in keys.items() for role, key in zip(("base", "domain"), pair, strict=True)
            if key in scores}


def _count(fc: FinancialCount, keep: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """The count of financial latents (among ``keep``) and its replicates."""
    keep = np.ones(len(fc.financial), bool) if keep is None else keep
    return float((fc.financial & keep).sum()), (fc.boot_financial & keep[None]).sum(1).astype(np.float64)


def seed_samples(inp: SeedRepeatInputs, cfg: AnalysisConfig, progress: Callable[[str], None] | None = None,
                 known: dict[tuple[str, int], FinancialCount] | None = None) -> dict[str, SeedSample]:
    """Every statistic of the module doc at every seed of the layer, by name (:data:`PER_SEED`, and
    :data:`PER_REPEAT` where the layer has repeats). ``known``: ``(model role, seed index) -> FinancialCount``
    already computed under the same document draws (the seed-0 and seed-1 SAEs that the layer's comparison
    scores), not computed again."""
    say = progress or (lambda msg: None)
    held, tau = inp.heldout, cfg.tau
    weights = document_draws(held, cfg)
    n_docs = int(len(np.unique(source_documents(held))))

    def match(a: TopKSAE, b: TopKSAE):
        return match_decoders(a.W_dec.detach(), b.W_dec.detach(), candidates=cfg.candidates)

    fin: dict[tuple[str, int], FinancialCount] = dict(known or {})
    for i, s in enumerate(inp.seeds):
        say(f"financial latents at seed {i} ({s.tag})")
        for role, sae, acts in (("base", s.base, inp.base_acts), ("domain", s.domain, inp.domain_acts)):
            if (role, i) not in fin:
                fin[role, i] = financial_count(sae, acts, inp, cfg, weights)
    rows: dict[str, list] = {name: [] for name in (*PER_SEED, *PER_REPEAT)}
    say("matching the seeds' decoders")
    for i, s in enumerate(inp.seeds):
        same = match(s.base, s.domain)
        n_fin = _count(fin["domain", i])
        rows["n_financial"].append(n_fin)
        rows["n_financial_base"].append(_count(fin["base", i]))
        rows["n_specialized"].append(_count(fin["domain", i], same.best_ba_cos < tau))
        rows["overlap"].append(overlap(same.one_to_one_cos, tau))
        if i == 0:
            continue
        first = inp.seeds[0]
        cross, floor = match(first.base, s.domain), match(s.domain, first.domain)
        rows["overlap_cross_seed"].append(overlap(cross.one_to_one_cos, tau))
        rows["overlap_seed_ceiling_base"].append(overlap(match(s.base, first.base).one_to_one_cos, tau))
        rows["overlap_seed_ceiling_domain"].append(overlap(floor.one_to_one_cos, tau))
        vs_base = _count(fin["domain", i], cross.best_ba_cos < tau)
        vs_floor = _count(fin["domain", i], floor.best_ab_cos < tau)
        rows["n_specialized_repeat"].append(vs_base)
        rows["n_specialized_seed_floor"].append(vs_floor + (n_fin[0],))
        rows["n_specialized_over_floor"].append((vs_base[0] - vs_floor[0], vs_base[1] - vs_floor[1],
                                                 n_fin[0] - vs_floor[0]))
    return {name: _sample(name, values, n_docs) for name, values in rows.items() if values}


def _sample(name: str, values: list, n_docs: int) -> SeedSample:
    """The :class:`SeedSample` of one statistic from its per-seed entries: a float (an overlap: no documents),
    ``(count, replicates)``, or ``(count, replicates, upper bound)`` (a test that cannot rise past its bound:
    the floor, its excess)."""
    if name.startswith("overlap"):
        return SeedSample(np.array(values, np.float64), digits=3)
    per_seed = np.array([v[0] for v in values])
    reps = np.stack([v[1] for v in values])
    upper = np.array([v[2] for v in values]) if len(values[0]) > 2 else None
    clip = None if name == "n_specialized_over_floor" else 0.0  # a difference may be negative, a count not
    return SeedSample(per_seed, reps, upper=upper, basic=True, clip=clip, n_docs=n_docs)
