"""Fixtures for the data tests: the real shared data folder (skip when absent) and tiny fakes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ci_rules import skip_or_fail_without_data

from finsae.paths import default_data_dir

REQUIRED = [
    "stocknet/stocknet-dataset.tar.gz",
    "stocknet/stocknet_tweets_raw_text.jsonl.gz",
    "financial_phrasebank/FinancialPhraseBank-v1.0.zip",
    "twitter_financial_news_sentiment/sent_train.csv",
    "reuters21578/reuters21578.tar.gz",
    "general/wikitext-2/test.txt.gz",
    "general/ag_news/test.csv.gz",
    "general/brown.zip",
    "prices/sp500.csv.gz",
]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder (FINSAE_DATA_DIR or ../shared/data); skips the test when it is absent."""
    d = default_data_dir()
    how = ("FINSAE_DATA_DIR points there" if os.environ.get("FINSAE_DATA_DIR")
           else "no ../shared/data beside the project; set FINSAE_DATA_DIR to the data folder")
    if not d.is_dir():
        skip_or_fail_without_data(f"real data folder {d} not found ({how})")
    missing = [r for r in REQUIRED if not (d / r).is_file()]
    if missing:
        skip_or_fail_without_data(f"real data folder {d} lacks {missing}")
    return d
