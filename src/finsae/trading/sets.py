"""Feature sets from blocks: the text blocks of rows linked to tweets, the analysis stage's financial latents,
and each configured set assembled from its blocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from finsae.analysis.artifacts import read_features
from finsae.paths import analysis_dir
from finsae.trading.config import parse_set
from finsae.trading.features import Block
from finsae.trading.text_features import RowText, aggregate_dense, aggregate_rows


def financial_latents(artifacts: Path, pair: str, latents: str, model: str, layer: int) -> np.ndarray | None:
    """The analysis stage's financial latents of (model, layer), when ``latents == "financial"``."""
    if latents != "financial":
        return None
    t = read_features(analysis_dir(Path(artifacts), pair), otherwise="use features.latents=top_ic")
    sel = t[(t["model"] == model) & (t["layer"] == layer) & t["financial"].astype(bool)]
    return np.sort(sel["latent"].to_numpy(np.int64))


def text_blocks(roles: dict[str, str], enc, pairs: pd.DataFrame, n_rows: int, allowed) -> dict[str, list[Block]]:
    """Blocks per block name (``count``, ``domain_sae``, ...) for rows linked to tweets by ``pairs``;
    ``allowed(model, layer)``: the SAE latents a block may select from (None: all)."""
    count = np.bincount(pairs["row"].to_numpy(), minlength=n_rows) if len(pairs) else np.zeros(n_rows)
    from finsae.trading.dataset import count_block

    out: dict[str, list[Block]] = {"count": [count_block(count)]}
    for (role, layer), docs in enc.docs.items():
        rt: RowText = aggregate_rows(pairs, n_rows, docs)
        name = roles[role]
        if docs.sae_sum is not None:
            m = docs.sae_sum.shape[1]
            cols = [f"{name}:L{layer}:mean:{i}" for i in range(m)] + [f"{name}:L{layer}:max:{i}" for i in range(m)]
            mat = sp.hstack([rt.sae_mean, rt.sae_max], format="csr", dtype=np.float32)
            out.setdefault(f"{role}_sae", []).append(Block(f"{role}_sae_L{layer}", "sae", mat, cols,
                                                           allowed(name, layer)))
        d = rt.dense_mean.shape[1]
        out.setdefault(f"{role}_dense", []).append(
            Block(f"{role}_dense_L{layer}", "dense", rt.dense_mean, [f"{name}:L{layer}:dense:{i}" for i in range(d)]))
    if enc.sentiment is not None:
        s = aggregate_dense(pairs, n_rows, enc.sentiment)
        out["sentiment"] = [Block("sentiment", "plain", s, [f"sentiment:{lbl}" for lbl in enc.labels])]
    return out


def assemble_sets(names, price: Block, text: dict[str, list[Block]]) -> dict[str, list[Block]]:
    """Each set of ``names`` as its blocks (a set with any text block also gets the tweet count)."""
    out = {}
    for name in names:
        blocks, has_count = [], False
        for b in parse_set(name):
            if b == "price":
                blocks.append(price)
                continue
            if not has_count:
                blocks += text["count"]
                has_count = True
            if b != "count":
                blocks += text[b]
        out[name] = blocks
    return out
