"""Top contexts: whole words from WordPiece rows, peak sentence, example kinds, the stored layout."""

import numpy as np
import pandas as pd
import pytest

from finsae.analysis.contexts import (
    CONTEXT_COLUMNS,
    build_contexts,
    excerpt,
    marked_text,
    pick_examples,
    read_contexts,
    word_activations,
    write_contexts,
)
from finsae.errors import DataMissingError
from finsae.models import get_spec
from finsae.models.loading import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(get_spec("minilm"))


def test_wordpiece_pieces_merge_into_whole_words(tokenizer):
    text = "Shares of Nvidia's unaffiliated subsidiary rose 5.2% on Tuesday."
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    pieces = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    assert any(p.startswith("##") for p in pieces)  # the example does exercise WordPiece
    starts = np.array([s for s, _ in enc["offset_mapping"]])
    acts = np.zeros(len(pieces), np.float32)
    acts[pieces.index("##lia")] = 2.0  # inside "unaffiliated" (una ##ffi ##lia ##ted)
    acts[pieces.index("%")] = 1.0  # punctuation attached to 5.2
    words, wacts = word_activations(text, starts, acts)
    assert words == text.split()
    assert wacts[words.index("unaffiliated")] == 2.0 and wacts[words.index("5.2%")] == 1.0
    assert marked_text(words, wacts) == "Shares of Nvidia's <<unaffiliated>> subsidiary rose <<5.2%>> on Tuesday."


def test_excerpt_is_the_sentence_around_the_peak():
    words = "Markets were calm. Then the Fed raised rates sharply today. Nothing else happened.".split()
    acts = np.zeros(len(words))
    acts[words.index("raised")] = 3.0
    w, a = excerpt(words, acts)
    assert " ".join(w) == "Then the Fed raised rates sharply today."
    long = [f"w{i}" for i in range(200)]
    acts = np.zeros(200)
    acts[150] = 1
    w, a = excerpt(long, acts, max_words=64)
    assert len(w) == 64 and "w150" in w


def test_example_kinds_top_quantile_and_never_firing_negatives():
    rng = np.random.default_rng(0)
    scores = np.where(rng.random(500) < 0.4, rng.gamma(2.0, size=500), 0.0)
    ex = pick_examples(scores, n_top=10, n_quantile=5, n_negative=20, seed=1)
    assert np.all(np.diff(scores[ex["top"]]) <= 0) and scores[ex["top"][0]] == scores.max()
    assert len(ex["quantile"]) == 5 and not set(ex["quantile"]) & set(ex["top"])
    assert scores[ex["quantile"]].max() <= scores[ex["top"]].min()
    assert len(ex["negative"]) == 20 and np.all(scores[ex["negative"]] == 0)


def test_build_write_read_roundtrip(tmp_path, tokenizer):
    texts = ["Apple earnings beat estimates.", "The cat sat on the mat.", "Oil prices slumped after OPEC met."]
    cs, docs = [], []
    for d, t in enumerate(texts):
        enc = tokenizer(t, return_offsets_mapping=True, add_special_tokens=False)
        for s, _ in enc["offset_mapping"]:
            cs.append(s), docs.append(d)
    docs, cs = np.array(docs), np.array(cs)
    # latent 0 fires on the first token of docs 0 and 2
    token_act = np.zeros(len(docs), np.float32)
    for d, v in ((0, 2.0), (2, 1.0)):
        token_act[np.flatnonzero(docs == d)[0]] = v
    max_scores = np.array([[2.0], [0.0], [1.0]])
    frame = build_contexts(np.array([0]), max_scores, lambda latent, r: token_act[r],
                           lambda d: np.flatnonzero(docs == d), texts, cs, ["a", "b", "c"],
                           ["financial", "general", "financial"])
    assert tuple(frame.columns) == CONTEXT_COLUMNS
    top = frame[frame.kind == "top"]
    assert top.doc_id.tolist() == ["a", "c"] and top.words.iloc[0][0] == "Apple" and top.acts.iloc[0][0] == 2.0
    assert frame[frame.kind == "negative"].doc_id.tolist() == ["b"]
    write_contexts(frame, tmp_path, "minilm", 3)
    back = read_contexts(tmp_path, "minilm", 3)
    pd.testing.assert_frame_equal(back[["latent", "kind", "doc_id"]], frame[["latent", "kind", "doc_id"]])
    with pytest.raises(DataMissingError, match="analyze.py"):
        read_contexts(tmp_path, "minilm", 4)
