"""The SAE training corpus: named corpora mixed under an equal text budget each.

A budget in characters (not documents) keeps the mix balanced when document lengths differ by 10x
(tweets vs Wikipedia articles) and is exact and deterministic: each corpus contributes its documents in
text-hash order until the budget is reached. The token count that results is recorded by the
activation cache (about 4.3 characters per WordPiece token on this data).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from finsae.data.corpus import EVAL_START, Corpus, load_corpus


def mixed_corpus(names: list[str], data_dir: str | Path | None = None, split: str = "train",
                 max_chars_per_corpus: int | None = None, max_docs: int | None = None,
                 eval_start: str = EVAL_START) -> Corpus:
    """One ``Corpus`` named ``a+b[@budget]`` holding each named corpus's ``split`` rows (doc ids prefixed).

    A document in two of the named corpora (e.g. ``financial`` and ``reuters``) appears once.
    """
    frames = []
    seen: set[str] = set()
    for name in names:
        c = load_corpus(name, data_dir=data_dir, split=split, max_docs=max_docs, eval_start=eval_start)
        f = c.frame
        f = f[~f["text"].isin(seen)]
        if max_chars_per_corpus is not None:
            cum = np.cumsum(f["text"].str.len().to_numpy())
            f = f.iloc[: int(np.searchsorted(cum, max_chars_per_corpus, side="right")) + 1]
        seen.update(f["text"].tolist())
        frames.append(f.assign(doc_id=name + ":" + f["doc_id"].astype(str)))
    frame = pd.concat(frames, ignore_index=True)
    label = "+".join(names)
    if max_chars_per_corpus is not None:
        label += f"@{max_chars_per_corpus}c"
    if max_docs is not None:
        label += f"@{max_docs}d"
    return Corpus(name=label, frame=frame)
