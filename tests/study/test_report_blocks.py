"""The diffing section's per-layer blocks cover every registered method's report columns, a new method's too."""

from finsae.analysis.methods import METHODS, report_layer_columns
from finsae.report.build import layer_blocks


def test_every_report_column_of_the_registry_has_a_block():
    placed = {c for cols in layer_blocks().values() for c in cols}
    assert set(report_layer_columns()) <= placed


def test_a_new_methods_columns_get_a_block_of_their_own(monkeypatch):
    class Toy:
        name = "toy"
        report_columns = ("n_toy", "toy_score")

    monkeypatch.setitem(METHODS, "toy", Toy())
    assert layer_blocks()["toy"] == ["layer", "n_toy", "toy_score"]


def test_the_reproduce_command_names_the_folder_relative_to_the_checkout(tmp_path):
    from finsae.paths import PROJECT_ROOT
    from finsae.report.study import reproduce_command

    assert reproduce_command(PROJECT_ROOT / "artifacts" / "analysis" / "p") == \
        "python -m finsae.reproduce artifacts/analysis/p"
    assert not reproduce_command(tmp_path / "a").split()[-1].startswith("/")
