"""Typed Hydra schema of `python label.py` (its root config and its own config groups).

``register(cs)`` is called by :func:`finsae.glue.schemas.register_schemas`. The ``label`` group's schema *is*
the core dataclass :class:`finsae.labeling.LabelConfig` (each knob declared once, with its default and doc).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from finsae.glue.base_schema import PairStageSchema
from finsae.labeling.config import LabelConfig
from finsae.paths import plain_name


@dataclass
class LabelScriptSchema(PairStageSchema):
    """`python label.py`: label the financial latents the analysis stage chose, and score the labels."""

    label: LabelConfig = field(default_factory=LabelConfig)
    skip_if_done: bool = False
    """Return the stored summary when artifacts/labels/{pair}/ is complete (make demo)."""
    name: str = "label"
    """Names the run folders."""

    def stage_module(self) -> str:
        """The module whose ``precheck``/``run`` label.py runs."""
        return "finsae.glue.label_stage"

    def __post_init__(self):
        if self.pair_name is not None:
            plain_name(self.pair_name, "pair_name")


def register(cs: ConfigStore) -> None:
    cs.store(name="label_schema", node=LabelScriptSchema)
    cs.store(group="label", name="_schema", node=LabelConfig)
