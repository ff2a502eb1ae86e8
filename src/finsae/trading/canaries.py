"""Leakage canaries the pipeline runs on itself, through the same walk-forward and backtest code.

* ``oracle``: a feature equal to the realized executed return: the pipeline must see it (accuracy near 1);
* ``flip32``: the same feature with 32% of its signs flipped (what the public write-up traded): write-up-sized
  Sharpe ratios, which is what a leak looks like;
* ``shuffled``: the target permuted across days (whole days move together), price features only: chance
  accuracy and a deflated Sharpe that is not significant.
"""

from __future__ import annotations

import numpy as np

from finsae.trading.features import Block

CANARIES: tuple[str, ...] = ("oracle", "flip32", "shuffled")


def oracle_block(ret: np.ndarray) -> Block:
    return Block("canary_oracle", "plain", np.asarray(ret, np.float32).reshape(-1, 1), ["realized_return"])


def flipped_block(ret: np.ndarray, frac: float = 0.32, seed: int = 0) -> Block:
    rng = np.random.default_rng(seed)
    flip = rng.random(len(ret)) < frac
    return Block("canary_flip32", "plain", np.where(flip, -ret, ret).astype(np.float32).reshape(-1, 1),
                 ["realized_return_32pct_flipped"])


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
