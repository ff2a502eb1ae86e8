"""The analysis text: held-out passages no SAE was trained on, in named groups for the contrasts.

Every document comes from the ``heldout`` split of its corpus (chosen by a hash of its text; the SAE mix reads
only ``train``), except AG News Business, which is not in the SAE mix at all and is used whole. Long documents
(Reuters articles, Wikipedia, Brown) are cut into passages of whole sentences of at most ``max_chars``
characters, so that a latent's per-document max is not driven by document length (a 12,000-character Brown
file would out-max a tweet by sheer number of tokens).

Groups (each a set of passages; a passage may sit in several):

* ``financial`` / ``general`` — the broad contrast (financial vs general held-out text);
* ``ag_business`` / ``ag_other`` — the genre-matched contrast: AG News Business (all 1,900) vs the held-out
  World + Sports + Sci/Tech articles (same newswire style, different topic);
* ``reuters_<topic>``, ``phrasebank_<label>`` — the category profiles (one topic vs the other topics).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from finsae.data.corpus import EVAL_START, Corpus, load_corpus
from finsae.data.phrasebank import LABELS
from finsae.data.reuters import REUTERS_CATEGORIES

BROAD = ("financial", "general")
GENRE = ("ag_business", "ag_other")
AG_OTHER = ("ag_world", "ag_sports", "ag_scitech")
REUTERS_TOPICS = ("earn", "acq", "money-fx", "interest", "crude", "grain", "trade")
CATEGORY_FAMILIES = {
    "reuters": tuple(f"reuters_{t}" for t in REUTERS_TOPICS),
    "phrasebank": tuple(f"phrasebank_{lab}" for lab in LABELS),
    "ag": ("ag_business", "ag_other"),
}
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n\s*\n")


@dataclass
class HeldoutSet:
    """The passages (``corpus.frame``: ``doc_id``, ``text``, ``source``, ``date``) and, per group, their row indices."""

    corpus: Corpus
    groups: dict[str, np.ndarray] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {g: len(ix) for g, ix in self.groups.items()}


def split_passages(frame: pd.DataFrame, max_chars: int) -> pd.DataFrame:
    """Cut documents longer than ``max_chars`` into passages of whole sentences (``doc_id#j``); a single
    sentence longer than ``max_chars`` is cut at spaces."""
    rows = []
    dates = frame["date"] if "date" in frame else pd.Series(pd.NaT, index=frame.index)
    for doc_id, text, source, date in zip(frame["doc_id"], frame["text"], frame["source"], dates, strict=True):
        text = str(text).strip()
        if len(text) <= max_chars:
            rows.append((str(doc_id), text, source, date))
            continue
        pieces = []
        for sent in _SENTENCE_END.split(text):
            sent = " ".join(sent.split())
            while len(sent) > max_chars:
                cut = sent.rfind(" ", 0, max_chars)
                cut = cut if cut > 0 else max_chars
                pieces.append(sent[:cut])
                sent = sent[cut:].strip()
            if sent:
                pieces.append(sent)
        cur = ""
        j = 0
        for p in pieces:
            if cur and len(cur) + 1 + len(p) > max_chars:
                rows.append((f"{doc_id}#{j}", cur, source, date))
                j, cur = j + 1, ""
            cur = f"{cur} {p}" if cur else p
        if cur:
            rows.append((f"{doc_id}#{j}", cur, source, date))
    out = pd.DataFrame(rows, columns=["doc_id", "text", "source", "date"])
    out["date"] = pd.to_datetime(out["date"], utc=True)
    return out


def _sample(frame: pd.DataFrame, n: int | None, seed: int, name: str) -> pd.DataFrame:
    if n is None or len(frame) <= n:
        return frame
    # a seed per group, from its name: adding a group never reshuffles another
    s = int(hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:8], 16)
    return frame.sample(n=n, random_state=s).sort_index()


def heldout_set(data_dir, *, docs_per_side: int | None = 3000, docs_per_category: int | None = 300,
                max_chars: int = 400, seed: int = 0, eval_start: str = EVAL_START) -> HeldoutSet:
    """Load and cut the held-out passages of every group (see module doc)."""
    def passages(name: str, split: str = "heldout") -> pd.DataFrame:
        return split_passages(load_corpus(name, data_dir, split=split, eval_start=eval_start).frame, max_chars)

    parts: dict[str, pd.DataFrame] = {
        "financial": _sample(passages("financial"), docs_per_side, seed, "financial"),
        "general": _sample(passages("general"), docs_per_side, seed, "general"),
        "ag_business": passages("ag_business", split="all"),
        "ag_other": pd.concat([passages(n) for n in AG_OTHER], ignore_index=True),
    }
    for name in CATEGORY_FAMILIES["reuters"] + CATEGORY_FAMILIES["phrasebank"]:
        if name.startswith("reuters_") and name.removeprefix("reuters_") not in REUTERS_CATEGORIES:
            continue
        parts[name] = _sample(passages(name), docs_per_category, seed, name)
    frame = pd.concat(parts.values(), ignore_index=True).drop_duplicates("doc_id").reset_index(drop=True)
    pos = pd.Series(np.arange(len(frame)), index=frame["doc_id"])
    groups = {g: np.sort(pos[p["doc_id"]].to_numpy()) for g, p in parts.items() if len(p)}
    key = hashlib.sha256(f"{docs_per_side}|{docs_per_category}|{max_chars}|{seed}|{eval_start}".encode()).hexdigest()
    return HeldoutSet(Corpus(name=f"analysis_heldout_{key[:8]}", frame=frame), groups)
