"""The diffing methods, one module each behind :class:`~finsae.analysis.methods.base.DiffingMethod`, and the one
registry the layer job, the artifact contract, the figures, ``findings.md`` and the report iterate (in this
order: a method reads the results of those before it). Adding a method: docs/diffing.md, "Adding a method"."""

from __future__ import annotations

from finsae.analysis.methods.base import DiffingMethod
from finsae.analysis.methods.causal import Causal
from finsae.analysis.methods.crosscoder import Crosscoder
from finsae.analysis.methods.independent import IndependentSaes
from finsae.analysis.methods.lens import ActivationLens
from finsae.analysis.methods.warmstart import WarmStart

METHODS: dict[str, DiffingMethod] = {m.name: m for m in (
    ActivationLens(),
    IndependentSaes(),
    Crosscoder(),
    WarmStart(),
    Causal(),
)}
"""Method name -> method, in the order they run at a layer."""


def report_layer_columns() -> list[str]:
    """The per-layer columns the report shows: ``layer`` and each method's :attr:`~DiffingMethod.report_columns`."""
    return ["layer", *(c for m in METHODS.values() for c in m.report_columns)]
