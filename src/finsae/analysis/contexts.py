"""Top-activating held-out contexts of each latent: what the analysis stage stores and the labeling stage reads.

Layout (under the analysis folder ``artifacts/analysis/{pair}/``)::

    contexts/{model}/layer_{i}.parquet     one row per (latent, example), columns CONTEXT_COLUMNS

Columns:

* ``latent`` (int64): latent index in that model's SAE at that layer.
* ``kind`` (str): ``top`` — the highest-activating held-out documents, by max activation, descending;
  ``quantile`` — documents sampled evenly across the activation quantiles of the documents where the latent
  fires; ``negative`` — random held-out documents where the latent never fires (a pool from which the labeling
  stage draws random and hard negatives).
* ``rank`` (int32): order within ``kind`` (0 = first).
* ``doc_id`` (str), ``corpus`` (str): the held-out document and the registry corpus it was drawn for.
* ``words`` (list[str]): the example as whole words (WordPiece pieces merged), one sentence or headline around
  the document's peak activation, at most ``MAX_WORDS`` words.
* ``acts`` (list[float32]): per word, the latent's max activation over its pieces (all 0 for negatives).
* ``max_act`` (float32): the latent's max activation over the whole document (0 for negatives).

Only held-out text (the ``heldout`` split of each corpus: no SAE was trained on it) ever lands here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from finsae.errors import DataMissingError

CONTEXT_COLUMNS = ("latent", "kind", "rank", "doc_id", "corpus", "words", "acts", "max_act")
KINDS = ("top", "quantile", "negative")
MAX_WORDS = 64


def contexts_path(analysis_dir: str | Path, model: str, layer: int) -> Path:
    return Path(analysis_dir) / "contexts" / model / f"layer_{layer}.parquet"


def read_contexts(analysis_dir: str | Path, model: str, layer: int) -> pd.DataFrame:
    """The stored contexts of ``model`` at ``layer``; one clear error (naming ``analyze.py``) when absent."""
    path = contexts_path(analysis_dir, model, layer)
    if not path.is_file():
        raise DataMissingError(f"contexts of {model} layer {layer}", path,
                               "Run `python analyze.py` (the analysis stage writes them).")
    return pd.read_parquet(path)


def marked_text(words: Sequence[str], acts: Sequence[float], threshold: float = 0.0,
                marks: tuple[str, str] = ("<<", ">>")) -> str:
    """The example as text with every word whose activation exceeds ``threshold`` in ``marks``."""
    return " ".join(f"{marks[0]}{w}{marks[1]}" if a > threshold else w for w, a in zip(words, acts, strict=True))
