"""Pure-torch training pieces for :class:`~finsae.sae.TopKSAE`.

One step is::

    out = sae(x, dead_mask)                          # sparse forward
    loss = out.fvu + auxk_coef * out.auxk_loss       # sae_loss(out, sae.cfg)
    loss.backward()                                  # sparse backward
    remove_parallel_decoder_grad(sae)                # keep updates tangent to unit rows
    optimizer.step(); optimizer.zero_grad()
    renorm_decoder(sae)                              # back onto the unit sphere
    tracker.update(out.latent_indices, n, out.latent_acts)

:func:`train_step` does exactly that; a Lightning module can call the pieces around its own
optimizer step instead. :func:`fit` is a plain loop for small runs and tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import NamedTuple

import torch
from torch import Tensor

from finsae.sae.config import SaeConfig, TrainConfig
from finsae.sae.dead import DeadLatentTracker
from finsae.sae.lr import default_lr, lr_schedule
from finsae.sae.sparse_coder.topk import ForwardOutput, TopKSAE


class StepMetrics(NamedTuple):
    """Scalars of one training step (Python floats, taken before the optimizer step)."""

    loss: float
    """Training loss ``fvu + auxk_coef * auxk_loss``."""

    fvu: float
    """Fraction of variance unexplained on the step's batch."""

    auxk_loss: float
    """AuxK loss (0 when no latent is dead)."""

    l0: float
    """Mean number of latents with a positive activation per token (at most k)."""

    dead_fraction: float
    """Fraction of latents dead after this step's counter update (0 without a tracker)."""


def sae_loss(out: ForwardOutput, cfg: SaeConfig) -> Tensor:
    """Training loss ``fvu + auxk_coef * auxk_loss``."""
    return out.fvu + cfg.auxk_coef * out.auxk_loss


def make_optimizer(sae: TopKSAE, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 6.25e-10) -> torch.optim.Adam:
    """Adam over all SAE parameters: fused kernel when the device supports it, else foreach."""
    params = [p for p in sae.parameters() if p.requires_grad]
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, foreach=True)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr


_ROWDOT_CHUNK = 8192


def _rowdot(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise dot products of two ``[m, d]`` tensors, in row chunks (small temporaries)."""
    out = torch.empty(a.shape[0], dtype=a.dtype, device=a.device)
    for s in range(0, a.shape[0], _ROWDOT_CHUNK):
        e = min(a.shape[0], s + _ROWDOT_CHUNK)
        torch.sum(a[s:e] * b[s:e], dim=1, out=out[s:e])
    return out


@torch.no_grad()
def remove_parallel_decoder_grad(sae: TopKSAE) -> None:
    """Remove from ``W_dec.grad`` each row's component along that (unit) decoder row.

    Call after ``backward`` and before the optimizer step; a no-op without a gradient.
    """
    W, g = sae.W_dec, sae.W_dec.grad
    if g is None:
        return
    coef = _rowdot(g, W).unsqueeze(1)
    g.addcmul_(coef, W, value=-1.0)


@torch.no_grad()
def renorm_decoder(sae: TopKSAE, eps: float = 0.0) -> None:
    """Rescale every decoder row to unit L2 norm (call after the optimizer step)."""
    W = sae.W_dec
    norms = torch.linalg.vector_norm(W, dim=1, keepdim=True)
    if eps:
        norms.add_(eps)
    W.div_(norms)


def train_step(
    sae: TopKSAE,
    optimizer: torch.optim.Optimizer,
    x: Tensor,
    dead_tracker: DeadLatentTracker | None = None,
    lr: float | None = None,
) -> StepMetrics:
    """One full optimisation step on the batch ``x [..., d_in]``; returns its metrics."""
    if lr is not None:
        set_lr(optimizer, lr)
    dead_mask = dead_tracker.dead_mask() if dead_tracker is not None else None
    out = sae(x, dead_mask=dead_mask)
    loss = sae_loss(out, sae.cfg)
    loss.backward()
    remove_parallel_decoder_grad(sae)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    renorm_decoder(sae)
    n = out.latent_indices.shape[0]
    dead_fraction = 0.0
    if dead_tracker is not None:
        dead_tracker.update(out.latent_indices, n, out.latent_acts)
        dead_fraction = dead_tracker.dead_fraction()
    sae.tokens_seen += n
    l0 = (out.latent_acts > 0).sum().item() / max(n, 1)
    return StepMetrics(loss.detach().item(), out.fvu.detach().item(), out.auxk_loss.detach().item(), l0, dead_fraction)


def _take_init_sample(it: Iterator[Tensor], d: int, want: int) -> tuple[Tensor, list[Tensor]]:
    """Pull batches until ``want`` tokens are seen; return the sample and the batches pulled."""
    pulled: list[Tensor] = []
    seen = 0
    for b in it:
        pulled.append(b)
        seen += b.numel() // d
        if seen >= want:
            break
    if not pulled:
        raise ValueError("fit got no batches")
    return torch.cat([b.reshape(-1, d) for b in pulled])[:want], pulled


def fit(
    sae: TopKSAE,
    batches: Iterable[Tensor],
    cfg: TrainConfig | None = None,
    total_tokens: int | None = None,
    dead_tracker: DeadLatentTracker | None = None,
) -> list[StepMetrics]:
    """Train ``sae`` on ``batches`` (tensors ``[..., d_in]``) for ``total_tokens`` tokens.

    Initialises ``norm_scale`` / ``b_dec`` from the first batches if the SAE is fresh, uses
    :func:`default_lr` unless ``cfg.lr`` is set, warms up and decays per ``cfg``, and stops
    when ``total_tokens`` are consumed or the batches run out. ``total_tokens=None`` means
    "all batches" and then requires ``batches`` to have a length. Returns one
    :class:`StepMetrics` per step.
    """
    cfg = cfg or TrainConfig()
    d = sae.d_in
    it = iter(batches)
    sample, pulled = _take_init_sample(it, d, cfg.init_tokens)
    if not sae.initialized:
        sae.init_from_sample(sample)
    stream = chain(pulled, it)
    batch_tokens = pulled[0].numel() // d
    if total_tokens is None:
        try:
            total_tokens = batch_tokens * len(batches)  # type: ignore[arg-type]
        except TypeError as err:
            raise ValueError("fit needs total_tokens when batches has no len()") from err
    total_steps = max(1, math.ceil(total_tokens / max(1, batch_tokens)))
    warmup = min(cfg.max_warmup_steps, int(cfg.warmup_frac * total_steps))
    peak = cfg.lr if cfg.lr is not None else default_lr(sae.num_latents, total_tokens)
    optimizer = make_optimizer(sae, peak, cfg.betas, cfg.eps)
    if dead_tracker is None:
        dead_tracker = DeadLatentTracker(sae.num_latents, sae.cfg.dead_tokens, device=sae.W_dec.device)
    history: list[StepMetrics] = []
    consumed = 0
    sae.train()
    for step, x in enumerate(stream):
        if consumed >= total_tokens:
            break
        lr = lr_schedule(min(step, total_steps - 1), total_steps, peak, warmup, cfg.schedule, cfg.final_lr_frac)
        history.append(train_step(sae, optimizer, x.to(sae.W_enc.device), dead_tracker, lr))
        consumed += x.numel() // d
    return history
