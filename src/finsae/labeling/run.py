"""The label stage's steps, config in, typed results out (the glue ``finsae.glue.label_stage`` only calls them):
read and check the analysis artifacts it labels, choose the latents and split their examples into
:class:`~finsae.labeling.pipeline.LatentJob` s, label and score them into the stage's artifacts
(:class:`~finsae.labeling.artifacts.LabelArtifacts`), and say what was measured."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from finsae.analysis import artifacts as analysis_artifacts
from finsae.analysis.contexts import check_contexts, read_contexts
from finsae.analysis.summary import AnalysisSummary
from finsae.atomic import check_writable
from finsae.errors import FinsaeError
from finsae.labeling.artifacts import LabelArtifacts
from finsae.labeling.backend import Backend
from finsae.labeling.cache import AnswerCache
from finsae.labeling.config import LabelConfig
from finsae.labeling.examples import Embed, examples_of, latent_rng, split_examples
from finsae.labeling.lexical import LEXICAL_VERSION
from finsae.labeling.pipeline import METRICS, LatentJob, Progress, ProgressFactory, run_labeling
from finsae.labeling.prompts import PROMPT_VERSION
from finsae.labeling.selection import NEEDED_FEATURE_COLUMNS, select_latents
from finsae.labeling.summary import LabelSummary, overall_fields, score_table
from finsae.paths import sae_dir
from finsae.sae.io import is_sae_dir, sae_identity

TABLE_COLUMNS = ("model", "layer", "latent", "role", "status", "label", "description", "n_activating", "error")
"""The labels table's columns the W&B ``labels`` table shows (with ``explainer`` and every score)."""


class Analysis(NamedTuple):
    """What the label stage reads of the analysis stage (``artifacts/analysis/{pair}/``)."""

    folder: Path
    """The analysis folder (its ``contexts/`` are read per model and layer)."""
    summary: AnalysisSummary
    """Its summary (``base``, ``domain``, ``layers``, ``tag``, ...)."""
    features: pd.DataFrame
    """Its features table: which latents are financial or specialized."""


def read_analysis(folder: Path, pair: str, base: str, domain: str) -> Analysis:
    """The analysis stage's summary, features table and contexts of ``pair`` (``base`` vs ``domain``), checked
    for what this stage needs; one line naming ``python analyze.py`` when absent or damaged."""
    folder = Path(folder)
    summary = analysis_artifacts.read_summary(folder)
    if (summary.base, summary.domain) != (base, domain):
        raise FinsaeError(f"{folder} holds the analysis of {summary.base} vs {summary.domain}, not of the pair "
                          f"{base} vs {domain}; choose the matching pair= or pair_name=")
    features = analysis_artifacts.read_features(folder, needs=NEEDED_FEATURE_COLUMNS)
    for model in (summary.base, summary.domain):
        for layer in summary.layers:  # every contexts file build_jobs reads, checked before any labelling
            check_contexts(folder, model, layer)
    return Analysis(folder, summary, features)


def check_folders(artifacts: Path, out_dir: Path) -> None:
    """Every folder the stage writes takes new files: the artifacts folder and the labels folder."""
    check_writable(Path(artifacts), "artifacts folder")
    check_writable(Path(out_dir), "labels folder", make=False)


def sae_id(artifacts: Path, model: str, layer: int, tag: str) -> str:
    """Names the SAE in every answer's cache key: model, layer, tag and its weights' hash."""
    d = sae_dir(artifacts, model, layer, tag)
    return f"{model}/layer_{layer}/{tag}/{sae_identity(d) if is_sae_dir(d) else 'no-sae'}"


def build_jobs(analysis: Analysis, artifacts: Path, lc: LabelConfig, embed: Embed,
               progress: ProgressFactory | None = None) -> list[LatentJob]:
    """The latents to label, per model and layer of the analysis, with their examples split (hard negatives by
    ``embed``, the long part: ``progress(total, "examples")`` counts the latents); fails in one line when the
    analysis marks no latent financial or specialized."""
    tag = str(analysis.summary.tag)
    chosen_at = []
    for model in (analysis.summary.base, analysis.summary.domain):
        for layer in map(int, analysis.summary.layers):
            by_latent = examples_of(read_contexts(analysis.folder, model, layer))
            chosen = select_latents(analysis.features, model, layer, by_latent, lc.max_latents, lc.control_latents,
                                    lc.seed, matched=lc.matched_controls)
            chosen_at.append((model, layer, by_latent, chosen))
    bar = progress(sum(len(c) for *_, c in chosen_at), "examples") if progress is not None else Progress()
    jobs = []
    for model, layer, by_latent, chosen in chosen_at:
        sae = sae_id(artifacts, model, layer, tag)
        for c in chosen:
            job = LatentJob(model, layer, c.latent, c.role, c.financial, c.specialized, c.n_active_docs, sae,
                            matched_to=c.matched_to)
            stored = by_latent.get(c.latent, [])
            n_act = min(len({e.doc_id for e in stored if e.activating}), c.n_active_docs)
            if not stored:
                job.skip_reason = "no stored contexts"
            elif n_act < lc.min_activating:
                job.skip_reason = f"{n_act} activating held-out examples < {lc.min_activating}"
            rng = latent_rng(lc.seed, "split", model, layer, c.latent)
            if stored:
                job.examples = split_examples(
                    stored, n_explain=lc.n_explain, n_explain_negatives=lc.n_explain_negatives,
                    n_score_activating=lc.n_score_activating,
                    n_score_random_negatives=lc.n_score_random_negatives,
                    n_score_hard_negatives=lc.n_score_hard_negatives, rng=rng,
                    embed=embed if job.skip_reason is None else None)
                if job.skip_reason is None and not (job.examples.score_activating and job.examples.score_negatives):
                    job.skip_reason = "no held-out examples left to score on"
            jobs.append(job)
            bar.update(1)
    bar.close()
    if not jobs:
        raise FinsaeError(f"{analysis_artifacts.table_path(analysis.folder, 'features')} marks no latent financial or specialized: "
                          f"nothing to label (the analysis stage decides which latents are financial)")
    return jobs


