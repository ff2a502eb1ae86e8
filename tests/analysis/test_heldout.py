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
