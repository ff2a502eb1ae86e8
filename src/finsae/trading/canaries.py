"""Leakage canaries the pipeline runs on itself, through the same walk-forward and backtest code. Each is a
planted feature built from the very return it is scored on; none is any published number.

* ``oracle``: the realized executed return itself: the pipeline must see it (accuracy near 1);
* ``flip32``: the realized return, magnitude kept, with 32% of its signs flipped. The magnitude tells the model
  which rows matter most, so this is a *stronger* leak than one that only knows the direction;
* ``sign_flip32``: the direction only, as a leaked label would be: the sign of the realized return (+1 up, -1
  otherwise), 32% of rows flipped, then 10% of rows set to up (the public write-up's recipe for its label);
* ``shuffled``: the target permuted across days (whole days move together), price features only: chance
  accuracy and a deflated Sharpe that is not significant.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from finsae.trading.features import Block

CANARIES: tuple[str, ...] = ("oracle", "flip32", "sign_flip32", "shuffled")
DESCRIPTIONS = {
    "canary_oracle": "the realized executed return as a feature (a total leak)",
    "canary_flip32": "the realized return, magnitude kept, 32% of signs flipped (stronger than a leaked label)",
    "canary_sign_flip32": "the sign of the realized return, 32% flipped, then 10% set to up (a leaked label)",
    "canary_shuffled": "price features only, the target permuted across whole days (no signal)",
}
"""What each canary is, in one line (written beside its numbers)."""


class Masks(NamedTuple):
    flip: np.ndarray
    """Rows whose sign is flipped."""
    up: np.ndarray
    """Rows then forced to up (sign-only canary)."""


def masks(n: int, flip: float = 0.32, up: float = 0.10, seed: int = 0) -> Masks:
    """The canaries' random rows, drawn once: ``flip`` of them flipped, independently ``up`` of them forced up."""
    rng = np.random.default_rng(seed)
    return Masks(rng.random(n) < flip, rng.random(n) < up)


def oracle_block(ret: np.ndarray) -> Block:
    return Block("canary_oracle", "plain", np.asarray(ret, np.float32).reshape(-1, 1), ["realized_return"])


def flipped_block(ret: np.ndarray, m: Masks | None = None) -> Block:
    m = masks(len(ret)) if m is None else m
    return Block("canary_flip32", "plain", np.where(m.flip, -ret, ret).astype(np.float32).reshape(-1, 1),
                 ["realized_return_32pct_flipped"])


def sign_values(ret: np.ndarray, m: Masks) -> np.ndarray:
    """+1 / -1: the sign of ``ret`` (up if > 0, as ``up_exec``), flipped on ``m.flip``, then +1 on ``m.up``;
    0 where ``ret`` is NaN."""
    ret = np.asarray(ret, np.float64)
    s = np.where(ret > 0, 1.0, -1.0)
    s = np.where(m.flip, -s, s)
    s = np.where(m.up, 1.0, s)
    return np.where(np.isfinite(ret), s, 0.0)


def sign_block(ret: np.ndarray, m: Masks | None = None) -> Block:
    m = masks(len(ret)) if m is None else m
    return Block("canary_sign_flip32", "plain", sign_values(ret, m).astype(np.float32).reshape(-1, 1),
                 ["realized_sign_32pct_flipped_10pct_up"])


def shuffle_days(values: np.ndarray, dates: np.ndarray, seed: int = 0) -> np.ndarray:
    """``values`` with whole days permuted: day i's values go to a random other day (tickers aligned by
    position within a day where the day sizes match, else cycled)."""
    rng = np.random.default_rng(seed)
    uniq, inv = np.unique(dates, return_inverse=True)
    perm = rng.permutation(len(uniq))
    out = np.empty_like(values)
    groups = [np.flatnonzero(inv == i) for i in range(len(uniq))]
    for i, g in enumerate(groups):
        src = groups[perm[i]]
        out[g] = values[src[np.arange(len(g)) % len(src)]]
    return out
