"""Training and test sets for the sentiment fine-tune, and the text of its masked-LM pass.

Labels follow ProsusAI/finbert's ``id2label``: 0 positive, 1 negative, 2 neutral.
twitter-financial-news-sentiment maps bullish -> positive, bearish -> negative, neutral -> neutral.
The PhraseBank test split is stratified by label and decided by a hash of the sentence (and seed),
so it never depends on file order and nothing else in finsae trains on it.
SST-2 (the control task) keeps the same ids for the labels it has: 1 positive -> 0, 0 negative -> 1, a 2-class
head; it trains on SST-2 train and is tested on SST-2 dev.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from finsae.data.phrasebank import LABELS  # the one label order
from finsae.finetune.config import MLM_CORPORA

LABEL_ID = {name: i for i, name in enumerate(LABELS)}
TWITTER_TO_LABEL = {0: "negative", 1: "positive", 2: "neutral"}
SST2_CLASSES = LABELS[:2]
"""The control head's classes (positive, negative): FinBERT's ids for the two labels SST-2 has."""
MIN_MLM_PASSAGE_CHARS = 40
"""General-text passages shorter than this (WikiText section headings, Brown one-word lines) are no MLM text."""


@dataclass(frozen=True)
class FinetuneData:
    """Frames with columns ``text`` (str), ``label`` (int, see LABELS), ``source`` (str), ``all_agree`` (bool)."""

    train: pd.DataFrame
    """PhraseBank train split (+ twitter train when asked)."""
    test: pd.DataFrame
    """PhraseBank test split (50% agreement; ``all_agree`` marks the AllAgree subset), or SST-2 dev."""
    classes: tuple[str, ...] = LABELS
    """The classifier head's classes, in id order."""
    has_agreement: bool = True
    """Whether ``test["all_agree"]`` marks an annotator-agreement subset (PhraseBank's AllAgree; SST-2 has none)."""


def _hash_rank(texts: pd.Series, seed: int, salt: str = "split") -> pd.Series:
    return texts.map(lambda t: hashlib.sha1(f"{salt}|{seed}|{t}".encode()).hexdigest())


def stratified_hash_split(df: pd.DataFrame, test_frac: float, seed: int = 0, text_col: str = "text",
                          label_col: str = "label") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per label, the ``test_frac`` of rows with the smallest hash(seed, text) go to test."""
    keys = _hash_rank(df[text_col], seed)
    test_idx = []
    for _, grp in df.groupby(label_col, sort=True):
        order = keys.loc[grp.index].sort_values(kind="stable").index
        test_idx.extend(order[: int(round(len(order) * test_frac))])
    is_test = df.index.isin(test_idx)
    return df.loc[~is_test].reset_index(drop=True), df.loc[is_test].reset_index(drop=True)


def build_finetune_data(data_dir: str | Path | None, test_frac: float = 0.2, seed: int = 0,
                        use_twitter: bool = True, max_train_examples: int | None = None,
                        task_data: str = "phrasebank") -> FinetuneData:
    """The training and test sets of ``task_data`` (``phrasebank`` or ``sst2``); ``max_train_examples`` keeps a
    hash-chosen subset of the training set."""
    if task_data == "sst2":
        return _cap(_sst2_data(data_dir), seed, max_train_examples)
    from finsae.data.phrasebank import load_phrasebank_with_agreement
    from finsae.data.twitter_sentiment import load_twitter_sentiment

    pb = load_phrasebank_with_agreement(data_dir=data_dir).drop_duplicates("sentence").reset_index(drop=True)
    pb = pd.DataFrame({
        "text": pb["sentence"].astype(str),
        "label": pb["label"].map(LABEL_ID).astype(int),
        "source": "phrasebank",
        "all_agree": (pb["max_agreement"] == "All").to_numpy(),
    })
    train, test = stratified_hash_split(pb, test_frac, seed)
    if use_twitter:
        tw = load_twitter_sentiment(data_dir=data_dir, split="train")
        tw = pd.DataFrame({
            "text": tw["text"].astype(str),
            "label": tw["label"].map(TWITTER_TO_LABEL).map(LABEL_ID).astype(int),
            "source": "twitter_fin",
            "all_agree": False,
        })
        tw = tw[~tw["text"].isin(set(test["text"]))]
        train = pd.concat([train, tw], ignore_index=True)
    return _cap(FinetuneData(train=train, test=test), seed, max_train_examples)


def hash_subset(frame: pd.DataFrame, n: int | None, seed: int, salt: str = "subset") -> pd.DataFrame:
    """At most ``n`` rows of ``frame`` (all for None), those with the smallest hash(salt, seed, text): a choice
    that depends on neither file order nor the other rows."""
    if n is None or len(frame) <= n:
        return frame
    # A different salt from the split's: the split's hash order would pick only non-PhraseBank rows.
    return frame.iloc[_hash_rank(frame["text"], seed, salt).argsort().to_numpy()[:n]].reset_index(drop=True)


def _cap(data: FinetuneData, seed: int, max_train_examples: int | None) -> FinetuneData:
    return dataclasses.replace(data, train=hash_subset(data.train, max_train_examples, seed))


def _sst2_data(data_dir) -> FinetuneData:
    """SST-2 train (each phrase once, none that is a dev sentence) and SST-2 dev, labels in FinBERT's ids."""
    from finsae.data.sst2 import SST2_LABELS, load_sst2

    def frame(split: str) -> pd.DataFrame:
        df = load_sst2(split, data_dir)
        return pd.DataFrame({"text": df["text"].astype(str), "label": df["label"].map(SST2_LABELS).map(LABEL_ID),
                             "source": "sst2", "all_agree": False})

    train, test = frame("train").drop_duplicates("text"), frame("dev")
    train = train[~train["text"].isin(set(test["text"]))].reset_index(drop=True)
    return FinetuneData(train=train, test=test, classes=SST2_CLASSES, has_agreement=False)


def mlm_texts(data_dir, n: int, eval_start: str, seed: int, corpus: str = "financial") -> list[str]:
    """``n`` texts from before the evaluation period for the masked-LM pass, shuffled with ``seed``, from the
    train splits of the corpora of ``corpus`` (:data:`~finsae.finetune.config.MLM_CORPORA`). ``financial``:
    Reuters bodies and StockNet tweets, whole. ``general``: the paragraphs of WikiText-2 articles and Brown texts
    (a few hundred documents, far longer than the pass's window: whole, they would give only their openings)."""
    import numpy as np

    from finsae.data.corpus import load_corpus

    parts: list[str] = []
    for name in MLM_CORPORA[corpus]:
        if corpus == "financial":
            parts.extend(load_corpus(name, data_dir=data_dir, split="train", max_docs=n, eval_start=eval_start).texts)
            continue
        for doc in load_corpus(name, data_dir=data_dir, split="train", eval_start=eval_start).texts:
            parts.extend(p.strip() for p in doc.split("\n") if len(p.strip()) >= MIN_MLM_PASSAGE_CHARS)
    np.random.default_rng(seed).shuffle(parts)
    return parts[:n]
