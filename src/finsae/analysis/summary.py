"""What the analysis stage reports (``artifacts/analysis/{pair}/summary.json``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd

from finsae.analysis.config import AnalysisConfig
from finsae.summary import StageSummary

SEED_TEXT = "_seed_text"
"""Suffix of the ``layers.parquet`` column that marks a statistic with seed estimates
(:data:`finsae.analysis.seeds.ESTIMATE_COLUMNS`)."""


@dataclass
class AnalysisSummary(StageSummary):
    """Headline numbers of one pair's comparison, over the layers analysed so far."""

    MAKES: ClassVar[str] = "python analyze.py"

    pair: str
    base: str
    domain: str
    tag: str
    """SAE tag compared (``artifacts/sae/{model}/layer_{i}/{tag}``); seed repeats under ``seed_tags``."""
    seed_tag: str
    """The first seed repeat (seed 1): what the seed-1 columns (ceilings, floor) read."""
    layers: list[int] = field(default_factory=list)
    tau: float = AnalysisConfig.tau
    fdr: float = AnalysisConfig.fdr
    min_auroc: float = AnalysisConfig.min_auroc
    n_financial: int = 0
    """Financial latents of the domain model, all layers."""
    n_financial_base: int = 0
    n_specialized: int = 0
    n_specialized_seed_floor: int = 0
    """Seed floor summed over the layers that have seed repeats: domain seed 1's financial latents unmatched
    in domain seed 0."""
    n_specialized_seed1: int = 0
    """The same latents (domain seed 1's financial ones) unmatched in base seed 0, over those layers: the count
    to compare with the floor."""
    n_specialized_at_floor_layers: int = 0
    """Specialized latents of domain seed 0 at those same layers (another latent set than the floor's)."""
    mean_overlap: float = float("nan")
    mean_overlap_seed_ceiling: float = float("nan")
    docs: dict[str, int] = field(default_factory=dict)
    """Held-out passages per group."""
    seconds: float = 0.0
    """Wall time of this run (extraction included when it ran)."""
    method_seconds: dict[str, float] = field(default_factory=dict)
    """Method -> its wall seconds summed over the layers this run computed (a reused layer adds none): what
    each method costs (the layers ran side by side in ``analysis.jobs`` workers)."""
    seed_tags: list[str] = field(default_factory=list)
    """Tags of every seed repeat read (seed 1, 2, ...; each layer reports the seeds it has)."""
    n_seeds: dict[str, int] = field(default_factory=dict)
    """Layer -> the most seeds behind any of its statistics (``layers.parquet`` ``n_seeds``; 1: seed 0
    only)."""
    seed_estimates: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """Statistic -> layer -> ``{mean, sd, lo, hi, n_seeds, power, text}``: every count and overlap a method
    gives per seed as mean ± seed SD with its hierarchical bootstrap interval over (seed, source document);
    ``text`` says "no power (reason)" where the test cannot move (``layers.parquet``
    ``{statistic}_seed_*``)."""

    def add_seed_estimates(self, layers: pd.DataFrame) -> None:
        """Fill :attr:`n_seeds` and :attr:`seed_estimates` from the combined ``layers.parquet``."""
        rows = layers.sort_values("layer")
        if "n_seeds" in rows:
            have = rows[rows["n_seeds"].notna()]
            self.n_seeds = {str(int(r.layer)): int(r.n_seeds) for r in have.itertuples()}
        names = [c.removesuffix(SEED_TEXT) for c in rows.columns if c.endswith(SEED_TEXT)]
        self.seed_estimates = {name: _per_layer(rows, name) for name in names}


def _per_layer(rows: pd.DataFrame, name: str) -> dict[str, dict[str, Any]]:
    """``{layer: {mean, sd, lo, hi, n_seeds, power, text}}`` of one statistic (the layers that have it)."""
    out = {}
    for _, r in rows.iterrows():
        text = r[f"{name}{SEED_TEXT}"]
        if not isinstance(text, str):
            continue
        nums = {k: float(r[f"{name}_seed_{k}"]) for k in ("mean", "sd", "lo", "hi")}
        out[str(int(r["layer"]))] = {**{k: v if math.isfinite(v) else None for k, v in nums.items()},
                                      "n_seeds": int(r[f"{name}_n_seeds"]),
                                      "power": bool(r[f"{name}_seed_power"]), "text": text}
    return out
