"""The published StockNet protocol on the real data: sample counts and the always-up test accuracy."""

from __future__ import annotations

import pytest

from finsae.data.stocknet_prices import load_stocknet_prices
from finsae.data.stocknet_tweets import load_stocknet_tweets_preprocessed
from finsae.trading.config import BenchmarkConfig
from finsae.trading.prices import adjusted
from finsae.trading.stocknet import PUBLISHED_COUNTS, stocknet_samples


def test_stocknet_counts_and_always_up(data_dir):
    s = stocknet_samples(adjusted(load_stocknet_prices(data_dir)), load_stocknet_tweets_preprocessed(data_dir),
                         BenchmarkConfig())
    assert s.counts == {"train": 20344, "dev": 2555, "test": 3720}
    for split, n in PUBLISHED_COUNTS.items():
        assert abs(s.counts[split] - n) <= 0.001 * n  # the paper: 20,339 / 2,555 / 3,720
    test = s.frame[s.frame["split"] == "test"]
    assert test["label"].mean() == pytest.approx(0.513, abs=0.001)  # always-up, as published
    kept = s.frame["move"]
    assert not ((kept >= -0.005) & (kept < 0.0055)).any()
    assert (s.frame["prev_date"] < s.frame["date"]).all()
    assert s.frame["date"].min() >= s.frame["date"].min().normalize()


def test_the_five_extra_train_samples_are_named_and_the_papers_counts_reproduced_exactly(data_dir):
    adj = adjusted(load_stocknet_prices(data_dir))
    tweets = load_stocknet_tweets_preprocessed(data_dir)
    ours = stocknet_samples(adj, tweets, BenchmarkConfig()).frame
    exact = stocknet_samples(adj, tweets, BenchmarkConfig(exact_counts=True))
    assert exact.counts == PUBLISHED_COUNTS
    key = lambda f: set(zip(f["ticker"], f["date"].dt.strftime("%Y-%m-%d"), strict=True))  # noqa: E731
    assert key(ours) - key(exact.frame) == {("BABA", "2014-09-24"), ("BABA", "2014-09-25"), ("BABA", "2014-09-26"),
                                            ("AGFS", "2014-11-25"), ("CHL", "2014-04-11")}
    assert key(exact.frame) <= key(ours)
