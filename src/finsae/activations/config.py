"""What an activation extraction is asked to do (the ``activations:`` config group), and how a compute dtype is
chosen."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from finsae import precision
from finsae.errors import ConfigError

DTYPES = ("auto", "fp32", "bf16", "fp16")
WINDOWINGS = ("sentence", "tokens")
_TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class ExtractConfig:
    """How a corpus is tokenized, run through a model and stored (``python train.py activations.<field>=...``)."""

    max_length: int = 128
    """Model input length in tokens, [CLS] and [SEP] included; longer documents are cut into windows."""
    windowing: str = "sentence"
    """``sentence``: windows hold whole sentences where they fit; ``tokens``: plain consecutive token runs.
    Either way a window never cuts a word in two when a word boundary is in reach, and no token is dropped."""
    batch_size: int = 64
    """Windows per forward pass (windows are sorted by length first, so little of a batch is padding)."""
    dtype: str = "auto"
    """Compute dtype of the model forward: ``auto`` (bf16 on CPUs with native bf16 units, AMX-BF16 or
    AVX-512-BF16, and on GPUs that have it; fp16 on older GPUs; else fp32: see ``finsae.precision``), ``fp32``,
    ``bf16``, ``fp16``. Stored activations are always fp16; the compute dtype is part of the cache key and the
    entry's manifest (``compute_dtype``). Without the units bf16 autocast is emulated and several times slower
    than fp32 (6x measured on the 2-core AVX2 dev machine), hence fp32 there."""
    store_special: bool = False
    """Also keep the [CLS]/[SEP] hidden states, in a separate store beside the main one (FinBERT's training
    signal reads only [CLS]); the main store never holds them."""
    shard_mb: float = 256
    """Largest shard file, in MiB."""
    buffer_mb: float = 64
    """RAM for one chunk of results (all layers) before it is handed to the background writer; at most two
    chunks are alive at once. Windows are length-sorted within a chunk."""

    def __post_init__(self):
        if self.max_length < 3:
            raise ConfigError(f"activations max_length={self.max_length} leaves no room beside [CLS] and [SEP]")
        if self.max_length > 32767:
            raise ConfigError(f"activations max_length={self.max_length} exceeds the int16 position column")
        if self.windowing not in WINDOWINGS:
            raise ConfigError(f"activations windowing={self.windowing!r}; choose one of {list(WINDOWINGS)}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"activations dtype={self.dtype!r}; choose one of {list(DTYPES)}")
        for name in ("batch_size", "shard_mb", "buffer_mb"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"activations {name}={getattr(self, name)} must be > 0")


def resolve_dtype(dtype: str, device: torch.device) -> str:
    """The concrete compute dtype for ``device`` (part of the cache key: it changes the stored numbers)."""
    return precision.resolve(dtype, device)


def torch_dtype(name: str) -> torch.dtype:
    return _TORCH_DTYPES[name]
