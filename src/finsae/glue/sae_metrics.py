"""torchmetrics for SAE evaluation: exact over the whole sae_eval split and across DDP ranks (sum-reduced states)."""

from __future__ import annotations

import torch
from torchmetrics import Metric

from finsae.sae.evaluate import fvu_and_nmse


class ReconstructionMetrics(Metric):
    """FVU = SSE / total variance, and normalised MSE = SSE / sum ||x||^2, accumulated exactly.

    Keeping sums (not per-batch ratios) makes the result independent of batching and of how DDP splits
    the sae_eval split.
    """

    full_state_update = False

    def __init__(self, d: int):
        super().__init__()
        self.add_state("sse", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("sum_x", torch.zeros(d, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("sum_sq", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, x: torch.Tensor, x_hat: torch.Tensor) -> None:
        x, x_hat = x.double(), x_hat.double()
        self.sse += (x - x_hat).pow(2).sum()
        self.sum_x += x.sum(0)
        self.sum_sq += x.pow(2).sum()
        self.n += x.shape[0]

    def compute(self) -> dict[str, torch.Tensor]:
        fvu, nmse = fvu_and_nmse(self.sse, self.sum_x, self.sum_sq, self.n)
        return {"fvu": fvu, "nmse": nmse}


class FiringCounts(Metric):
    """How often each latent fires over the evaluated tokens (for L0, dead fraction and the histogram)."""

    full_state_update = False

    def __init__(self, num_latents: int):
        super().__init__()
        self.add_state("counts", torch.zeros(num_latents, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("active", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, latent_indices: torch.Tensor, latent_acts: torch.Tensor) -> None:
        fired = latent_acts > 0
        self.counts += torch.bincount(latent_indices[fired].flatten(), minlength=self.counts.numel()).double()
        self.active += fired.sum()
        self.n += latent_indices.shape[0]

    def compute(self) -> dict[str, torch.Tensor]:
        freq = self.counts / self.n.clamp_min(1)
        return {"l0": (self.active / self.n.clamp_min(1)).float(), "frequency": freq.float(),
                "never_fired_fraction": (self.counts == 0).double().mean().float()}
