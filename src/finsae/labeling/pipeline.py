"""The labeling run, backend-agnostic: explain each latent from its explainer examples, score every label on
the held-out examples with each scorer, beside its controls, and return one row per latent.

Every answer is cached as it arrives (``AnswerCache``), so an interrupted run resumes without asking again;
malformed or refused answers are retried, then recorded as failures (never as labels).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from finsae.errors import FinsaeError
from finsae.labeling.backend import Backend, ChatRequest
from finsae.labeling.cache import AnswerCache, cache_key
from finsae.labeling.config import LabelConfig
from finsae.labeling.examples import Embed, LatentExamples
from finsae.labeling.lexical import LEXICAL_VERSION, lexical_label
from finsae.labeling.parsing import ParseError, parse_label
from finsae.labeling.prompts import (
    LABEL_PREFILL,
    LABEL_SCHEMA,
    PROMPT_VERSION,
    copied_example,
    explain_messages,
    label_text,
)
from finsae.labeling.scorers import add_tokens, embedding_scores, intruder_items, llm_score_items, shuffled_partners
from finsae.labeling.stats import balanced_accuracy, f1

METRICS = {"embedding": ("embedding_auroc",), "detection": ("detection_balanced_accuracy", "detection_f1"),
           "fuzzing": ("fuzzing_balanced_accuracy", "fuzzing_f1"), "intruder": ("intruder_accuracy",)}
"""Per scorer, the numbers it reports (the first is its headline score). Each metric ``m`` comes with
``m_control`` (the label of another financial latent of the layer; for ``intruder``, which scores the latent and
not the label, the exact chance level) and, for the label scorers, ``generic_m`` (the constant generic label)."""
LABEL_SCORERS = ("embedding", "detection", "fuzzing")
"""Scorers of a label (the generic-label control applies to them)."""


def column(metric: str, which: str) -> str:
    """The output column of ``metric`` for the own label (``own``), the shuffled one (``control``) or the
    generic one (``generic``)."""
    return {"own": metric, "control": f"{metric}_control", "generic": f"generic_{metric}"}[which]


@dataclass
class LatentJob:
    """One latent to label, with its examples (None when skipped)."""

    model: str
    layer: int
    latent: int
    role: str
    """``target`` or ``control``."""
    financial: bool
    specialized: bool
    n_active_docs: int
    sae_id: str
    """Names the SAE (model/layer/tag and a weights hash) in cache keys."""
    examples: LatentExamples | None = None
    skip_reason: str | None = None
    row: dict = field(default_factory=dict)
    """The output row, filled in by the run."""
    matched_to: int = -1
    """For a ``matched`` control, the target latent it is matched to."""


class Progress:
    """What the run reports progress to (the glue passes a tqdm bar with ETA); no-op by default."""

    def update(self, n: int = 1) -> None: ...

    def close(self) -> None: ...


ProgressFactory = Callable[[int, str], Progress]


@dataclass
class Usage:
    """Tokens sent and received this run (cached answers cost nothing)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: int = 0
    answers: int = 0
    """LLM answers needed (cached ones included)."""
    failed: int = 0
    """Of those, the ones that stayed failed after retries."""
    first_error: str | None = None
    """The first failure's reason."""

    def cost(self, cfg: LabelConfig) -> float:
        return (self.prompt_tokens * cfg.price_in_per_mtok + self.completion_tokens * cfg.price_out_per_mtok) / 1e6

    def fail(self, error: str) -> None:
        self.failed += 1
        if self.first_error is None:
            self.first_error = error

    def check(self, max_failure_share: float) -> None:
        """Raise ``LabelingFailed`` when more than ``max_failure_share`` of the answers failed."""
        if self.failed and self.failed > max_failure_share * self.answers:
            raise LabelingFailed(f"{self.failed} of {self.answers} LLM answers failed (more than "
                                 f"label.max_failure_share={max_failure_share:g}); first error: {self.first_error}. "
                                 f"{KEPT}")


KEPT = "Nothing published; earlier labels are kept and the answers so far are cached (rerun once the server works)"


class LabelingFailed(FinsaeError):
    """Too many LLM answers failed, or the server went down: the run publishes nothing."""


