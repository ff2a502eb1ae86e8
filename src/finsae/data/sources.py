"""The public sources behind ``data_dir``: where each file comes from, where it goes, its license.

This table is the single place that names download locations. ``finsae.data.fetch`` downloads
from it; the loaders use it to tell a user how to get a file that is missing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """One file under ``data_dir``.

    ``name`` groups files (``--only NAME`` in ``python -m finsae.data.fetch``); ``target`` is the
    path relative to ``data_dir``; ``url`` is ``None`` for files that cannot be downloaded as-is
    (``note`` says how to make them); ``hub`` marks Hugging Face Hub files (skipped when
    ``HF_HUB_OFFLINE=1``); ``transform`` is ``"gzip"`` when the download is stored gzip-compressed.
    """

    name: str
    target: str
    url: str | None
    license: str
    homepage: str
    hub: bool = False
    transform: str | None = None
    note: str = ""


_HF = "https://huggingface.co/datasets"
_GH_RAW = "https://raw.githubusercontent.com"

SOURCES: tuple[Source, ...] = (
    Source(
        "stocknet", "stocknet/stocknet-dataset.tar.gz",
        "https://github.com/yumoxu/stocknet-dataset/archive/refs/heads/master.tar.gz",
        "MIT (tweets: Twitter content; prices: Yahoo)", "https://github.com/yumoxu/stocknet-dataset",
        note="GitHub archive of the whole repository (about 0.5 GB with tweet/raw).",
    ),
    Source(
        "stocknet", "stocknet/StockTable",
        f"{_GH_RAW}/yumoxu/stocknet-dataset/master/StockTable",
        "MIT", "https://github.com/yumoxu/stocknet-dataset",
    ),
    Source(
        "stocknet_raw_text", "stocknet/stocknet_tweets_raw_text.jsonl.gz", None,
        "MIT (tweets: Twitter content)", "https://github.com/yumoxu/stocknet-dataset",
        note="Selected fields of tweet/raw in the StockNet repository; fetch derives it from the "
        "downloaded stocknet archive when that archive holds tweet/raw.",
    ),
    Source(
        "phrasebank", "financial_phrasebank/FinancialPhraseBank-v1.0.zip",
        f"{_HF}/takala/financial_phrasebank/resolve/main/data/FinancialPhraseBank-v1.0.zip",
        "CC BY-NC-SA 3.0", "https://huggingface.co/datasets/takala/financial_phrasebank", hub=True,
    ),
    Source(
        "twitter_fin_sentiment", "twitter_financial_news_sentiment/sent_train.csv",
        f"{_HF}/zeroshot/twitter-financial-news-sentiment/resolve/main/sent_train.csv",
        "MIT", "https://huggingface.co/datasets/zeroshot/twitter-financial-news-sentiment", hub=True,
    ),
    Source(
        "twitter_fin_sentiment", "twitter_financial_news_sentiment/sent_valid.csv",
        f"{_HF}/zeroshot/twitter-financial-news-sentiment/resolve/main/sent_valid.csv",
        "MIT", "https://huggingface.co/datasets/zeroshot/twitter-financial-news-sentiment", hub=True,
    ),
    Source(
        "reuters21578", "reuters21578/reuters21578.tar.gz",
        "https://archive.ics.uci.edu/ml/machine-learning-databases/reuters21578-mld/reuters21578.tar.gz",
        "research use only (Lewis / UCI KDD)", "https://archive.ics.uci.edu/dataset/137/reuters+21578+text+categorization+collection",
    ),
    Source(
        "wikitext2", "general/wikitext-2/test.txt.gz",
        f"{_GH_RAW}/pytorch/examples/main/word_language_model/data/wikitext-2/test.txt",
        "CC BY-SA 3.0", "https://github.com/pytorch/examples", transform="gzip",
    ),
    Source(
        "wikitext2", "general/wikitext-2/valid.txt.gz",
        f"{_GH_RAW}/pytorch/examples/main/word_language_model/data/wikitext-2/valid.txt",
        "CC BY-SA 3.0", "https://github.com/pytorch/examples", transform="gzip",
    ),
    Source(
        "ag_news", "general/ag_news/test.csv.gz",
        f"{_GH_RAW}/mhjabreel/CharCnn_Keras/master/data/ag_news_csv/test.csv",
        "academic use (Zhang et al. 2015)", "https://github.com/mhjabreel/CharCnn_Keras", transform="gzip",
    ),
    Source(
        "sst2", "general/sst2/train.tsv.gz",
        f"{_GH_RAW}/awake020/pytorch_Bert_sst2/master/SST-2/train.tsv",
        "research use (GLUE terms)", "https://gluebenchmark.com/tasks", transform="gzip",
    ),
    Source(
        "sst2", "general/sst2/dev.tsv.gz",
        f"{_GH_RAW}/awake020/pytorch_Bert_sst2/master/SST-2/dev.tsv",
        "research use (GLUE terms)", "https://gluebenchmark.com/tasks", transform="gzip",
    ),
    Source(
        "brown", "general/brown.zip",
        f"{_GH_RAW}/nltk/nltk_data/gh-pages/packages/corpora/brown.zip",
        "non-commercial (Francis & Kucera)", "https://www.nltk.org/nltk_data/",
    ),
    Source(
        "index_prices", "prices/sp500.csv.gz",
        f"{_GH_RAW}/bashtage/arch/main/arch/data/sp500/sp500.csv.gz",
        "NCSA (arch package data)", "https://github.com/bashtage/arch",
    ),
    Source(
        "index_prices", "prices/nasdaq.csv.gz",
        f"{_GH_RAW}/bashtage/arch/main/arch/data/nasdaq/nasdaq.csv.gz",
        "NCSA (arch package data)", "https://github.com/bashtage/arch",
    ),
)


def source_names() -> list[str]:
    """Distinct source names, in table order."""
    return list(dict.fromkeys(s.name for s in SOURCES))


def how_to_get(name: str) -> str:
    """One sentence telling a user how to obtain source ``name`` (used in ``DataMissingError``)."""
    urls = [s.homepage for s in SOURCES if s.name == name]
    origin = f" (public source: {urls[0]})" if urls else ""
    return (
        f"Get it with `python -m finsae.data.fetch --only {name}` [--data-dir DIR]{origin}, "
        "or set FINSAE_DATA_DIR to a folder that already holds it."
    )
