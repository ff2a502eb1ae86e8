"""Financial PhraseBank and twitter-financial-news-sentiment: counts, labels, parsing quirks."""

from __future__ import annotations

import zipfile

import pandas as pd
import pytest

from finsae.data import load_phrasebank, load_phrasebank_with_agreement, load_twitter_sentiment
from finsae.data._io import MalformedRowsWarning
from finsae.errors import FinsaeError


def test_phrasebank_counts(data_dir):
    expected = {"50": 4846, "66": 4217, "75": 3453, "All": 2264}
    for agreement, n in expected.items():
        df = load_phrasebank(agreement, data_dir)
        assert len(df) == n
        assert list(df.columns) == ["sentence", "label"]
        assert set(df["label"]) == {"positive", "neutral", "negative"}
        assert df.attrs["malformed_rows"] == 0
    df = load_phrasebank("50", data_dir)
    assert df["label"].value_counts().to_dict() == {"neutral": 2879, "positive": 1363, "negative": 604}
    assert df["sentence"].iloc[0].startswith("According to Gran , the company has no plans")
    assert df["label"].iloc[0] == "neutral"
    assert not df["sentence"].str.contains("\r|\n").any()
    assert load_phrasebank(50, data_dir).equals(df) and load_phrasebank("50Agree", data_dir).equals(df)


def test_phrasebank_agreement_levels(data_dir):
    df = load_phrasebank_with_agreement(data_dir)
    assert len(df) == 4846
    counts = df["max_agreement"].value_counts().to_dict()
    # a few sentences occur twice in 50Agree, so these are not plain differences of file sizes
    assert counts == {"All": 2264, "75": 1190, "66": 763, "50": 629}
    all_agree = load_phrasebank("All", data_dir)
    assert set(df.loc[df["max_agreement"] == "All", "sentence"]) == set(all_agree["sentence"])
    assert set(df["agreement_pct"]) == {50, 66, 75, 100}
    assert df["agreement_pct"].dtype == "int64"


def test_phrasebank_bad_agreement(data_dir):
    with pytest.raises(FinsaeError, match="agreement"):
        load_phrasebank("80", data_dir)


def test_phrasebank_line_ends_latin1_and_malformed(tmp_path):
    # CRLF, a lone CR, a latin-1 byte, an '@' inside the sentence, one malformed line
    raw = ("Sales rose 5 % @ Nokia .@positive\r\n"
           "Caf\xe9 profits fell .@negative\r"
           "no label here\r\n"
           "Flat year .@neutral\n").encode("latin-1")
    target = tmp_path / "financial_phrasebank" / "FinancialPhraseBank-v1.0.zip"
    target.parent.mkdir(parents=True)
    with zipfile.ZipFile(target, "w") as zf:
        zf.writestr("FinancialPhraseBank-v1.0/Sentences_50Agree.txt", raw)
    with pytest.warns(MalformedRowsWarning, match="1 malformed"):
        df = load_phrasebank("50", tmp_path)
    assert df["sentence"].tolist() == ["Sales rose 5 % @ Nokia .", "Café profits fell .", "Flat year ."]
    assert df["label"].tolist() == ["positive", "negative", "neutral"]
    assert df.attrs["malformed_rows"] == 1


def test_twitter_sentiment(data_dir):
    train = load_twitter_sentiment("train", data_dir)
    valid = load_twitter_sentiment("valid", data_dir)
    assert (len(train), len(valid)) == (9543, 2388)
    assert list(train.columns) == ["text", "label", "label_name"]
    assert train["label"].dtype == "int64"
    assert train["label"].value_counts().to_dict() == {2: 6178, 1: 1923, 0: 1442}
    names = dict(zip(train["label"], train["label_name"], strict=True))
    assert names == {0: "bearish", 1: "bullish", 2: "neutral"}
    assert train["text"].iloc[0] == "$BYND - JPMorgan reels in expectations on Beyond Meat https://t.co/bd0xbFGjkT"
    assert train.attrs["malformed_rows"] == 0
    assert load_twitter_sentiment("validation", data_dir).equals(valid)


def test_twitter_sentiment_malformed(tmp_path):
    d = tmp_path / "twitter_financial_news_sentiment"
    d.mkdir()
    pd.DataFrame({"text": ["up up", "NA", "weird", "multi\nline"], "label": ["1", "0", "7", "2"]}).to_csv(
        d / "sent_train.csv", index=False)
    with pytest.warns(MalformedRowsWarning):
        df = load_twitter_sentiment("train", tmp_path)
    assert df["text"].tolist() == ["up up", "NA", "multi\nline"]  # "NA" is text, not a missing value
    assert df.attrs["malformed_rows"] == 1
    with pytest.raises(FinsaeError, match="split"):
        load_twitter_sentiment("test", tmp_path)
