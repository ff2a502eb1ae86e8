"""The evaluation-period guard: SAE features must not be learned from text of the trading test period."""

from __future__ import annotations

import pandas as pd

from finsae.errors import FinsaeError


def check_eval_period(corpus, eval_start: str, allow: bool) -> None:
    """Raise unless no row of ``corpus`` is dated on/after ``eval_start`` (undated rows pass), or ``allow``."""
    if allow or "date" not in corpus.frame:
        return
    dates = pd.to_datetime(corpus.frame["date"], utc=True)
    start = pd.Timestamp(eval_start, tz="UTC")
    late = dates >= start
    n = int(late.sum())
    if n:
        raise FinsaeError(
            f"corpus {corpus.name!r} has {n} rows dated on/after {start.date()} (first: {dates[late].min().date()}), "
            f"inside the evaluation period: an SAE-training cache must not see them. Load the corpus with "
            f"split='train'; only inference-only features of the trading stage may pass "
            f"build_activations(..., allow_eval_period=True)."
        )


INFERENCE_SUFFIX = "-inference"
"""Key suffix of an inference-only cache entry (``build_activations(..., inference_only=True)``)."""


def check_trainable(store) -> None:
    """Refuse an inference-only entry (it may hold evaluation-period text) as SAE training data."""
    if store.manifest.get("inference_only"):
        raise FinsaeError(
            f"activation entry {store.path.name} is inference-only (built for the trading stage's features, it may "
            f"hold evaluation-period text): an SAE must not be trained or scored on it; build a training cache "
            f"from a corpus loaded with split='train'"
        )