def ask(backend: Backend, items: Sequence[tuple[str, ChatRequest, Callable]], cache: AnswerCache,
        max_retries: int, usage: Usage, progress: Progress) -> list[dict]:
    """Answers to ``(cache key, request, parse(text, prefill))`` items: cached ones are read, the others asked
    (unparsable answers are asked again, up to ``max_retries`` times); each success is cached as it arrives.

    Each result: ``ok``, ``value`` (the parsed answer), ``error``, ``attempts``, ``prompt_tokens``,
    ``completion_tokens``, ``raw`` (the last answer, cut to 500 characters), ``cached``.
    """
    results: list[dict | None] = [None] * len(items)
    usage.answers += len(items)
    pending = []
    for i, (key, _, _) in enumerate(items):
        hit = cache.get(key)
        if hit is not None:
            results[i] = {**hit, "cached": True}
            usage.cached += 1
            progress.update(1)
        else:
            pending.append(i)
            results[i] = None
    state = {i: {"attempts": 0, "prompt_tokens": 0, "completion_tokens": 0} for i in pending}
    rounds = 0
    while pending:
        reqs = [items[i][1] if rounds == 0 else items[i][1].retry() for i in pending]
        retry = []

        def done(j: int, comp, _pending=pending, _retry=retry, _reqs=reqs, _round=rounds):
            i = _pending[j]
            key, req, parse = items[i]
            st = state[i]
            st["attempts"] += comp.attempts
            st["prompt_tokens"] += comp.prompt_tokens
            st["completion_tokens"] += comp.completion_tokens
            usage.requests += comp.attempts
            usage.prompt_tokens += comp.prompt_tokens
            usage.completion_tokens += comp.completion_tokens
            raw = (comp.text or "")[:500]
            if comp.error is not None:  # the backend already retried the transport: give up on this one
                usage.fail(comp.error)
                results[i] = {"ok": False, "value": None, "error": comp.error, "raw": raw, "cached": False, **st}
                progress.update(1)
                return
            try:
                value = parse(comp.text, req.prefill if backend.prefilled(_reqs[j]) else "")
            except ParseError as e:
                if _round < max_retries:
                    _retry.append(i)
                    return
                results[i] = {"ok": False, "value": None, "error": f"unparsable answer: {e}", "raw": raw,
                              "cached": False, **st}
                usage.fail(results[i]["error"])
                progress.update(1)
                return
            results[i] = {"ok": True, "value": value, "error": None, "raw": raw, "cached": False, **st}
            cache.put(key, {k: v for k, v in results[i].items() if k != "cached"})
            progress.update(1)

        backend.generate(reqs, on_done=done)
        if backend.down is not None:
            raise LabelingFailed(f"{backend.down}; stopped early with {usage.failed} of {usage.answers} LLM answers "
                                 f"failed. {KEPT}")
        pending = sorted(retry)
        rounds += 1
    return results  # type: ignore[return-value]


def _explain_key(cfg: LabelConfig, job: LatentJob) -> str:
    ex = job.examples
    common = {"kind": "explain", "sae": job.sae_id, "latent": job.latent, "backend": cfg.backend,
              "model": cfg.llm_name, "examples": [e.doc_id for e in ex.explain]}
    if cfg.backend == "lexical":
        return cache_key(**common, prompt=LEXICAL_VERSION, negatives=[e.doc_id for e in ex.explain_negatives])
    return cache_key(**common, prompt=PROMPT_VERSION, show_activations=cfg.show_activations,
                     max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature)


def explain(jobs: Sequence[LatentJob], cfg: LabelConfig, backend: Backend | None, cache: AnswerCache,
            usage: Usage, progress: Progress) -> list[dict]:
    """One explanation result per job (see ``ask``; ``value`` is a ``{"label", "description"}`` dict)."""
    if backend is None:  # lexical: no LLM, but cached all the same (a rerun is then free)
        out = []
        for job in jobs:
            key = _explain_key(cfg, job)
            hit = cache.get(key)
            usage.cached += hit is not None
            if hit is None:
                try:
                    lab = lexical_label(job.examples.explain, job.examples.explain_negatives)
                    hit = {"ok": True, "value": lab._asdict(), "error": None, "attempts": 1, "prompt_tokens": 0,
                           "completion_tokens": 0, "raw": ""}
                    cache.put(key, hit)
                except ParseError as e:
                    hit = {"ok": False, "value": None, "error": str(e), "attempts": 1, "prompt_tokens": 0,
                           "completion_tokens": 0, "raw": ""}
            out.append(hit)
            progress.update(1)
        return out

    def parse(text, prefill):
        parsed = parse_label(text, prefill)
        if copied_example(parsed.label):
            raise ParseError(f"copied the few-shot example's label {parsed.label!r}")
        return parsed._asdict()

    items = [(_explain_key(cfg, job),
              ChatRequest(tuple(explain_messages(job.examples.explain, cfg.show_activations)), LABEL_SCHEMA, "label",
                          LABEL_PREFILL, cfg.max_new_tokens, cfg.temperature), parse)
             for job in jobs]
    return ask(backend, items, cache, cfg.max_retries, usage, progress)


