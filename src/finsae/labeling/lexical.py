"""The no-LLM baseline explainer: the words and two-word phrases most distinctive of a latent's activating
words against its non-activating text, by the log-odds ratio with an informative Dirichlet prior (Monroe,
Colaresi & Quinn 2008), as a short label. Honest, offline, and the floor an LLM label has to beat."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from finsae.labeling.examples import Example
from finsae.labeling.parsing import ParsedLabel

LEXICAL_VERSION = "lexical-v1"
"""Part of the cache key of lexical labels (bump on any change here)."""
WORD = re.compile(r"^[\w$%&'.-]*\w[\w$%&'.-]*$")
STOPWORDS = frozenset(
    "a an the and or but of to in on at for by with from as is are was were be been being it its this that these "
    "those he she they we you i his her their our your my me him them us not no do does did has have had will "
    "would can could should may might than then so if into over about up down out also just".split())


def _norm(w: str) -> str | None:
    w = w.lower().strip(".,;:!?\"'()[]{}")
    if len(w) < 2 or not WORD.match(w) or w in STOPWORDS:
        return None
    return w


def _terms(words: Sequence[str], keep: Sequence[bool]) -> list[str]:
    """Unigrams and bigrams of the words where ``keep`` is true (a bigram needs both words kept, adjacent)."""
    normed = [_norm(w) for w in words]
    out = [n for n, k in zip(normed, keep, strict=True) if k and n]
    for i in range(len(words) - 1):
        if keep[i] and keep[i + 1] and normed[i] and normed[i + 1]:
            out.append(f"{normed[i]} {normed[i + 1]}")
    return out


def log_odds_z(foreground: Counter, background: Counter, prior_weight: float = 0.5) -> dict[str, float]:
    """z-scores of the log-odds ratio of each term, foreground vs background, with an informative Dirichlet
    prior proportional to the pooled counts (``prior_weight`` pseudo-counts per pooled count, plus 0.01)."""
    pooled = foreground + background
    alpha = {w: prior_weight * c + 0.01 for w, c in pooled.items()}
    a0 = sum(alpha.values())
    n_f, n_b = sum(foreground.values()), sum(background.values())
    z = {}
    for w, a in alpha.items():
        f, b = foreground.get(w, 0), background.get(w, 0)
        delta = math.log((f + a) / (n_f + a0 - f - a)) - math.log((b + a) / (n_b + a0 - b - a))
        z[w] = delta / math.sqrt(1.0 / (f + a) + 1.0 / (b + a))
    return z


def lexical_label(activating: Sequence[Example], negatives: Sequence[Example], n_terms: int = 3) -> ParsedLabel:
    """A label made of the ``n_terms`` most distinctive terms of the activating words (foreground) against the
    negatives and the non-activating words of the activating examples (background)."""
    fg, bg = Counter(), Counter()
    for e in activating:
        on = [a > 0 for a in e.acts]
        fg.update(_terms(e.words, on))
        bg.update(_terms(e.words, [not x for x in on]))
    for e in negatives:
        bg.update(_terms(e.words, [True] * len(e.words)))
    if not fg:
        from finsae.labeling.parsing import ParseError

        raise ParseError("no activating words to label")
    z = log_odds_z(fg, bg)
    chosen: list[str] = []
    for term in sorted(fg, key=lambda t: (-z[t], -fg[t], t)):
        if any(term in c.split() or c in term.split() or term == c for c in chosen):
            continue  # "rate" once "rate hike" is in, and the other way round
        chosen.append(term)
        if len(chosen) == n_terms:
            break
    covered = sum(any(t in _terms(e.words, [a > 0 for a in e.acts]) for t in chosen) for e in activating)
    label = " / ".join(chosen)
    quoted = ", ".join(f"'{t}'" for t in chosen)
    return ParsedLabel(label, f"Fires on {quoted} ({covered} of {len(activating)} examples shown).")
