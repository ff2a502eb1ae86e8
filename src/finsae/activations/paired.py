"""Two models' activations of the same tokens, seen as one store of concatenated rows (a crosscoder's input).

Row i of a :class:`PairedStore` is ``[s_base * h_base[i], s_domain * h_domain[i]]`` in fp32: both stores must
sit on one token table (same tokenizer, corpus and windowing: ``check_aligned``), and each model's block is
scaled by its own constant so that both have unit mean squared norm on the init sample
(:func:`block_scales`), so neither model dominates the shared loss. It offers what
``ActivationBatches``, ``split_rows`` and the analysis read from a store (``array``, ``table``, ``manifest``,
``path``, ``d``, ``len``), so the SAE's data path trains a crosscoder unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from finsae.activations.extract import check_aligned
from finsae.activations.store import ActivationStore
from finsae.errors import ConfigError


def block_scales(base: ActivationStore, domain: ActivationStore, rows: np.ndarray) -> tuple[float, float]:
    """``1 / sqrt(mean ||h||^2)`` of each store over ``rows`` (the run's init sample)."""
    out = []
    for store in (base, domain):
        x = np.asarray(store.array.take(np.asarray(rows)), dtype=np.float64)
        ms = float(np.einsum("ij,ij->i", x, x).mean()) if len(x) else 0.0
        if not ms > 0:
            raise ConfigError(f"activations of {store.path.name} are all zero on the init sample: no scale")
        out.append(1.0 / float(np.sqrt(ms)))
    return out[0], out[1]


class PairedArray:
    """``[N, 2d]`` fp32 view of two row-aligned ``[N, d]`` arrays, each block times its scale (reads on demand)."""

    def __init__(self, base, domain, scales: tuple[float, float]):
        self.base, self.domain, self.scales = base, domain, (float(scales[0]), float(scales[1]))
        self.shape = (len(base), base.shape[1] + domain.shape[1])
        self.dtype = np.dtype(np.float32)
        self.ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    def _join(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(a, np.float32) * np.float32(self.scales[0]),
                               np.asarray(b, np.float32) * np.float32(self.scales[1])], axis=-1)

    def take(self, index) -> np.ndarray:
        return self._join(self.base.take(index), self.domain.take(index))

    def __getitem__(self, key):
        return self._join(self.base[key], self.domain[key])


class PairedStore:
    """Two row-aligned stores of one layer as one store of ``[s_base * h_base, s_domain * h_domain]`` rows."""

    def __init__(self, base: ActivationStore, domain: ActivationStore, scales: tuple[float, float]):
        check_aligned(base, domain)
        if base.d != domain.d or len(base) != len(domain):
            raise ConfigError(f"a crosscoder needs two stores of one shape, got {len(base)} x {base.d} and "
                              f"{len(domain)} x {domain.d}")
        self.base, self.domain, self.scales = base, domain, scales
        self.table = base.table
        self.path = Path(base.path)
        self.manifest = {"key": f"{base.key}+{domain.key}", "layer": base.layer, "d": 2 * base.d,
                         "n_tokens": len(base),
                         "inference_only": bool(base.manifest.get("inference_only")
                                                or domain.manifest.get("inference_only"))}
        self.array = PairedArray(base.array, domain.array, scales)

    @property
    def key(self) -> str:
        return self.manifest["key"]

    @property
    def layer(self) -> int:
        return self.base.layer

    @property
    def d(self) -> int:
        return 2 * self.base.d

    def __len__(self) -> int:
        return len(self.base)

    def __repr__(self) -> str:
        return f"PairedStore({self.base.key} + {self.domain.key}, rows={len(self)}, d={self.d})"
