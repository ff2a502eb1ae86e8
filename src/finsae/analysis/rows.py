"""The typed row of ``layers.parquet``: each diffing method contributes its fields as a :class:`RowFields`
dataclass (:mod:`finsae.analysis.methods`), its statistics over the layer's seeds as estimates
(:mod:`finsae.analysis.seeds`), and :class:`LayerRow` flattens them into one row."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from finsae.analysis.seeds import SeedEstimate, estimate_columns


@dataclass
class RowFields:
    """Base of a method's typed ``layers.parquet`` fields: :meth:`columns` flattens them in declaration order
    (a field that is itself a :class:`RowFields` or a ``NamedTuple`` gives its own fields, unprefixed)."""

    def columns(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            _flatten(f.name, getattr(self, f.name), out)
        return out


def _flatten(name: str, value: Any, out: dict) -> None:
    if isinstance(value, RowFields):
        out.update(value.columns())
    elif isinstance(value, tuple) and hasattr(value, "_asdict"):
        for k, v in value._asdict().items():
            _flatten(k, v, out)
    elif is_dataclass(value) and not isinstance(value, type):
        for f in fields(value):
            _flatten(f.name, getattr(value, f.name), out)
    else:
        out[name] = value


@dataclass
class LayerRow:
    """One row of ``layers.parquet``: the layer and the typed fields of each method that ran there (methods
    that did not run contribute no columns; the combined table reads NaN there)."""

    layer: int
    fields: dict[str, RowFields] = field(default_factory=dict)
    """Method name -> its fields, in registry order."""
    seeds: dict[str, SeedEstimate] = field(default_factory=dict)
    """Statistic -> its mean ± seed SD and hierarchical interval over the layer's seeds (every method's)."""

    @property
    def n_seeds(self) -> int:
        """The most seeds behind any statistic of the layer (1: seed 0 only)."""
        return max((e.n_seeds for e in self.seeds.values()), default=1)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"layer": self.layer}
        for f in self.fields.values():
            out.update(f.columns())
        out["n_seeds"] = self.n_seeds
        for name, est in self.seeds.items():
            out.update(estimate_columns(name, est))
        return out
