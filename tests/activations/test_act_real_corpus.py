"""The cache on a real corpus from ``finsae.data`` (skipped locally where the shared data is absent; a failure under CI)."""

import numpy as np

from finsae.activations import ActivationBatches, ExtractConfig, build_activations, token_context
from finsae.data import corpus as corpus_mod


def test_phrasebank_cache(tiny, tiny_twin, data_dir, tmp_path):
    corpus = corpus_mod.load_corpus("phrasebank", data_dir=data_dir, max_docs=200)
    assert len(corpus) == 200
    cfg = ExtractConfig(max_length=64)
    base = build_activations(tiny, corpus, [0, 1], tmp_path, cfg, progress=False)
    twin = build_activations(tiny_twin, corpus, [1], tmp_path, cfg, progress=False, align_with=base)
    s = base[1]
    assert s.table.path == twin[1].table.path
    assert s.manifest["corpus"] == {"name": "phrasebank", "content_hash": corpus.content_hash(), "n_docs": 200}
    ids = s.tokens["token_id"].to_numpy()
    assert not np.isin(ids, [0, 101, 102]).any()
    want = sum(len(x) for x in tiny.tokenizer(corpus.texts, add_special_tokens=False)["input_ids"])
    assert len(s) == want  # every token of every sentence, none dropped
    assert np.isfinite(np.asarray(s.array).astype(np.float32)).all()
    ctx = token_context(s, 10, width=4)
    assert ctx.count("«") == 1 and ctx.count("»") == 1
    batch = next(iter(ActivationBatches(s, 256)))
    assert batch.shape == (256, s.d)