def run_labeling(jobs: Sequence[LatentJob], cfg: LabelConfig, backend: Backend | None, cache: AnswerCache,
                 embed: Embed, progress: ProgressFactory | None = None) -> tuple[pd.DataFrame, Usage]:
    """Label and score ``jobs``; one row per job (skipped and failed ones included), and the token usage."""
    progress = progress or (lambda total, desc: Progress())
    usage = Usage()
    labels = _label_all(jobs, cfg, backend, cache, usage, progress)
    labelled = sorted(labels)
    partners = shuffled_partners(jobs, labelled, max(cfg.n_shuffles, 1), cfg.seed)
    generic = {"label": cfg.generic_label, "description": f"Fires on text about {cfg.generic_label}."}
    with_generic = {i for i in labelled if jobs[i].role == "target"} if cfg.generic_label else set()
    if "embedding" in cfg.scorers:
        _score_embedding(jobs, cfg, labels, partners, generic, with_generic, embed, progress)
    for scorer in (s for s in ("detection", "fuzzing") if s in cfg.scorers):
        _score_with_llm(scorer, jobs, cfg, labels, partners, generic, with_generic,
                        lambda flat, desc: _ask_all(backend, flat, cache, cfg, usage, progress, desc))
    if "intruder" in cfg.scorers:
        _score_intruders(jobs, cfg, labelled, lambda flat, desc: _ask_all(backend, flat, cache, cfg, usage,
                                                                          progress, desc))
    usage.check(cfg.max_failure_share)
    _copy_matched_scores(jobs, cfg)
    return pd.DataFrame([_row(cfg, j) for j in jobs]), usage


def _ask_all(backend, flat, cache, cfg: LabelConfig, usage: Usage, progress: ProgressFactory, desc: str) -> list[dict]:
    bar = progress(len(flat), desc)
    answers = ask(backend, flat, cache, cfg.max_retries, usage, bar)
    bar.close()
    return answers


def _label_all(jobs: Sequence[LatentJob], cfg: LabelConfig, backend: Backend | None, cache: AnswerCache,
               usage: Usage, progress: ProgressFactory) -> dict[int, dict]:
    """Explain every job that has examples; ``job index -> {"label", "description"}`` of those labelled."""
    todo = [i for i, j in enumerate(jobs) if j.examples is not None and j.skip_reason is None]
    bar = progress(len(todo), "explain")
    results = explain([jobs[i] for i in todo], cfg, backend, cache, usage, bar)
    bar.close()
    labels: dict[int, dict] = {}
    for i, r in zip(todo, results, strict=True):
        jobs[i].row.update(status="labelled" if r["ok"] else "failed", error=r["error"], attempts=r["attempts"],
                           prompt_tokens=r["prompt_tokens"], completion_tokens=r["completion_tokens"],
                           raw_answer=r["raw"])
        if r["ok"]:
            labels[i] = r["value"]
            jobs[i].row.update(label=r["value"]["label"], description=r["value"]["description"])
    return labels


def _score_embedding(jobs, cfg: LabelConfig, labels: dict[int, dict], partners: dict[int, list[int]],
                     generic: dict, with_generic: set[int], embed: Embed, progress: ProgressFactory) -> None:
    bar = progress(len(labels), "embedding")
    for i in sorted(labels):
        ex = jobs[i].examples
        own = embedding_scores(label_text(**labels[i]), ex, embed)
        ctl = [embedding_scores(label_text(**labels[p]), ex, embed) for p in partners[i][: max(cfg.n_shuffles, 1)]]
        jobs[i].row.update(embedding_auroc=own,
                           embedding_auroc_control=float(np.mean(ctl)) if ctl and cfg.n_shuffles else float("nan"))
        if i in with_generic:
            jobs[i].row["generic_embedding_auroc"] = embedding_scores(label_text(**generic), ex, embed)
        bar.update(1)
    bar.close()


