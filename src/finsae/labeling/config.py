"""Every knob of the labeling stage, declared once (this dataclass is also the Hydra schema of ``label``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from finsae.errors import require
from finsae.redaction import credentials_message, url_credentials

BACKENDS = ("lexical", "openai", "vllm", "hf")
"""Explainers: ``lexical`` (no LLM, smoothed log-odds), ``openai`` (any OpenAI-compatible server), ``vllm``
(the offline ``vllm.LLM`` engine), ``hf`` (transformers ``generate`` on a local causal LM)."""
SCORERS = ("embedding", "detection", "fuzzing", "intruder")
"""``embedding`` needs no LLM; ``detection``, ``fuzzing`` and ``intruder`` ask the explainer's LLM (``intruder``
scores the latent, not the label: the LLM picks the one non-activating sentence out of a set, chance known)."""
LLM_SCORERS = ("detection", "fuzzing", "intruder")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


_check = require


@dataclass
class LabelConfig:
    """What is labelled, from which examples, by which explainer, and how the labels are scored."""

    backend: str = "lexical"
    """Explainer: lexical (offline default, no LLM), openai, vllm or hf."""
    model: str | None = None
    """The LLM: served model name (openai), hub id or local folder (vllm, hf); unused by lexical."""
    base_url: str = "http://127.0.0.1:8000/v1"
    """openai backend: the server's OpenAI-compatible base URL."""
    api_key_env: str = "OPENAI_API_KEY"
    """openai backend: the environment variable holding the API key (the key itself is never configured,
    logged or saved; vLLM needs none)."""
    scorers: list[str] = field(default_factory=lambda: ["embedding"])
    """Scorers to run: embedding (no LLM), detection, fuzzing (LLM-based: need an LLM backend)."""
    max_latents: int | None = None
    """Per (model, layer), at most this many financial/specialized latents (a seeded random subset); None: all."""
    control_latents: bool = True
    """Also label an equal-size random sample of non-financial latents (the random-latent control)."""
    matched_controls: bool = True
    """Also label, per target, a selectivity-matched control: a non-financial latent as selective for another
    topic (analysis ``best_category`` AG other, matched on AUROC), scored on its own contexts."""
    min_activating: int = 8
    """Latents with fewer activating held-out examples than this are skipped (and counted)."""
    n_explain: int = 10
    """Activating examples the explainer sees (top-activating, then quantile-sampled; never scored on)."""
    n_explain_negatives: int = 10
    """Non-activating examples the lexical explainer contrasts against (disjoint from the scorer's)."""
    n_score_activating: int = 10
    """Held-out activating examples each scorer is tested on (half top, half quantile where available)."""
    n_score_random_negatives: int = 5
    """Random non-activating examples each scorer is tested on."""
    n_score_hard_negatives: int = 5
    """Hard negatives: the non-activating examples most similar (sentence embedding) to the activating ones."""
    show_activations: bool = True
    """Show the explainer each marked word's activation on a 0-10 scale."""
    n_shuffles: int = 5
    """Embedding scorer: shuffled-label controls per latent (labels of other financial latents of the same layer,
    averaged; detection and fuzzing use the first)."""
    generic_label: str = "stock market and company news"
    """The generic-label control: this constant label is scored on every target by each label scorer; a label
    must beat it to count ("" to skip)."""
    intruder_sets: int = 5
    """Intruder scorer: sets per latent (each one request)."""
    intruder_set_size: int = 5
    """Intruder scorer: sentences per set, one of them the non-activating intruder (chance = 1 / this)."""
    concurrency: int = 8
    """openai backend: requests in flight at once."""
    max_retries: int = 3
    """Retries of a request after a server error, timeout or unparsable answer (then recorded as a failure)."""
    backoff_s: float = 1.0
    """First retry delay after a server error (doubles each retry)."""
    timeout_s: float = 60.0
    """openai backend: seconds one request may take."""
    breaker_failures: int = 5
    """openai backend: the run stops (nothing published) once this many requests in a row ended in a timeout, a
    connection error or a server error (5xx): the server is down, and waiting (retries + 1) x timeout_s per request
    would take hours."""
    max_failure_share: float = 0.1
    """The run fails (exit 2, one line with the count and the first error; nothing published, earlier labels kept)
    when more than this share of its LLM answers stayed failed after retries."""
    connect_timeout_s: float = 5.0
    """openai backend: seconds to reach the server before the stage fails (with the URL)."""
    max_new_tokens: int = 160
    """Tokens an LLM may write per answer."""
    temperature: float = 0.0
    """Sampling temperature of the first attempt (retries of unparsable answers use 0.7)."""
    structured_output: bool = True
    """Ask the server for JSON matching the answer's schema (vLLM structured outputs / response_format);
    dropped automatically when the server refuses it. Parsing stays tolerant either way."""
    scorer_batch: int = 10
    """Detection/fuzzing: examples judged per LLM request."""
    price_in_per_mtok: float = 0.0
    """Cost per million prompt tokens (0: cost not logged)."""
    price_out_per_mtok: float = 0.0
    """Cost per million completion tokens."""
    device: str = "cpu"
    """hf backend: torch device of the causal LM (cpu, cuda)."""
    gpu_memory_utilization: float = 0.85
    """vllm backend: share of GPU memory vLLM may take."""
    n_bootstrap: int = 1000
    """Bootstrap resamples (over latents) of the score-minus-control CI."""
    seed: int = 0
    """Seeds latent sampling, example splits, negatives, shuffles and bootstraps."""

    def __post_init__(self):
        _check(self.backend in BACKENDS, f"label.backend={self.backend!r} is unknown; choose one of {list(BACKENDS)}")
        bad = [s for s in self.scorers if s not in SCORERS]
        _check(not bad, f"label.scorers has unknown {bad}; choose from {list(SCORERS)}")
        _check(len(self.scorers) > 0, "label.scorers must name at least one scorer")
        llm = [s for s in self.scorers if s in LLM_SCORERS]
        _check(not (llm and self.backend == "lexical"),
               f"label.scorers {llm} need an LLM but label.backend=lexical has none; use backend openai, vllm or hf, "
               f"or label.scorers=[embedding]")
        _check(self.backend in ("lexical", "openai") or bool(self.model),
               f"label.backend={self.backend} needs label.model (a hub id or a local folder)")
        _check(self.backend != "openai" or bool(self.model),
               "label.backend=openai needs label.model (the served model name, e.g. Qwen/Qwen2.5-7B-Instruct)")
        where = url_credentials(self.base_url)
        _check(where is None, credentials_message("label.base_url", where, "give the key in the environment "
                                                  f"variable label.api_key_env={self.api_key_env} names"))
        _check(self.base_url.startswith(("http://", "https://")),
               f"label.base_url={self.base_url!r} must start with http:// or https://")
        _check(ENV_NAME.fullmatch(self.api_key_env) is not None,
               f"label.api_key_env={self.api_key_env!r} must name an environment variable")
        _check(self.max_latents is None or self.max_latents >= 1, "label.max_latents must be >= 1 (or null for all)")
        for name in ("min_activating", "n_explain", "n_score_activating", "concurrency", "max_new_tokens",
                     "scorer_batch", "n_bootstrap", "intruder_sets"):
            _check(getattr(self, name) >= 1, f"label.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("n_explain_negatives", "n_score_random_negatives", "n_score_hard_negatives", "n_shuffles",
                     "max_retries"):
            _check(getattr(self, name) >= 0, f"label.{name} must be >= 0, got {getattr(self, name)}")
        _check(self.n_score_random_negatives + self.n_score_hard_negatives >= 1,
               "label needs at least one scoring negative (n_score_random_negatives + n_score_hard_negatives)")
        _check(self.min_activating >= 2, "label.min_activating must be >= 2 (one example to explain, one to score)")
        for name in ("timeout_s", "connect_timeout_s"):
            _check(getattr(self, name) > 0, f"label.{name} must be > 0, got {getattr(self, name)}")
        _check(self.intruder_set_size >= 2, f"label.intruder_set_size must be >= 2, got {self.intruder_set_size}")
        _check(len(self.generic_label) <= 80, "label.generic_label must be at most 80 characters")
        _check(self.breaker_failures >= 1, f"label.breaker_failures must be >= 1, got {self.breaker_failures}")
        _check(0 <= self.max_failure_share <= 1,
               f"label.max_failure_share must be in [0, 1], got {self.max_failure_share}")
        _check(self.backoff_s >= 0 and self.temperature >= 0, "label.backoff_s and label.temperature must be >= 0")
        _check(self.price_in_per_mtok >= 0 and self.price_out_per_mtok >= 0, "label prices must be >= 0")
        _check(0 < self.gpu_memory_utilization <= 1, "label.gpu_memory_utilization must be in (0, 1]")

    @property
    def llm_name(self) -> str:
        """What the cache key and outputs call the explainer model."""
        return "lexical" if self.backend == "lexical" else str(self.model)

    @property
    def explainer(self) -> str:
        """Which model made the labels: ``lexical``, or ``{backend}:{model}``."""
        return "lexical" if self.backend == "lexical" else f"{self.backend}:{self.model}"
