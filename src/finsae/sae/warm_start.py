"""Warm start: a run that continues a trained SAE instead of starting from a random dictionary.

Latent ``i`` of the continued SAE *is* latent ``i`` of the one it started from, so comparing the two needs no
matching (the correspondence is by construction). Every parameter and the input scale are copied; the
optimiser state, the dead-latent counters and the schedule start afresh, as in any run.
"""

from __future__ import annotations

from pathlib import Path

import torch

from finsae.errors import ConfigError
from finsae.sae.config import SaeConfig
from finsae.sae.io import TENSOR_NAMES, read_meta
from finsae.sae.sparse_coder.topk import TopKSAE

SHAPE_FIELDS = ("d_in", "num_latents", "k")


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
