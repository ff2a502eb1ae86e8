"""Dead-latent tracking: tokens since each latent last fired.

A latent *fires* on a token when it is among that token's top-k with a positive activation.
After ``dead_tokens`` training tokens without firing it counts as dead, and the AuxK loss
tries to revive it. Under data parallelism every rank must agree on who is dead, so
:meth:`DeadLatentTracker.update` passes one packed tensor through an optional ``reduce_fn``
that must **sum it elementwise across ranks**, e.g.::

    def all_reduce_sum(t):
        torch.distributed.all_reduce(t)   # default op is SUM
        return t

    tracker = DeadLatentTracker(m, train_cfg.dead_token_threshold, reduce_fn=all_reduce_sum)

The packed tensor holds one fired-count per latent followed by this rank's token count, so
after the sum each rank sees the global fired mask and the global number of tokens.

The tracker is an ``nn.Module`` whose counters are buffers, so a module that owns one carries them in its
``state_dict`` (checkpoints, and the weights a ``ddp_spawn`` run hands back to the main process): the
number of updates and the global tokens trained on are read from here, the trained state itself.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

ReduceFn = Callable[[Tensor], Tensor]


class DeadLatentTracker(nn.Module):
    """Per-latent counter of training tokens since the latent last fired, and the run's step/token totals."""

    def __init__(
        self,
        num_latents: int,
        dead_tokens: int,
        reduce_fn: ReduceFn | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.num_latents = int(num_latents)
        self.dead_tokens = int(dead_tokens)
        self.reduce_fn = reduce_fn
        self.register_buffer("tokens_since_fired", torch.zeros(self.num_latents, dtype=torch.long, device=device))
        """``[m]`` int64: training tokens seen since each latent last fired (all ranks)."""
        self.register_buffer("tokens", torch.zeros((), dtype=torch.long, device=device))
        """Training tokens recorded so far (all ranks together)."""
        self.register_buffer("updates", torch.zeros((), dtype=torch.long, device=device))
        """Steps recorded so far."""

    @torch.no_grad()
    def update(self, latent_indices: Tensor, num_tokens: int, latent_acts: Tensor | None = None) -> None:
        """Record one step: ``latent_indices [n, k]`` were selected on ``num_tokens`` tokens.

        With ``latent_acts`` only positive activations count as firing.
        """
        counter = self.tokens_since_fired
        ids = latent_indices.reshape(-1).to(counter.device)
        if latent_acts is not None:
            ids = ids[latent_acts.reshape(-1).to(counter.device) > 0]
        packed = torch.zeros(self.num_latents + 1, dtype=torch.long, device=counter.device)
        packed.index_fill_(0, ids, 1)
        packed[-1] = int(num_tokens)
        if self.reduce_fn is not None:
            packed = self.reduce_fn(packed)
        fired = packed[:-1] > 0
        counter.add_(packed[-1])
        counter.masked_fill_(fired, 0)
        self.tokens.add_(packed[-1])
        self.updates.add_(1)

    def dead_mask(self) -> Tensor:
        """``[m]`` bool: latents that have not fired for at least ``dead_tokens`` tokens."""
        return self.tokens_since_fired >= self.dead_tokens

    def dead_fraction(self) -> float:
        """Fraction of latents that are dead now."""
        return float(self.dead_mask().float().mean()) if self.num_latents else 0.0
