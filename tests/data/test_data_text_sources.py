"""Reuters-21578, WikiText-2, AG News, Brown and the index price files."""

from __future__ import annotations

import pandas as pd
import pytest

from finsae.data import load_ag_news, load_brown, load_index_prices, load_reuters, load_wikitext
from finsae.data.ag_news import clean_ag_text
from finsae.errors import FinsaeError


def test_reuters(data_dir):
    r = load_reuters(data_dir)
    assert len(r) == 21578 and r["newid"].is_unique
    assert r["newid"].dtype == "int64" and str(r["date"].dtype) == "datetime64[ns]"
    first = r.iloc[0]
    assert first["newid"] == 1 and first["date"] == pd.Timestamp("1987-02-26 15:01:01")
    assert first["topics"] == ["cocoa"] and first["title"] == "BAHIA COCOA REVIEW"
    assert first["body"].startswith("Showers continued throughout the week in")
    assert first["body"].endswith("carnival which ends midday on February 27.")  # "Reuter" sign-off removed
    assert first["lewissplit"] == "TRAIN"
    assert r["lewissplit"].value_counts().to_dict() == {"TRAIN": 14668, "TEST": 6188, "NOT-USED": 722}
    assert r["text_type"].value_counts().to_dict() == {"NORM": 19043, "BRIEF": 1798, "UNPROC": 737}
    topics = r["topics"].explode().value_counts()
    assert topics["earn"] == 3987 and topics["acq"] == 2448 and topics["money-fx"] == 801
    # one document has a broken date ("605:12:19"): kept, NaT, counted
    assert r["date"].isna().sum() == 1 and r.attrs["malformed_rows"] == 1
    assert r.loc[r["date"].isna(), "newid"].item() == 17192
    assert not r["body"].str.contains("&lt;|&#|\x03|\x02", regex=True).any()
    assert r["date"].min() >= pd.Timestamp("1987-01-01") and r["date"].max() < pd.Timestamp("1988-01-01")


def test_wikitext(data_dir):
    w = load_wikitext("all", data_dir)
    assert w["split"].value_counts().to_dict() == {"test": 60, "valid": 60}
    test = load_wikitext("test", data_dir)
    assert test["title"].tolist()[:3] == ["Robert <unk>", "Du Fu", "Kiss You ( One Direction song )"]
    assert test["text"].iloc[0].startswith("Robert <unk> is an English film , television and theatre actor .")
    assert "guest-starring" in test["text"].iloc[0]  # " @-@ " undone
    # "= = Career = =" is a section heading, not a new article
    assert not test["title"].str.startswith("=").any()
    assert "Career" in test["text"].iloc[0].split("\n")
    raw = load_wikitext("test", data_dir, clean=False)
    assert " @-@ " in raw["text"].iloc[0]
    with pytest.raises(FinsaeError):
        load_wikitext("train", data_dir)


def test_ag_news(data_dir):
    a = load_ag_news(data_dir)
    assert len(a) == 7600 and a["label"].value_counts().to_dict() == {1: 1900, 2: 1900, 3: 1900, 4: 1900}
    assert list(a.columns) == ["label", "label_name", "title", "description", "text"]
    assert dict(zip(a["label"], a["label_name"], strict=True)) == {1: "World", 2: "Sports", 3: "Business", 4: "Sci/Tech"}
    assert a["title"].iloc[0] == "Fears for T N pension after talks" and a["label"].iloc[0] == 3
    assert a["text"].iloc[0] == a["title"].iloc[0] + "\n" + a["description"].iloc[0]
    assert not a["text"].str.contains("#39;|quot;|#36;", regex=True).any()
    assert clean_ag_text("Google #39;s  #36;10 quot;big quot; a\\b &lt;b&gt;x&lt;/b&gt;") == "Google's $10 \"big \" a b x"


def test_brown(data_dir):
    texts = load_brown("text", data_dir)
    assert len(texts) == 500 and texts["category"].nunique() == 15
    assert texts.loc[texts["fileid"] == "ca01", "category"].item() == "news"
    sents = load_brown("sentence", data_dir)
    assert len(sents) == 57340
    assert sents["text"].iloc[0].startswith("The Fulton County Grand Jury said Friday an investigation of")
    assert not sents["text"].str.contains("/at |/nn ", regex=True).any()
    paras = load_brown("paragraph", data_dir)
    assert len(texts) < len(paras) < len(sents)
    with pytest.raises(FinsaeError):
        load_brown("word", data_dir)


def test_index_prices(data_dir):
    for name, close0 in (("sp500", 1228.099976), ("nasdaq", 2208.050049)):
        df = load_index_prices(name, data_dir)
        assert list(df.columns) == ["date", "open", "high", "low", "close", "adj_close", "volume"]
        assert len(df) == 5031 and str(df["date"].dtype) == "datetime64[ns]"
        assert df["date"].iloc[0] == pd.Timestamp("1999-01-04") and df["date"].iloc[-1] == pd.Timestamp("2018-12-31")
        assert df["close"].iloc[0] == pytest.approx(close0)
        assert df["date"].is_monotonic_increasing and df.attrs["malformed_rows"] == 0
    with pytest.raises(FinsaeError):
        load_index_prices("dow", data_dir)
