"""One spelling of the layer knob: in every script's config, a field that holds layer indices is named
``layer`` (one layer, what ``--multirun layer=0,1,...`` sweeps) or ``layers`` (several), whatever group it
sits in."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from finsae.glue.analyze_schema import AnalyzeScriptSchema
from finsae.glue.backtest_schema import BacktestScriptSchema
from finsae.glue.label_schema import LabelScriptSchema
from finsae.glue.schemas import TrainScriptSchema

SCRIPTS = [TrainScriptSchema, AnalyzeScriptSchema, LabelScriptSchema, BacktestScriptSchema]


def _holds_layer_indices(name: str, hint) -> bool:
    """A field named after layers whose type is an int or a list of ints (not a flag such as
    ``init_from_any_layer``, not a count such as ``num_layers``)."""
    if "layer" not in name or name.startswith(("n_", "num_")) or name.endswith("_count"):
        return False
    args = set(typing.get_args(hint)) | {hint}
    ints = {int, list[int], tuple[int, ...]}
    return bool(args & ints) and bool not in args


def _layer_fields(schema, prefix: str = "", seen=None) -> list[str]:
    """Dotted names of every layer-index field reachable from ``schema`` (nested config groups included)."""
    seen = set() if seen is None else seen
    if schema in seen:
        return []
    seen.add(schema)
    out = []
    for f, hint in ((f, typing.get_type_hints(schema)[f.name]) for f in dataclasses.fields(schema)):
        if _holds_layer_indices(f.name, hint):
            out.append(prefix + f.name)
        for inner in (hint, *typing.get_args(hint)):
            if dataclasses.is_dataclass(inner):
                out += _layer_fields(inner, f"{prefix}{f.name}.", seen)
    return out


@pytest.mark.parametrize("schema", SCRIPTS, ids=lambda s: s.__name__)
def test_every_layer_knob_is_spelled_layer_or_layers(schema):
    names = _layer_fields(schema)
    odd = [n for n in names if n.rsplit(".", 1)[-1] not in ("layer", "layers")]
    assert not odd, f"{schema.__name__}: layer knobs spelled otherwise: {odd}"


def test_the_scan_sees_the_knobs_it_checks():
    """The scan must find the knobs that exist (so the rule above cannot pass by seeing nothing)."""
    assert "layer" in _layer_fields(TrainScriptSchema)
    assert {"layer", "layers"} <= set(_layer_fields(AnalyzeScriptSchema))
    assert "features.layers" in _layer_fields(BacktestScriptSchema)
    assert not _holds_layer_indices("init_from_any_layer", bool)
    assert _holds_layer_indices("sae_layer", int)
