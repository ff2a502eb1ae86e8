"""Labeling SAE latents (pure core: no Hydra, Lightning or W&B): example selection and split, hard negatives,
prompts, tolerant parsing, explainer backends (lexical, openai, vllm, hf), scorers (embedding, detection,
fuzzing) beside shuffled-label and random-latent controls, bootstrap CIs, and a resumable answer cache; the
stage's steps (``stage``) and its artifact contract (``artifacts``: its files, their reader and writer, and
``join_labels``, which joins labels to a features table at read time).

Names are imported on first use, so that the config schema (``finsae.labeling.config``) loads without pandas
or scipy and a bad ``label.*`` value fails fast.
"""

import importlib

_WHERE = {
    "AnswerCache": "cache", "cache_key": "cache", "BACKENDS": "config", "SCORERS": "config", "LabelConfig": "config",
    "Example": "examples", "LatentExamples": "examples", "examples_of": "examples", "split_examples": "examples",
    "METRICS": "pipeline", "LatentJob": "pipeline", "run_labeling": "pipeline", "LabelSummary": "summary",
    "overall_fields": "summary", "score_table": "summary", "LabelArtifacts": "artifacts", "join_labels": "artifacts",
    "read_labels": "artifacts",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"finsae.labeling.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'finsae.labeling' has no attribute {name!r}")
