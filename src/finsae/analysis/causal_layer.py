"""The causal test (:mod:`finsae.analysis.causal`) as the analysis stage runs it at one layer.

**Scored**: up to ``analysis.causal.n_sentences`` held-out PhraseBank sentences with their labels (a seeded
draw over the ``phrasebank_<label>`` groups of the held-out set, which holds no text the twin was fine-tuned
on: they come from the fine-tune's test split, ``finetune.test_frac`` and its split seed; only the classes the
twin's head has, so the SST-2 control twin is scored on the positive and negative ones).

**Fitted on other documents**: the affine map of the twin's token states from the base's on cached held-out
token rows of passages that are no PhraseBank sentence (``fit_tokens`` of them), and the [CLS] map on the
[CLS] states of such passages (``cls_fit_per_dim`` × (d + 1) of them; the activation cache holds no [CLS]),
run through both models once per worker process for every layer it analyses.

**Ablated**: the latents the warm start calls changed at the layer (``warmstart.parquet``'s ``changed``),
through its domain run (the base SAE continued on the twin, whose latent ids those are), against as many
random live latents; not at the last layer, where the head reads only [CLS] and the latents are ablated at
the real tokens (a change of 0 by construction, no power), unless ``ablate_all_positions``.

:func:`causal_layer` returns the long table ``causal.parquet`` (:data:`CAUSAL_COLUMNS`) and the layer's
``layers.parquet`` fields (:class:`CausalRow`).
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from finsae.analysis import causal
from finsae.analysis.affine import AffineMap, fit_affine
from finsae.analysis.config import MIN_FIT_ROWS_PER_DIM, CausalConfig
from finsae.analysis.heldout import HeldoutSet
from finsae.analysis.rows import RowFields
from finsae.data.phrasebank import LABELS
from finsae.finetune.summary import head_task
from finsae.models import get_spec
from finsae.models.loading import LoadedModel, load_model, task_kind

log = logging.getLogger("finsae")

INTERVENTIONS: dict[str, str] = {
    "none": "the unpatched twin (measure accuracy only)",
    **{f"patch_{c}": f"layer L's states replaced: condition {c} of finsae.analysis.causal.CONDITIONS"
       for c in causal.CONDITIONS},
    "ablate_changed": "the warm start's changed latents ablated through its domain SAE (error term kept)",
    "ablate_random": "as many random live latents ablated (mean over the draws)",
    "ablate_changed_minus_random": "changed − random, paired by sentence",
}
"""Rows of ``causal.parquet`` by intervention."""
CAUSAL_COLUMNS: dict[str, str] = {
    "layer": "int: the layer intervened on",
    "intervention": "str: one of INTERVENTIONS",
    "measure": "str: one of causal.PATCH_MEASURES (patches, none) or causal.ABLATION_MEASURES (ablations)",
    "value": causal.PATCH_COLUMNS["value"],
    "lo": causal.PATCH_COLUMNS["lo"],
    "hi": causal.PATCH_COLUMNS["hi"],
    "n_texts": "int: sentences behind the value",
    "n_latents": "float: latents per ablated set (NaN for patches)",
    "n_draws": "float: random latent sets drawn (NaN for patches)",
    "p_random": causal.ABLATION_COLUMNS["p_random"],
}
"""Columns of ``causal.parquet`` (one estimate a row, with its percentile interval over sentences)."""
_ABLATION_NAMES = {"target": "ablate_changed", "random": "ablate_random",
                   "difference": "ablate_changed_minus_random"}


class TaskSentences(NamedTuple):
    """The scored sentences."""

    texts: list[str]
    labels: np.ndarray
    """Class ids in the twin's head order (finsae.data.phrasebank.LABELS)."""


class CausalModels(NamedTuple):
    base: LoadedModel
    """The base model's encoder."""
    twin: LoadedModel
    """The twin as a sequence classifier."""
    cls_maps: dict
    """[CLS] maps fitted so far, by (fit texts, layers, settings): one pass of both models serves every layer
    a worker analyses."""


class CausalInputs(NamedTuple):
    """What the causal test reads at a layer besides the cached activations."""

    models: CausalModels
    sentences: TaskSentences
    fit_texts: tuple[str, ...]
    """Held-out passages (no PhraseBank sentence) the [CLS] map is fitted on."""
    fit_layers: tuple[int, ...]
    """Every layer this job analyses (the [CLS] states of all of them come from one pass)."""


