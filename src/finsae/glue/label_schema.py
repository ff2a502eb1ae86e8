"""Typed Hydra schema of `python label.py` (its root config and its own config groups).

``register(cs)`` is called by :func:`finsae.glue.schemas.register_schemas`. The ``label`` group's schema *is*
the core dataclass :class:`finsae.labeling.LabelConfig` (each knob declared once, with its default and doc).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from finsae.glue.schemas import LoggerSchema, PairSchema, PathsSchema
from finsae.labeling.config import LabelConfig
from finsae.paths import plain_name


@dataclass
class LabelScriptSchema:
    """`python label.py`: label the financial latents the analysis stage chose, and score the labels."""

    paths: PathsSchema = MISSING
    pair: PairSchema = MISSING
    logger: LoggerSchema = field(default_factory=LoggerSchema)
    label: LabelConfig = field(default_factory=LabelConfig)
    pair_name: str | None = None
    """Names artifacts/analysis/{pair}/ and artifacts/labels/{pair}/; None: the pair option chosen (pair=...)."""
    skip_if_done: bool = False
    """Return the stored summary when artifacts/labels/{pair}/ is complete (make demo)."""
    progress_bar: bool = True
    """A progress bar with ETA per phase (explain, each scorer)."""
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
