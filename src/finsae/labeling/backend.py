"""What every LLM backend takes and returns, and ``make_backend`` (imports each one only when chosen)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from finsae.labeling.config import LabelConfig


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to ask for."""

    messages: tuple[dict, ...]
    """``{"role", "content"}`` turns (system, user)."""
    schema: dict | None = None
    """JSON schema of the answer, for servers that constrain output to it."""
    schema_name: str = "answer"
    """Name of the schema (``response_format`` wants one)."""
    prefill: str = ""
    """Start of the assistant's answer (local backends without structured output)."""
    max_tokens: int = 160
    """Tokens the answer may take."""
    temperature: float = 0.0
    """Sampling temperature (0: greedy)."""

    def retry(self) -> ChatRequest:
        """The same request for another try after an unparsable answer (greedy would repeat it)."""
        return replace(self, temperature=max(self.temperature, 0.7))


@dataclass(frozen=True)
class Completion:
    """What came back for one request."""

    text: str
    """The answer (the prefill is not repeated in it); empty on error."""
    prompt_tokens: int = 0
    """Tokens of the prompt as the server counted them (0 when unknown)."""
    completion_tokens: int = 0
    """Tokens generated."""
    error: str | None = None
    """Why no answer came (server error after retries, timeout, ...); None on success."""
    attempts: int = 1
    """Transport attempts it took."""


OnDone = Callable[[int, Completion], None]


class Backend(Protocol):
    """An LLM that answers chat requests; ``generate`` calls ``on_done(i, completion)`` as each finishes (in
    the calling thread) and returns them in order."""

    name: str
    model: str

    def generate(self, requests: Sequence[ChatRequest], on_done: OnDone | None = None) -> list[Completion]: ...

    down: str | None
    """Why the backend stopped asking (a circuit breaker saw the server down); None while it works."""

    def prefilled(self, req: ChatRequest) -> bool:
        """Whether the answer continues ``req.prefill`` (the parser then reads prefill + answer)."""
        ...


def make_backend(cfg: LabelConfig) -> Backend | None:
    """The LLM of ``cfg.backend`` (None for ``lexical``), checked before any work: the server answers, the
    package imports, the model folder loads. Raises a one-line ``FinsaeError`` otherwise."""
    if cfg.backend == "lexical":
        return None
    if cfg.backend == "openai":
        from finsae.labeling.openai_backend import OpenAIBackend

        backend = OpenAIBackend(cfg.base_url, str(cfg.model), api_key_env=cfg.api_key_env,
                                concurrency=cfg.concurrency, timeout_s=cfg.timeout_s,
                                connect_timeout_s=cfg.connect_timeout_s, max_retries=cfg.max_retries,
                                backoff_s=cfg.backoff_s, structured_output=cfg.structured_output,
                                breaker_failures=cfg.breaker_failures)
        backend.check_reachable()
        return backend
    if cfg.backend == "vllm":
        from finsae.labeling.vllm_backend import VllmBackend

        return VllmBackend(str(cfg.model), structured_output=cfg.structured_output,
                           gpu_memory_utilization=cfg.gpu_memory_utilization, seed=cfg.seed)
    if cfg.backend == "hf":
        from finsae.labeling.hf_backend import HFBackend

        return HFBackend(str(cfg.model), device=cfg.device, seed=cfg.seed)
    raise AssertionError(cfg.backend)  # LabelConfig refuses other names
