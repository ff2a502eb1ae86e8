"""Top-k sparse autoencoder (ReLU then top-k; Gao et al. 2024) with sparse training kernels.

Parameters (names as saved): ``W_enc [m, d]``, ``b_enc [m]``, ``W_dec [m, d]`` (unit-norm
rows), ``b_dec [d]``; buffer ``norm_scale []``. On a token x (original units)::

    xn   = x * norm_scale                       # unit mean squared norm over the training data
    acts, idx = top-k(relu((xn - b_dec) @ W_enc.T + b_enc))
    xhat = sum_j acts_j * W_dec[idx_j] + b_dec  # normalised units; sae_out = xhat / norm_scale

Losses live in normalised units, so FVU and the learning rate do not depend on the scale of
the encoder's activations. Initialisation: decoder rows random unit vectors, ``W_enc`` equal
to ``W_dec`` (the encoder matrix is the decoder's transpose in ``[d, m]`` terms), ``b_enc = 0``;
:meth:`TopKSAE.init_from_sample` sets ``norm_scale`` and ``b_dec`` (geometric median).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from finsae.errors import ConfigError
from finsae.sae.config import SaeConfig
from finsae.sae.geometric_median import geometric_median
from finsae.sae.kernels import TopKSaeFn, Workspace, sparse_decode, topk_encode

_TINY = 1e-30


class ForwardOutput(NamedTuple):
    """Everything one training forward pass produces (losses are 0-dim tensors)."""

    sae_out: Tensor
    """Reconstruction in the input's original units and shape ``[..., d_in]``."""

    latent_acts: Tensor
    """Post-ReLU activations of the selected latents, ``[n_tokens, k]`` (not sorted; may hold zeros)."""

    latent_indices: Tensor
    """Latent ids matching ``latent_acts``, ``[n_tokens, k]`` int64."""

    fvu: Tensor
    """Fraction of variance unexplained: sum of squared errors / total variance of the batch."""

    auxk_loss: Tensor
    """AuxK loss: dead latents' reconstruction of the residual, relative to its variance; 0 if none dead."""

    mse: Tensor
    """Mean over tokens of the squared reconstruction error, in normalised units."""


class EncoderOutput(NamedTuple):
    """Sparse code of a batch of tokens."""

    latent_acts: Tensor
    """Post-ReLU activations of the selected latents, ``[n_tokens, k]``."""

    latent_indices: Tensor
    """Latent ids matching ``latent_acts``, ``[n_tokens, k]`` int64."""


