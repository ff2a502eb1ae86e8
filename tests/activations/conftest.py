"""Fixtures for the activation cache: the tiny random BERT pair and small Corpus-like objects."""

from __future__ import annotations


import pytest
import torch

from finsae.activations import ExtractConfig
from finsae.models import get_spec, load_model

from act_helpers import SENTENCES, ToyCorpus, make_corpus  # noqa: F401


@pytest.fixture
def corpus() -> ToyCorpus:
    """40 short documents plus one long one that must be windowed (and a literal "[CLS]" in text)."""
    texts = [SENTENCES[i % len(SENTENCES)] + f" Item {i}." for i in range(40)]
    texts[7] = "The memo literally says [CLS] and [SEP] and [PAD] here."
    texts.append(" ".join(SENTENCES * 4))
    return make_corpus(texts)


@pytest.fixture(scope="session")
def tiny():
    return load_model(get_spec("tiny"))


@pytest.fixture(scope="session")
def tiny_twin():
    """Same tokenizer, different weights: a perfect stand-in for a base/domain pair."""
    return load_model(get_spec("tiny", seed=1))


@pytest.fixture
def cfg() -> ExtractConfig:
    return ExtractConfig(max_length=32, batch_size=8)


@pytest.fixture
def count_forwards():
    """Attach to a model; returns a list whose length is the number of encoder forward calls since."""
    handles = []

    def attach(model):
        calls = []
        handles.append(model.encoder.register_forward_hook(lambda *_: calls.append(1)))
        return calls

    yield attach
    for h in handles:
        h.remove()


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The tiny model's ops are far too small to split: with 2 threads on a busy 2-core box each op waits on a
    thread barrier (measured 100x slower), so these tests run single-threaded."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
