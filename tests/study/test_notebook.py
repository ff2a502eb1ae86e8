"""notebooks/study.ipynb, executed by a real Jupyter kernel (nbclient + ipykernel) against the tiny study: it loads
the artifacts through the stage readers and redraws three plots with data in them."""

from __future__ import annotations

import json

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

pytestmark = pytest.mark.slow

# Appended to the in-memory copy only (never to the file): reports what the kernel drew, as JSON on stdout.
PROBE = """
import json as _json
for _f in figures:
    _f.canvas.draw()  # tick labels exist once drawn
print("PROBE" + _json.dumps({
    "n_figures": len(figures),
    "lines_with_data": [sum(len(l.get_xdata()) > 0 for ax in f.axes for l in ax.get_lines()) for f in figures],
    "fvu_x": [float(v) for v in figures[0].axes[0].get_lines()[0].get_xdata()],
    "fvu_y": [float(v) for v in figures[0].axes[0].get_lines()[0].get_ydata()],
    "fvu_summaries": [float(v) for v in saes.sort_values("layer")["fvu"]],
    "layer_ticks": [float(t) for f in figures[:2] for ax in f.axes for t in ax.get_xticks()],
    "date_labels": [t.get_text() for t in figures[2].axes[0].get_xticklabels()],
    "artifacts": str(study.artifacts),
}))
"""


def execute(path, artifacts, monkeypatch, probe: bool = True) -> nbformat.NotebookNode:
    monkeypatch.setenv("FINSAE_ARTIFACTS", str(artifacts))  # the kernel inherits this process's environment
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(path, as_version=4)
    if probe:
        nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def test_notebook_redraws_three_plots_from_the_tiny_study(project_root, tiny_study, monkeypatch):
    nb = execute(project_root / "notebooks" / "study.ipynb", tiny_study, monkeypatch)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    pngs = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.get("data", {})]
    assert len(pngs) == 3  # each plot rendered by the kernel
    probe = next(o.text for o in nb.cells[-1].outputs if o.output_type == "stream" and "PROBE" in o.text)
    got = json.loads(probe.split("PROBE", 1)[1])
    assert got["n_figures"] == 3 and all(n > 0 for n in got["lines_with_data"]), got
    assert got["fvu_x"] == [0, 1]  # the tiny study's two layers
    assert got["fvu_y"] == pytest.approx(got["fvu_summaries"], rel=1e-12)
    assert got["artifacts"] == str(tiny_study)
    assert got["layer_ticks"] and all(t == int(t) for t in got["layer_ticks"])  # no layer 0.5
    assert any(label for label in got["date_labels"]) and not any("e+" in t or "." in t for t in got["date_labels"])


def test_notebook_fails_loudly_without_artifacts(project_root, tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CellExecutionError, match="make demo"):
        execute(project_root / "notebooks" / "study.ipynb", tmp_path / "empty", monkeypatch, probe=False)
