"""Loaders for the public data sets (tidy pandas frames) and the corpus registry.

Pure pandas/numpy: nothing here imports Hydra, Lightning or W&B. Files are read from
``finsae.paths.default_data_dir()`` (``$FINSAE_DATA_DIR``, else ``../shared/data``) unless a
``data_dir`` is given; a missing file raises ``finsae.errors.DataMissingError`` saying how to get
it (``python -m finsae.data.fetch``), a truncated or garbled archive ``CorruptDataError`` naming the file
and the same command. Archives are read in place, never extracted.
"""

from __future__ import annotations

from finsae.data._io import CorruptDataError, MalformedRowsWarning, resolve_data_dir
from finsae.data.ag_news import AG_LABELS, load_ag_news
from finsae.data.brown import load_brown
from finsae.data.corpus import (
    EVAL_START,
    Corpus,
    list_corpora,
    load_corpus,
    register_corpus,
    stocknet_tweets_before,
)
from finsae.data.index_prices import load_index_prices, load_nasdaq, load_sp500
from finsae.data.phrasebank import load_phrasebank, load_phrasebank_with_agreement
from finsae.data.reuters import REUTERS_CATEGORIES, load_reuters
from finsae.data.sst2 import SST2_LABELS, load_sst2
from finsae.data.stocknet_prices import load_stock_table, load_stocknet_prices, stocknet_tickers
from finsae.data.stocknet_tweets import (
    load_stocknet_tweets,
    load_stocknet_tweets_preprocessed,
    load_stocknet_tweets_raw,
)
from finsae.data.trading_calendar import assign_trading_day, close_times_utc, trading_calendar
from finsae.data.twitter_sentiment import load_twitter_sentiment
from finsae.data.wikitext import load_wikitext

__all__ = [
    "AG_LABELS", "EVAL_START", "REUTERS_CATEGORIES", "SST2_LABELS", "Corpus", "CorruptDataError", "MalformedRowsWarning",
    "assign_trading_day", "close_times_utc", "list_corpora", "load_ag_news", "load_brown",
    "load_corpus", "load_index_prices", "load_nasdaq", "load_phrasebank",
    "load_phrasebank_with_agreement", "load_reuters", "load_sp500", "load_sst2", "load_stock_table",
    "load_stocknet_prices", "load_stocknet_tweets", "load_stocknet_tweets_preprocessed",
    "load_stocknet_tweets_raw", "load_twitter_sentiment", "load_wikitext", "register_corpus",
    "resolve_data_dir", "stocknet_tickers", "stocknet_tweets_before", "trading_calendar",
]
