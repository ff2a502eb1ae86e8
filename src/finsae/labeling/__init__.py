"""Labeling SAE latents (pure core: no Hydra, Lightning or W&B): example selection and split, hard negatives,
prompts, tolerant parsing, explainer backends (lexical, openai, vllm, hf), scorers (embedding, detection,
fuzzing) beside shuffled-label and random-latent controls, bootstrap CIs, and a resumable answer cache."""

from finsae.labeling.cache import AnswerCache, cache_key
from finsae.labeling.config import BACKENDS, SCORERS, LabelConfig
from finsae.labeling.examples import Example, LatentExamples, examples_of, split_examples
from finsae.labeling.pipeline import METRICS, LatentJob, run_labeling
from finsae.labeling.summary import LabelSummary, overall_fields, score_table

__all__ = [
    "BACKENDS", "METRICS", "SCORERS", "AnswerCache", "Example", "LabelConfig", "LabelSummary", "LatentExamples",
    "LatentJob", "cache_key", "examples_of", "overall_fields", "run_labeling", "score_table", "split_examples",
]
