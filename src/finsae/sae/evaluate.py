"""Exact evaluation of an SAE over a whole split: sums, not per-batch ratios, so the result does not depend on
batching (and sums add across DDP ranks)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import torch
from torch import Tensor

from finsae.sae.sparse_coder.topk import TopKSAE


class EvalResult(NamedTuple):
    """Reconstruction and firing metrics of one SAE over every row of a split."""

    fvu: float
    """Fraction of variance unexplained: SSE / total variance of the split."""
    nmse: float
    """Normalised MSE: SSE / sum of ||x||^2."""
    l0: float
    """Mean number of latents firing (positive activation) per token."""
    tokens: int
    """Token rows evaluated."""
    never_fired_fraction: float
    """Fraction of latents that fired on none of the rows."""
    frequency: Tensor
    """``[num_latents]`` float32: the fraction of rows each latent fired on."""


def fvu_and_nmse(sse: Tensor, sum_x: Tensor, sum_sq: Tensor, n: Tensor) -> tuple[Tensor, Tensor]:
    """FVU and normalised MSE from accumulated sums (float64 in, float32 out)."""
    total_var = sum_sq - sum_x.pow(2).sum() / n.clamp_min(1)
    return (sse / total_var).float(), (sse / sum_sq).float()


class ReconstructionSums:
    """Running sums behind FVU/NMSE/L0/firing frequency (float64)."""

    def __init__(self, d_in: int, num_latents: int, device: torch.device | str = "cpu"):
        z = dict(dtype=torch.float64, device=device)
        self.sse, self.sum_sq, self.n, self.active = (torch.zeros((), **z) for _ in range(4))
        self.sum_x = torch.zeros(d_in, **z)
        self.counts = torch.zeros(num_latents, **z)

    @torch.no_grad()
    def update(self, x: Tensor, x_hat: Tensor, latent_indices: Tensor, latent_acts: Tensor) -> None:
        xd = x.double()
        self.sse += (xd - x_hat.double()).pow(2).sum()
        self.sum_x += xd.sum(0)
        self.sum_sq += xd.pow(2).sum()
        self.n += x.shape[0]
        fired = latent_acts > 0
        self.active += fired.sum()
        self.counts += torch.bincount(latent_indices[fired].flatten(), minlength=self.counts.numel()).double()

    def reduce(self, sum_fn) -> None:
        """Sum the states over DDP ranks with ``sum_fn`` (elementwise sum of a tensor over ranks)."""
        for name in ("sse", "sum_sq", "n", "active", "sum_x", "counts"):
            setattr(self, name, sum_fn(getattr(self, name)))

    def result(self) -> EvalResult:
        fvu, nmse = fvu_and_nmse(self.sse, self.sum_x, self.sum_sq, self.n)
        n = self.n.clamp_min(1)
        return EvalResult(float(fvu), float(nmse), float(self.active / n), int(self.n),
                          float((self.counts == 0).double().mean()), (self.counts / n).float().cpu())


@torch.no_grad()
def evaluate(sae: TopKSAE, batches: Iterable[Tensor]) -> EvalResult:
    """Exact metrics of ``sae`` over every row of ``batches`` (``[n, d_in]`` tensors, e.g. the SAE-eval split)."""
    sums = ReconstructionSums(sae.d_in, sae.num_latents, device=sae.W_dec.device)
    for x in batches:
        x = x.to(device=sae.W_dec.device, dtype=torch.float32)
        out = sae(x)
        sums.update(x, out.sae_out, out.latent_indices, out.latent_acts)
    return sums.result()
