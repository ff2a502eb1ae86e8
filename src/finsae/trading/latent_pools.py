"""The latent pools of the seed's claim: the latents the analysis stage calls changed by fine-tuning, and as
many unchanged and random live latents of the same SAE (a seeded draw), which bound the ``changed_sae``,
``unchanged_sae`` and ``random_sae`` blocks (:mod:`finsae.trading.blocks`).

The pools are fixed by the analysis (pre-evaluation text, no return seen); inside each training window the
blocks then select by ``features.latents`` like every SAE block, so the three sets differ only in the latents
they may choose from. What "changed" means is ``features.changed``:

* ``specialized``: ``features.parquet`` ``specialized`` of the domain model (financial, best base match below
  tau); live: ``n_active_docs > 0``;
* ``financial``: ``features.parquet`` ``financial`` of the domain model; live as above;
* ``warmstart``: ``warmstart.parquet`` ``changed`` (decoder drift above the control run's 99th percentile);
  live: its ``live`` column. These index the warm-started domain SAE (``{tag}_warm_domain``).
* ``crosscoder``: ``crosscoder.parquet``: domain-leaning latents (``delta`` above the shared range: the domain
  model's decoder block holds most of the latent's norm), not flagged a sparsity artifact by Latent Scaling;
  live: not ``dead``. These index the pair's crosscoder, so the pooled blocks then read the tweets through it
  (both models' activations, :func:`finsae.trading.encode.encode_tweets`).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from finsae.analysis.artifacts import (
    read_features, read_summary, read_table, summary_path,
)
from finsae.analysis.warmstart import DOMAIN_SUFFIX as WARM_DOMAIN_SUFFIX  # the warm-started domain SAE's tag
from finsae.errors import ConfigError
from finsae.paths import analysis_dir, crosscoder_name, sae_dir
from finsae.trading.blocks import SPECS, uses_pools

CROSSCODER = "crosscoder"


def uses_crosscoder(fc) -> bool:
    """The pooled blocks of ``fc`` (a ``FeatureConfig``) read the pair's crosscoder."""
    return fc.changed == CROSSCODER and uses_pools(fc.blocks)


def crosscoder_dir(artifacts: str | Path, roles: dict[str, str], layer: int, tag: str) -> Path:
    """The pair's crosscoder of ``layer`` (``artifacts/sae/crosscoder_{base}_{domain}/layer_{i}/{tag}``)."""
    return sae_dir(Path(artifacts), crosscoder_name(roles["base"], roles["domain"]), int(layer), tag)


class LatentPools(NamedTuple):
    """The latents each pooled block of one (model, layer) may select from (sorted ids of one SAE)."""

    changed: np.ndarray
    """The latents the analysis calls changed by fine-tuning."""
    unchanged: np.ndarray
    """As many live latents not called changed, drawn without replacement."""
    random: np.ndarray
    """As many live latents, drawn without replacement (changed ones may be among them)."""


class Flags(NamedTuple):
    """One SAE's latents as the analysis sees them."""

    latent: np.ndarray
    changed: np.ndarray
    """bool per latent."""
    live: np.ndarray
    """bool per latent: fires on the analysis tokens (only live latents can be drawn)."""


def draw_pools(flags: Flags, seed: int) -> LatentPools:
    """The changed latents and two draws of their number: from the live unchanged latents, and from all live
    latents (``np.random.default_rng(seed)``). Refused in one line when there are fewer live unchanged latents
    than changed ones (the draws could not match the size)."""
    latent = np.asarray(flags.latent, np.int64)
    changed = np.asarray(flags.changed, bool)
    live = np.asarray(flags.live, bool)
    n = int(changed.sum())
    others = latent[live & ~changed]
    if len(others) < n:
        raise ConfigError(f"the analysis calls {n} latents changed but leaves only {len(others)} live "
                          f"unchanged ones: the unchanged_sae draw cannot match its size; use another "
                          f"features.changed")
    rng = np.random.default_rng(seed)
    unchanged = rng.choice(np.sort(others), size=n, replace=False)
    random = rng.choice(np.sort(latent[live]), size=n, replace=False)  # live ones only, changed or not
    return LatentPools(np.sort(latent[changed]), np.sort(unchanged), np.sort(random))


