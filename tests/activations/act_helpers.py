"""Corpus-like test objects for the activation cache (a uniquely named module: spawned DDP children
import it by name, and a second `conftest` on sys.path would shadow it)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd

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
