"""The fine-tune stage's knobs (``finetune:`` of ``train.py task=finetune``): the recipe, its split and its debug
caps, each declared once with its default and doc (the Hydra schema of the group is this dataclass)."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

from finsae.errors import require
from finsae.paths import model_dir, plain_name

CONFIG_FILE = "finetune_config.json"
"""The recipe a published twin was made with, beside its weights (``artifacts/models/{name}/``)."""


@dataclass
class FinetuneConfig:
    """How the finance twin is made: FinBERT's recipe (optional masked-LM pass, then 3-class sentiment)."""

    out_name: str = "minilm_fin"
    """Artifact name under artifacts/models/."""
    epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_frac: float = 0.1
    max_length: int = 64
    group_by_length: bool = True
    """Shuffled batches of similar-length texts (about half the padded tokens of random batches)."""
    test_frac: float = 0.2
    """Fraction of PhraseBank in the stratified test split (by text hash), never trained on."""
    use_twitter: bool = True
    """Add twitter-financial-news-sentiment train to the training set."""
    mlm_phase: bool = True
    """A short masked-LM domain-adaptation pass on financial text first."""
    mlm_steps: int = 100
    mlm_batch_size: int = 32
    mlm_lr: float = 1e-4
    max_train_examples: int | None = None
    """Debug: cap the training set."""
    max_steps: int | None = None
    """Debug: cap the classifier optimizer steps."""
    skip_if_present: bool = False
    """Return the saved metrics when the artifact already exists (make demo)."""

    def __post_init__(self):
        require(self.epochs >= 1 and self.batch_size >= 1, "finetune.epochs and finetune.batch_size must be >= 1")
        require(0 < self.test_frac < 0.5, "finetune.test_frac must be in (0, 0.5)")
        for name in ("lr", "mlm_lr"):
            require(getattr(self, name) > 0, f"finetune.{name} must be > 0, got {getattr(self, name)}")
        require(8 <= self.max_length <= 512, f"finetune.max_length must be in [8, 512], got {self.max_length}")
        require(self.max_steps is None or self.max_steps >= 1,
               f"finetune.max_steps must be >= 1 (an untrained classifier is no finance twin), got {self.max_steps}")
        plain_name(self.out_name, "finetune.out_name")


def twin_test_frac(artifacts: Path, name: str) -> float:
    """``test_frac`` of the PhraseBank split the twin ``name`` was made with (its ``finetune_config.json``), so the
    sentences a downstream score or held-out filter calls "never trained on" are the twin's own test split; the
    default when ``name`` is no twin made here (a hub model) or its record is unreadable."""
    path = model_dir(artifacts, name) / CONFIG_FILE
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return FinetuneConfig().test_frac
    known = {f.name for f in fields(FinetuneConfig)}
    return FinetuneConfig(**{k: v for k, v in recorded.items() if k in known}).test_frac
