"""Training and test sets for the sentiment fine-tune.

Labels follow ProsusAI/finbert's ``id2label``: 0 positive, 1 negative, 2 neutral.
twitter-financial-news-sentiment maps bullish -> positive, bearish -> negative, neutral -> neutral.
The PhraseBank test split is stratified by label and decided by a hash of the sentence (and seed),
so it never depends on file order and nothing else in finsae trains on it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from finsae.data.phrasebank import LABELS  # the one label order

LABEL_ID = {name: i for i, name in enumerate(LABELS)}
TWITTER_TO_LABEL = {0: "negative", 1: "positive", 2: "neutral"}


@dataclass(frozen=True)
class FinetuneData:
    """Frames with columns ``text`` (str), ``label`` (int, see LABELS), ``source`` (str), ``all_agree`` (bool)."""

    train: pd.DataFrame
    """PhraseBank train split (+ twitter train when asked)."""
    test: pd.DataFrame
    """PhraseBank test split (50% agreement); ``all_agree`` marks the AllAgree subset."""


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
                        use_twitter: bool = True, max_train_examples: int | None = None) -> FinetuneData:
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
    if max_train_examples is not None and len(train) > max_train_examples:
        # A different salt from the split's: the split's hash order would pick only non-PhraseBank rows.
        train = train.iloc[_hash_rank(train["text"], seed, "subset").argsort().to_numpy()[:max_train_examples]]
        train = train.reset_index(drop=True)
    return FinetuneData(train=train, test=test)


def mlm_texts(data_dir, n: int, eval_start: str, seed: int) -> list[str]:
    """``n`` financial texts from before the evaluation period for the masked-LM pass: Reuters bodies and
    StockNet tweets (corpus train splits), shuffled with ``seed``."""
    import numpy as np

    from finsae.data.corpus import load_corpus

    parts: list[str] = []
    for name in ("reuters", "stocknet_tweets"):
        parts.extend(load_corpus(name, data_dir=data_dir, split="train", max_docs=n, eval_start=eval_start).texts)
    np.random.default_rng(seed).shuffle(parts)
    return parts[:n]
