"""Per latent, which stored held-out contexts the explainer sees and which each scorer is tested on.

The analysis stage stores, per latent, its ``top`` examples, examples sampled across its activation
``quantile``s, and a pool of ``negative`` (never-firing) examples (``finsae.analysis.contexts``). Here they are
split so that the explainer never sees an example a scorer is tested on, nor another passage of its source
document or a near-duplicate of it (``source_groups``), and the
scorer's negatives are half random and half *hard*: the non-activating examples most similar, by sentence
embedding, to the activating ones.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from finsae.analysis.contexts import marked_text


@dataclass(frozen=True)
class Example:
    """One stored context: a whole sentence or headline as words, with the latent's activation per word."""

    doc_id: str
    """Held-out document it comes from."""
    words: tuple[str, ...]
    """Whole words (WordPiece already merged)."""
    acts: tuple[float, ...]
    """Per word, the latent's max activation over its pieces (all 0 for negatives)."""
    max_act: float
    """The latent's max activation over the whole document."""
    kind: str
    """``top``, ``quantile`` or ``negative``."""
    rank: int = 0
    """Order within its kind."""

    @property
    def text(self) -> str:
        """Plain text (no marks): what a detection scorer or the sentence embedder sees."""
        return " ".join(self.words)

    @property
    def activating(self) -> bool:
        return self.kind != "negative" and self.max_act > 0

    def marked(self, threshold: float = 0.0) -> str:
        """The text with each word whose activation exceeds ``threshold`` in ``<<...>>``."""
        return marked_text(self.words, self.acts, threshold)

    def activation_scale(self, scale_max: float) -> list[tuple[str, int]]:
        """The activating words with their activation on a 0-10 scale (10 = ``scale_max``, halves round up), in
        text order."""
        if scale_max <= 0:
            return []
        return [(w, int(10 * min(a, scale_max) / scale_max + 0.5)) for w, a in zip(self.words, self.acts, strict=True) if a > 0]


@dataclass(frozen=True)
class LatentExamples:
    """The examples of one latent, split between the explainer and the scorers (disjoint by ``doc_id``)."""

    explain: tuple[Example, ...]
    """Activating examples shown to the explainer."""
    explain_negatives: tuple[Example, ...]
    """Non-activating examples the lexical explainer contrasts against (no scorer sees them)."""
    score_activating: tuple[Example, ...]
    """Held-out activating examples the scorers are tested on."""
    score_random_negatives: tuple[Example, ...]
    """Random non-activating examples for the scorers."""
    score_hard_negatives: tuple[Example, ...]
    """The non-activating examples most similar to the activating ones (sentence embedding)."""
    n_activating: int
    """Distinct activating documents stored for the latent."""

    @property
    def score_negatives(self) -> tuple[Example, ...]:
        return self.score_random_negatives + self.score_hard_negatives

    def ids(self) -> dict[str, list[str]]:
        return {"explain_ids": [e.doc_id for e in self.explain],
                "score_activating_ids": [e.doc_id for e in self.score_activating],
                "score_random_negative_ids": [e.doc_id for e in self.score_random_negatives],
                "score_hard_negative_ids": [e.doc_id for e in self.score_hard_negatives]}


def examples_of(contexts: pd.DataFrame) -> dict[int, list[Example]]:
    """The stored contexts (one parquet of ``read_contexts``) as ``Example``s per latent, in (kind, rank) order."""
    out: dict[int, list[Example]] = {}
    df = contexts.sort_values(["latent", "kind", "rank"], kind="stable")
    for latent, doc, words, acts, max_act, kind, rank in zip(
            df["latent"], df["doc_id"], df["words"], df["acts"], df["max_act"], df["kind"], df["rank"], strict=True):
        out.setdefault(int(latent), []).append(Example(str(doc), tuple(str(w) for w in words),
                                                       tuple(float(a) for a in acts), float(max_act), str(kind),
                                                       int(rank)))
    return out


def _dedupe(examples: Sequence[Example], seen: set[str]) -> list[Example]:
    out = []
    for e in examples:
        if e.doc_id not in seen:
            seen.add(e.doc_id)
            out.append(e)
    return out


PASSAGE = re.compile(r"^(.*)#\d+$")
"""The analysis cuts long documents into passages ``{doc_id}#{j}`` (``finsae.analysis.heldout``)."""
_NOISE = re.compile(r"https?://\S+|www\.\S+|@\w+|\d+([.,]\d+)*|[^\w\s]")


def source_document(doc_id: str) -> str:
    """The document a passage was cut from (``X#3`` -> ``X``); other ids are their own document."""
    m = PASSAGE.match(doc_id)
    return m.group(1) if m else doc_id


def near_duplicate_key(text: str) -> str:
    """A hash equal for texts that differ only in case, links, @mentions, numbers and punctuation (retweets,
    the same headline with another price or link)."""
    words = _NOISE.sub(" ", text.lower()).split()
    words = [w for w in words if w != "rt"]  # a retweet is its tweet
    return hashlib.sha1(" ".join(words).encode()).hexdigest()[:16]


