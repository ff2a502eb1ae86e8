"""The finance twin: fine-tune an encoder the FinBERT way (optional MLM domain pass, then 3-class
PhraseBank sentiment), plus the frozen-base linear probe it is compared against; its control twins by the same
recipe (``task_data``, ``mlm_corpus``, ``steps_like`` in :mod:`finsae.finetune.config`). Pure torch/sklearn."""

from finsae.finetune.length_grouping import length_grouped_batches, num_grouped_batches, padded_tokens
from finsae.finetune.datasets import LABELS, FinetuneData, build_finetune_data, mlm_texts, stratified_hash_split
from finsae.finetune.metrics import classification_metrics
from finsae.finetune.mlm import mask_tokens, masked_lm_from_encoder
from finsae.finetune.probe import linear_probe, pooled_features

__all__ = [
    "LABELS", "FinetuneData", "build_finetune_data", "classification_metrics", "length_grouped_batches",
    "linear_probe", "mlm_texts", "num_grouped_batches", "padded_tokens",
    "mask_tokens", "masked_lm_from_encoder", "pooled_features", "stratified_hash_split",
]