@dataclass
class CausalRow(RowFields):
    """The causal test's ``layers.parquet`` fields (intervals: percentile bootstrap over sentences)."""

    causal_n_sentences: int
    """Sentences scored."""
    causal_twin_accuracy: float
    """The unpatched twin's accuracy on them."""
    causal_accuracy_change: float
    """Accuracy with layer L the affine image of the base's, minus the twin's (< 0: behaviour lost)."""
    causal_accuracy_change_lo: float
    causal_accuracy_change_hi: float
    causal_accuracy_change_base: float
    """The same with layer L the raw base states (the whole change at L removed)."""
    causal_dlogit: float
    """Mean |logit change| under the affine patch."""
    causal_dlogit_lo: float
    causal_dlogit_hi: float
    causal_nonaffine_share: float
    """|logit change| of the affine patch / of the raw base patch (NaN without the base patch)."""
    causal_nonaffine_share_lo: float
    causal_nonaffine_share_hi: float
    ablation_n_latents: float
    """Changed latents ablated (those that fire on the sentences; NaN: no ablation at this layer)."""
    ablation_dlogit_changed: float
    """Mean |logit change| when they are ablated."""
    ablation_dlogit_random: float
    """The same for as many random live latents (mean over the draws)."""
    ablation_dlogit_diff: float
    """Changed − random, paired by sentence."""
    ablation_dlogit_diff_lo: float
    ablation_dlogit_diff_hi: float
    ablation_p_random: float
    """Share of random draws whose |logit change| reaches the changed latents'."""


def twin_is_classifier(artifacts, domain: str) -> bool:
    """The twin has a sequence-classification head (a random registry model gets its seeded one: tests)."""
    spec = get_spec(domain)
    return (spec.source == "random" and not spec.path) or task_kind(spec, artifacts) == "classifier"


@functools.lru_cache(maxsize=2)
def load_models(artifacts, base: str, domain: str) -> CausalModels:
    """The pair as the causal test reads it, loaded once per process."""
    twin = load_model(get_spec(domain), artifacts, kind="classifier")
    return CausalModels(load_model(get_spec(base), artifacts), twin, {})


def _phrasebank_rows(held: HeldoutSet) -> dict[str, np.ndarray]:
    groups = {lab: held.groups.get(f"phrasebank_{lab}", ()) for lab in LABELS}
    return {lab: np.asarray(ix) for lab, ix in groups.items() if len(ix)}


def task_sentences(held: HeldoutSet, n_classes: int, cfg: CausalConfig) -> TaskSentences:
    """Up to ``cfg.n_sentences`` held-out PhraseBank sentences of the head's classes (a seeded draw); a
    passage under two labels is dropped."""
    rows = {LABELS.index(lab): ix for lab, ix in _phrasebank_rows(held).items()}
    rows = {c: ix for c, ix in rows.items() if c < n_classes}
    if not rows:
        return TaskSentences([], np.zeros(0, np.int64))
    ids = np.concatenate(list(rows.values()))
    frame = pd.DataFrame({"text": held.corpus.frame["text"].to_numpy()[ids].astype(str),
                          "label": np.concatenate([np.full(len(ix), c, np.int64) for c, ix in rows.items()])})
    one_label = frame.groupby("text")["label"].transform("nunique") == 1
    frame = frame[one_label].drop_duplicates("text").reset_index(drop=True)
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(3)[2])
    pick = _by_length(frame["text"], np.sort(rng.choice(len(frame), min(cfg.n_sentences, len(frame)), False)))
    texts, labels = frame["text"].to_numpy()[pick], frame["label"].to_numpy()[pick]
    return TaskSentences([str(t) for t in texts], labels)


def fit_documents(held: HeldoutSet) -> np.ndarray:
    """Indices (into ``held.corpus.frame``) of the passages that are no PhraseBank sentence."""
    pb = _phrasebank_rows(held)
    scored = np.concatenate(list(pb.values())) if pb else np.zeros(0, np.int64)
    is_pb = held.corpus.frame["source"].astype(str).str.startswith("phrasebank").to_numpy()
    return np.setdiff1d(np.flatnonzero(~is_pb), scored)


def _by_length(text: pd.Series, rows: np.ndarray) -> np.ndarray:
    """``rows`` shortest text first (a batch of like lengths pads less)."""
    return rows[np.argsort(text.str.len().to_numpy()[rows], kind="stable")]


def _draw(pool: np.ndarray, n: int, seed: int, stream: int) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(stream + 1)[stream])
    return np.sort(rng.choice(pool, min(n, len(pool)), replace=False))


