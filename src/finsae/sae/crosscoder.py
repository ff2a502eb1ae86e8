"""An acausal crosscoder (Lindsey et al. 2024) is a :class:`~finsae.sae.TopKSAE` on two models' activations.

Input: the row-aligned activations of the same token in both models, each model's block scaled to unit mean
squared norm and concatenated, ``x = [s_base * h_base, s_domain * h_domain]`` (``d_in = 2 * d_model``). One
encoder reads both blocks, top-k keeps ``k`` latents per token, and each decoder row ``W_dec[j]`` splits into
one block per model, ``[d_base_j, d_domain_j]``; the FVU of ``x`` is the reconstruction loss of both models
(each block weighs the same, as both have unit mean squared norm). The top-k SAE's unit-norm decoder rows
leave the split of a row's norm between the blocks free, which is what the relative norm
``||d_domain|| / (||d_base|| + ||d_domain||)`` reads. Top-k (no L1) avoids the shrinkage that makes L1
crosscoders call shared latents model-specific (Minder et al. 2025); the training step, kernels, resume and
DDP are the SAE's own. The config is :meth:`finsae.sae.SaeTrainConfig.crosscoder_config`; the paired input is
``finsae.activations.PairedStore``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from finsae.errors import ConfigError
from finsae.sae.sparse_coder.topk import TopKSAE


class DecoderBlocks(NamedTuple):
    """A crosscoder's decoder split by model (normalised input units)."""

    base: Tensor
    """[m, d_model] decoder vectors into the base model's block."""

    domain: Tensor
    """[m, d_model] decoder vectors into the domain model's block."""


def decoder_blocks(sae: TopKSAE) -> DecoderBlocks:
    """The two decoder blocks of a crosscoder (``d_in`` must be even: two equal-width models)."""
    d_in = sae.d_in
    if d_in % 2:
        raise ConfigError(f"a crosscoder reads two equal-width models (even d_in), got d_in={d_in}")
    w = sae.W_dec.detach()
    return DecoderBlocks(w[:, : d_in // 2], w[:, d_in // 2:])


def paired_input(h_base: Tensor, h_domain: Tensor, block_scales: tuple[float, float]) -> Tensor:
    """``[s_base * h_base, s_domain * h_domain]``: the crosscoder's input for row-aligned ``[n, d]`` activations."""
    if h_base.shape != h_domain.shape:
        raise ValueError(f"paired activations must have one shape, got {tuple(h_base.shape)} and {tuple(h_domain.shape)}")
    return torch.cat([h_base * float(block_scales[0]), h_domain * float(block_scales[1])], dim=-1)