def source_groups(examples: Sequence[Example]) -> dict[str, str]:
    """``doc_id`` -> a group id shared by all passages of one source document and by all near-duplicate texts
    (transitively: union-find), so that a split by group keeps them on one side."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for e in examples:
        a, b = find("doc:" + source_document(e.doc_id)), find("text:" + near_duplicate_key(e.text))
        if a != b:
            parent[max(a, b)] = min(a, b)
    return {e.doc_id: find("doc:" + source_document(e.doc_id)) for e in examples}


def spread_over_quantiles(examples: Sequence[Example], n: int) -> list[Example]:
    """``n`` examples evenly spread over the activation quantiles of ``examples`` (lowest to highest max_act)."""
    ordered = sorted(examples, key=lambda e: (e.max_act, e.doc_id))
    if n >= len(ordered):
        return ordered
    if n <= 0:
        return []
    picks = np.unique(np.round(np.linspace(0, len(ordered) - 1, n)).astype(int))
    return [ordered[i] for i in picks]


def latent_rng(seed: int, *parts) -> np.random.Generator:
    """A generator that depends only on ``seed`` and ``parts`` (e.g. model, layer, latent): reruns agree."""
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


Embed = Callable[[Sequence[str]], np.ndarray]
"""Texts -> unit-norm sentence embeddings, one row per text."""


def hard_negatives(activating: Sequence[Example], pool: Sequence[Example], n: int, embed: Embed) -> list[Example]:
    """The ``n`` examples of ``pool`` closest (cosine) to the mean embedding of ``activating``, closest first."""
    if n <= 0 or not pool or not activating:
        return []
    pos = embed([e.text for e in activating])
    centre = pos.mean(axis=0)
    centre = centre / max(float(np.linalg.norm(centre)), 1e-12)
    sims = embed([e.text for e in pool]) @ centre
    order = np.argsort(-sims, kind="stable")[:n]
    return [pool[i] for i in order]


def split_examples(examples: Sequence[Example], *, n_explain: int, n_explain_negatives: int,
                   n_score_activating: int, n_score_random_negatives: int, n_score_hard_negatives: int,
                   rng: np.random.Generator, embed: Embed | None = None) -> LatentExamples:
    """Split one latent's stored examples between explainer and scorers.

    Activating documents (``top`` by rank, then ``quantile``, each document once) alternate by source group
    (``source_groups``: passages of one document and near-duplicate texts): the first group met goes to the
    explainer, the next to the scorers, and so on, and every later example of a group follows its group, so
    both see strong and weak examples and never the same source document. The explainer takes up to
    ``n_explain`` (about two thirds top, the rest spread over the quantiles); the scorers up to
    ``n_score_activating`` (half top, half quantile where available). The negative pool is shuffled and halved
    the same way (a negative of a group already on one side joins it): one half for the explainer, the other for the scorers' hard negatives (most
    similar to the scorer's activating examples) and random negatives (drawn from the rest of that half).
    Without ``embed``, the hard negatives are left empty and all scoring negatives are random.
    """
    seen: set[str] = set()
    top = _dedupe([e for e in examples if e.kind == "top" and e.max_act > 0], seen)
    quant = _dedupe([e for e in examples if e.kind == "quantile" and e.max_act > 0], seen)
    negs = _dedupe([e for e in examples if e.kind == "negative" or e.max_act <= 0], seen)
    n_activating = len(top) + len(quant)
    group = source_groups([*top, *quant, *negs])
    side: dict[str, int] = {}  # group -> 0 (explainer) or 1 (scorers)

    def halve(items: Sequence[Example]) -> tuple[list[Example], list[Example]]:
        out: tuple[list[Example], list[Example]] = ([], [])
        for e in items:
            g = group[e.doc_id]
            if g not in side:
                side[g] = len(side) % 2
            out[side[g]].append(e)
        return out

    (e_top, s_top), (e_quant, s_quant) = halve(top), halve(quant)
    n_explain_top = min(len(e_top), max(1, int(round(n_explain * 2 / 3))))
    explain = e_top[:n_explain_top]
    explain += spread_over_quantiles(e_quant, n_explain - len(explain))
    if len(explain) < n_explain:  # few quantile examples: fill with the next top ones
        explain += e_top[n_explain_top:][:n_explain - len(explain)]

    n_q = min(len(s_quant), n_score_activating // 2)
    score = s_top[:n_score_activating - n_q]
    score += spread_over_quantiles(s_quant, n_score_activating - len(score))

    order = rng.permutation(len(negs))
    explain_pool, score_pool = halve([negs[i] for i in order])
    explain_negatives = explain_pool[:n_explain_negatives]
    hard = hard_negatives(score, score_pool, n_score_hard_negatives, embed) if embed is not None else []
    hard_ids = {e.doc_id for e in hard}
    rest = [e for e in score_pool if e.doc_id not in hard_ids]
    n_random = n_score_random_negatives + (n_score_hard_negatives - len(hard) if embed is None else 0)
    random_negs = rest[:n_random]
    return LatentExamples(tuple(explain), tuple(explain_negatives), tuple(score), tuple(random_negs), tuple(hard),
                          n_activating)
