"""Naive dense reference of :meth:`TopKSAE.forward`, with plain autograd.

It builds the full ``[n, m]`` pre-activations and a dense ``[n, m]`` latent matrix and
decodes it with a dense matmul, so autograd's gradients are the textbook ones. The tests
compare the sparse kernels' gradients with these in float64; the benchmark times it as the
"naive dense" baseline. Selection semantics match the sparse path exactly (top-k of the raw
pre-activations, ReLU on the selected values; AuxK picks among dead latents only).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from finsae.sae.sparse_coder.topk import ForwardOutput, TopKSAE

_TINY = 1e-30


def dense_reference_forward(sae: TopKSAE, x: Tensor, dead_mask: Tensor | None = None) -> ForwardOutput:
    """Same outputs as ``sae(x, dead_mask)`` computed densely (slow; for checks and baselines)."""
    cfg = sae.cfg
    xn = x.reshape(-1, cfg.d_in).to(sae.W_enc.dtype) * sae.norm_scale
    pre = (xn - sae.b_dec) @ sae.W_enc.t() + sae.b_enc
    vals, idx = pre.topk(cfg.k, dim=1, sorted=False)
    acts = vals.relu()
    latents = torch.zeros_like(pre).scatter(1, idx, acts)
    recon = latents @ sae.W_dec + sae.b_dec
    sq_err = F.mse_loss(recon, xn, reduction="sum")
    fvu = sq_err / (xn - xn.mean(0)).pow(2).sum().clamp_min(_TINY)
    auxk_loss = fvu.new_zeros(())
    if dead_mask is not None and bool(dead_mask.any()):
        ka = min(int(cfg.k_aux), int(dead_mask.sum()))
        masked = pre.masked_fill(~dead_mask.reshape(1, -1), float("-inf"))
        avals, aidx = masked.topk(ka, dim=1, sorted=False)
        aux_latents = torch.zeros_like(pre).scatter(1, aidx, avals.relu())
        aux_recon = aux_latents @ sae.W_dec
        resid = (xn - recon).detach()
        resid_var = (resid - resid.mean(0)).pow(2).sum()
        auxk_loss = F.mse_loss(aux_recon, resid, reduction="sum") / resid_var.clamp_min(_TINY)
    sae_out = (recon / sae.norm_scale).reshape(x.shape)
    return ForwardOutput(sae_out, acts, idx, fvu, auxk_loss, sq_err / max(xn.shape[0], 1))
