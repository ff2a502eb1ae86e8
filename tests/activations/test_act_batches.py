"""Training batches: bounded reads, determinism, a document-level SAE-eval split, DDP rank slicing."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from finsae.activations import ActivationBatches, ExtractConfig, build_activations, sae_eval_docs, split_rows
from finsae.errors import ConfigError

from act_helpers import make_corpus


@pytest.fixture(scope="module")
def store(tiny, tmp_path_factory):
    texts = [f"Document {i} says operating profit {'rose' if i % 2 else 'fell'} by {i} percent in quarter {i % 4}."
             for i in range(200)]
    root = tmp_path_factory.mktemp("batches")
    return build_activations(tiny, make_corpus(texts, name="b"), [1], root, ExtractConfig(max_length=32, shard_mb=0.05),
                             progress=False)[1]


class CountingArray:
    """Wraps a store array and records how many rows each read asks for."""

    def __init__(self, array):
        self.array, self.reads = array, []

    def take(self, idx):
        self.reads.append(len(idx))
        return self.array.take(idx)

    def __array__(self, *a, **k):
        raise AssertionError("the whole array was loaded")


def test_batches_read_only_their_rows(store):
    ds = ActivationBatches(store, 64, sae_eval_frac=0.1)
    ds.array = CountingArray(store.array)
    batches = list(ds)
    assert len(batches) == len(ds) > 3
    assert ds.array.reads == [64] * len(batches)
    assert all(b.shape == (64, store.d) and b.dtype == torch.float32 for b in batches)


def test_batch_values_are_the_stored_rows(store):
    ds = ActivationBatches(store, 32)
    idx = next(ds.batch_indices(0))
    assert np.all(np.diff(idx) > 0)  # sorted: the memmap is read forward
    np.testing.assert_array_equal(next(iter(ds)).numpy(), store.array[idx].astype(np.float32))


def test_order_is_deterministic_by_seed_and_epoch(store):
    def order(seed, epoch):
        return [b.tolist() for b in ActivationBatches(store, 32, seed=seed).batch_indices(epoch)]

    assert order(0, 0) == order(0, 0)
    assert order(0, 0) != order(1, 0)
    assert order(0, 0) != order(0, 1)
    ds = ActivationBatches(store, 32, seed=0)
    first, second = [b.tolist() for b in ds.batch_indices()], None
    list(iter(ds))  # an iteration advances the epoch: the next one reshuffles
    second = [b.tolist() for b in ds.batch_indices()]
    assert first != second
    ds.set_epoch(0)
    assert [b.tolist() for b in ds.batch_indices()] == first
    # one pass covers each train row at most once
    flat = np.concatenate(order(0, 0))
    assert len(np.unique(flat)) == len(flat)


def test_sae_eval_split_is_by_document(store):
    train = split_rows(store, "train", 0.2)
    held = split_rows(store, "sae_eval", 0.2)
    assert len(np.intersect1d(train, held)) == 0 and len(train) + len(held) == len(store)
    docs = store.tokens["doc_id"].to_numpy()
    assert not set(docs[train]) & set(docs[held])
    assert 0.05 < len(set(docs[held])) / store.tokens["doc_id"].nunique() < 0.4
    # the same doc ids are held out whatever the corpus order or seed
    ids = [f"b-{i}" for i in range(200)]
    np.testing.assert_array_equal(sae_eval_docs(ids, 0.2)[::-1], sae_eval_docs(ids[::-1], 0.2))
    ds = ActivationBatches(store, 16, split="sae_eval", sae_eval_frac=0.2)
    assert not ds.shuffle
    assert [b.tolist() for b in ds.batch_indices(0)] == [b.tolist() for b in ds.batch_indices(5)]
    assert np.array_equal(np.concatenate(list(ds.batch_indices())), held)  # all of it, last batch kept


def test_ddp_ranks_split_each_global_batch(store):
    single = ActivationBatches(store, 64, seed=3)
    ranks = [ActivationBatches(store, 32, seed=3, rank=r, world_size=2) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == len(single)
    for whole, a, b in zip(single.batch_indices(0), *(r.batch_indices(0) for r in ranks), strict=True):
        assert len(a) == len(b) == 32
        assert len(np.intersect1d(a, b)) == 0
        np.testing.assert_array_equal(np.sort(np.concatenate([a, b])), whole)
    a, b = (next(r.batch_indices(0)) for r in ranks)
    got = torch.cat([next(iter(ranks[0])), next(iter(ranks[1]))])
    want = next(iter(single))
    order = np.argsort(np.concatenate([a, b]))
    assert torch.equal(got[torch.from_numpy(order)], want)


def test_token_budget_cycles_passes(store):
    ds = ActivationBatches(store, 32, max_tokens=3 * len(store))
    assert len(ds) == 3 * len(store) // 32
    idx = list(ds.batch_indices(0))
    assert len(idx) == len(ds) and sum(map(len, idx)) <= 3 * len(store)
    with pytest.raises(ConfigError):
        ActivationBatches(store, 32, max_tokens=10)


def test_workers_keep_the_single_process_order(store):
    ds = ActivationBatches(store, 32, seed=1)
    want = [b.clone() for b in DataLoader(ds, batch_size=None, num_workers=0)]
    ds.set_epoch(0)
    got = list(DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="fork"))
    assert len(got) == len(want) and all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


def test_bad_arguments(store):
    with pytest.raises(ConfigError):
        ActivationBatches(store, 32, split="test")
    with pytest.raises(ConfigError):
        ActivationBatches(store, 32, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="fewer than one global batch"):
        ActivationBatches(store, 10**6)


def test_skip_next_resumes_mid_pass_once(store):
    ds = ActivationBatches(store, 16, sae_eval_frac=0.1, max_tokens=6 * 16)
    full = list(ds.batch_indices(0))
    ds.skip_next(4)
    assert len(ds) == 6
    resumed = [t for t in ds]
    assert len(resumed) == 2
    for got, idx in zip(resumed, full[4:], strict=True):
        np.testing.assert_array_equal(got.numpy(), store.array.take(idx).astype(np.float32))
    assert len(list(ds)) == 6  # the skip applies to one iteration only