def analysis_flags(artifacts: str | Path, pair: str, kind: str, model: str, layer: int) -> Flags:
    """The changed and live flags of (model, layer)'s latents under ``features.changed=kind``, read through
    the analysis contract; refused in one line when no latent of that kind is changed there."""
    folder = analysis_dir(Path(artifacts), pair)
    otherwise = "drop the changed_sae / unchanged_sae / random_sae sets"
    if kind == CROSSCODER:
        t = read_table(folder, "crosscoder")
        t = t[t["layer"] == layer]
        cls = t["class"].astype(str).to_numpy()
        live = cls != "dead"
        # leaning to the domain model: above the shared range the analysis used (its classes carry its own
        # cut-offs; an "other" latent above 1/2 lies between the shared range and domain-only)
        lean = (cls == "domain_only") | ((cls == "other") & (pd.to_numeric(t["delta"]).to_numpy() > 0.5))
        lean &= ~t["artifact"].astype(bool).to_numpy()
        flags = Flags(t["latent"].to_numpy(), lean & live, live)
    elif kind == "warmstart":
        t = read_table(folder, "warmstart")
        t = t[t["layer"] == layer]
        flags = Flags(t["latent"].to_numpy(), t["changed"].astype(bool).to_numpy(),
                      t["live"].astype(bool).to_numpy())
    else:
        t = read_features(folder, otherwise=otherwise, needs=(kind, "n_active_docs"))
        t = t[(t["model"] == model) & (t["layer"] == layer)]
        flags = Flags(t["latent"].to_numpy(), t[kind].astype(bool).to_numpy(),
                      pd.to_numeric(t["n_active_docs"]).to_numpy() > 0)
    if not flags.changed.any():
        raise ConfigError(f"features.changed={kind}, but the analysis {folder} calls no latent of {model} "
                          f"layer {layer} changed that way: the changed_sae block would have no column; use "
                          f"another features.changed, or {otherwise}")
    return flags


def check_analysis_tag(artifacts: str | Path, pair: str, fc) -> None:
    """The latent ids the analysis wrote index the SAEs of its tag: the backtest must encode with that SAE
    (``{tag}_warm_domain`` for ``warmstart``), else the ids would name other latents (refused in one line).
    Nothing to check when the analysis left no summary."""
    folder = analysis_dir(Path(artifacts), pair)
    if not summary_path(folder).is_file():
        return
    tag = read_summary(folder).tag
    want = tag + WARM_DOMAIN_SUFFIX if fc.changed == "warmstart" else tag
    if fc.tag != want:
        raise ConfigError(f"features.changed={fc.changed} reads latent ids the analysis {folder} gave the SAEs "
                          f"of tag {tag}, but features.tag={fc.tag}: they would name other latents; set "
                          f"features.tag={want}")


def latent_pools(artifacts: str | Path, pair: str, roles: dict[str, str],
                 fc) -> dict[tuple[str, int], LatentPools]:
    """Per (model, layer) the pooled blocks of ``fc`` (a ``FeatureConfig``) read, their pools (read, checked
    and drawn before any work); empty when no set uses a pooled block."""
    if not uses_pools(fc.blocks):
        return {}
    if fc.changed == "warmstart" and not fc.tag.endswith(WARM_DOMAIN_SUFFIX):
        raise ConfigError(f"features.changed=warmstart names latents of the warm-started domain SAE, but "
                          f"features.tag={fc.tag} is not one; set features.tag={fc.tag}{WARM_DOMAIN_SUFFIX}")
    check_analysis_tag(artifacts, pair, fc)
    roles_used = sorted({SPECS[b].role for b in fc.blocks if SPECS[b].pool is not None})
    return {(roles[r], int(layer)): draw_pools(
                analysis_flags(artifacts, pair, fc.changed, roles[r], int(layer)), fc.draw_seed + int(layer))
            for r in roles_used for layer in fc.layers}
