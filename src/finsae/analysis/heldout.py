"""The analysis text: held-out passages no SAE was trained on, in named groups for the contrasts.

Every document comes from the ``heldout`` split of its corpus (chosen by a hash of its text; the SAE mix reads
only ``train``), except AG News Business, which is not in the SAE mix at all and is used whole. Long documents
(Reuters articles, Wikipedia, Brown) are cut into passages of whole sentences of at most ``max_chars``
characters, so that a latent's per-document max is not driven by document length (a 12,000-character Brown
file would out-max a tweet by sheer number of tokens).

Groups (each a set of passages; a passage may sit in several):

* ``financial`` / ``general`` — the broad contrast (financial vs general held-out text). The financial side
  is drawn **length-matched** to the general side (same share of passages in each of ``LENGTH_BINS`` quantile
  bins of the general passages' length): financial text is shorter (tweets, PhraseBank sentences), and a
  latent's per-passage max grows with the number of tokens, so an unmatched contrast partly measures length.
  The general side holds no AG News passage: those are the genre contrast's negatives, kept disjoint.
* ``ag_business`` / ``ag_other`` — the genre-matched contrast: AG News Business (all 1,900) vs World + Sports +
  Sci/Tech articles (same newswire style, different topic): the held-out ones, and, when the SAE mix's texts
  are given (``sae_mix_texts``), every such article the mix did not read (its character budget stops at a
  quarter of the general corpus).
* ``reuters_<topic>``, ``phrasebank_<label>`` — the category profiles (one topic vs the other topics).

**Not the twin's fine-tune text either** (``exclude_texts``, from :func:`twin_training_texts`): the finance
twin was fine-tuned on the PhraseBank train split and on twitter-financial-news-sentiment train, so every
such text is dropped from every group; PhraseBank passages come only from the fine-tune's test split.
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

    def median_chars(self) -> dict[str, float]:
        """Median passage length (characters) per group."""
        length = self.corpus.frame["text"].str.len().to_numpy()
        return {g: float(np.median(length[ix])) for g, ix in self.groups.items() if len(ix)}


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


LENGTH_BINS = 20
"""Quantile bins of the general passages' length in the length-matched draw of the financial side."""


def normalize_text(text: str) -> str:
    """The form in which texts are compared across loaders (whitespace runs collapsed)."""
    return " ".join(str(text).split())


def twin_training_texts(data_dir, test_frac: float = 0.2, seed: int = 0) -> frozenset[str]:
    """Every text the finance twin's classifier could have been trained on (normalised): the PhraseBank rows
    outside its test split (``finsae.finetune.datasets.build_finetune_data`` with the same ``test_frac`` and
    ``seed``) and all of twitter-financial-news-sentiment train (whether or not the run used it)."""
    from finsae.data.twitter_sentiment import load_twitter_sentiment
    from finsae.finetune.datasets import build_finetune_data

    train = build_finetune_data(data_dir, test_frac=test_frac, seed=seed, use_twitter=False).train["text"]
    twitter = load_twitter_sentiment(data_dir=data_dir, split="train")["text"]
    return frozenset(normalize_text(t) for t in pd.concat([train, twitter]).astype(str))


def length_matched(pool: pd.DataFrame, reference: pd.DataFrame, n: int, seed: int, name: str,
                   bins: int = LENGTH_BINS) -> pd.DataFrame:
    """``n`` rows of ``pool`` whose text lengths follow ``reference``'s: per quantile bin of the reference
    lengths, the reference's share of ``n`` drawn from the pool rows in that bin (all of them when fewer)."""
    ref_len = reference["text"].str.len().to_numpy()
    edges = np.unique(np.quantile(ref_len, np.linspace(0, 1, bins + 1)))
    edges[0], edges[-1] = -np.inf, np.inf
    ref_bin = np.digitize(ref_len, edges[1:-1])
    pool_bin = np.digitize(pool["text"].str.len().to_numpy(), edges[1:-1])
    want = np.bincount(ref_bin, minlength=len(edges) - 1) * (n / len(ref_len))
    parts = [_sample(pool[pool_bin == b], int(round(w)), seed, f"{name}:len{b}") for b, w in enumerate(want)]
    return pd.concat(parts).sort_index()


