"""Fixtures for the activation cache: the tiny random BERT pair and small Corpus-like objects."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd
import pytest
import torch

from finsae.activations import ExtractConfig
from finsae.models import get_spec, load_model

SENTENCES = [
    "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007.",
    "The company said that its net sales decreased by 5 % in the first quarter.",
    "Shares of the bank fell sharply after the announcement.",
    "Finnish Talentum reports its operating profit increased to EUR 20.5 mn in 2005.",
    "The board proposes a dividend of EUR 0.50 per share.",
    "Sales in Finland decreased by 10.5 % in January, while sales outside Finland dropped by 17 %.",
    "Unemployment is expected to remain high through next year.",
    "The acquisition will be financed with cash and new debt.",
]


@dataclass
class ToyCorpus:
    """What the cache needs of a corpus: a name, a frame (doc_id, text, date) and a content hash."""

    name: str
    frame: pd.DataFrame

    def content_hash(self) -> str:
        h = hashlib.sha256()
        for doc_id, text, date in zip(self.frame["doc_id"], self.frame["text"], self.frame["date"], strict=True):
            h.update(f"{doc_id}\x1f{text}\x1f{date}\x1e".encode())
        return h.hexdigest()[:16]


def make_corpus(texts, name="toy", dates=None) -> ToyCorpus:
    dates = pd.to_datetime(dates if dates is not None else [None] * len(texts), utc=True, format="ISO8601")
    return ToyCorpus(name, pd.DataFrame({"doc_id": [f"{name}-{i}" for i in range(len(texts))], "text": texts,
                                         "date": dates}))


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
