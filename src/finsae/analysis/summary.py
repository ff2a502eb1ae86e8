"""What the analysis stage reports (``artifacts/analysis/{pair}/summary.json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from finsae.analysis.config import AnalysisConfig
from finsae.summary import StageSummary


@dataclass
class AnalysisSummary(StageSummary):
    """Headline numbers of one pair's comparison, over the layers analysed so far."""

    MAKES: ClassVar[str] = "python analyze.py"

    pair: str
    base: str
    domain: str
    tag: str
    """SAE tag compared (``artifacts/sae/{model}/layer_{i}/{tag}``); seed repeats under ``{seed_tag}``."""
    seed_tag: str
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
