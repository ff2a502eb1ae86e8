"""Learning-rate rule and schedule for top-k SAEs.

Published rule (Gao et al. 2024, "Scaling and evaluating sparse autoencoders")::

    lr_pub(m) = 2e-4 / sqrt(m / 2**14)

was fitted on runs of billions of tokens. With a budget of about a million tokens it is far
too cautious: on MiniLM layer 3 (m = 12,288, k = 32, 1.05M tokens) FVU was 0.245 at
lr_pub = 2.3e-4 and 0.136 at 1e-3. A short run never reaches the regime where a large step
hurts, and a small one leaves most latents under-trained. :func:`default_lr` therefore
boosts the rule for small budgets and fades the boost out log-linearly::

    boost(T) = B                                  T <= 2M tokens
             = B ** (1 - f),  f = ln(T/2M) / ln(500M/2M)   in between
             = 1                                  T >= 500M tokens
    lr(m, T) = lr_pub(m) * boost(T),   B = 1e-3 / lr_pub(12288) ~= 4.33

so lr = 1e-3 exactly at the measured point (12,288 latents, <= 2M tokens), keeps the
published 1/sqrt(m) width dependence, and equals the published rule at >= 500M tokens.

Sweep at the demo budget (MiniLM layer 3, 2M tokens, batch 512, ``sweeps/lr_sweep.sh``), sae_eval FVU
(dead fraction): 5e-4 -> 0.144 (0.00%), 1e-3 -> 0.121 (0.02%), 2e-3 -> 0.110 (0.42%). Higher lr keeps
lowering FVU at this budget while dead latents climb; 1e-3 is kept as the default, the side with
20x fewer dead latents that still clears the FVU bar, since one layer of one model is too little to
move it further. Treat it as a default to sweep around, not a law.
"""

from __future__ import annotations

import math

PUBLISHED_LR = 2e-4
"""Gao et al.'s learning rate at 2**14 latents."""

SMALL_BUDGET_TOKENS = 2_000_000
"""Budgets up to this many tokens get the full boost."""

LARGE_BUDGET_TOKENS = 500_000_000
"""Budgets from this many tokens on get the published rule."""

_MEASURED_LATENTS = 12_288
_MEASURED_LR = 1e-3


def published_lr(num_latents: int) -> float:
    """Gao et al.'s rule ``2e-4 / sqrt(num_latents / 2**14)``."""
    if num_latents <= 0:
        raise ValueError(f"num_latents must be positive, got {num_latents}")
    return PUBLISHED_LR / math.sqrt(num_latents / 2**14)


SMALL_BUDGET_BOOST = _MEASURED_LR / published_lr(_MEASURED_LATENTS)
"""Factor over the published rule at small budgets (~4.33, from the MiniLM measurement)."""


def default_lr(num_latents: int, total_tokens: int) -> float:
    """Peak Adam learning rate for ``num_latents`` latents trained on ``total_tokens`` tokens.

    See the module docstring for the formula and the measurement behind it.
    """
    if total_tokens <= 0:
        raise ValueError(f"total_tokens must be positive, got {total_tokens}")
    lo, hi = math.log(SMALL_BUDGET_TOKENS), math.log(LARGE_BUDGET_TOKENS)
    f = min(1.0, max(0.0, (math.log(total_tokens) - lo) / (hi - lo)))
    return published_lr(num_latents) * SMALL_BUDGET_BOOST ** (1.0 - f)


def lr_schedule(
    step: int,
    total_steps: int,
    peak_lr: float,
    warmup_steps: int = 0,
    schedule: str = "linear",
    final_lr_frac: float = 0.0,
) -> float:
    """Learning rate at ``step`` (0-based) of ``total_steps``.

    Linear warm-up from ``peak_lr / warmup_steps`` to ``peak_lr`` over ``warmup_steps``, then
    "linear" or "cosine" decay to ``final_lr_frac * peak_lr`` at the last step, or "constant".
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return peak_lr
    span = max(1, total_steps - 1 - warmup_steps)
    t = min(1.0, max(0.0, (step - warmup_steps) / span))
    low = final_lr_frac * peak_lr
    if schedule == "linear":
        return low + (peak_lr - low) * (1.0 - t)
    if schedule == "cosine":
        return low + (peak_lr - low) * 0.5 * (1.0 + math.cos(math.pi * t))
    raise ValueError(f"unknown schedule {schedule!r} (linear, cosine, constant)")
