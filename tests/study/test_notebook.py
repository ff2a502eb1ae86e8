"""notebooks/study.ipynb, executed against the tiny study: it loads the artifacts through the stage readers and
redraws three plots with data in them.

The cells run in this process, in order, in one namespace (what a kernel does, without starting one: nbclient and
ipykernel are not in the test environment)."""

from __future__ import annotations

import json

import matplotlib
import pytest

pytestmark = pytest.mark.slow


def run_notebook(path, env_artifacts, monkeypatch) -> dict:
    monkeypatch.setenv("FINSAE_ARTIFACTS", str(env_artifacts))
    matplotlib.use("Agg")
    nb = json.loads(path.read_text())
    assert nb["nbformat"] == 4
    ns: dict = {"__name__": "__main__"}
    for i, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        exec(compile("".join(cell["source"]), f"{path.name}[code cell {i}]", "exec"), ns)  # noqa: S102
    return ns


def test_notebook_redraws_three_plots_from_the_tiny_study(project_root, tiny_study, monkeypatch):
    import matplotlib.pyplot as plt

    ns = run_notebook(project_root / "notebooks" / "study.ipynb", tiny_study, monkeypatch)
    figures = ns["figures"]
    assert len(figures) == 3
    for fig in figures:
        lines = [line for ax in fig.axes for line in ax.get_lines() if len(line.get_xdata()) > 0]
        assert lines, fig.axes[0].get_title()
    fvu_line = figures[0].axes[0].get_lines()[0]
    assert list(fvu_line.get_xdata()) == [0, 1]  # the tiny study's two layers
    saes = ns["saes"]
    assert fvu_line.get_ydata().tolist() == pytest.approx(saes.sort_values("layer")["fvu"].tolist(), rel=1e-12)
    assert ns["study"].artifacts == tiny_study
    plt.close("all")


def test_notebook_fails_loudly_without_artifacts(project_root, tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="make demo"):
        run_notebook(project_root / "notebooks" / "study.ipynb", tmp_path / "empty", monkeypatch)
