"""Typed Hydra schema of `python analyze.py` (its root config; the ``analysis`` group *is*
:class:`finsae.analysis.config.AnalysisConfig`).

``register(cs)`` is called by :func:`finsae.glue.schemas.register_schemas`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from finsae.activations.config import ExtractConfig
from finsae.analysis.config import AnalysisConfig
from finsae.glue.base_schema import DataSchema, PairStageSchema
from finsae.paths import plain_name


@dataclass
class AnalyzeScriptSchema(PairStageSchema):
    """`python analyze.py`: compare the SAEs of a pair, layer by layer."""

    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    data: DataSchema = field(default_factory=DataSchema)
    activations: ExtractConfig = field(default_factory=ExtractConfig)
    layers: list[int] | None = None
    """Layers to compare (None: every layer with an SAE of this tag for both models)."""
    layer: int | None = None
    """One layer (what `--multirun layer=0,1,...` sweeps); overrides ``layers``."""
    tag: str = "demo"
    """SAE tag compared: artifacts/sae/{model}/layer_{i}/{tag}/."""
    seed_tags: list[str] | None = None
    """Tags of the seed repeats, one per seed in seed order (None: ``[{tag}_seed1, {tag}_seed2]``); a layer
    reports the seeds it has (seed ceilings and floor from the first, seed SDs from all), none without
    them."""
    reuse_layers: bool = True
    """A layer whose stored result was made with these settings, this code (the package's sources) and these
    SAEs (each one's published summary) is read, not recomputed; false recomputes every layer asked for."""
    name: str = "analyze"

    def stage_module(self) -> str:
        """The module whose ``precheck``/``run`` analyze.py runs."""
        return "finsae.glue.analyze_stage"

    def __post_init__(self):
        for key, t in (("tag", self.tag), ("pair_name", self.pair_name),
                       *(("seed_tags", t) for t in self.seed_tags or ())):
            if t is not None:
                plain_name(t, key)

    @property
    def repeat_tags(self) -> list[str]:
        """The seed repeats' tags (``seed_tags`` or its default)."""
        return list(self.seed_tags) if self.seed_tags is not None else [f"{self.tag}_seed{s}" for s in (1, 2)]

    @property
    def selected_layers(self) -> list[int] | None:
        if self.layer is not None:
            return [self.layer]
        return None if self.layers is None else list(self.layers)


def register(cs: ConfigStore) -> None:
    cs.store(name="analyze_schema", node=AnalyzeScriptSchema)
    cs.store(group="analysis", name="_schema", node=AnalysisConfig)