def _score_with_llm(scorer: str, jobs, cfg: LabelConfig, labels: dict[int, dict], partners: dict[int, list[int]],
                    generic: dict, with_generic: set[int], ask_all: Callable) -> None:
    """Detection or fuzzing of each label, its shuffled control and (targets) the generic label."""
    plan = []  # (job index, "own"/"control"/"generic", items, truth)
    for i in sorted(labels):
        plan.append((i, "own", *llm_score_items(scorer, cfg, jobs[i], labels[i], "own")))
        if partners[i]:
            plan.append((i, "control", *llm_score_items(scorer, cfg, jobs[i], labels[partners[i][0]], "control")))
        if i in with_generic:
            plan.append((i, "generic", *llm_score_items(scorer, cfg, jobs[i], generic, "generic")))
    answers = ask_all([it for p in plan for it in p[2]], scorer)
    pos = 0
    for i, which, items, truth in plan:
        got = answers[pos:pos + len(items)]
        pos += len(items)
        ba, f1_ = column(f"{scorer}_balanced_accuracy", which), column(f"{scorer}_f1", which)
        if all(a["ok"] for a in got):
            pred = [b for a in got for b in a["value"]]
            jobs[i].row[ba] = balanced_accuracy(truth, pred)
            jobs[i].row[f1_] = f1(truth, pred)
        else:
            jobs[i].row[ba] = float("nan")
            jobs[i].row[f1_] = float("nan")
            jobs[i].row[column(f"{scorer}_error", which)] = next(a["error"] for a in got if not a["ok"])
        add_tokens(jobs[i].row, got)


def _score_intruders(jobs, cfg: LabelConfig, labelled: Sequence[int], ask_all: Callable) -> None:
    """Intruder detection of each labelled latent (it scores the latent, not the label; control: chance)."""
    plan = [(i, *intruder_items(cfg, jobs[i])) for i in labelled]
    answers = ask_all([it for p in plan for it in p[1]], "intruder")
    pos = 0
    for i, items, truth in plan:
        got = answers[pos:pos + len(items)]
        pos += len(items)
        row = jobs[i].row
        if got and all(a["ok"] for a in got):
            row["intruder_accuracy"] = float(np.mean([a["value"] == t for a, t in zip(got, truth, strict=True)]))
        elif got:
            row["intruder_error"] = next(a["error"] for a in got if not a["ok"])
        row["intruder_accuracy_control"] = 1.0 / cfg.intruder_set_size  # chance, exactly
        row["intruder_sets"] = len(got)
        add_tokens(row, got)


def _copy_matched_scores(jobs: Sequence[LatentJob], cfg: LabelConfig) -> None:
    """Give each target the scores of its selectivity-matched control (``matched_control_<m>``), so the two
    compare paired."""
    targets = {(j.model, j.layer, j.latent): j for j in jobs if j.role == "target"}
    for j in jobs:
        t = targets.get((j.model, j.layer, j.matched_to)) if j.role == "matched" else None
        if t is None:
            continue
        t.row["matched_control_latent"] = j.latent
        for scorer in cfg.scorers:
            for m in METRICS[scorer]:
                t.row[f"matched_control_{m}"] = j.row.get(m, float("nan"))


def _row(cfg: LabelConfig, job: LatentJob) -> dict:
    ex = job.examples
    row = {"model": job.model, "layer": job.layer, "latent": job.latent, "role": job.role,
           "financial": job.financial, "specialized": job.specialized, "n_active_docs": job.n_active_docs,
           "n_activating": ex.n_activating if ex is not None else 0, "status": "skipped", "skip_reason": job.skip_reason,
           "label": None, "description": None, "explainer": cfg.explainer, "llm": cfg.llm_name,
           "prompt_version": LEXICAL_VERSION if cfg.backend == "lexical" else PROMPT_VERSION, "error": None,
           "attempts": 0, "prompt_tokens": 0, "completion_tokens": 0, "raw_answer": None}
    for scorer in cfg.scorers:
        for m in METRICS[scorer]:
            for which in ("own", "control", "generic") if scorer in LABEL_SCORERS else ("own", "control"):
                row[column(m, which)] = float("nan")
            row[f"matched_control_{m}"] = float("nan")
    row["matched_control_latent"] = -1
    row["matched_to"] = job.matched_to
    row.update(ex.ids() if ex is not None else {k: [] for k in ("explain_ids", "score_activating_ids",
                                                                  "score_random_negative_ids", "score_hard_negative_ids")})
    row.update(job.row)
    return row