def layer_inputs(saes, held: HeldoutSet, layers, cfg: CausalConfig) -> CausalInputs | None:
    """The causal test's inputs for the pair ``saes`` names, or None (logged) where it cannot run: the twin
    has no classification head, or :func:`build_inputs` finds too little text."""
    if not twin_is_classifier(saes.artifacts, saes.domain):
        log.info("causal test: %s has no classification head, nothing to score", saes.domain)
        return None
    task = head_task(saes.artifacts, get_spec(saes.domain)).task_data
    if task != "phrasebank":  # its head's classes are not PhraseBank's: the scored sentences mean nothing
        log.info("causal test: %s was fine-tuned on %s, the test scores PhraseBank sentences: not run",
                 saes.domain, task)
        return None
    return build_inputs(load_models(saes.artifacts, saes.base, saes.domain), held, layers, cfg)


def build_inputs(models: CausalModels, held: HeldoutSet, layers, cfg: CausalConfig) -> CausalInputs | None:
    """The scored sentences and the [CLS] map's fit passages, or None (logged) where the held-out set has
    fewer than 2 PhraseBank sentences of the head's classes or too few other passages for the [CLS] map."""
    sentences = task_sentences(held, int(models.twin.model.config.num_labels), cfg)
    if len(sentences.texts) < 2:
        log.warning("causal test: the held-out set holds %d PhraseBank sentences of the twin's classes: "
                    "not run", len(sentences.texts))
        return None
    d = models.twin.d_model
    need = max(math.ceil(cfg.cls_fit_per_dim * (d + 1)), MIN_FIT_ROWS_PER_DIM * (d + 1))
    docs = fit_documents(held)
    if len(docs) < need:
        log.warning("causal test: %d held-out passages for the [CLS] map, %d needed (raise "
                    "analysis.docs_per_side): not run", len(docs), need)
        return None
    text = held.corpus.frame["text"]
    texts = text.to_numpy()[_by_length(text, _draw(docs, need, cfg.seed, 0))]
    layers = tuple(sorted(int(x) for x in layers))
    return CausalInputs(models, sentences, tuple(str(t) for t in texts), layers)


def cls_maps(inputs: CausalInputs, cfg: CausalConfig) -> dict[int, AffineMap]:
    """[CLS] maps of every layer of the job, from one pass of both models over the fit passages (memoised on
    the models: a worker fits them once)."""
    key = (inputs.fit_texts, inputs.fit_layers, cfg.batch_size, cfg.max_length, cfg.ridge)
    memo = inputs.models.cls_maps
    if key not in memo:
        memo.clear()
        maps = causal.fit_patch_maps(inputs.models.base, inputs.models.twin, list(inputs.fit_texts),
                                     list(inputs.fit_layers), cfg, cls_only=True)
        memo[key] = {layer: m["cls"] for layer, m in maps.items()}
    return memo[key]


def token_map(h_base, h_twin, doc_of_row: np.ndarray, held: HeldoutSet, cfg: CausalConfig) -> AffineMap:
    """The token states' map, fitted on up to ``cfg.fit_tokens`` cached rows of passages that are no
    PhraseBank sentence."""
    rows = np.flatnonzero(np.isin(doc_of_row, fit_documents(held)))
    return fit_affine(h_base, h_twin, _draw(rows, cfg.fit_tokens, cfg.seed, 1), ridge=cfg.ridge)


def _changed_ablation(twin: LoadedModel, sae, layer: int, texts: list[str], changed: np.ndarray,
                      cfg: CausalConfig, clean: np.ndarray) -> causal.AblationResult | None:
    """The ablation of the changed latents that fire on ``texts``, or None (logged) where there is none to
    ablate or too few other live latents to draw a random set from."""
    firing = causal.firing_counts(twin, sae, layer, texts, cfg)
    live = changed[firing[changed] > 0]
    others = int((firing > 0).sum()) - len(live)
    if not len(live) or others < len(live):
        log.info("causal test layer %d: %d of %d changed latents fire on the sentences, %d other live "
                 "latents: no ablation", layer, len(live), len(changed), others)
        return None
    return causal.latent_ablation_test(twin, sae, layer, texts, live, cfg, firing=firing, clean=clean)


def _ablation_can_act(twin: LoadedModel, layer: int, cfg: CausalConfig) -> bool:
    """Whether ablating at ``layer`` can reach the head: at the last layer only [CLS] does, and the latents
    are ablated at the real tokens (unless ``ablate_all_positions``), so the change is 0 by construction."""
    if layer < twin.num_layers - 1 or cfg.ablate_all_positions:
        return True
    log.info("causal test layer %d: the head reads only [CLS] of the last layer, where no latent is ablated "
             "(analysis.causal.ablate_all_positions=false): no ablation", layer)
    return False


