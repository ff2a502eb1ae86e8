"""Building, reusing, keying and aligning activation entries (tiny random BERT)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from finsae.activations import ExtractConfig, build_activations, check_aligned, open_store, token_context
from finsae.errors import FinsaeError
from finsae.models import hidden_states

from act_helpers import SENTENCES, make_corpus


def direct(model, text, layer):
    """Reference: the layer's hidden states of one whole text, [CLS]/[SEP] included."""
    b = model.tokenizer([text], return_tensors="pt")
    return hidden_states(model.encoder, b["input_ids"], b["attention_mask"], [layer]).layers[layer][0].numpy()


def test_build_stores_real_tokens_that_match_a_direct_forward(tiny, corpus, cfg, tmp_path):
    stores = build_activations(tiny, corpus, [-1, 0, 1], tmp_path, cfg, progress=False)
    assert sorted(stores) == [-1, 0, 1]
    s = stores[1]
    assert s.fresh and s.layer == 1 and s.d == 32
    assert s.array.shape == (len(s), 32) and s.array.dtype == np.float16
    assert len(s.tokens) == len(s)
    m = s.manifest
    assert m["model"]["weights_hash"] == tiny.weights_hash and m["corpus"]["content_hash"] == corpus.content_hash()
    assert m["shape"] == [len(s), 32] and m["dtype"] == "float16" and all(len(x["sha256"]) == 64 for x in m["shards"])
    for doc in ("toy-0", "toy-3"):  # short documents: one window, equal to an unpadded single forward
        rows = np.flatnonzero(s.tokens["doc_id"].to_numpy() == doc)
        ref = direct(tiny, corpus.frame.set_index("doc_id").loc[doc, "text"], 1)[1:-1]
        np.testing.assert_allclose(s.array[rows].astype(np.float32), ref, atol=2e-2, rtol=1e-2)


def test_second_call_reuses_without_a_forward_pass(tiny, corpus, cfg, tmp_path, count_forwards):
    calls = count_forwards(tiny)
    first = build_activations(tiny, corpus, [0, 1], tmp_path, cfg, progress=False)
    n_first = len(calls)
    assert n_first > 0 and all(s.fresh for s in first.values())
    again = build_activations(tiny, corpus, [1, 0], tmp_path, cfg, progress=False)
    assert len(calls) == n_first
    assert not any(s.fresh for s in again.values())
    assert {i: s.path for i, s in again.items()} == {i: s.path for i, s in first.items()}
    # a partly cached request computes only the missing layer, in one pass
    more = build_activations(tiny, corpus, [0, -1], tmp_path, cfg, progress=False)
    assert not more[0].fresh and more[-1].fresh
    rebuilt = build_activations(tiny, corpus, [0], tmp_path, cfg, rebuild=True, progress=False)
    assert rebuilt[0].fresh and rebuilt[0].path == first[0].path
    np.testing.assert_array_equal(np.asarray(rebuilt[0].array), np.asarray(open_store(first[0].path).array))


def test_all_layers_come_from_one_forward_per_batch(tiny, corpus, tmp_path, count_forwards):
    calls = count_forwards(tiny)
    cfg = ExtractConfig(max_length=32, batch_size=1000)
    build_activations(tiny, corpus, [-1, 0, 1], tmp_path, cfg, progress=False)
    assert len(calls) == 1


def test_key_changes_with_corpus_model_layer_and_tokenization(tiny, tiny_twin, corpus, cfg, tmp_path):
    base = build_activations(tiny, corpus, [0, 1], tmp_path, cfg, progress=False)
    other_corpus = make_corpus(list(corpus.frame["text"])[:-1] + ["A different last document."])
    paths = {
        "base": base[0].path,
        "layer": base[1].path,
        "corpus": build_activations(tiny, other_corpus, [0], tmp_path, cfg, progress=False)[0].path,
        "model": build_activations(tiny_twin, corpus, [0], tmp_path, cfg, progress=False)[0].path,
        "length": build_activations(tiny, corpus, [0], tmp_path, dataclasses.replace(cfg, max_length=24),
                                    progress=False)[0].path,
        "special": build_activations(tiny, corpus, [0], tmp_path, dataclasses.replace(cfg, store_special=True),
                                     progress=False)[0].path,
    }
    assert len(set(paths.values())) == len(paths)
    # batch size only changes speed, not the key
    same = build_activations(tiny, corpus, [0], tmp_path, dataclasses.replace(cfg, batch_size=3), progress=False)
    assert same[0].path == base[0].path and not same[0].fresh


def test_special_tokens_never_in_the_main_store(tiny, corpus, cfg, tmp_path):
    s = build_activations(tiny, corpus, [1], tmp_path, dataclasses.replace(cfg, store_special=True),
                          progress=False)[1]
    ids = set(s.tokens["token_id"].unique().tolist())
    assert not ids & {0, 101, 102}  # [PAD], [CLS], [SEP] (the literal "[CLS]" text is word pieces)
    sp = s.special
    assert sp is not None and sp.array.shape == (2 * s.table.n_windows, 32)
    assert sp.tokens["token_id"].tolist() == [101, 102] * s.table.n_windows
    ref = direct(tiny, corpus.frame["text"].iloc[0], 1)
    np.testing.assert_allclose(sp.array[:2].astype(np.float32), ref[[0, -1]], atol=2e-2, rtol=1e-2)
    plain = build_activations(tiny, corpus, [1], tmp_path, cfg, progress=False)[1]
    assert plain.special is None


