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


TASK_SETS = ("phrasebank", "sst2")
"""Classification sets a twin can be made on (:func:`finsae.finetune.datasets.build_finetune_data`)."""
MLM_CORPORA = {"financial": ("reuters", "stocknet_tweets"), "general": ("wikitext", "brown")}
"""Masked-LM text choices: the corpora (:mod:`finsae.data.corpus`, train splits) each one reads."""


@dataclass
class FinetuneConfig:
    """How a twin is made: FinBERT's recipe (optional masked-LM pass, then sentiment classification); the finance
    twin by default, its control twin with ``task_data=sst2 mlm_corpus=general steps_like=phrasebank``."""

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
    split_seed: int = 0
    """Seed of that split's hash and of the ``max_train_examples`` subset: the data stay fixed across fine-tune
    seeds (``seed=``), so twins of one recipe hold out, and are scored on, the same sentences."""
    task_data: str = "phrasebank"
    """Classification set: ``phrasebank`` (3-class financial sentiment, tested on its hashed test split) or
    ``sst2`` (binary movie-review sentiment: SST-2 train, tested on SST-2 dev)."""
    use_twitter: bool = True
    """With ``task_data=phrasebank``: add twitter-financial-news-sentiment train to the training set (with
    ``sst2`` it only shapes the step count of ``steps_like=phrasebank``)."""
    steps_like: str | None = None
    """Train as many classifier steps as ``epochs`` passes over this classification set would make with these
    knobs (``phrasebank``: the finance twin's count), however large the own set is: a control twin trains
    exactly as long as the twin it controls. None: ``epochs`` passes over the own set."""
    probe_max_examples: int = 4000
    """The frozen-base probe fits at most this many of the task's own train examples (hash-chosen): PhraseBank's
    train split (~3.9k) whole; SST-2 train (67k), whose encoding would cost more than the fine-tune, cut to a
    comparable size."""
    mlm_phase: bool = True
    """A short masked-LM domain-adaptation pass first."""
    mlm_corpus: str = "financial"
    """Text of that pass (a key of :data:`MLM_CORPORA`): ``financial`` (Reuters + StockNet tweets) or ``general``
    (WikiText-2 + Brown paragraphs); corpus train splits, nothing dated on/after ``data.eval_start``."""
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
        require(self.probe_max_examples >= 10, f"finetune.probe_max_examples must be >= 10, got {self.probe_max_examples}")
        for name in ("lr", "mlm_lr"):
            require(getattr(self, name) > 0, f"finetune.{name} must be > 0, got {getattr(self, name)}")
        require(8 <= self.max_length <= 512, f"finetune.max_length must be in [8, 512], got {self.max_length}")
        require(self.max_steps is None or self.max_steps >= 1,
               f"finetune.max_steps must be >= 1 (an untrained classifier is no finance twin), got {self.max_steps}")
        plain_name(self.out_name, "finetune.out_name")
        require(self.task_data in TASK_SETS, f"finetune.task_data must be one of {list(TASK_SETS)}, "
                                             f"got {self.task_data!r}")
        require(self.steps_like is None or self.steps_like in TASK_SETS,
                f"finetune.steps_like must be null or one of {list(TASK_SETS)}, got {self.steps_like!r}")
        require(self.mlm_corpus in MLM_CORPORA, f"finetune.mlm_corpus must be one of {sorted(MLM_CORPORA)}, "
                                                f"got {self.mlm_corpus!r}")


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
