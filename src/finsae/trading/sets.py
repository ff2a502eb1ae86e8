"""Feature sets from blocks: the text blocks of rows linked to tweets, the analysis stage's financial latents,
and each configured set assembled from its blocks (the grammar: :mod:`finsae.trading.blocks`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from finsae.analysis.artifacts import read_features
from finsae.errors import ConfigError
from finsae.paths import analysis_dir
from finsae.trading.blocks import (
    COUNT, dense_columns, layer_block, needed, pool_blocks, role_block, sae_columns, sentiment_columns,
    set_members,
)
from finsae.trading.features import Block
from finsae.trading.text_features import RowText, aggregate_dense, aggregate_rows

FINANCIAL = "financial"
"""``features.latents`` that bounds each SAE block to the analysis stage's financial latents."""


def financial_latents(artifacts: Path, pair: str, latents: str, model: str, layer: int) -> np.ndarray | None:
    """The analysis stage's financial latents of (model, layer), when ``latents == "financial"``; a layer with
    none is refused (its SAE block would have no column)."""
    if latents != FINANCIAL:
        return None
    folder = analysis_dir(Path(artifacts), pair)
    t = read_features(folder, otherwise="use features.latents=top_ic")
    sel = t[(t["model"] == model) & (t["layer"] == layer) & t["financial"].astype(bool)]
    if sel.empty:
        raise ConfigError(f"features.latents=financial, but the analysis {folder} marks no latent of {model} "
                          f"layer {layer} financial: its SAE blocks would have no column; use "
                          f"features.latents=top_ic (or all), or drop the SAE sets")
    return np.sort(sel["latent"].to_numpy(np.int64))


def allowed_latents(artifacts: Path, pair: str, roles: dict[str, str],
                    fc) -> dict[tuple[str, int], np.ndarray]:
    """Per (model, layer) of the SAE blocks ``fc`` (a ``FeatureConfig``) uses, the latents they may select
    from when ``fc.latents`` is ``financial`` (read, and checked, before any work); empty otherwise."""
    if fc.latents != FINANCIAL:
        return {}
    return {(roles[role], int(layer)): financial_latents(artifacts, pair, fc.latents, roles[role], int(layer))
            for role, kinds in needed(fc.blocks).items() if "sae" in kinds for layer in fc.layers}


def text_blocks(roles: dict[str, str], enc, pairs: pd.DataFrame, n_rows: int, allowed,
                pools=None) -> dict[str, list[Block]]:
    """Blocks per block name (``count``, ``domain_sae``, ...) for rows linked to tweets by ``pairs``;
    ``allowed(model, layer)``: the SAE latents a block may select from (None: all); ``pools(model, layer)``:
    the :class:`~finsae.trading.latent_pools.LatentPools` of the pooled blocks (``changed_sae``, ...; None:
    none), which read the same latents as the role's SAE block, each bounded to its pool."""
    count = np.bincount(pairs["row"].to_numpy(), minlength=n_rows) if len(pairs) else np.zeros(n_rows)
    from finsae.trading.dataset import count_block

    out: dict[str, list[Block]] = {COUNT: [count_block(count)]}
    for (role, layer), docs in enc.docs.items():
        rt: RowText = aggregate_rows(pairs, n_rows, docs)
        name = roles[role]
        if docs.sae_sum is not None:
            block = role_block(role, "sae")
            mat = sp.hstack([rt.sae_mean, rt.sae_max], format="csr", dtype=np.float32)
            cols = sae_columns(name, layer, docs.sae_sum.shape[1])
            out.setdefault(block, []).append(Block(layer_block(block, layer), "sae", mat, cols,
                                                   allowed(name, layer)))
            pool = None if pools is None else pools(name, layer)
            if pool is not None and layer in enc.crosscoder:  # the pools index the crosscoder's latents
                xc = aggregate_rows(pairs, n_rows, enc.crosscoder[layer])
                mat = sp.hstack([xc.sae_mean, xc.sae_max], format="csr", dtype=np.float32)
                cols = sae_columns(enc.crosscoder_name, layer, xc.sae_mean.shape[1])
            for spec in pool_blocks(role) if pool is not None else ():
                out.setdefault(spec.name, []).append(Block(layer_block(spec.name, layer), "sae", mat, cols,
                                                           getattr(pool, spec.pool)))
        block = role_block(role, "dense")
        out.setdefault(block, []).append(Block(layer_block(block, layer), "dense", rt.dense_mean,
                                               dense_columns(name, layer, rt.dense_mean.shape[1])))
    if enc.sentiment is not None:
        s = aggregate_dense(pairs, n_rows, enc.sentiment)
        out["sentiment"] = [Block("sentiment", "plain", s, sentiment_columns(enc.labels))]
    return out


def assemble_sets(names, price: Block, text: dict[str, list[Block]]) -> dict[str, list[Block]]:
    """Each set of ``names`` as its blocks (a set with any text block also gets the tweet count)."""
    return {name: [b for member in set_members(name)
                   for b in ([price] if member == "price" else text[member])] for name in names}