def embedder_note(name: str, base: str, domain: str) -> str:
    """The embedder's name, and the caveat when it is one of the compared models."""
    if "minilm" in name.lower() and "minilm" in (base.lower(), domain.lower()):
        return f"{name} (= the pair's base model {base}: embedding scores may favour it over {domain})"
    return f"{name} (neither model of the pair)"


def plan_line(jobs: list[LatentJob], analysis: Analysis, lc: LabelConfig) -> str:
    """What the run is about to do, in one line."""
    n_targets = sum(j.role == "target" for j in jobs)
    s = analysis.summary
    return (f"label: {len(jobs)} latents ({n_targets} financial/specialized, {len(jobs) - n_targets} random "
            f"controls) of {s.base} and {s.domain}, layers {list(s.layers)}; explainer {lc.backend} "
            f"({lc.llm_name}); scorers {list(lc.scorers)}")


def label_latents(jobs: list[LatentJob], lc: LabelConfig, backend: Backend | None, cache: AnswerCache, embed,
                  pair: str, base: str, domain: str, progress: ProgressFactory | None = None,
                  started: float | None = None) -> LabelArtifacts:
    """Label and score ``jobs`` (answers cached as they arrive), tabulate the scores beside their controls, and
    sum the run up (``seconds`` counted from ``started``)."""
    started = time.time() if started is None else started
    labels, usage = run_labeling(jobs, lc, backend, cache, embed, progress=progress)
    table = score_table(labels, list(lc.scorers), lc.n_bootstrap, lc.seed)
    n_targets = sum(j.role == "target" for j in jobs)
    status = labels["status"]
    summary = LabelSummary(
        pair=pair, backend=lc.backend, llm=lc.llm_name,
        prompt_version=LEXICAL_VERSION if lc.backend == "lexical" else PROMPT_VERSION, scorers=list(lc.scorers),
        n_selected=len(jobs), n_targets=n_targets, n_controls=len(jobs) - n_targets,
        n_labelled=int((status == "labelled").sum()), n_skipped=int((status == "skipped").sum()),
        n_failed=int((status == "failed").sum()), n_cached=usage.cached,
        embedder=embedder_note(embed.name, base, domain), requests=usage.requests,
        prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
        cost_usd=usage.cost(lc) if priced(lc) else float("nan"),
        per_layer=json.loads(table.to_json(orient="records")), **overall_fields(table))
    summary.seconds = round(time.time() - started, 1)
    return LabelArtifacts(labels, table, summary)


def priced(lc: LabelConfig) -> bool:
    return lc.price_in_per_mtok > 0 or lc.price_out_per_mtok > 0


def labels_table(labels: pd.DataFrame, scorers: list[str]) -> pd.DataFrame:
    """The labels as the W&B ``labels`` table shows them: who, what, which explainer, and every score."""
    scores = [c for c in labels.columns if any(c.startswith((m, f"generic_{m}")) for s in scorers for m in METRICS[s])]
    return labels[[*TABLE_COLUMNS, "explainer", *scores]]


def report_lines(summary: LabelSummary, lc: LabelConfig, out_dir: Path) -> list[str]:
    """What the run measured, as the lines ``label.py`` prints at its end."""
    v = summary.to_dict()
    cost = f", ${summary.cost_usd:.4f}" if priced(lc) else ""
    lines = [f"label: {summary.requests} LLM requests, {summary.prompt_tokens} prompt + {summary.completion_tokens} "
             f"completion tokens{cost}; {summary.n_cached} answers from the cache"]
    for s in lc.scorers:
        m = METRICS[s][0]
        what = "chance" if s == "intruder" else "shuffled-label control"
        if s == "embedding":
            lines.append(f"label: embedding scorer embeds with {summary.embedder}")
        line = (f"label: {m} {v[m]:.3f} vs {what} {v[m + '_control']:.3f} (diff {v[m + '_diff']:+.3f}, 95% CI "
                f"[{v[m + '_diff_lo']:+.3f}, {v[m + '_diff_hi']:+.3f}]); random latents {v[m + '_random']:.3f}")
        if m + "_generic" in v:
            line += (f"; generic label {v[m + '_generic']:.3f} (diff {v[m + '_generic_diff']:+.3f}, 95% CI "
                     f"[{v[m + '_generic_diff_lo']:+.3f}, {v[m + '_generic_diff_hi']:+.3f}])")
        lines.append(line)
    lines.append(f"label: {summary.n_labelled} labelled, {summary.n_skipped} skipped, {summary.n_failed} failed in "
                 f"{summary.seconds:.0f} s -> {out_dir}")
    return lines
