"""transformers ``generate`` with any local causal LM (CPU-capable): the chat template where the tokenizer has
one, else plain role-prefixed turns; the answer starts from the request's prefill."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from finsae.errors import FinsaeError
from finsae.labeling.backend import ChatRequest, Completion, OnDone


class HFBackend:
    name = "hf"
    down = None  # in-process: no server to lose

    def __init__(self, model: str, *, device: str = "cpu", seed: int = 0):
        check_model_source(model)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = model
        self.device = device
        self.seed = seed
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.lm = AutoModelForCausalLM.from_pretrained(model).to(device).eval()
        except Exception as e:  # noqa: BLE001 - missing folder, offline hub, not a causal LM: one line
            where = "folder" if Path(model).exists() else f"no folder {model} here: a hub id (offline: pass a folder)"
            raise FinsaeError(f"label.backend=hf could not load the causal LM label.model={model!r} ({where}): "
                              f"{str(e).splitlines()[0][:200]}") from None

    def prompt(self, req: ChatRequest) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(list(req.messages), tokenize=False, add_generation_prompt=True)
        else:
            text = "".join(f"{m['role']}: {m['content']}\n\n" for m in req.messages) + "assistant: "
        return text + req.prefill

    def prefilled(self, req: ChatRequest) -> bool:
        return True

    @torch.inference_mode()
    def complete(self, req: ChatRequest) -> Completion:
        enc = self.tokenizer(self.prompt(req), return_tensors="pt", add_special_tokens=False).to(self.device)
        n_prompt = int(enc["input_ids"].shape[1])
        sample = req.temperature > 0
        torch.manual_seed(self.seed)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        out = self.lm.generate(**enc, max_new_tokens=req.max_tokens, do_sample=sample, pad_token_id=pad,
                               **({"temperature": req.temperature} if sample else {}))
        new = out[0, n_prompt:]
        return Completion(self.tokenizer.decode(new, skip_special_tokens=True), n_prompt, int(new.shape[0]))

    def generate(self, requests: Sequence[ChatRequest], on_done: OnDone | None = None) -> list[Completion]:
        out = []
        for i, r in enumerate(requests):
            c = self.complete(r)
            out.append(c)
            if on_done is not None:
                on_done(i, c)
        return out


def check_model_source(model: str) -> None:
    """``model`` is a local folder that exists or could be a hub id; otherwise (a path to nothing, which
    transformers would call a malformed repo id) say so in one line, before loading anything."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    path = Path(model)  # as transformers reads it (no ~ expansion)
    if path.exists():
        if not path.is_dir():
            raise FinsaeError(f"label.backend=hf: label.model={model!r} is a file, not the folder of a causal LM; "
                              f"pass its folder (config.json, weights, tokenizer)")
        return
    try:
        validate_repo_id(model)
    except HFValidationError:
        raise FinsaeError(f"label.backend=hf: the folder label.model={model!r} does not exist; pass the folder of a "
                          f"local causal LM (config.json, weights, tokenizer) or a hub id") from None
