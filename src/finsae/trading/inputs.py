"""The stage's inputs from the data folder: the StockNet prices of the chosen tickers, the S&P 500, the panel
of rows built from them, and the tweets (raw text for the encoders, the preprocessed layout for the ACL18
protocol); and the checks on them that run before any work."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from finsae.data.index_prices import load_sp500
from finsae.data.stocknet_prices import load_stocknet_prices
from finsae.data.stocknet_tweets import load_stocknet_tweets_preprocessed, load_stocknet_tweets_raw
from finsae.errors import ConfigError
from finsae.labeling.artifacts import read_labels
from finsae.paths import labels_dir
from finsae.trading.dataset import Panel, build_panel
from finsae.trading.text_features import TweetCorpus, tweet_corpus
from finsae.trading.walk_forward import folds

MIN_HEADLINE_DAYS = 5
"""Test days on or after ``data.eval_start`` a run needs for a headline row (the metrics' minimum)."""


class Market(NamedTuple):
    """Prices and the rows made from them."""

    prices: pd.DataFrame
    """Daily prices of the chosen tickers (``load_stocknet_prices``)."""
    sp500: pd.DataFrame
    panel: Panel
    """The walk-forward's rows (ticker x trading day in [features.start, features.end])."""

    @property
    def tickers(self) -> list[str]:
        return sorted(self.prices["ticker"].unique())


class Tweets(NamedTuple):
    """The raw-text tweets of the tickers and their unique-text corpus."""

    frame: pd.DataFrame
    """One row per ticker mention (``ticker``, ``created_at``, ``file_date``, ``text``, ...)."""
    corpus: TweetCorpus
    """Unique texts, in order of first creation: what the encoders read."""
    doc_of: np.ndarray
    """Each row of ``frame``'s document in ``corpus``."""


def check_data(data_dir: str | Path, fc) -> None:
    """The price files of ``fc.tickers`` (``fc``: a ``FeatureConfig``) and the index are there (a missing one
    is named with the command that fetches it)."""
    load_stocknet_prices(data_dir, fc.tickers)
    load_sp500(data_dir)


def load_market(data_dir: str | Path, fc, execution: str) -> Market:
    """Prices, the index and the panel of ``fc`` (a ``FeatureConfig``), executed at ``execution``."""
    prices = load_stocknet_prices(data_dir, fc.tickers)
    sp500 = load_sp500(data_dir)
    return Market(prices, sp500, build_panel(prices, sp500, fc.start, fc.end, execution))


def chosen_tickers(data_dir: str | Path, fc) -> list[str]:
    """The tickers of ``fc.tickers`` that have prices (all of StockNet's when None), sorted."""
    return sorted(load_stocknet_prices(data_dir, fc.tickers)["ticker"].unique())


def load_tweets(data_dir: str | Path, tickers: list[str]) -> Tweets:
    frame = load_stocknet_tweets_raw(data_dir, tickers)
    return Tweets(frame, *tweet_corpus(frame))


def load_labels(artifacts: str | Path, pair: str) -> pd.DataFrame | None:
    """The labeling stage's table of ``pair`` (the importance table's labels); None when it has not run."""
    return read_labels(labels_dir(Path(artifacts), pair), missing_ok=True)


def load_stocknet_tweets(data_dir: str | Path, tickers: list[str]) -> pd.DataFrame:
    """The tweets of the ACL18 protocol's own (preprocessed) layout."""
    return load_stocknet_tweets_preprocessed(data_dir, tickers)


def check_headline_period(rows: pd.DataFrame, eval_start: str, wf_cfg) -> None:
    """The walk-forward over ``rows`` (``Panel.rows``; ``wf_cfg``: a ``WalkForwardConfig``) tests at least
    :data:`MIN_HEADLINE_DAYS` days on or after ``eval_start``: else the run would have no headline period
    (refused in one line before any work)."""
    days = np.unique(rows["date"].to_numpy())
    tested = np.concatenate([f.test_days for f in folds(days, wf_cfg)])
    n = int((tested >= np.datetime64(pd.Timestamp(eval_start))).sum())
    if n < MIN_HEADLINE_DAYS:
        last = pd.Timestamp(tested.max()).date()
        raise ConfigError(f"data.eval_start={eval_start} leaves {n} walk-forward test day(s) on or after it "
                          f"(the last is {last}; a headline period needs {MIN_HEADLINE_DAYS}): the run "
                          f"would have no headline period; set data.eval_start earlier or features.end later")
