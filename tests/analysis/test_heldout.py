"""Held-out analysis text: passages of whole sentences, no training text, the groups the contrasts need."""

import numpy as np
import pandas as pd

from finsae.analysis.heldout import BROAD, GENRE, heldout_set, split_passages
from finsae.data.corpus import load_corpus


def test_long_documents_become_sentence_passages():
    text = " ".join(f"Sentence number {i} is here." for i in range(40))
    f = pd.DataFrame({"doc_id": ["d", "short"], "text": [text, "Tiny."], "source": ["x", "y"]})
    p = split_passages(f, max_chars=100)
    long = p[p.doc_id.str.startswith("d#")]
    assert len(long) > 5 and long.text.str.len().max() <= 100
    assert all(t.endswith(".") for t in long.text)  # cut at sentence ends
    assert " ".join(long.text) == text  # nothing lost
    assert p[p.doc_id == "short"].text.tolist() == ["Tiny."]


def test_heldout_set_has_no_training_text(data_dir):
    held = heldout_set(data_dir, docs_per_side=300, docs_per_category=30)
    counts = held.counts()
    for g in BROAD + GENRE:
        assert counts[g] > 0, g
    assert counts["ag_business"] > 1800  # Business is never in the SAE mix: all of it
    train_texts = set()
    for name in ("financial", "general"):
        train_texts.update(load_corpus(name, data_dir, split="train").frame["text"])
    frame = held.corpus.frame
    roots = frame["doc_id"].str.replace(r"#\d+$", "", regex=True)
    business = frame["source"].eq("ag_news") & np.isin(np.arange(len(frame)), held.groups["ag_business"])
    assert not frame.loc[~business, "text"].isin(train_texts).any()
    assert roots.notna().all() and frame["doc_id"].is_unique


def test_no_analysis_passage_is_in_the_twins_fine_tune_set(data_dir):
    from finsae.analysis.heldout import normalize_text, twin_training_texts
    from finsae.data.twitter_sentiment import load_twitter_sentiment
    from finsae.finetune.datasets import build_finetune_data

    excluded = twin_training_texts(data_dir)
    ft = build_finetune_data(data_dir, test_frac=0.2, seed=0, use_twitter=True)  # the twin's own training set
    ft_train = {normalize_text(t) for t in ft.train["text"]}
    assert ft_train <= excluded
    held = heldout_set(data_dir, docs_per_side=3000, docs_per_category=30, exclude_texts=excluded)
    frame = held.corpus.frame
    texts = frame["text"].map(normalize_text)
    assert not texts.isin(ft_train).any()
    assert not texts.isin({normalize_text(t) for t in load_twitter_sentiment("train", data_dir)["text"]}).any()
    assert not frame["source"].eq("twitter_fin_sentiment").any()
    # PhraseBank passages all come from the fine-tune's test split
    pb = texts[frame["source"].eq("phrasebank")]
    assert len(pb) > 0 and pb.isin({normalize_text(t) for t in ft.test["text"]}).all()
    # without the exclusion the same draw would hold fine-tune text (the check can fail)
    plain = heldout_set(data_dir, docs_per_side=3000, docs_per_category=30)
    assert plain.corpus.frame["text"].map(normalize_text).isin(ft_train).sum() > 100


def test_broad_contrast_is_length_matched_and_genre_negatives_disjoint(data_dir):
    held = heldout_set(data_dir, docs_per_side=1000, docs_per_category=30)
    med = held.median_chars()
    assert abs(med["financial"] - med["general"]) < 0.1 * med["general"]
    assert not set(held.groups["general"]) & set(held.groups["ag_other"])
    plain = heldout_set(data_dir, docs_per_side=1000, docs_per_category=30, match_length=False).median_chars()
    assert plain["general"] - plain["financial"] > 100  # what matching removes


def test_genre_negatives_grow_with_ag_articles_outside_the_sae_mix(data_dir):
    from finsae.analysis.heldout import normalize_text
    from finsae.data.mix import mixed_corpus

    mix = mixed_corpus(["financial", "general"], data_dir, "train", 2_600_000)
    mix_texts = frozenset(normalize_text(t) for t in mix.frame["text"])
    small = heldout_set(data_dir, docs_per_side=300, docs_per_category=10)
    big = heldout_set(data_dir, docs_per_side=300, docs_per_category=10, sae_mix_texts=mix_texts)
    assert big.counts()["ag_other"] > 2 * small.counts()["ag_other"]
    f = big.corpus.frame
    assert not f["text"].iloc[big.groups["ag_other"]].map(normalize_text).isin(mix_texts).any()
    assert not set(big.groups["general"]) & set(big.groups["ag_other"])


def test_genre_docs_caps_each_side_of_the_genre_contrast_and_keys_the_set(data_dir):
    full = heldout_set(data_dir, docs_per_side=300, docs_per_category=10)
    capped = heldout_set(data_dir, docs_per_side=300, docs_per_category=10, genre_docs=25)
    counts = capped.counts()
    assert counts["ag_business"] == 25 and counts["ag_other"] == 25
    assert full.counts()["ag_business"] > 25 and full.counts()["ag_other"] > 25
    assert capped.corpus.name != full.corpus.name  # another set, another cache entry
    f = capped.corpus.frame
    assert not set(capped.groups["general"]) & set(capped.groups["ag_other"])
    assert f["text"].iloc[capped.groups["ag_business"]].isin(full.corpus.frame["text"]).all()
