"""Length-grouped batches: a permutation of the data, far less padding, seeded, reshuffled per epoch."""

import numpy as np

from finsae.finetune import length_grouped_batches, num_grouped_batches, padded_tokens
from finsae.glue.finetune_module import text_loader
from finsae.models import get_spec, load_model


def test_grouped_batches_cover_every_index_once_with_less_padding():
    lengths = np.random.default_rng(1).integers(5, 64, size=1003)
    batches = length_grouped_batches(lengths, 32, seed=0, group=8)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1003))
    assert max(len(b) for b in batches) == 32
    for n, bs, g in ((1003, 32, 8), (1024, 32, 8), (5, 32, 8), (300, 7, 3)):
        assert num_grouped_batches(n, bs, g) == len(length_grouped_batches(np.arange(n), bs, 0, g)), (n, bs, g)
    order = np.random.default_rng(0).permutation(1003)
    random = padded_tokens(lengths, [order[i:i + 32] for i in range(0, 1003, 32)])
    assert padded_tokens(lengths, batches) < 0.75 * random
    again = length_grouped_batches(lengths, 32, seed=0, group=8)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    other = length_grouped_batches(lengths, 32, seed=1, group=8)
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other, strict=False))


def test_text_loader_groups_and_reshuffles_each_epoch():
    tok = load_model(get_spec("tiny")).tokenizer
    texts = [" ".join(["profit"] * n) for n in range(1, 41)]
    # one pass of the loader is the whole fit: two epochs here
    loader = text_loader(tok, texts, list(range(40)), batch_size=4, shuffle=True, seed=0, group_by_length=True,
                         steps=20)
    batches = [b["labels"].tolist() for b in loader]
    first, second = batches[:10], batches[10:]
    assert len(loader) == 20 and sorted(sum(first, [])) == list(range(40))
    assert first != second and sorted(sum(second, [])) == list(range(40))
    assert [b["labels"].tolist() for b in loader] == batches  # the same fit again: the same batches
    # a fit resumed at step 7 takes the batches the uninterrupted one takes from there
    resumed = text_loader(tok, texts, list(range(40)), batch_size=4, shuffle=True, seed=0,
                          group_by_length=True, steps=20, skip=7)
    assert [b["labels"].tolist() for b in resumed] == batches[7:]
    assert len(resumed) == 20  # the fit's length, which Lightning counts the resumed batches against
    for b in loader:  # grouped: each batch spans few lengths (label = length - 1 here)
        assert int(b["attention_mask"].sum(1).min()) >= int(b["attention_mask"].shape[1]) - 12
