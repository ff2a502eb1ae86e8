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

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from finsae.analysis.artifacts import contexts_path
from finsae.errors import DataMissingError, FinsaeError

CONTEXT_COLUMNS = ("latent", "kind", "rank", "doc_id", "corpus", "words", "acts", "max_act")
KINDS = ("top", "quantile", "negative")
MAX_WORDS = 64


def check_contexts(analysis_dir: str | Path, model: str, layer: int) -> Path:
    """The contexts file of ``model`` at ``layer``, its footer and columns checked (cheap: no rows are read);
    one line naming the file and ``analyze.py`` when it is absent, cut, or lacks columns."""
    import pyarrow.parquet as pq

    path = contexts_path(analysis_dir, model, layer)
    if not path.is_file():
        raise DataMissingError(f"contexts of {model} layer {layer}", path,
                               "Run `python analyze.py` (the analysis stage writes them).")
    try:
        names = set(pq.read_schema(path).names)
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise FinsaeError(f"contexts file {path} is damaged or cut ({type(e).__name__}); delete it and rerun "
                          f"`python analyze.py`") from None
    missing = [c for c in CONTEXT_COLUMNS if c not in names]
    if missing:
        raise FinsaeError(f"contexts file {path} lacks columns {missing}; delete it and rerun `python analyze.py`")
    return path


def read_contexts(analysis_dir: str | Path, model: str, layer: int) -> pd.DataFrame:
    """The stored contexts of ``model`` at ``layer``; one clear error (naming ``analyze.py``) when absent or
    damaged."""
    path = check_contexts(analysis_dir, model, layer)
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as e:
        raise FinsaeError(f"contexts file {path} is damaged ({type(e).__name__}); delete it and rerun "
                          f"`python analyze.py`") from None


def marked_text(words: Sequence[str], acts: Sequence[float], threshold: float = 0.0,
                marks: tuple[str, str] = ("<<", ">>")) -> str:
    """The example as text with every word whose activation exceeds ``threshold`` in ``marks``."""
    return " ".join(f"{marks[0]}{w}{marks[1]}" if a > threshold else w for w, a in zip(words, acts, strict=True))


N_TOP, N_QUANTILE, N_NEGATIVE = 20, 10, 30
_WORD = re.compile(r"\S+")


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the whitespace-separated words of ``text`` (what a reader calls a word: WordPiece
    pieces and punctuation attached to a word are merged back into it)."""
    return [m.span() for m in _WORD.finditer(text)]


def word_activations(text: str, char_start: np.ndarray, acts: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Whole words of ``text`` and, per word, the max activation over its tokens (a token belongs to the word
    its first character falls in; ``char_start`` per token)."""
    spans = word_spans(text)
    starts = np.array([s for s, _ in spans], np.int64)
    out = np.zeros(len(spans), np.float32)
    if len(spans) and len(acts):
        w = np.clip(np.searchsorted(starts, np.asarray(char_start), side="right") - 1, 0, len(spans) - 1)
        np.maximum.at(out, w, np.asarray(acts, np.float32))
    return [text[s:e] for s, e in spans], out


def excerpt(words: list[str], acts: np.ndarray, max_words: int = MAX_WORDS) -> tuple[list[str], np.ndarray]:
    """The sentence around the peak word (sentences end at a word ending in . ! or ?), at most ``max_words``
    words centred on the peak."""
    if not words:
        return [], np.zeros(0, np.float32)
    peak = int(np.argmax(acts)) if len(acts) and acts.max() > 0 else 0
    ends = [i for i, w in enumerate(words) if w.endswith((".", "!", "?"))]
    lo = max([e + 1 for e in ends if e < peak], default=0)
    hi = min([e + 1 for e in ends if e >= peak], default=len(words))
    if hi - lo > max_words:
        lo = max(lo, min(peak - max_words // 2, hi - max_words))
        hi = lo + max_words
    return words[lo:hi], np.asarray(acts[lo:hi], np.float32)


def pick_examples(scores: np.ndarray, n_top: int = N_TOP, n_quantile: int = N_QUANTILE,
                  n_negative: int = N_NEGATIVE, seed: int = 0) -> dict[str, np.ndarray]:
    """Document indices per kind for one latent from its per-document max ``scores [n_docs]``: the top
    ``n_top``, ``n_quantile`` spread evenly over the quantiles of the other firing documents, and
    ``n_negative`` random documents where it never fires."""
    rng = np.random.default_rng(seed)
    firing = np.flatnonzero(scores > 0)
    by_score = firing[np.argsort(-scores[firing], kind="stable")]
    top = by_score[:n_top]
    rest = by_score[n_top:]
    if len(rest) > n_quantile:
        rest = rest[np.unique(np.linspace(0, len(rest) - 1, n_quantile).round().astype(int))]
    never = np.flatnonzero(scores <= 0)
    neg = rng.choice(never, size=min(n_negative, len(never)), replace=False) if len(never) else never
    return {"top": top, "quantile": rest, "negative": np.sort(neg)}


def build_contexts(latents: np.ndarray, max_scores, token_acts: Callable[[int, np.ndarray], np.ndarray],
                   doc_rows: Callable[[int], np.ndarray], texts: Sequence[str], char_start: np.ndarray,
                   doc_ids: Sequence[str], corpora: Sequence[str], seed: int = 0,
                   **pick) -> pd.DataFrame:
    """Rows of CONTEXT_COLUMNS for ``latents``.

    ``max_scores``: ``[n_docs, m]`` per-document max (CSC/CSR/dense); ``token_acts(latent, rows)``: the
    latent's activation on token rows ``rows``; ``doc_rows(doc)``: the token rows of a document.
    """
    cols = max_scores.tocsc() if hasattr(max_scores, "tocsc") else np.asarray(max_scores)
    out = []
    for latent in np.asarray(latents, np.int64):
        col = cols[:, [latent]].toarray().ravel() if hasattr(cols, "tocsc") else cols[:, latent]
        for kind, docs in pick_examples(col, seed=seed + int(latent), **pick).items():
            for rank, doc in enumerate(docs):
                rows = doc_rows(int(doc))
                acts = token_acts(int(latent), rows) if kind != "negative" else np.zeros(len(rows), np.float32)
                words, wacts = word_activations(texts[doc], char_start[rows], acts)
                words, wacts = excerpt(words, wacts)
                out.append((int(latent), kind, rank, str(doc_ids[doc]), str(corpora[doc]), words,
                            wacts.tolist(), float(col[doc])))
    return pd.DataFrame(out, columns=list(CONTEXT_COLUMNS)).astype({"rank": "int32", "max_act": "float32"})


def write_contexts(frame: pd.DataFrame, analysis_dir: str | Path, model: str, layer: int) -> Path:
    path = contexts_path(analysis_dir, model, layer)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path