def causal_table(layer: int, patch: causal.PatchResult, labels: np.ndarray, cfg: CausalConfig,
                 ablation: causal.AblationResult | None) -> pd.DataFrame:
    """The layer's rows of ``causal.parquet`` (:data:`CAUSAL_COLUMNS`): the unpatched twin's accuracy, every
    patch's measures, and the ablation's (when it ran), with the same bootstrap draws of the sentences."""
    weights = causal.text_weights(len(labels), cfg)
    correct = (patch.twin_logits.argmax(1) == labels).astype(np.float64)
    twin = causal.estimate_row(weights, cfg, correct, layer=layer, measure="accuracy")
    rows = [{**twin, "intervention": "none"}]
    for r in patch.table[patch.table["layer"] == layer].to_dict("records"):
        rows.append({**r, "intervention": f"patch_{r['condition']}"})
    if ablation is not None:
        for r in ablation.table.to_dict("records"):
            rows.append({**r, "intervention": _ABLATION_NAMES[r["latent_set"]]})
    table = pd.DataFrame(rows).reindex(columns=list(CAUSAL_COLUMNS))
    return table.astype({"layer": np.int64, "n_texts": np.int64, "n_latents": np.float64,
                         "n_draws": np.float64, "p_random": np.float64})


def estimate(table: pd.DataFrame, intervention: str, measure: str) -> tuple[float, float, float]:
    """``(value, lo, hi)`` of one row of a ``causal.parquet`` frame (NaNs when it has none)."""
    row = table[(table["intervention"] == intervention) & (table["measure"] == measure)]
    return tuple(float(row[c].iloc[0]) for c in ("value", "lo", "hi")) if len(row) else (math.nan,) * 3


def causal_row(table: pd.DataFrame) -> CausalRow:
    """The layer's ``layers.parquet`` fields from its ``causal.parquet`` rows."""
    acc = estimate(table, "patch_affine", "accuracy_change")
    dlogit = estimate(table, "patch_affine", "mean_abs_dlogit")
    share = estimate(table, "patch_affine", "nonaffine_share")
    diff = estimate(table, "ablate_changed_minus_random", "mean_abs_dlogit")
    ablated = table[table["intervention"] == "ablate_changed_minus_random"]
    n_latents, p_random = ((float(ablated["n_latents"].iloc[0]), float(ablated["p_random"].iloc[0]))
                           if len(ablated) else (math.nan, math.nan))
    return CausalRow(
        int(table["n_texts"].iloc[0]), estimate(table, "none", "accuracy")[0], *acc,
        estimate(table, "patch_base", "accuracy_change")[0], *dlogit, *share, n_latents,
        estimate(table, "ablate_changed", "mean_abs_dlogit")[0],
        estimate(table, "ablate_random", "mean_abs_dlogit")[0],
        *diff, p_random)


class CausalLayer(NamedTuple):
    row: CausalRow
    table: pd.DataFrame
    """The layer's ``causal.parquet`` rows."""


def causal_layer(layer: int, inputs: CausalInputs, h_base, h_twin, doc_of_row: np.ndarray, held: HeldoutSet,
                 cfg: CausalConfig, sae=None, changed: np.ndarray | None = None, say=None) -> CausalLayer:
    """The affine patch at ``layer`` and, given the warm start's domain SAE and its ``changed`` latents, their
    ablation (module doc); ``h_base``/``h_twin``: the cached held-out activations at ``layer``."""
    say = say or (lambda msg: None)
    models, sentences = inputs.models, inputs.sentences
    say("causal: affine maps")
    tokens = token_map(h_base, h_twin, doc_of_row, held, cfg)
    maps = {layer: {"tokens": tokens, "cls": cls_maps(inputs, cfg)[layer]}}
    say("causal: patch")
    patch = causal.affine_patch_test(models.base, models.twin, sentences.texts, sentences.labels, maps, cfg)
    ablation = None
    asked = sae is not None and changed is not None and len(changed) > 0
    if asked and _ablation_can_act(models.twin, layer, cfg):
        say("causal: ablation")
        changed = np.asarray(changed, np.int64)
        ablation = _changed_ablation(models.twin, sae, layer, sentences.texts, changed, cfg,
                                     patch.twin_logits)
    table = causal_table(layer, patch, sentences.labels, cfg, ablation)
    return CausalLayer(causal_row(table), table)
