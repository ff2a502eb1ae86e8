"""The analysis figures draw what the tables hold: bars with their intervals, one panel per layer, and the
methods that did not run draw nothing."""

import numpy as np
import pandas as pd

from finsae.analysis.config import AnalysisConfig
from finsae.analysis.crosscoder import CROSSCODER_COLUMNS
from finsae.analysis.methods import METHODS
from finsae.analysis.methods.independent import IndependentSaes
from finsae.analysis.warmstart import WARMSTART_COLUMNS
from finsae.analysis.plotting import interval, interval_bars, pyplot


def test_interval_bars_carry_each_column_and_its_interval():
    layers = pd.DataFrame({"layer": [0, 2], "n": [5.0, 8.0], "n_lo": [4.0, np.nan], "n_hi": [7.0, 9.0]})
    y, err = interval(layers, "n", "n_lo", "n_hi")
    np.testing.assert_array_equal(y, [5.0, 8.0])
    np.testing.assert_array_equal(err, [[1.0, 0.0], [2.0, 1.0]])  # an unknown bound draws no whisker
    fig, ax = pyplot().subplots()
    interval_bars(ax, layers, (("n", "count", 0.1, "C0"), ("absent", "none yet", -0.1, "C1")), 0.2, "_lo", "_hi")
    heights = [p.get_height() for p in ax.patches]
    assert heights[:2] == [5.0, 8.0] and all(np.isnan(heights[2:]))  # a column a table predates: NaN bars
    assert [round(p.get_x() + p.get_width() / 2, 6) for p in ax.patches[:2]] == [0.1, 2.1]
    pyplot().close(fig)


def method_figures(layers, cc, ws, pair):
    """Every registered method's figures of these tables (what the stage draws)."""
    frames = {"layers": layers, **({} if cc is None else {"crosscoder": cc}), **({} if ws is None else {"warmstart": ws})}
    figs = {}
    for name, method in METHODS.items():
        if name != IndependentSaes.name:  # its figures read the features table (tests/analysis/test_compare.py)
            figs.update(method.figures(frames, AnalysisConfig(), pair))
    return figs


def test_method_figures_one_panel_per_layer_and_none_for_a_method_not_run():
    rng = np.random.default_rng(0)
    cc = pd.DataFrame({c: rng.random(20) for c in CROSSCODER_COLUMNS}).assign(
        layer=[1] * 10 + [3] * 10, latent=list(range(10)) * 2, artifact=False, financial=False,
        **{"class": "shared"})
    ws = pd.DataFrame({c: rng.random(10) for c in WARMSTART_COLUMNS}).assign(
        layer=1, latent=range(10), changed=[True] + [False] * 9, financial=False, live=True)
    layers = pd.DataFrame({"layer": [1, 3], "n_domain_only": [2.0, 4.0], "n_shared": [5.0, 6.0]})
    figs = method_figures(layers, cc, ws, "p")
    assert set(figs) == {"crosscoder_delta", "crosscoder_classes_by_layer", "warmstart_drift"}
    panels = [ax for ax in figs["crosscoder_delta"].axes if ax.axison]
    assert [ax.get_title() for ax in panels] == ["layer 1", "layer 3"]
    assert figs["warmstart_drift"].axes[0].get_title() == "layer 1: 1 changed"
    assert method_figures(layers, None, ws.iloc[:0], "p") == {}
    for fig in figs.values():
        pyplot().close(fig)