def test_long_text_is_windowed_not_truncated(tiny, cfg, tmp_path):
    long_text = " ".join(SENTENCES * 6)
    corpus = make_corpus(["Short one.", long_text])
    s = build_activations(tiny, corpus, [0], tmp_path, cfg, progress=False)[0]
    stats = s.table.manifest["windowing_stats"]
    assert stats["n_docs_windowed"] == 1
    rows = s.tokens[s.tokens["doc_id"] == "toy-1"]
    assert rows["token_id"].tolist() == tiny.tokenizer(long_text, add_special_tokens=False)["input_ids"]
    assert rows["window_id"].nunique() == stats["n_windows"] - 1 > 1
    assert rows["position"].max() <= cfg.max_length - 2


def test_pair_shares_the_token_table(tiny, tiny_twin, corpus, cfg, tmp_path):
    a = build_activations(tiny, corpus, [0, 1], tmp_path, cfg, progress=False)
    b = build_activations(tiny_twin, corpus, [0, 1], tmp_path, cfg, progress=False, align_with=a)
    assert a[0].table.path == b[1].table.path
    assert a[0].manifest["token_table"] == b[0].manifest["token_table"]
    pd.testing.assert_frame_equal(a[1].tokens, b[1].tokens)
    assert not np.array_equal(np.asarray(a[1].array), np.asarray(b[1].array))  # different weights
    check_aligned(a, b[0])
    other = build_activations(tiny_twin, corpus, [0], tmp_path, dataclasses.replace(cfg, max_length=24),
                              progress=False)
    with pytest.raises(FinsaeError, match="token rows differ"):
        check_aligned(a, other)
    with pytest.raises(FinsaeError, match="token rows differ"):
        build_activations(tiny, corpus, [0], tmp_path, dataclasses.replace(cfg, max_length=24), progress=False,
                          align_with=a)


def test_eval_period_guard(tiny, cfg, tmp_path):
    texts = ["Profit rose.", "Sales fell.", "Shares rallied."]
    late = make_corpus(texts, dates=["2014-01-02", None, "2015-08-01"])
    with pytest.raises(FinsaeError, match="evaluation period"):
        build_activations(tiny, late, [0], tmp_path, cfg, progress=False)
    assert not any(tmp_path.iterdir())  # refused before anything was written
    ok = build_activations(tiny, late, [0], tmp_path, cfg, allow_eval_period=True,
                           progress=False)
    assert len(ok[0]) > 0
    early = make_corpus(texts, dates=["2014-01-02", None, "2015-07-31 23:59"])
    assert build_activations(tiny, early, [0], tmp_path, cfg, progress=False)[0].fresh
    with pytest.raises(FinsaeError):
        build_activations(tiny, early, [0], tmp_path, cfg, eval_start="2015-01-01",
                          progress=False)


def test_token_context_marks_the_token(tiny, corpus, cfg, tmp_path):
    s = build_activations(tiny, corpus, [0], tmp_path, cfg, progress=False)[0]
    row = int(np.flatnonzero(s.tokens["token_id"].to_numpy() == tiny.tokenizer.convert_tokens_to_ids("profit"))[0])
    ctx = token_context(s, row, width=3)
    assert "«profit»" in ctx and ctx.startswith("Operating")
    assert token_context(s, row, width=1) == "Operating «profit» rose…"
    with pytest.raises(IndexError):
        token_context(s, len(s))


def test_mean_sq_norm(tiny, corpus, cfg, tmp_path):
    s = build_activations(tiny, corpus, [1], tmp_path, cfg, progress=False)[1]
    x = np.asarray(s.array).astype(np.float32)
    assert s.mean_sq_norm(sample=10**9) == pytest.approx(float((x * x).sum(1).mean()), rel=1e-4)
    assert s.mean_sq_norm(sample=50) == pytest.approx(float((x * x).sum(1).mean()), rel=0.2)


def test_empty_corpus_is_refused(tiny, cfg, tmp_path):
    with pytest.raises(FinsaeError, match="no tokens"):
        build_activations(tiny, make_corpus(["", " "]), [0], tmp_path, cfg, progress=False)


def test_torch_inference_leaves_grad_mode_alone(tiny, corpus, cfg, tmp_path):
    build_activations(tiny, corpus, [0], tmp_path, cfg, progress=False)
    assert torch.is_grad_enabled()


def test_core_imports_no_framework():
    import subprocess
    import sys

    code = ("import sys, finsae.activations; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'lightning', 'pytorch_lightning', 'hydra', "
            "'wandb', 'omegaconf'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
