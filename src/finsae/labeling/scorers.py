"""The scorers' items: what each scorer shows the LLM (or the embedder) for one latent and label, with the truth
it is scored against, and the controls' partners (shuffled labels, intruder sets). The passes that ask the
backend and fill the rows are in :mod:`finsae.labeling.pipeline`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from finsae.labeling.backend import ChatRequest
from finsae.labeling.cache import cache_key
from finsae.labeling.config import LabelConfig
from finsae.labeling.examples import Embed, Example, LatentExamples, latent_rng
from finsae.labeling.parsing import parse_answers, parse_intruder
from finsae.labeling.prompts import (
    PROMPT_VERSION,
    answers_schema,
    detection_messages,
    fuzzing_messages,
    intruder_messages,
    intruder_schema,
)
from finsae.labeling.stats import auroc, derangement

if TYPE_CHECKING:
    from finsae.labeling.pipeline import LatentJob


def embedding_scores(label: str, ex: LatentExamples, embed: Embed) -> float:
    """AUROC of cos(label, example) separating the held-out activating examples from the negatives."""
    pos, neg = [e.text for e in ex.score_activating], [e.text for e in ex.score_negatives]
    if not pos or not neg:
        return float("nan")
    v = embed([label])[0]
    return auroc(embed(pos) @ v, embed(neg) @ v)


def detection_items(ex: LatentExamples, rng: np.random.Generator) -> tuple[list[str], list[int]]:
    """Plain held-out texts (activating and not, shuffled) and whether each activates."""
    items = [(e.text, 1) for e in ex.score_activating] + [(e.text, 0) for e in ex.score_negatives]
    order = rng.permutation(len(items))
    return [items[i][0] for i in order], [items[i][1] for i in order]


def fuzzing_items(ex: LatentExamples, rng: np.random.Generator) -> tuple[list[str], list[int]]:
    """The held-out activating examples, marked: half where the latent fires (1), half with as many other
    words marked instead (0); examples with too few other words keep their true marks."""
    acts = list(ex.score_activating)
    eligible = [i for i, e in enumerate(acts)
                if 0 < sum(a > 0 for a in e.acts) <= sum(a <= 0 for a in e.acts)]
    decoys = set(rng.permutation(eligible)[: len(acts) // 2].tolist()) if eligible else set()
    texts, truth = [], []
    for i, e in enumerate(acts):
        if i in decoys:
            k = sum(a > 0 for a in e.acts)
            off = [j for j, a in enumerate(e.acts) if a <= 0]
            fake = set(rng.choice(off, size=k, replace=False).tolist())
            texts.append(Example(e.doc_id, e.words, tuple(1.0 if j in fake else 0.0 for j in range(len(e.words))),
                                 e.max_act, e.kind).marked())
            truth.append(0)
        else:
            texts.append(e.marked())
            truth.append(1)
    order = rng.permutation(len(texts))
    return [texts[i] for i in order], [truth[i] for i in order]


def _answers_parser(n: int) -> Callable:
    def parse(text: str, prefill: str) -> list[int]:
        return parse_answers(text, n, prefill)

    return parse


def llm_score_items(scorer: str, cfg: LabelConfig, job: LatentJob, label: dict, tag: str):
    """Requests (batches of ``scorer_batch`` examples) and truths of one LLM scorer for one latent and label."""
    rng = latent_rng(cfg.seed, scorer, job.model, job.layer, job.latent)  # the same items for label and control
    texts, truth = (detection_items if scorer == "detection" else fuzzing_items)(job.examples, rng)
    render = detection_messages if scorer == "detection" else fuzzing_messages
    items = []
    for b in range(0, len(texts), cfg.scorer_batch):
        chunk = texts[b:b + cfg.scorer_batch]
        key = cache_key(kind=scorer, sae=job.sae_id, latent=job.latent, backend=cfg.backend, model=cfg.llm_name,
                        prompt=PROMPT_VERSION, label=label["label"], description=label["description"], texts=chunk,
                        max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, tag=tag)

        parse = _answers_parser(len(chunk))

        req = ChatRequest(tuple(render(label["label"], label["description"], chunk)), answers_schema(len(chunk)), "answers",
                          '{"answers": [', cfg.max_new_tokens, cfg.temperature)
        items.append((key, req, parse))
    return items, truth


def shuffled_partners(jobs: Sequence[LatentJob], labelled: Sequence[int], n: int, seed: int) -> dict[int, list[int]]:
    """For each labelled job, ``n`` other labelled jobs whose labels serve as its shuffled-label control: ``n``
    derangements within its (model, layer, role) -- a financial target gets labels of other financial targets of
    its layer, so the control is not an easy non-financial label -- where that has two or more labels, else
    random other labels of its role."""
    out: dict[int, list[int]] = {i: [] for i in labelled}
    groups: dict[tuple, list[int]] = {}
    for i in labelled:
        groups.setdefault((jobs[i].model, jobs[i].layer, jobs[i].role), []).append(i)
    rng = latent_rng(seed, "shuffle")
    for group in groups.values():
        if len(group) >= 2:
            for _ in range(n):
                for a, b in zip(group, derangement(len(group), rng), strict=True):
                    out[a].append(group[b])
        else:
            others = [j for j in labelled if j != group[0] and jobs[j].role == jobs[group[0]].role]
            if others:
                out[group[0]] = [int(j) for j in rng.choice(others, size=n, replace=len(others) < n)]
    return out


def intruder_sets(ex: LatentExamples, rng: np.random.Generator, n_sets: int, size: int) -> list[tuple[list[str], int]]:
    """Up to ``n_sets`` sets of ``size`` plain held-out sentences: ``size - 1`` activating ones and one
    non-activating intruder (random negatives first, then hard ones) at a random place; each with the intruder's
    number (1-based). None when there are too few activating examples or no negative."""
    acts = [e.text for e in ex.score_activating]
    negs = [e.text for e in ex.score_random_negatives + ex.score_hard_negatives]
    if len(acts) < size - 1 or not negs:
        return []
    out = []
    for s in range(n_sets):
        texts = [acts[i] for i in rng.choice(len(acts), size - 1, replace=False)]
        pos = int(rng.integers(size))
        texts.insert(pos, negs[s % len(negs)])
        out.append((texts, pos + 1))
    return out


def _intruder_parser(n: int) -> Callable:
    def parse(text: str, prefill: str) -> int:
        return parse_intruder(text, n, prefill)

    return parse


def intruder_items(cfg: LabelConfig, job: LatentJob):
    rng = latent_rng(cfg.seed, "intruder", job.model, job.layer, job.latent)
    sets = intruder_sets(job.examples, rng, cfg.intruder_sets, cfg.intruder_set_size)
    items = []
    for texts, _ in sets:
        key = cache_key(kind="intruder", sae=job.sae_id, latent=job.latent, backend=cfg.backend, model=cfg.llm_name,
                        prompt=PROMPT_VERSION, texts=texts, max_new_tokens=cfg.max_new_tokens,
                        temperature=cfg.temperature)
        req = ChatRequest(tuple(intruder_messages(texts)), intruder_schema(len(texts)), "intruder", '{"intruder": ',
                          cfg.max_new_tokens, cfg.temperature)
        items.append((key, req, _intruder_parser(len(texts))))
    return items, [t for _, t in sets]


def add_tokens(row: dict, got: Sequence[dict]) -> None:
    for a in got:
        if not a.get("cached"):
            row["prompt_tokens"] = row.get("prompt_tokens", 0) + a["prompt_tokens"]
            row["completion_tokens"] = row.get("completion_tokens", 0) + a["completion_tokens"]
