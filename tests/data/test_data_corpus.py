"""Corpus registry: names, schema, deterministic splits and subsets, dedup, eval-start exclusion."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from finsae.data import load_stocknet_tweets_raw
from finsae.data.corpus import (
    EVAL_START,
    Corpus,
    list_corpora,
    load_corpus,
    register_corpus,
    split_of_text,
)
from finsae.data.trading_calendar import assign_trading_day, trading_calendar
from finsae.errors import FinsaeError

REQUIRED = {
    "financial", "general", "reuters", "phrasebank", "stocknet_tweets", "wikitext",
    "reuters_earn", "reuters_acq", "reuters_money-fx", "reuters_interest", "reuters_crude",
    "reuters_grain", "reuters_trade", "phrasebank_positive", "phrasebank_negative",
    "phrasebank_neutral", "ag_business", "ag_world", "ag_sports", "ag_scitech",
}


def test_registry_names_and_unknown():
    assert REQUIRED <= set(list_corpora())
    assert EVAL_START == "2015-08-01"
    with pytest.raises(FinsaeError, match="Available: .*financial"):
        load_corpus("no_such_corpus")
    with pytest.raises(FinsaeError, match="split"):
        load_corpus("phrasebank", split="test")


def _check_schema(c: Corpus) -> None:
    f = c.frame
    assert list(f.columns) == ["doc_id", "text", "source", "date", "label", "split"]
    assert str(f["date"].dtype) == "datetime64[ns, UTC]"
    assert f["doc_id"].is_unique
    assert (f["text"].str.len() > 0).all() and (f["text"] == f["text"].str.strip()).all()
    assert f["text"].is_unique
    assert set(f["split"]) <= {"train", "heldout"}
    assert all(v is None or isinstance(v, str) for v in f["label"])
    assert len(c) == len(f) and c.texts == f["text"].tolist()


@pytest.mark.parametrize("name", sorted(REQUIRED - {"financial", "stocknet_tweets"}))
def test_every_corpus_builds(data_dir, name):
    c = load_corpus(name, data_dir, split="all")
    _check_schema(c)
    assert len(c) > 50


def test_known_sizes(data_dir):
    assert len(load_corpus("phrasebank", data_dir, split="all")) == 4846 - 8  # 8 repeated sentences
    assert len(load_corpus("wikitext", data_dir, split="all")) == 120
    assert len(load_corpus("ag_business", data_dir, split="all")) == 1900
    general = load_corpus("general", data_dir, split="all").frame
    assert general["source"].value_counts().to_dict() == {"ag_news": 5700, "brown": 500, "wikitext": 120}
    assert "Business" not in set(general["label"])
    earn = load_corpus("reuters_earn", data_dir, split="all").frame
    assert set(earn["label"]) == {"earn"} and len(earn) > 3900
    pos = load_corpus("phrasebank_positive", data_dir, split="all").frame
    assert set(pos["label"]) == {"positive"}


def test_split_disjoint_complete_and_by_text(data_dir):
    full = load_corpus("financial", data_dir, split="all")
    train = load_corpus("financial", data_dir, split="train")
    held = load_corpus("financial", data_dir, split="heldout")
    _check_schema(full)
    assert set(train.frame["doc_id"]).isdisjoint(held.frame["doc_id"])
    assert set(train.texts).isdisjoint(held.texts)
    assert len(train) + len(held) == len(full)
    assert 0.08 < len(held) / len(full) < 0.12
    assert all(split_of_text(t) == "heldout" for t in held.texts[:200])
    assert set(full.frame["source"]) == {"reuters", "phrasebank", "twitter_fin_sentiment", "stocknet_tweets"}
    assert full.frame.attrs["duplicates_dropped"] > 0
    # a text's split does not depend on the corpus it is in
    pb = load_corpus("phrasebank", data_dir, split="all").frame
    merged = pb.merge(full.frame[["text", "split"]], on="text", suffixes=("", "_fin"))
    assert len(merged) > 4000 and (merged["split"] == merged["split_fin"]).all()


def test_max_docs_is_a_deterministic_prefix(data_dir):
    small = load_corpus("financial", data_dir, max_docs=10)
    big = load_corpus("financial", data_dir, max_docs=100)
    assert len(small) == 10 and big.frame["doc_id"].tolist()[:10] == small.frame["doc_id"].tolist()
    again = load_corpus("financial", data_dir, max_docs=10)
    assert again.content_hash() == small.content_hash()
    assert small.frame["source"].nunique() >= 2  # hash order mixes sources
    assert len(load_corpus("phrasebank", data_dir, max_docs=0)) == 0


def test_content_hash_stable_across_processes(data_dir):
    c = load_corpus("phrasebank", data_dir, max_docs=500)
    code = ("from finsae.data.corpus import load_corpus;"
            f"print(load_corpus('phrasebank', {str(data_dir)!r}, max_docs=500).content_hash())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == c.content_hash()
    assert len(c.content_hash()) == 64
    assert c.content_hash() != load_corpus("phrasebank_neutral", data_dir, max_docs=500).content_hash()


@pytest.mark.parametrize("name", ["financial", "stocknet_tweets"])
@pytest.mark.parametrize("split", ["train", "heldout", "all"])
def test_no_stocknet_tweet_at_or_after_eval_start(data_dir, name, split):
    frame = load_corpus(name, data_dir, split=split).frame
    sn = frame[frame["source"] == "stocknet_tweets"]
    assert len(sn) > 1000
    start = pd.Timestamp(EVAL_START, tz="UTC")
    assert (sn["date"] < start).all()
    raw = load_stocknet_tweets_raw(data_dir)
    raw = raw.assign(doc_id="stocknet:" + raw["id_str"].astype(str))
    used = raw[raw["doc_id"].isin(set(sn["doc_id"]))]
    assert used["doc_id"].nunique() == len(sn)
    assert (used["created_at"] < start).all()
    day = assign_trading_day(used["created_at"], trading_calendar(data_dir))
    assert (day < pd.Timestamp(EVAL_START)).all()
    assert raw["created_at"].max() > start  # the cut really bites: the tweets go on to 2016-03


def test_eval_start_parameter_and_after_close_rule(data_dir):
    c = load_corpus("stocknet_tweets", data_dir, split="all", eval_start="2015-07-30")
    assert (c.frame["date"] < pd.Timestamp("2015-07-30", tz="UTC")).all()
    assert len(c) < len(load_corpus("stocknet_tweets", data_dir, split="all"))
    # tweets after Wednesday 2015-07-29's close (20:00 UTC) but before midnight UTC count for
    # Thursday 2015-07-30 = eval_start: created before eval_start, yet excluded
    raw = load_stocknet_tweets_raw(data_dir)
    late = raw[(raw["created_at"] >= pd.Timestamp("2015-07-29 20:00", tz="UTC"))
               & (raw["created_at"] < pd.Timestamp("2015-07-30", tz="UTC"))]
    assert len(late) > 20
    assert not ("stocknet:" + late["id_str"].astype(str)).isin(set(c.frame["doc_id"])).any()
    before = raw[(raw["created_at"] >= pd.Timestamp("2015-07-29 19:00", tz="UTC"))
                 & (raw["created_at"] < pd.Timestamp("2015-07-29 20:00", tz="UTC"))]
    kept = ("stocknet:" + before["id_str"].astype(str)).isin(set(c.frame["doc_id"]))
    assert kept.sum() > 0  # before the close: in (unless a duplicate text was kept elsewhere)


def test_register_corpus_rules_and_order_independence():
    rows = pd.DataFrame({
        "doc_id": ["a", "b", "c", "d", "e"],
        "text": ["  alpha ", "beta", "alpha", "", "gamma"],
        "source": ["s1", "s1", "s0", "s1", "s1"],
        "date": pd.to_datetime(["2014-01-01", None, "2014-01-02", None, None]),
        "label": ["x", None, "y", None, float("nan")],
    })
    register_corpus("_test_tiny", lambda data_dir: rows, overwrite=True)
    register_corpus("_test_tiny_shuffled", lambda data_dir, eval_start: rows.iloc[::-1], overwrite=True)
    with pytest.raises(FinsaeError, match="already registered"):
        register_corpus("_test_tiny", lambda data_dir: rows)
    c = load_corpus("_test_tiny", split="all")
    _check_schema(c)
    assert sorted(c.texts) == ["alpha", "beta", "gamma"]
    assert c.frame.attrs["empty_dropped"] == 1 and c.frame.attrs["duplicates_dropped"] == 1
    # the duplicate kept is the smallest (source, doc_id): ("s0", "c")
    assert c.frame.loc[c.frame["text"] == "alpha", "doc_id"].item() == "c"
    assert c.frame.loc[c.frame["text"] == "alpha", "date"].item() == pd.Timestamp("2014-01-02", tz="UTC")
    assert c.frame.loc[c.frame["text"] == "gamma", "label"].item() is None
    shuffled = load_corpus("_test_tiny_shuffled", split="all")
    assert shuffled.frame.drop(columns=[]).equals(c.frame)
    assert [split_of_text(t) for t in c.texts] == c.frame["split"].tolist()


def test_builtin_corpora_are_cached_on_disk_and_rebuilt_when_inputs_change(data_dir, tmp_path, monkeypatch):
    """The disk cache gives the frame (and its build counts) that parsing gives; a changed data file or a damaged
    entry is rebuilt; a registered corpus is never cached (its inputs are unknown)."""
    import os
    import shutil
    import time

    from finsae.data import corpus as corpus_mod

    monkeypatch.setenv(corpus_mod.CACHE_ENV, str(tmp_path / "cache"))
    data = tmp_path / "data" / "financial_phrasebank"
    data.mkdir(parents=True)
    shutil.copy(data_dir / "financial_phrasebank" / "FinancialPhraseBank-v1.0.zip", data)
    parsed = []
    build = corpus_mod._build_frame
    monkeypatch.setattr(corpus_mod, "_build_frame", lambda *a: parsed.append(a[0]) or build(*a))

    def load():
        corpus_mod._build.cache_clear()  # a new process: only the disk cache is left
        return load_corpus("phrasebank", data_dir=data.parent, split="all").frame

    first = load()
    entries = sorted((tmp_path / "cache").glob("phrasebank-*.pkl"))
    assert parsed == ["phrasebank"] and len(entries) == 1
    again = load()
    assert parsed == ["phrasebank"]  # read back, not parsed
    pd.testing.assert_frame_equal(again, first)
    assert again.attrs == first.attrs and again.attrs["n_raw"] > 0
    zipped = data / "FinancialPhraseBank-v1.0.zip"
    os.utime(zipped, ns=(zipped.stat().st_atime_ns, zipped.stat().st_mtime_ns + 10**9))
    load()
    assert parsed == ["phrasebank"] * 2 and len(list((tmp_path / "cache").glob("phrasebank-*.pkl"))) == 2
    # an entry unread for CACHE_UNUSED_DAYS goes when the corpus writes a new one; another corpus' entry stays
    old = time.time() - (corpus_mod.CACHE_UNUSED_DAYS + 1) * 86400
    other = tmp_path / "cache" / f"phrasebank_x-{'0' * 20}.pkl"
    other.write_bytes(b"another corpus")
    for entry in [*(tmp_path / "cache").glob("phrasebank-*.pkl"), other]:
        os.utime(entry, (old, old))
    load()  # a read refreshes its own entry ...
    os.utime(zipped, ns=(zipped.stat().st_atime_ns, zipped.stat().st_mtime_ns + 10**9))
    load()  # ... a new entry prunes the stale one
    assert parsed == ["phrasebank"] * 3 and other.is_file()
    assert len(list((tmp_path / "cache").glob("phrasebank-*.pkl"))) == 2
    for entry in (tmp_path / "cache").glob("phrasebank-*.pkl"):
        entry.write_bytes(b"cut")
    pd.testing.assert_frame_equal(load(), first)
    assert parsed == ["phrasebank"] * 4
    register_corpus("_test_cached", lambda data_dir: pd.DataFrame({"doc_id": ["a"], "text": ["x"], "source": ["s"]}),
                    overwrite=True)
    load_corpus("_test_cached", data_dir=data.parent, split="all")
    assert not list((tmp_path / "cache").glob("_test_cached*"))
    monkeypatch.setenv(corpus_mod.CACHE_ENV, "off")
    load()
    assert parsed[-1] == "phrasebank" and len(parsed) == 6
