"""What a labeling run reports: ``LabelSummary`` (``artifacts/labels/{pair}/summary.json``) and the per-layer
table of every score beside its controls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd

from finsae.labeling.examples import latent_rng
from finsae.labeling.pipeline import LABEL_SCORERS, METRICS
from finsae.labeling.stats import paired_diff_ci, unpaired_diff_ci
from finsae.summary import StageSummary

NAN = float("nan")


@dataclass
class LabelSummary(StageSummary):
    """Headline numbers of one labeling run. Per scorer metric ``m`` (e.g. ``embedding_auroc``): ``m`` = mean over
    the labelled financial/specialized latents, ``m_control`` = their mean with labels shuffled across the
    financial latents of each layer (for ``intruder_accuracy``: chance), ``m_diff`` (``_lo``, ``_hi``: 95%
    bootstrap CI over latents) = the paired difference, ``m_beats_control`` = the share of latents beating their
    own shuffled control, ``m_random`` = the mean over the random non-financial control latents (own labels),
    ``m_generic`` = the mean score of the constant generic label on the same latents and ``m_generic_diff``
    (``_lo``, ``_hi``) = own minus generic, paired, with its CI; ``m_matched_control`` = the mean over the targets'
    selectivity-matched controls (latents as selective for another topic, own labels, own contexts) and
    ``m_matched_diff`` (``_lo``, ``_hi``) = target minus its matched control, paired, with its CI."""

    MAKES: ClassVar[str] = "python label.py"

    pair: str
    """Pair name (artifacts/analysis/{pair}/)."""
    backend: str
    """Explainer backend."""
    llm: str
    """Explainer model (``lexical`` for the no-LLM baseline)."""
    prompt_version: str
    """Prompt (or lexical method) version in every cache key."""
    scorers: list[str]
    """Scorers run."""
    n_selected: int
    """Latents chosen (targets and controls)."""
    n_targets: int
    """Financial or specialized latents chosen."""
    n_controls: int
    """Random non-financial latents chosen."""
    n_labelled: int
    """Latents with a label (targets and controls)."""
    n_skipped: int
    """Latents skipped (too few activating held-out examples, or none stored)."""
    n_failed: int
    """Latents whose explainer answer stayed unusable after retries (no label written)."""
    embedder: str = ""
    """The sentence embedder of hard negatives and the embedding scorer, and whether it is one of the pair's
    models (then embedding scores tilt base-vs-domain comparisons towards that model)."""
    n_cached: int = 0
    """Answers read from the cache instead of asked."""
    requests: int = 0
    """LLM requests sent this run (retries included)."""
    prompt_tokens: int = 0
    """Prompt tokens sent this run."""
    completion_tokens: int = 0
    """Completion tokens received this run."""
    cost_usd: float = NAN
    """Token cost at the configured prices (NaN when none is configured)."""
    embedding_auroc: float = NAN
    embedding_auroc_control: float = NAN
    embedding_auroc_diff: float = NAN
    embedding_auroc_diff_lo: float = NAN
    embedding_auroc_diff_hi: float = NAN
    embedding_auroc_beats_control: float = NAN
    embedding_auroc_random: float = NAN
    embedding_auroc_matched_control: float = NAN
    embedding_auroc_matched_diff: float = NAN
    embedding_auroc_matched_diff_lo: float = NAN
    embedding_auroc_matched_diff_hi: float = NAN
    embedding_auroc_generic: float = NAN
    embedding_auroc_generic_diff: float = NAN
    embedding_auroc_generic_diff_lo: float = NAN
    embedding_auroc_generic_diff_hi: float = NAN
    detection_balanced_accuracy: float = NAN
    detection_balanced_accuracy_control: float = NAN
    detection_balanced_accuracy_diff: float = NAN
    detection_balanced_accuracy_diff_lo: float = NAN
    detection_balanced_accuracy_diff_hi: float = NAN
    detection_balanced_accuracy_beats_control: float = NAN
    detection_balanced_accuracy_random: float = NAN
    detection_balanced_accuracy_matched_control: float = NAN
    detection_balanced_accuracy_matched_diff: float = NAN
    detection_balanced_accuracy_matched_diff_lo: float = NAN
    detection_balanced_accuracy_matched_diff_hi: float = NAN
    detection_balanced_accuracy_generic: float = NAN
    detection_balanced_accuracy_generic_diff: float = NAN
    detection_balanced_accuracy_generic_diff_lo: float = NAN
    detection_balanced_accuracy_generic_diff_hi: float = NAN
    fuzzing_balanced_accuracy: float = NAN
    fuzzing_balanced_accuracy_control: float = NAN
    fuzzing_balanced_accuracy_diff: float = NAN
    fuzzing_balanced_accuracy_diff_lo: float = NAN
    fuzzing_balanced_accuracy_diff_hi: float = NAN
    fuzzing_balanced_accuracy_beats_control: float = NAN
    fuzzing_balanced_accuracy_random: float = NAN
    fuzzing_balanced_accuracy_matched_control: float = NAN
    fuzzing_balanced_accuracy_matched_diff: float = NAN
    fuzzing_balanced_accuracy_matched_diff_lo: float = NAN
    fuzzing_balanced_accuracy_matched_diff_hi: float = NAN
    fuzzing_balanced_accuracy_generic: float = NAN
    fuzzing_balanced_accuracy_generic_diff: float = NAN
    fuzzing_balanced_accuracy_generic_diff_lo: float = NAN
    fuzzing_balanced_accuracy_generic_diff_hi: float = NAN
    intruder_accuracy: float = NAN
    intruder_accuracy_control: float = NAN
    intruder_accuracy_diff: float = NAN
    intruder_accuracy_diff_lo: float = NAN
    intruder_accuracy_diff_hi: float = NAN
    intruder_accuracy_beats_control: float = NAN
    intruder_accuracy_random: float = NAN
    intruder_accuracy_matched_control: float = NAN
    intruder_accuracy_matched_diff: float = NAN
    intruder_accuracy_matched_diff_lo: float = NAN
    intruder_accuracy_matched_diff_hi: float = NAN
    per_layer: list[dict] = field(default_factory=list)
    """Rows of ``per_layer.csv``: per (model, layer) and overall, each metric's numbers as above."""
    seconds: float = NAN
    """Wall time of the stage."""


