"""The feature-block grammar, in one table: which blocks a feature set may be made of, what each needs from
the pair's models, how a set's name spells its blocks, and how a block's columns are named (a paired format
and parse, so a column name read back from the importance table means what the writer meant).

A feature set's name is its blocks joined by ``_`` (``price_domain_sae``). Per layer, a block becomes one
:class:`finsae.trading.features.Block` named ``{block}_L{layer}`` (``domain_sae_L3``); its columns are
``{model}:L{layer}:{mean|max}:{latent}`` (SAE blocks), ``{model}:L{layer}:dense:{i}`` (dense) and
``sentiment:{label}`` (the classifier's mean probabilities).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

import pandas as pd

from finsae.errors import ConfigError


@dataclass(frozen=True)
class BlockSpec:
    """One kind of feature block."""

    name: str
    """How a set's name spells it (``domain_sae``)."""
    kind: str
    """Its per-window transform: ``plain`` (as is), ``sae`` (latent selection), ``dense`` (PCA)."""
    role: str | None = None
    """The model of the pair whose tweet encodings it reads (``base`` / ``domain``); None: no model."""
    encoding: str | None = None
    """What it needs of that model: ``sae`` (SAE latents), ``dense`` (hidden states), ``sentiment`` (the
    classifier head); None: nothing."""
    text: bool = False
    """Its rows are linked to tweets: a set with such a block also gets the tweet count."""
    pool: str | None = None
    """SAE blocks bounded to a latent pool of the analysis (:mod:`finsae.trading.latent_pools`): ``changed``
    (the latents it calls changed by fine-tuning, ``features.changed``), ``unchanged`` / ``random`` (as many
    unchanged / live latents of the same SAE, a seeded draw); None: every latent of the SAE."""


BLOCK_SPECS = (
    BlockSpec("price", "plain"),
    BlockSpec("count", "plain", text=True),
    BlockSpec("base_sae", "sae", "base", "sae", True),
    BlockSpec("domain_sae", "sae", "domain", "sae", True),
    BlockSpec("base_dense", "dense", "base", "dense", True),
    BlockSpec("domain_dense", "dense", "domain", "dense", True),
    BlockSpec("sentiment", "plain", "domain", "sentiment", True),
    BlockSpec("changed_sae", "sae", "domain", "sae", True, pool="changed"),
    BlockSpec("unchanged_sae", "sae", "domain", "sae", True, pool="unchanged"),
    BlockSpec("random_sae", "sae", "domain", "sae", True, pool="random"),
)
"""Every feature block, in the order a set's blocks are listed (``FeatureConfig.blocks``)."""
SPECS = {s.name: s for s in BLOCK_SPECS}
BLOCKS = tuple(SPECS)
"""The block names."""
ROLES = ("base", "domain")
COUNT = "count"
"""The tweet-count block every set with a text block carries."""
SEP = "_"
"""Joins a set's blocks in its name."""
POOLS = tuple(s.pool for s in BLOCK_SPECS if s.pool is not None)
"""The latent pools, in block order (``changed``, ``unchanged``, ``random``)."""


def parse_set(name: str) -> tuple[str, ...]:
    """The blocks of feature set ``name`` (``price_domain_sae`` -> ``("price", "domain_sae")``)."""
    parts, rest = [], name
    while rest:
        hit = next((b for b in sorted(BLOCKS, key=len, reverse=True)
                    if rest == b or rest.startswith(b + SEP)), None)
        if hit is None or rest == hit + SEP:  # a trailing '_' would name the set apart from its blocks
            raise ConfigError(f"features.sets has {name!r}, which is not blocks joined by '{SEP}'; "
                              f"blocks: {list(BLOCKS)}")
        parts.append(hit)
        rest = rest[len(hit) + 1:]
    if len(set(parts)) != len(parts):
        raise ConfigError(f"features.sets has {name!r}, which repeats a block")
    return tuple(parts)


def set_name(blocks) -> str:
    """The feature set made of ``blocks`` (the inverse of :func:`parse_set`)."""
    for b in blocks:
        if b not in SPECS:
            raise ConfigError(f"{b!r} is not a feature block; blocks: {list(BLOCKS)}")
    return SEP.join(blocks)


def set_members(name: str) -> tuple[str, ...]:
    """The blocks set ``name`` is assembled from, in order: its own, with the tweet count placed before its
    first text block (once)."""
    out: list[str] = []
    for b in parse_set(name):
        if SPECS[b].text and COUNT not in out:
            out.append(COUNT)
        if b not in out:
            out.append(b)
    return tuple(out)


