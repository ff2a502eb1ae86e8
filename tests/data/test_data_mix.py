"""The SAE training mix: equal character budgets, no duplicates, nothing from the evaluation period."""

import pandas as pd

from finsae.data.mix import mixed_corpus


def test_budget_dedup_and_eval_exclusion(data_dir):
    c = mixed_corpus(["financial", "reuters"], data_dir, max_chars_per_corpus=200_000)
    f = c.frame
    assert c.name == "financial+reuters@200000c"
    assert f["doc_id"].is_unique and f["text"].is_unique
    per = f.groupby(f["doc_id"].str.split(":").str[0])["text"].apply(lambda t: t.str.len().sum())
    assert 200_000 <= per["financial"] < 200_000 + f["text"].str.len().max()
    assert per["reuters"] >= 200_000
    dated = f.dropna(subset=["date"])
    assert (dated["date"] < pd.Timestamp("2015-08-01", tz="UTC")).all()
    assert set(f["split"]) == {"train"}
    again = mixed_corpus(["financial", "reuters"], data_dir, max_chars_per_corpus=200_000)
    assert again.content_hash() == c.content_hash()
