"""twitter-financial-news-sentiment (zeroshot): finance tweets labelled bearish/bullish/neutral.

Source files: ``twitter_financial_news_sentiment/sent_{train,valid}.csv`` with columns
``text,label``; label 0 bearish, 1 bullish, 2 neutral. Undated (collected around 2020-2022).
"""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd

from finsae.data._io import file_key, handout, report_malformed, require_path
from finsae.errors import FinsaeError

TWITTER_SENTIMENT_DIR = "twitter_financial_news_sentiment"
SPLITS: tuple[str, ...] = ("train", "valid")
LABEL_NAMES: dict[int, str] = {0: "bearish", 1: "bullish", 2: "neutral"}


@functools.cache
def _parse(key: tuple[str, int, int]) -> pd.DataFrame:
    raw = pd.read_csv(key[0], dtype=str, keep_default_na=False)
    if not {"text", "label"} <= set(raw.columns):
        raise FinsaeError(f"{key[0]}: expected columns text,label, found {list(raw.columns)}")
    label = pd.to_numeric(raw["label"], errors="coerce")
    ok = label.isin(list(LABEL_NAMES)) & (raw["text"].str.strip() != "")
    bad = raw.loc[~ok, "text"].tolist()
    df = pd.DataFrame({
        "text": raw.loc[ok, "text"].astype("str"),
        "label": label[ok].astype("int64"),
    }).reset_index(drop=True)
    df["label_name"] = df["label"].map(LABEL_NAMES).astype("str")
    return report_malformed(df, len(bad), f"twitter-financial-news-sentiment {Path(key[0]).name}", bad)


def load_twitter_sentiment(split: str = "train", data_dir: str | Path | None = None) -> pd.DataFrame:
    """One split (``"train"`` or ``"valid"``; ``"validation"`` accepted) in file order.

    Returns columns: ``text`` (str), ``label`` (int64: 0 bearish, 1 bullish, 2 neutral),
    ``label_name`` (str). ``attrs["malformed_rows"]``: rows with an empty text or a label
    outside {0, 1, 2}. Sizes: train 9,543, valid 2,388.
    """
    split = {"validation": "valid", "val": "valid"}.get(split, split)
    if split not in SPLITS:
        raise FinsaeError(f"Unknown twitter-financial-news-sentiment split {split!r}; choose one of {list(SPLITS)}.")
    path = require_path(data_dir, f"{TWITTER_SENTIMENT_DIR}/sent_{split}.csv",
                        f"twitter-financial-news-sentiment {split} CSV", "twitter_fin_sentiment")
    return handout(_parse(file_key(path)))
