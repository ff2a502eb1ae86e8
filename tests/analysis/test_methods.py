"""The registry of diffing methods: what every consumer iterates is well formed."""

from finsae.analysis import artifacts
from finsae.analysis.methods import METHODS, report_layer_columns
from finsae.analysis.methods.base import DiffingMethod


def test_every_method_is_registered_under_its_own_name_with_distinct_tables():
    assert all(isinstance(m, DiffingMethod) and name == m.name for name, m in METHODS.items())
    tables = [t.name for m in METHODS.values() for t in m.tables]
    assert len(tables) == len(set(tables)) and artifacts.LAYERS_TABLE not in tables
    assert list(artifacts.specs()) == [artifacts.LAYERS_TABLE, *tables]
    files = [t.file for t in artifacts.specs().values()]
    assert len(files) == len(set(files))
    # what labeling and the backtest read stays where they read it
    assert {artifacts.FEATURES_TABLE, artifacts.CURVES_TABLE} <= set(tables)
    assert set(artifacts.FEATURES_COLUMNS) <= set(artifacts.specs()[artifacts.FEATURES_TABLE].columns)


def test_the_report_columns_come_from_the_methods():
    from finsae.report.build import layer_blocks

    cols = report_layer_columns()
    assert cols[0] == "layer" and len(cols) == len(set(cols))
    assert set(cols) <= {c for block in layer_blocks().values() for c in block}  # every one shown somewhere
