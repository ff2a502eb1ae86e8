"""Shared helpers for the SAE tests: tiny float64 SAEs with non-trivial parameters."""

from __future__ import annotations

import pytest
import torch

from finsae.sae import SaeConfig, TopKSAE


def build_sae(d: int = 16, m: int = 64, k: int = 4, k_aux: int = 8, dtype=torch.float64, seed: int = 0) -> TopKSAE:
    """A float64 SAE whose biases and encoder are perturbed away from the symmetric init."""
    sae = TopKSAE(SaeConfig(d_in=d, num_latents=m, k=k, k_aux=k_aux, seed=seed), dtype=dtype)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        sae.W_enc.add_(0.3 * torch.randn(sae.W_enc.shape, generator=g, dtype=dtype))
        sae.b_enc.copy_(0.2 * torch.randn(m, generator=g, dtype=dtype))
        sae.b_dec.copy_(0.5 * torch.randn(d, generator=g, dtype=dtype))
        sae.norm_scale.fill_(0.37)
    return sae


@pytest.fixture(autouse=True)
def _one_thread():
    """These tensors are tiny: one intra-op thread is faster, and immune to a busy machine
    (a parallel region stalls whenever one of its threads is descheduled)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def make_sae():
    """Factory fixture: ``make_sae(d, m, k, k_aux, dtype, seed)`` -> perturbed SAE."""
    return build_sae


@pytest.fixture
def sae64() -> TopKSAE:
    return build_sae()
