"""Which latents get labelled: every financial and specialized latent of a layer (a seeded subset when
capped), plus an equal-size random sample of non-financial latents as the random-latent control, and, per
target, a selectivity-matched control: a non-financial latent as selective for another topic (AG World, Sports,
Sci/Tech) as the target is for finance, labelled and scored on its own contexts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import pandas as pd

from finsae.labeling.examples import latent_rng

NEEDED_FEATURE_COLUMNS = ("n_active_docs",)
"""Columns of the analysis stage's ``features.parquet`` this stage needs (``specialized`` is optional)."""


class Chosen(NamedTuple):
    latent: int
    role: str
    """``target`` (financial or specialized), ``control`` (a random non-financial latent) or ``matched`` (a
    non-financial latent selective for another topic, matched to one target)."""
    financial: bool
    specialized: bool
    n_active_docs: int
    matched_to: int = -1
    """For a ``matched`` control: the target latent it is matched to (-1 otherwise)."""


def _flag(rows: pd.DataFrame, col: str) -> np.ndarray:
    if col not in rows.columns:
        return np.zeros(len(rows), bool)
    return rows[col].astype("boolean").fillna(False).to_numpy(bool)


OTHER_TOPICS = ("ag_other",)
"""``best_category`` values of the analysis that name a non-financial topic (AG World, Sports, Sci/Tech)."""


def select_latents(features: pd.DataFrame, model: str, layer: int, available: Iterable[int],
                   max_latents: int | None, control: bool, seed: int, matched: bool = False) -> list[Chosen]:
    """The latents of ``model`` at ``layer`` to label, targets first. Control latents are drawn only among
    ``available`` ones (those with stored contexts). With ``matched``, each target (in turn) gets the unused
    available latent whose ``best_category`` is another topic and whose ``best_category_auroc`` is closest to
    the target's ``auroc_broad`` (none when the table lacks these columns or no such latent is left)."""
    rows = features[(features["model"] == model) & (features["layer"] == layer)]
    fin, spec = _flag(rows, "financial"), _flag(rows, "specialized")
    latents = rows["latent"].to_numpy(np.int64)
    active = rows["n_active_docs"].fillna(0).to_numpy(np.int64)
    is_target = fin | spec
    targets = np.flatnonzero(is_target)
    rng = latent_rng(seed, "select", model, layer)
    if max_latents is not None and len(targets) > max_latents:
        targets = np.sort(rng.choice(targets, size=max_latents, replace=False))
    out = [Chosen(int(latents[i]), "target", bool(fin[i]), bool(spec[i]), int(active[i])) for i in targets]
    if control and len(targets):
        avail = set(int(a) for a in available)
        pool = np.array([i for i in np.flatnonzero(~is_target) if int(latents[i]) in avail], dtype=np.int64)
        take = min(len(targets), len(pool))
        if take:
            picks = np.sort(rng.choice(pool, size=take, replace=False))
            out += [Chosen(int(latents[i]), "control", False, False, int(active[i])) for i in picks]
    if matched and len(targets) and {"best_category", "best_category_auroc", "auroc_broad"} <= set(rows.columns):
        avail = set(int(a) for a in available)
        used = {c.latent for c in out}
        topic = rows["best_category"].isin(OTHER_TOPICS).to_numpy(bool)
        sel = rows["best_category_auroc"].to_numpy(float)
        pool = [i for i in np.flatnonzero(~is_target & topic & np.isfinite(sel))
                if int(latents[i]) in avail and int(latents[i]) not in used]
        broad = rows["auroc_broad"].to_numpy(float)
        for t in targets:
            if not pool:
                break
            best = min(pool, key=lambda i, t=t: (abs(sel[i] - broad[t]), int(latents[i])))
            pool.remove(best)
            out.append(Chosen(int(latents[best]), "matched", False, False, int(active[best]), int(latents[t])))
    return out