def _sample(frame: pd.DataFrame, n: int | None, seed: int, name: str) -> pd.DataFrame:
    if n is None or len(frame) <= n:
        return frame
    # a seed per group, from its name: adding a group never reshuffles another
    s = int(hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:8], 16)
    return frame.sample(n=n, random_state=s).sort_index()


def heldout_set(data_dir, *, docs_per_side: int | None = 3000, docs_per_category: int | None = 300,
                max_chars: int = 400, seed: int = 0, eval_start: str = EVAL_START,
                exclude_texts: frozenset[str] = frozenset(), match_length: bool = True,
                sae_mix_texts: frozenset[str] | None = None, genre_docs: int | None = None) -> HeldoutSet:
    """Load and cut the held-out passages of every group (see module doc); documents whose (normalised) text is
    in ``exclude_texts`` are dropped before cutting; ``sae_mix_texts`` (normalised texts the SAEs were trained
    on) lets ``ag_other`` take every AG article outside them; ``genre_docs`` caps each side of the genre
    contrast (None: every article; the general side stays disjoint from every AG article either way)."""
    def passages(name: str, split: str = "heldout", drop: frozenset[str] = frozenset()) -> pd.DataFrame:
        frame = load_corpus(name, data_dir, split=split, eval_start=eval_start).frame
        if exclude_texts or drop:
            norm = frame["text"].map(normalize_text)
            frame = frame[~(norm.isin(exclude_texts) | norm.isin(drop))]
        return split_passages(frame, max_chars)

    if sae_mix_texts is None:
        ag_other = pd.concat([passages(n) for n in AG_OTHER], ignore_index=True)
    else:
        ag_other = pd.concat([passages(n, "all", sae_mix_texts) for n in AG_OTHER], ignore_index=True)
    general = passages("general")
    general = _sample(general[~general["doc_id"].isin(set(ag_other["doc_id"]))], docs_per_side, seed, "general")
    fin_pool = passages("financial")
    n_fin = docs_per_side if docs_per_side is not None else len(fin_pool)
    financial = (length_matched(fin_pool, general, min(n_fin, len(fin_pool)), seed, "financial") if match_length
                 else _sample(fin_pool, docs_per_side, seed, "financial"))
    parts: dict[str, pd.DataFrame] = {
        "financial": financial,
        "general": general,
        "ag_business": _sample(passages("ag_business", split="all"), genre_docs, seed, "ag_business"),
        "ag_other": _sample(ag_other, genre_docs, seed, "ag_other"),
    }
    for name in CATEGORY_FAMILIES["reuters"] + CATEGORY_FAMILIES["phrasebank"]:
        if name.startswith("reuters_") and name.removeprefix("reuters_") not in REUTERS_CATEGORIES:
            continue
        parts[name] = _sample(passages(name), docs_per_category, seed, name)
    frame = pd.concat(parts.values(), ignore_index=True).drop_duplicates("doc_id").reset_index(drop=True)
    pos = pd.Series(np.arange(len(frame)), index=frame["doc_id"])
    groups = {g: np.sort(pos[p["doc_id"]].to_numpy()) for g, p in parts.items() if len(p)}
    excl = hashlib.sha256("\n".join(sorted(exclude_texts)).encode()
                          + b"|mix|" + "\n".join(sorted(sae_mix_texts or ())).encode()).hexdigest()[:8]
    genre = "" if genre_docs is None else f"|genre{genre_docs}"  # uncapped: the key it always had
    key = hashlib.sha256(f"{docs_per_side}|{docs_per_category}|{max_chars}|{seed}|{eval_start}|{match_length}|"
                         f"{excl}{genre}".encode()).hexdigest()
    return HeldoutSet(Corpus(name=f"analysis_heldout_{key[:8]}", frame=frame), groups)
