"""The offline ``vllm.LLM`` batch engine (GPU host, inside the vLLM environment): chat template applied,
prefix caching on (every prompt shares the explainer's system prompt), structured JSON output when asked.
vllm is imported only here, lazily, with one clear error where it is absent (it never lives in .venv)."""

from __future__ import annotations

from collections.abc import Sequence

from finsae.errors import FinsaeError
from finsae.labeling.backend import ChatRequest, Completion, OnDone

MISSING_VLLM = ("label.backend=vllm needs the vllm package, which is not installed in this environment ({why}); "
                "vLLM lives in its own environment (requirements-vllm.txt, README: vLLM): run label.py there, or "
                "serve the model with `vllm serve` and use label.backend=openai label.base_url=http://HOST:8000/v1")


def import_vllm():
    """The vllm module, or a one-line FinsaeError saying where vLLM lives."""
    try:
        import vllm
    except ImportError as e:
        raise FinsaeError(MISSING_VLLM.format(why=f"{type(e).__name__}: {e}".splitlines()[0][:120])) from None
    return vllm


def _sampling_params(vllm, req: ChatRequest, structured: bool, seed: int):
    kw = {"max_tokens": req.max_tokens, "temperature": req.temperature, "seed": seed}
    if structured and req.schema is not None:
        try:  # vLLM >= 0.10
            from vllm.sampling_params import StructuredOutputsParams

            return vllm.SamplingParams(**kw, structured_outputs=StructuredOutputsParams(json=req.schema))
        except (ImportError, TypeError):
            from vllm.sampling_params import GuidedDecodingParams

            return vllm.SamplingParams(**kw, guided_decoding=GuidedDecodingParams(json=req.schema))
    return vllm.SamplingParams(**kw)


class VllmBackend:
    name = "vllm"
    down = None  # in-process: no server to lose

    def __init__(self, model: str, *, structured_output: bool = True, gpu_memory_utilization: float = 0.85,
                 seed: int = 0):
        vllm = import_vllm()
        self.vllm = vllm
        self.model = model
        self.structured = structured_output
        self.seed = seed
        try:
            self.llm = vllm.LLM(model=model, enable_prefix_caching=True, gpu_memory_utilization=gpu_memory_utilization,
                                seed=seed)
        except Exception as e:  # noqa: BLE001 - no GPU, bad path, out of memory: one line
            why = str(e).splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise FinsaeError(f"vLLM could not load label.model={model!r}: {why}") from None
        self.tokenizer = self.llm.get_tokenizer()

    def _prompt(self, req: ChatRequest) -> str:
        text = self.tokenizer.apply_chat_template(list(req.messages), tokenize=False, add_generation_prompt=True)
        return text + ("" if self.structured and req.schema is not None else req.prefill)

    def generate(self, requests: Sequence[ChatRequest], on_done: OnDone | None = None) -> list[Completion]:
        prompts = [self._prompt(r) for r in requests]
        params = [_sampling_params(self.vllm, r, self.structured, self.seed) for r in requests]
        outs = self.llm.generate(prompts, params, use_tqdm=False)
        result = []
        for i, o in enumerate(outs):
            gen = o.outputs[0]  # its text continues the prompt (the prefill is not repeated)
            c = Completion(gen.text, len(o.prompt_token_ids or []), len(gen.token_ids or []))
            result.append(c)
            if on_done is not None:
                on_done(i, c)
        return result

    def prefilled(self, req: ChatRequest) -> bool:
        """Whether the answer continues ``req.prefill`` (no structured output for it)."""
        return not (self.structured and req.schema is not None)