class TopKSAE(nn.Module):
    """Top-k SAE whose training step is sparse except for the encoder matmul."""

    def __init__(self, cfg: SaeConfig, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32):
        super().__init__()
        if not isinstance(cfg, SaeConfig):
            raise ConfigError(f"TopKSAE needs a SaeConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        m, d = cfg.num_latents, cfg.d_in
        if device is not None and torch.device(device).type == "meta":
            w = torch.empty(m, d, device=device, dtype=dtype)  # shapes only (io.load fills them)
        else:
            gen = torch.Generator().manual_seed(cfg.seed)
            w = torch.randn(m, d, generator=gen, dtype=torch.float64)
            w /= torch.linalg.vector_norm(w, dim=1, keepdim=True)
            w = w.to(device=device, dtype=dtype)
        self.W_enc = nn.Parameter(w.clone())
        self.b_enc = nn.Parameter(torch.zeros(m, device=device, dtype=dtype))
        self.W_dec = nn.Parameter(w)
        self.b_dec = nn.Parameter(torch.zeros(d, device=device, dtype=dtype))
        self.register_buffer("norm_scale", torch.ones((), device=device, dtype=dtype))
        self.initialized = False
        """True once ``norm_scale`` and ``b_dec`` come from data (init_from_sample or load)."""
        self.tokens_seen = 0
        """Training tokens consumed so far (updated by ``train_step``; saved in cfg.json)."""
        self._workspace = Workspace()

    @property
    def d_in(self) -> int:
        return self.cfg.d_in

    @property
    def num_latents(self) -> int:
        return self.cfg.num_latents

    @property
    def k(self) -> int:
        return self.cfg.k

    @torch.no_grad()
    def init_from_sample(self, x: Tensor) -> None:
        """Set ``norm_scale`` (unit mean squared norm) and ``b_dec`` (geometric median) from every row of
        ``x [..., d]`` (the caller decides the sample: see ``finsae.sae.uniform_sample_rows``)."""
        x = x.detach().reshape(-1, self.d_in).to(device=self.b_dec.device, dtype=torch.float64)
        if x.shape[0] == 0:
            raise ValueError("init_from_sample needs at least one token")
        if self.cfg.normalize_input:
            ms = x.pow(2).sum(1).mean()
            scale = 1.0 / float(ms.sqrt()) if float(ms) > 0 else 1.0
        else:
            scale = 1.0
        self.norm_scale.fill_(scale)
        self.b_dec.copy_(geometric_median(x * scale))
        self.initialized = True

    def _flat(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.d_in:
            raise ValueError(f"SAE expects inputs with last dim d_in={self.d_in}, got shape {tuple(x.shape)}")
        return x.reshape(-1, self.d_in).to(self.W_enc.dtype) * self.norm_scale

    def forward(self, x: Tensor, dead_mask: Tensor | None = None) -> ForwardOutput:
        """Encode, decode and score ``x [..., d_in]``; ``dead_mask [m]`` bool switches AuxK on."""
        xn = self._flat(x)
        dead_idx = None
        if dead_mask is not None and self.cfg.k_aux > 0:
            if dead_mask.numel() != self.num_latents:
                raise ValueError(f"dead_mask has {dead_mask.numel()} entries, expected num_latents={self.num_latents}")
            dead_idx = dead_mask.to(xn.device).reshape(-1).nonzero().reshape(-1)
        recon, acts, idx, aux_recon, aux_acts, aux_idx = TopKSaeFn.apply(
            xn, self.b_dec, self.W_enc, self.b_enc, self.W_dec,
            self.cfg.k, dead_idx, self.cfg.k_aux, self.cfg.encoder_dtype, self._workspace,
        )
        n = xn.shape[0]
        sq_err = F.mse_loss(recon, xn, reduction="sum")
        total_var = (xn - xn.mean(0)).pow(2).sum()
        fvu = sq_err / total_var.clamp_min(_TINY)
        if aux_idx.shape[1] > 0:
            resid = (xn - recon).detach()  # AuxK target: the error e = x - x_hat the live latents left
            resid_var = (resid - resid.mean(0)).pow(2).sum()
            auxk_loss = F.mse_loss(aux_recon, resid, reduction="sum") / resid_var.clamp_min(_TINY)
        else:
            auxk_loss = fvu.new_zeros(())
        sae_out = (recon / self.norm_scale).reshape(x.shape)
        return ForwardOutput(sae_out, acts, idx, fvu, auxk_loss, sq_err / max(n, 1))

    @torch.no_grad()
    def encode(self, x: Tensor) -> EncoderOutput:
        """Sparse code of ``x [..., d_in]`` (no autograd): top-k activations and their latent ids."""
        z = self._flat(x) - self.b_dec
        acts, idx, _, _ = topk_encode(
            z, self.W_enc, self.b_enc, self.cfg.k, encoder_dtype=self.cfg.encoder_dtype, workspace=self._workspace
        )
        return EncoderOutput(acts, idx)

    @torch.no_grad()
    def decode(self, latent_acts: Tensor, latent_indices: Tensor) -> Tensor:
        """Reconstruction ``[n, d_in]`` in original units from a sparse code (no autograd)."""
        recon = sparse_decode(latent_acts, latent_indices, self.W_dec).add_(self.b_dec)
        return recon / self.norm_scale

    def extra_repr(self) -> str:
        c = self.cfg
        return f"d_in={c.d_in}, num_latents={c.num_latents}, k={c.k}, encoder_dtype={c.encoder_dtype}"
