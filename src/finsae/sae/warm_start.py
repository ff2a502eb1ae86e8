"""Warm start: a run that continues a trained SAE instead of starting from a random dictionary.

Latent ``i`` of the continued SAE *is* latent ``i`` of the one it started from, so comparing the two needs no
matching (the correspondence is by construction). Every parameter and the input scale are copied; the
optimiser state, the dead-latent counters and the schedule start afresh, as in any run.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from finsae.errors import ConfigError
from finsae.sae.config import SaeConfig
from finsae.sae.io import TENSOR_NAMES, read_meta
from finsae.sae.sparse_coder.topk import TopKSAE

SHAPE_FIELDS = ("d_in", "num_latents", "k")
MOMENT_CHUNK_ROWS = 8192
"""Rows read at a time by :func:`row_moments` (bounds the float64 temporaries)."""


class RowMoments(NamedTuple):
    """What the input scale and offset of an SAE are set from."""

    mean: np.ndarray
    """[d] float64 mean row."""
    rms: float
    """sqrt(mean ||row||^2): ``1 / rms`` is the SAE's ``norm_scale`` on these rows."""


def row_moments(array, rows: np.ndarray, chunk_rows: int = MOMENT_CHUNK_ROWS) -> RowMoments:
    """Mean row and RMS norm of ``rows`` of ``array`` (any ``[n, d]`` array or memory map), in float64."""
    rows = np.asarray(rows)
    if not len(rows):
        raise ConfigError("row_moments needs at least one row")
    total, sq = np.zeros(array.shape[1]), 0.0
    for start in range(0, len(rows), chunk_rows):
        x = np.asarray(array[rows[start:start + chunk_rows]], dtype=np.float64)
        total += x.sum(axis=0)
        sq += float(np.einsum("ij,ij->", x, x))
    return RowMoments(total / len(rows), float(np.sqrt(sq / len(rows))))


@torch.no_grad()
def refit_input_stats(sae: TopKSAE, target: RowMoments, source_mean: np.ndarray) -> TopKSAE:
    """Re-estimate ``sae``'s input scale and offset on other activations (``target``), in place, no training:
    ``norm_scale`` becomes the target's inverse RMS norm (what ``init_from_sample`` does) and ``b_dec`` moves
    by the difference of the normalised means of target and source (``source_mean``: the activations the SAE
    was trained on, same rows). A shift or global rescaling of the activations then no longer counts as a
    change of features. The warm start's ``sae.init_refit`` applies it; so can the analysis' refit
    cross-FVU."""
    scale_s = float(sae.norm_scale)
    scale_t = 1.0 / target.rms if target.rms > 0 else scale_s
    sae.norm_scale.fill_(scale_t)
    shift = np.asarray(target.mean, np.float64) * scale_t - np.asarray(source_mean, np.float64) * scale_s
    sae.b_dec.add_(torch.from_numpy(shift).to(sae.b_dec.dtype))
    return sae


@torch.no_grad()
def warm_start(sae: TopKSAE, source: TopKSAE) -> TopKSAE:
    """Copy ``source``'s weights and input scale into ``sae`` (same ``d_in``, ``num_latents`` and ``k``)."""
    for f in SHAPE_FIELDS:
        a, b = getattr(sae.cfg, f), getattr(source.cfg, f)
        if a != b:
            raise ConfigError(f"sae.init_from: the SAE to start from has {f}={b}, this run's has {f}={a}")
    for name in TENSOR_NAMES:
        getattr(sae, name).copy_(getattr(source, name))
    sae.initialized = True
    return sae


def check_warm_start_source(path: str | Path, cfg: SaeConfig, layer: int, any_layer: bool = False) -> None:
    """``path`` (``sae.init_from``) is a saved SAE of ``cfg``'s shape (d_in, num_latents, k) trained on ``layer``
    (unless ``any_layer``: ``sae.init_from_any_layer=true``), checked on its ``cfg.json`` only, before any work."""
    meta = read_meta(Path(path))
    for key in SHAPE_FIELDS:
        if meta.get(key) != getattr(cfg, key):
            raise ConfigError(f"sae.init_from={path} has {key}={meta.get(key)}, this run needs {key}="
                              f"{getattr(cfg, key)}: warm-start from an SAE of the same shape")
    if any_layer:
        return
    extra = meta.get("extra") if isinstance(meta.get("extra"), dict) else {}
    source_layer = extra.get("layer")
    anyway = "or set sae.init_from_any_layer=true to start from it on purpose"
    if source_layer is None:
        raise ConfigError(f"sae.init_from={path}: its cfg.json records no layer, so it cannot be checked to be an "
                          f"SAE of layer {layer}; warm-start from an SAE trained by train.py, {anyway}")
    if source_layer != layer:
        raise ConfigError(f"sae.init_from={path} is an SAE of layer {source_layer}, this run trains layer {layer}: "
                          f"warm-start from the same layer's SAE, {anyway}")
