"""The packaged all-MiniLM-L6-v2 as a sentence embedder (mean pooling + L2 norm, as sentence-transformers
defines it), offline; used for hard negatives and the embedding scorer."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from finsae.models.registry import packaged_minilm_dir


class SentenceEmbedder:
    """``embed(texts)`` -> unit-norm float32 rows; each distinct text is encoded once per embedder."""

    def __init__(self, path: str | None = None, batch_size: int = 64, max_length: int = 128):
        from transformers import AutoModel, AutoTokenizer

        src = str(path or packaged_minilm_dir())
        self.tokenizer = AutoTokenizer.from_pretrained(src)
        self.model = AutoModel.from_pretrained(src).eval()
        self.batch_size = batch_size
        self.max_length = max_length
        self._cache: dict[str, np.ndarray] = {}
        self.name = "all-MiniLM-L6-v2"

    @torch.inference_mode()
    def _encode(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        hidden = self.model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy().astype(np.float32)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        todo = sorted({t for t in texts if t not in self._cache}, key=len)  # similar lengths pad less
        for i in range(0, len(todo), self.batch_size):
            chunk = todo[i:i + self.batch_size]
            for t, v in zip(chunk, self._encode(chunk), strict=True):
                self._cache[t] = v
        if not texts:
            return np.zeros((0, self.model.config.hidden_size), np.float32)
        return np.stack([self._cache[t] for t in texts])
