"""Any OpenAI-compatible chat-completions server (first of all ``vllm serve``), through the ``openai`` client:
bounded concurrency, retries with exponential backoff on server errors and timeouts, per-request timeouts,
structured JSON output where the server supports it, and a reachability check that fails within seconds,
naming the URL. The API key is read from the environment and never logged."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed

from finsae.errors import FinsaeError
from finsae.labeling.backend import ChatRequest, Completion, OnDone

log = logging.getLogger("finsae")
FORMAT_REFUSAL = re.compile(r"response_format|json_schema|guided|structured|schema", re.IGNORECASE)
"""What a 400 says when the server does not support the requested output format (not: prompt too long)."""


class OpenAIBackend:
    name = "openai"

    def __init__(self, base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8,
                 timeout_s: float = 60.0, connect_timeout_s: float = 5.0, max_retries: int = 3,
                 backoff_s: float = 1.0, structured_output: bool = True, breaker_failures: int = 5):
        import openai

        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.connect_timeout_s = connect_timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.formats = ["json_schema", "json_object"] if structured_output else []
        """Structured-output styles still to try: OpenAI/vLLM ``json_schema``, then llama-cpp-python's
        ``json_object`` with a ``schema``; a refused style is dropped, and with none left answers are plain text."""
        self._lock = threading.Lock()
        self.breaker_failures = breaker_failures
        self._in_a_row = 0
        self._tripped = threading.Event()  # wakes retries sleeping in their backoff
        self.down: str | None = None
        # Retries are ours (counted, with backoff, also for answers the client cannot decode); vLLM needs no key.
        self.client = openai.OpenAI(base_url=self.base_url, api_key=os.environ.get(api_key_env) or "EMPTY",
                                    max_retries=0, timeout=openai.Timeout(timeout_s, connect=connect_timeout_s))

    def check_reachable(self) -> None:
        """Fail now, in one line, when the server cannot be reached or does not serve ``model``."""
        import openai

        try:
            served = [m.id for m in self.client.with_options(timeout=self.connect_timeout_s).models.list()]
        except (openai.APIConnectionError, openai.APITimeoutError) as e:
            raise FinsaeError(f"the LLM server at {self.base_url} is unreachable ({type(e).__name__}); start it "
                              f"(README: vLLM) or set label.base_url") from None
        except openai.AuthenticationError:
            raise FinsaeError(f"the LLM server at {self.base_url} refused the API key; set {self.api_key_env} in the "
                              f"environment") from None
        except openai.APIStatusError as e:
            if e.status_code == 404:  # a server without /models: the first request will tell
                return
            raise FinsaeError(f"the LLM server at {self.base_url} answered /models with HTTP {e.status_code}") from None
        except Exception as e:  # noqa: BLE001 - a 200 that is no model list (an HTML page, other JSON): one line
            raise FinsaeError(f"GET {self.base_url}/models answered something that is not a model list "
                              f"({type(e).__name__}): {self.base_url} is not an OpenAI-compatible server; set "
                              f"label.base_url to the server's /v1 address (README: vLLM)") from None
        if served and self.model not in served:
            raise FinsaeError(f"the LLM server at {self.base_url} serves {served}, not label.model={self.model!r}")

    @property
    def structured(self) -> bool:
        """Whether requests still ask for structured output."""
        return bool(self.formats)

    def _kwargs(self, req: ChatRequest) -> dict:
        kw = {"model": self.model, "messages": list(req.messages), "max_tokens": req.max_tokens,
              "temperature": req.temperature}
        style = self.formats[0] if self.formats else None
        if style == "json_schema" and req.schema is not None:
            kw["response_format"] = {"type": "json_schema",
                                     "json_schema": {"name": req.schema_name, "schema": req.schema}}
        elif style == "json_object" and req.schema is not None:
            kw["response_format"] = {"type": "json_object", "schema": req.schema}
        return kw

    def complete(self, req: ChatRequest) -> Completion:
        """One request, retried on server errors, timeouts and undecodable responses."""
        import openai

        error = "no attempt"
        attempt = 0
        while attempt <= self.max_retries:
            if self.down is not None:
                return Completion("", error=f"not asked: {self.down}", attempts=attempt)
            attempt += 1
            kw = self._kwargs(req)
            try:
                resp = self.client.chat.completions.create(**kw)
                choice = resp.choices[0]
                text = choice.message.content or ""
                usage = resp.usage
                self._count(None)
                return Completion(text, getattr(usage, "prompt_tokens", 0) or 0,
                                  getattr(usage, "completion_tokens", 0) or 0, None, attempt)
            except (openai.BadRequestError, openai.UnprocessableEntityError, openai.InternalServerError) as e:
                # llama-cpp-python answers json_schema with HTTP 500 (its validation error), others with 400/422
                if "response_format" in kw and FORMAT_REFUSAL.search(str(e)):  # (maybe switched off meanwhile)
                    with self._lock:
                        if self.formats and self.formats[0] == kw["response_format"]["type"]:
                            self.formats.pop(0)
                            log.warning("label: %s refused structured output %s (HTTP %s); asking for %s",
                                        self.base_url, kw["response_format"]["type"], e.status_code,
                                        self.formats[0] if self.formats else "plain text, parsed tolerantly")
                    attempt -= 1  # the refusal of the format is not a try of the request
                    continue
                if e.status_code < 500:
                    return Completion("", error=f"HTTP {e.status_code}: {_short(e)}", attempts=attempt)
                error = f"HTTP {e.status_code}"  # any other 5xx: retried, and counted towards the breaker
                self._count(error)
            except openai.APIStatusError as e:
                error = f"HTTP {e.status_code}"
                if e.status_code < 500 and e.status_code not in (408, 409, 429):
                    return Completion("", error=error, attempts=attempt)
                self._count(error if e.status_code >= 500 else None)
            except openai.APITimeoutError:
                error = "timeout"
                self._count(error)
            except openai.APIConnectionError as e:
                error = f"connection error ({_short(e)})"
                self._count(error)
            except Exception as e:  # noqa: BLE001 - an undecodable body (malformed JSON, no choices): retried
                error = f"bad response ({type(e).__name__})"
            if attempt <= self.max_retries:
                self._tripped.wait(self.backoff_s * 2 ** (attempt - 1))
        return Completion("", error=error, attempts=attempt)

    def _count(self, down_error: str | None) -> None:
        """Count a request that found the server down (a timeout, no connection, a 5xx) or up (None)."""
        with self._lock:
            if down_error is None:
                self._in_a_row = 0
                return
            self._in_a_row += 1
            if self._in_a_row >= self.breaker_failures and self.down is None:
                self.down = (f"the LLM server at {self.base_url} looks down ({self._in_a_row} requests in a row "
                             f"ended in: {down_error})")
                self._tripped.set()

    def prefilled(self, req: ChatRequest) -> bool:
        return False  # chat servers start the assistant turn themselves

    def generate(self, requests: Sequence[ChatRequest], on_done: OnDone | None = None) -> list[Completion]:
        out: list[Completion | None] = [None] * len(requests)
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="finsae-llm")
        try:
            futures = {pool.submit(self.complete, r): i for i, r in enumerate(requests)}
            for fut in as_completed(futures):
                i = futures[fut]
                out[i] = fut.result()
                if on_done is not None:
                    on_done(i, out[i])
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return out  # type: ignore[return-value]


def _short(e: Exception) -> str:
    return str(e).splitlines()[0][:160] if str(e) else type(e).__name__
