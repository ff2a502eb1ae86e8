"""Labeling SAE latents (pure core: no Hydra, Lightning or W&B): example selection and split, hard negatives,
prompts, tolerant parsing, explainer backends (lexical, openai, vllm, hf), scorers (embedding, detection,
fuzzing) beside shuffled-label and random-latent controls, bootstrap CIs, and a resumable answer cache.

Names are imported on first use, so that the config schema (``finsae.labeling.config``) loads without pandas
or scipy and a bad ``label.*`` value fails fast.
"""

import importlib

_WHERE = {
    "AnswerCache": "cache", "cache_key": "cache", "BACKENDS": "config", "SCORERS": "config", "LabelConfig": "config",
    "Example": "examples", "LatentExamples": "examples", "examples_of": "examples", "split_examples": "examples",
    "METRICS": "pipeline", "LatentJob": "pipeline", "run_labeling": "pipeline", "LabelSummary": "summary",
    "overall_fields": "summary", "score_table": "summary",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"finsae.labeling.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'finsae.labeling' has no attribute {name!r}")