def needed(blocks) -> dict[str, set[str]]:
    """Per role (base, domain): which tweet encodings the blocks ``blocks`` (``FeatureConfig.blocks``) need
    (``sae``, ``dense``, ``sentiment``)."""
    out: dict[str, set[str]] = {r: set() for r in ROLES}
    for b in blocks:
        spec = SPECS[b]
        if spec.role is not None:
            out[spec.role].add(spec.encoding)
    return out


def uses_sae(blocks) -> bool:
    """Some block of ``blocks`` reads SAE latents (trained on text before ``data.eval_start``)."""
    return any(SPECS[b].encoding == "sae" for b in blocks)


def uses_pools(blocks) -> bool:
    """Some block of ``blocks`` is bounded to a latent pool of the analysis."""
    return any(SPECS[b].pool is not None for b in blocks)


def pool_blocks(role: str) -> tuple[BlockSpec, ...]:
    """The pooled SAE blocks that read ``role``'s model."""
    return tuple(s for s in BLOCK_SPECS if s.role == role and s.pool is not None)


def pool_block(pool: str) -> str:
    """The block bounded to latent pool ``pool`` (``unchanged`` -> ``unchanged_sae``)."""
    return next(s.name for s in BLOCK_SPECS if s.pool == pool)


def swap_block(name: str, old: str, new: str) -> str | None:
    """Set ``name`` with block ``old`` replaced by ``new`` (``price_changed_sae`` -> ``price_unchanged_sae``);
    None when ``name`` has no block ``old`` or already has ``new``."""
    blocks = parse_set(name)
    if old not in blocks or new in blocks:
        return None
    return set_name([new if b == old else b for b in blocks])


def role_block(role: str, encoding: str) -> str:
    """The block that reads ``encoding`` of ``role``'s model over all its latents (``domain``, ``sae`` ->
    ``domain_sae``)."""
    hit = [s.name for s in BLOCK_SPECS if s.role == role and s.encoding == encoding and s.pool is None]
    if len(hit) != 1:
        raise ValueError(f"no single block reads {encoding} of the {role} model")
    return hit[0]


def layer_block(block: str, layer: int) -> str:
    """The name of ``block``'s columns from one layer (``domain_sae_L3``)."""
    return f"{block}{SEP}L{int(layer)}"


# -- column names --------------------------------------------------------------------------------------------
AGGS = ("mean", "max")
"""How an SAE block's latent is pooled over a row's tweets (its two columns)."""
DENSE = "dense"


class LayerColumn(NamedTuple):
    """One column of an SAE or dense block."""

    model: str
    layer: int
    agg: str
    """``mean`` / ``max`` (an SAE latent pooled), ``dense`` (a hidden-state dimension)."""
    index: int
    """The latent (SAE) or the dimension (dense)."""


_AGG = "|".join((*AGGS, DENSE))
_COLUMN = re.compile(rf"^(?P<model>[^:]+):L(?P<layer>\d+):(?P<agg>{_AGG}):(?P<index>\d+)$")


def format_column(col: LayerColumn) -> str:
    if ":" in col.model or col.agg not in (*AGGS, DENSE):
        raise ValueError(f"cannot name a column of {col}")
    return f"{col.model}:L{int(col.layer)}:{col.agg}:{int(col.index)}"


def parse_column(name: str) -> LayerColumn | None:
    """The :class:`LayerColumn` a name written by :func:`format_column` stands for; None for other columns
    (price, count, sentiment, principal components)."""
    m = _COLUMN.match(name)
    return None if m is None else LayerColumn(m["model"], int(m["layer"]), m["agg"], int(m["index"]))


def sae_columns(model: str, layer: int, n_latents: int) -> list[str]:
    """An SAE block's columns: every latent's mean, then every latent's max."""
    return [format_column(LayerColumn(model, layer, agg, i)) for agg in AGGS for i in range(n_latents)]


def dense_columns(model: str, layer: int, d: int) -> list[str]:
    return [format_column(LayerColumn(model, layer, DENSE, i)) for i in range(d)]


def sentiment_columns(labels) -> list[str]:
    return [f"sentiment:{lbl}" for lbl in labels]


def pca_columns(block_name: str, n: int) -> list[str]:
    return [f"{block_name}:pc{i}" for i in range(n)]


def latent_parts(names: pd.Series) -> pd.DataFrame:
    """``model``, ``layer``, ``agg``, ``latent`` (as text) of every SAE latent column in ``names``; nulls for
    other columns. The vectorised :func:`parse_column` of a table's feature names."""
    parts = names.str.extract(_COLUMN).rename(columns={"index": "latent"})
    return parts.mask(parts["agg"].eq(DENSE), axis=0)
