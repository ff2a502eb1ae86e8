"""The one interface every diffing method implements (docs/diffing.md, "Adding a method").

A method is a class with a :attr:`DiffingMethod.name`; the analysis stage (:mod:`finsae.analysis.layers`), the
artifact contract (:mod:`finsae.analysis.artifacts`), the figures, ``findings.md`` and the report iterate the
registry (:data:`finsae.analysis.methods.METHODS`) and never name a method. Per layer a method

1. finds its inputs (:meth:`DiffingMethod.inputs`: its SAEs under ``artifacts/sae/``, or ``None``: "not run"),
2. analyses them (:meth:`DiffingMethod.analyze`) into a :class:`MethodResult`: its typed ``layers.parquet``
   fields (a :class:`RowFields`), its per-latent tables and its contexts for labeling;
3. gives its numbers at every seed (issue 33 §3: mean ± seed SD with a hierarchical bootstrap): either its own
   per-seed samples (:attr:`MethodResult.seeds`) or, by naming :attr:`DiffingMethod.seed_statistics`, a rerun
   of steps 1-2 on each seed repeat's SAEs (:meth:`DiffingMethod.seed_inputs`) by the layer job;

and over the combined tables it draws its figures and fills its cell of the findings' side-by-side table.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from finsae.analysis.rows import LayerRow, RowFields
from finsae.analysis.seeds import SeedSample

__all__ = ["AnalysisReads", "DiffingMethod", "LayerData", "LayerRow", "MethodResult", "RowFields", "Say", "number"]

if TYPE_CHECKING:
    from finsae.analysis.artifacts import TableSpec
    from finsae.analysis.config import AnalysisConfig
    from finsae.analysis.heldout import HeldoutSet
    from finsae.analysis.saes import PairSaes


@dataclass
class MethodResult:
    """What one method produced at one layer."""

    row: RowFields
    """Its ``layers.parquet`` fields."""
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    """Its per-latent tables by name (names of its :attr:`DiffingMethod.tables`)."""
    contexts: dict[str, pd.DataFrame] = field(default_factory=dict)
    """Contexts for labeling by model name (``contexts/{model}/layer_{i}.parquet``)."""
    seeds: dict[str, SeedSample] = field(default_factory=dict)
    """Its statistics at every seed of the layer, by name (``layers.parquet`` gets ``{name}_seed_mean``,
    ``_seed_sd``, ... : :data:`finsae.analysis.seeds.ESTIMATE_COLUMNS`); empty: the layer job reruns
    :attr:`DiffingMethod.seed_statistics` on the seed repeats, if it names any."""


@dataclass(frozen=True)
class AnalysisReads:
    """What every method reads, at any layer: the pair's SAEs, the settings, the held-out activations (sent
    once to each worker process: the activation arrays pickle as their shard paths, the held-out set as its
    passages)."""

    saes: PairSaes
    analysis: AnalysisConfig
    arrays: dict
    """(model, layer) -> memory-mapped held-out activations (row-aligned across models)."""
    doc_of_row: np.ndarray
    """[N] index into ``held.corpus.frame`` of each token row."""
    char_start: np.ndarray
    """[N] first character of each token row in its document's text."""
    held: HeldoutSet

    def at(self, layer: int) -> LayerData:
        """What the methods read at ``layer``."""
        return LayerData(layer=layer, **{f.name: getattr(self, f.name) for f in fields(AnalysisReads)})


@dataclass(frozen=True)
class LayerData(AnalysisReads):
    """What every method reads at one layer (:meth:`AnalysisReads.at`)."""

    layer: int

    def acts(self, model: str):
        return self.arrays[model, self.layer]

    def with_tag(self, tag: str) -> LayerData:
        """The same layer with the pair's SAEs read at seed repeat ``tag`` (:meth:`PairSaes.with_tag`)."""
        return replace(self, saes=self.saes.with_tag(tag))


Say = Callable[[str], None]


class DiffingMethod(ABC):
    """Base of a diffing method (one module of :mod:`finsae.analysis.methods` each). Override :meth:`inputs` and
    :meth:`analyze`; the rest has defaults that add nothing."""

    name: ClassVar[str]
    """Its registry key (also the findings' column key and the prefix of its figures)."""
    tables: ClassVar[tuple[TableSpec, ...]] = ()
    """Its per-latent tables (file names, required columns: the artifact contract iterates these)."""
    context_models: ClassVar[tuple[str, ...]] = ()
    """Fixed model names its contexts are stored under (a layer where it does not run has them removed)."""
    findings_header: ClassVar[str] = ""
    """Its column header in the findings' side-by-side table ("" = no column)."""
    signal_label: ClassVar[str] = ""
    """What :meth:`signal` measures, for the findings' agreement lines."""
    report_columns: ClassVar[tuple[str, ...]] = ()
    """Its ``layers.parquet`` columns the report's per-layer table shows."""
    seed_statistics: ClassVar[tuple[str, ...]] = ()
    """Its ``layers.parquet`` columns that the layer job recomputes on each seed repeat (the method run again
    on :meth:`seed_inputs`) for their mean ± seed SD, when its result brings no :attr:`MethodResult.seeds` of
    its own; none: it is read at seed 0 only."""

    @abstractmethod
    def inputs(self, data: LayerData) -> Any | None:
        """Its inputs at ``data.layer`` (SAEs loaded and checked), or None when they are absent ("not run")."""

    @abstractmethod
    def analyze(self, inputs: Any, data: LayerData, earlier: dict[str, MethodResult], say: Say) -> MethodResult:
        """Its analysis of one layer; ``earlier``: the results of the methods before it in the registry."""

    def seed_inputs(self, data: LayerData, tag: str) -> Any | None:
        """Its inputs from the SAEs of seed repeat ``tag`` (None: absent): by default :meth:`inputs` with the
        pair's tag replaced by ``tag``, so its SAEs are named like seed 0's (``{tag}_warm_domain`` continuing
        ``{base}/{tag}``, the crosscoder under ``{tag}``)."""
        return self.inputs(data.with_tag(tag))

    def sae_folders(self, saes: PairSaes, cfg: AnalysisConfig) -> list[tuple[str, str]]:
        """(model folder, tag) of every SAE it reads under ``cfg`` (their versions key a layer's result), seed
        repeats and optional runs included."""
        return []

    def figures(self, frames: dict[str, pd.DataFrame], cfg: AnalysisConfig, pair: str) -> dict:
        """Its figures of the combined tables, by file name (none when it ran nowhere)."""
        return {}

    def findings_cell(self, row: pd.Series) -> str | None:
        """Its cell of ``row`` in the side-by-side table; None: it did not run at that layer."""
        return None

    def signal(self, layers: pd.DataFrame) -> pd.Series | None:
        """Per layer, its measure of where fine-tuning acts (NaN where it did not run); None: it has none."""
        return None

    def describe(self, row: dict) -> str | None:
        """The line the stage prints as a layer ends (None: nothing)."""
        return None


def number(row, col: str) -> float:
    """``row[col]`` as a float (NaN when absent or not a number)."""
    try:
        x = float(row[col]) if col in row else math.nan
    except (TypeError, ValueError):
        return math.nan
    return x