def score_table(labels: pd.DataFrame, scorers: list[str], n_boot: int, seed: int) -> pd.DataFrame:
    """Per (model, layer) and overall (``model="all"``, ``layer=-99``): for each scorer's headline metric, the
    mean score of the target latents, their mean shuffled-label control, the paired difference with its 95%
    bootstrap CI, the share beating their own control, the random-latent mean, the target-minus-random
    difference with its CI, and (label scorers) the generic label's mean on the same targets with the paired
    own-minus-generic difference, its CI and the share of targets whose label beats it, and the
    selectivity-matched controls' mean (each target paired with its own) with the paired difference and CI."""
    rows = []
    groups = [(m, ly, g) for (m, ly), g in labels.groupby(["model", "layer"], sort=True)] + [("all", -99, labels)]
    for model, layer, g in groups:
        ok = g[g["status"] == "labelled"]
        tgt, ctl = ok[ok["role"] == "target"], ok[ok["role"] == "control"]
        for scorer in scorers:
            m = METRICS[scorer][0]
            rng = latent_rng(seed, "bootstrap", model, layer, m)
            d = paired_diff_ci(tgt[m], tgt[f"{m}_control"], n_boot, rng)
            r = unpaired_diff_ci(tgt[m], ctl[m], n_boot, rng)
            gen = f"generic_{m}"
            g_ = (paired_diff_ci(tgt[m], tgt[gen], n_boot, rng) if scorer in LABEL_SCORERS and gen in tgt
                  else paired_diff_ci([], [], 1, rng))
            mc = f"matched_control_{m}"
            mt = paired_diff_ci(tgt[m], tgt[mc], n_boot, rng) if mc in tgt else paired_diff_ci([], [], 1, rng)
            rows.append({"model": model, "layer": int(layer), "metric": m, "n": d.n, "score": d.score,
                         "control": d.control, "diff": d.diff, "diff_lo": d.lo, "diff_hi": d.hi,
                         "beats_control": d.beats, "n_random": int(np.isfinite(ctl[m].astype(float)).sum()),
                         "random": r.control, "diff_random": r.diff, "diff_random_lo": r.lo, "diff_random_hi": r.hi,
                         "n_generic": g_.n, "generic": g_.control, "diff_generic": g_.diff,
                         "diff_generic_lo": g_.lo, "diff_generic_hi": g_.hi, "beats_generic": g_.beats,
                         "n_matched": mt.n, "matched_control": mt.control, "diff_matched": mt.diff,
                         "diff_matched_lo": mt.lo, "diff_matched_hi": mt.hi})
    return pd.DataFrame(rows)


def overall_fields(table: pd.DataFrame) -> dict:
    """The summary's per-metric fields, from the overall rows of ``score_table``."""
    out = {}
    for _, r in table[table["model"] == "all"].iterrows():
        m = r["metric"]
        out.update({m: r["score"], f"{m}_control": r["control"], f"{m}_diff": r["diff"], f"{m}_diff_lo": r["diff_lo"],
                    f"{m}_diff_hi": r["diff_hi"], f"{m}_beats_control": r["beats_control"], f"{m}_random": r["random"]})
        out.update({f"{m}_matched_control": r["matched_control"], f"{m}_matched_diff": r["diff_matched"],
                    f"{m}_matched_diff_lo": r["diff_matched_lo"], f"{m}_matched_diff_hi": r["diff_matched_hi"]})
        if m != "intruder_accuracy":
            out.update({f"{m}_generic": r["generic"], f"{m}_generic_diff": r["diff_generic"],
                        f"{m}_generic_diff_lo": r["diff_generic_lo"], f"{m}_generic_diff_hi": r["diff_generic_hi"]})
    return {k: float(v) for k, v in out.items()}
