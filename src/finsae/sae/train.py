"""The one training step of :class:`~finsae.sae.TopKSAE`, in the pieces a framework loop needs.

A step is::

    loss, out = forward_loss(sae, x, tracker, cfg, reduce_fn, world_size)  # sparse forward + loss
    loss.backward()                                                         # sparse backward
    before_optimizer_step(sae)              # remove the gradient along each unit decoder row
    optimizer.step(); optimizer.zero_grad()                                 # build_optimizer(sae, cfg)
    after_optimizer_step(sae, tracker, out, x)  # decoder back onto the sphere, dead counters, tokens

:func:`train_step` is exactly that sequence; the Lightning module (``finsae.glue.sae_module``) calls the same
four functions around Lightning's own optimizer step, so the step ``bench/sae_step.py`` times is the step
that trains the shipped SAEs (a test trains both ways and compares the weights). :func:`fit` is a plain loop
over :func:`train_step` for small runs and tests.

The loss is the FVU of the *global* batch: each rank divides its squared error by the variance of the whole
global batch (one all-reduce of ``d + 2`` numbers through ``reduce_fn``), times the world size, so DDP's
gradient averaging yields exactly the single-process gradient. With one process it is the batch FVU.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from finsae.sae.config import SaeTrainConfig
from finsae.sae.dead import DeadLatentTracker
from finsae.sae.lr import lr_schedule
from finsae.sae.sparse_coder.topk import ForwardOutput, TopKSAE

ReduceFn = Callable[[Tensor], Tensor]


class StepMetrics(NamedTuple):
    """Scalars of one training step (Python floats, taken before the optimizer step)."""

    loss: float
    """Training loss ``fvu + auxk_coef * auxk_loss`` (this rank's share under DDP)."""

    fvu: float
    """Fraction of variance unexplained on this rank's batch."""

    auxk_loss: float
    """AuxK loss (0 when no latent is dead)."""

    l0: float
    """Mean number of latents with a positive activation per token (at most k)."""

    dead_fraction: float
    """Fraction of latents dead after this step's counter update."""


def build_optimizer(sae: TopKSAE, cfg: SaeTrainConfig, lr: float) -> torch.optim.Adam:
    """Adam over all SAE parameters (eps ``cfg.adam_eps``): fused kernel when the device supports it."""
    params = [p for p in sae.parameters() if p.requires_grad]
    try:
        return torch.optim.Adam(params, lr=lr, eps=cfg.adam_eps, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, eps=cfg.adam_eps, foreach=True)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def global_total_variance(x: Tensor, reduce_fn: ReduceFn | None = None) -> Tensor:
    """Total variance (sum over dims) of the global batch whose local part is ``x [n, d]``, in x's dtype.

    ``reduce_fn`` must sum a tensor elementwise over ranks (None: one process)."""
    xd = x.double()
    stats = torch.cat([xd.sum(0), xd.pow(2).sum().view(1),
                       torch.tensor([x.shape[0]], dtype=torch.float64, device=x.device)])
    if reduce_fn is not None:
        stats = reduce_fn(stats)
    d = x.shape[1]
    return (stats[d] - stats[:d].pow(2).sum() / stats[d + 1]).to(x.dtype)


def forward_loss(
    sae: TopKSAE, x: Tensor, tracker: DeadLatentTracker, cfg: SaeTrainConfig,
    reduce_fn: ReduceFn | None = None, world_size: int = 1,
) -> tuple[Tensor, ForwardOutput]:
    """Forward ``x [n, d_in]`` (this rank's rows) and the training loss to call ``backward`` on."""
    dead_mask = tracker.dead_mask()
    out = sae(x, dead_mask=dead_mask if bool(dead_mask.any()) else None)
    sse = (out.sae_out - x).pow(2).sum()
    fvu_share = sse * world_size / global_total_variance(x, reduce_fn)
    return fvu_share + cfg.auxk_coef * out.auxk_loss, out


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
    """Remove from ``W_dec.grad`` each row's component along that (unit) decoder row (no-op without grad)."""
    W, g = sae.W_dec, sae.W_dec.grad
    if g is None:
        return
    coef = _rowdot(g, W).unsqueeze(1)
    g.addcmul_(coef, W, value=-1.0)


@torch.no_grad()
def renorm_decoder(sae: TopKSAE) -> None:
    """Rescale every decoder row to unit L2 norm (call after the optimizer step)."""
    W = sae.W_dec
    W.div_(torch.linalg.vector_norm(W, dim=1, keepdim=True))


def before_optimizer_step(sae: TopKSAE) -> None:
    """What runs between ``backward`` and the optimizer step: keep updates tangent to the unit decoder rows."""
    remove_parallel_decoder_grad(sae)


@torch.no_grad()
def after_optimizer_step(sae: TopKSAE, tracker: DeadLatentTracker, out: ForwardOutput, local_tokens: int) -> None:
    """What runs after the optimizer step: renormalise the decoder, record who fired, count the tokens.

    ``local_tokens`` is this rank's share; the tracker's ``reduce_fn`` sums shares and fired masks."""
    renorm_decoder(sae)
    tracker.update(out.latent_indices, local_tokens, out.latent_acts)
    sae.tokens_seen = int(tracker.tokens)


def step_metrics(loss: Tensor, out: ForwardOutput, tracker: DeadLatentTracker) -> StepMetrics:
    n = max(out.latent_indices.shape[0], 1)
    l0 = float((out.latent_acts > 0).sum()) / n
    return StepMetrics(float(loss.detach()), float(out.fvu.detach()), float(out.auxk_loss.detach()), l0,
                       tracker.dead_fraction())


def train_step(
    sae: TopKSAE, optimizer: torch.optim.Optimizer, x: Tensor, tracker: DeadLatentTracker, cfg: SaeTrainConfig,
    lr: float | None = None, reduce_fn: ReduceFn | None = None, world_size: int = 1,
) -> StepMetrics:
    """One full optimisation step on this rank's rows ``x [n, d_in]``; returns its metrics."""
    if lr is not None:
        set_lr(optimizer, lr)
    loss, out = forward_loss(sae, x, tracker, cfg, reduce_fn, world_size)
    loss.backward()
    before_optimizer_step(sae)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    after_optimizer_step(sae, tracker, out, x.shape[0])
    return step_metrics(loss, out, tracker)


def uniform_sample_rows(rows: np.ndarray, size: int, seed: int) -> np.ndarray:
    """``min(size, len(rows))`` of ``rows`` drawn uniformly without replacement (sorted, for forward reads).

    The init sample of a run: uniform over the whole training mix, so each corpus of the mix is represented
    by its share of the tokens."""
    rows = np.asarray(rows)
    take = min(int(size), len(rows))
    if take <= 0:
        raise ValueError("the init sample needs at least one training row")
    return np.sort(np.random.default_rng(seed).choice(rows, take, replace=False))


def _take_first_tokens(it: Iterator[Tensor], d: int, want: int) -> tuple[Tensor, list[Tensor]]:
    """Pull batches until ``want`` tokens are seen; return those tokens and the batches pulled."""
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
    sae: TopKSAE, batches: Iterable[Tensor], cfg: SaeTrainConfig, init_sample: Tensor | None = None,
) -> list[StepMetrics]:
    """Train ``sae`` on ``batches`` (``[cfg.batch_size, d_in]`` tensors) for ``cfg.total_steps`` steps.

    A fresh SAE is initialised from ``init_sample`` (default: the first ``cfg.init_sample`` tokens of the
    stream; pass a uniform sample where one can be drawn, as the train stage does). Stops early if the batches
    run out. Returns one :class:`StepMetrics` per step.
    """
    d = sae.d_in
    it = iter(batches)
    pulled: list[Tensor] = []
    if not sae.initialized:
        if init_sample is None:
            init_sample, pulled = _take_first_tokens(it, d, cfg.init_sample)
        sae.init_from_sample(init_sample)
    total = cfg.total_steps
    peak = cfg.peak_lr(sae.num_latents)
    optimizer = build_optimizer(sae, cfg, peak)
    tracker = DeadLatentTracker(sae.num_latents, cfg.dead_token_threshold, device=sae.W_dec.device)
    history: list[StepMetrics] = []
    sae.train()
    for step, x in enumerate(chain(pulled, it)):
        if step >= total:
            break
        lr = lr_schedule(step, total, peak, cfg.warmup_steps, cfg.schedule, cfg.final_lr_frac)
        history.append(train_step(sae, optimizer, x.to(sae.W_enc.device), tracker, cfg, lr))
    return history
