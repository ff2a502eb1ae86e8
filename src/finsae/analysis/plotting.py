"""What the analysis figures share (:mod:`finsae.analysis.evolution`, :mod:`finsae.analysis.method_plots`): a
headless pyplot, layer ticks and the finish of a figure by layer, columns read leniently, a grid of per-layer panels, bars with their intervals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def pyplot():
    """matplotlib.pyplot on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def layer_ticks(ax, layers: pd.DataFrame) -> None:
    ticks = sorted(int(v) for v in layers["layer"])
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlim(min(ticks) - 0.6, max(ticks) + 0.6)


def finish_by_layer(fig, ax, layers: pd.DataFrame, ylabel: str, title: str):
    """Finish a one-panel figure drawn against the layer: layer ticks, axis labels, title, legend; returns
    ``fig``."""
    layer_ticks(ax, layers)
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def column(layers: pd.DataFrame, name: str) -> pd.Series:
    """A column as floats (NaN when a layer table predates it)."""
    return pd.to_numeric(layers[name], errors="coerce") if name in layers else pd.Series(np.nan, layers.index)


def interval(layers: pd.DataFrame, name: str, low: str, high: str) -> tuple[np.ndarray, np.ndarray]:
    """Values of column ``name`` and their ``[2, n]`` error bars from columns ``low`` and ``high`` (0 where
    unknown), as ``yerr`` takes them."""
    y = column(layers, name).to_numpy()
    err = np.abs(np.stack([y - column(layers, low).to_numpy(), column(layers, high).to_numpy() - y]))
    return y, np.nan_to_num(err)


def interval_bars(ax, layers: pd.DataFrame, bars, width: float, low: str, high: str) -> None:
    """Grouped bars by layer: ``bars`` as ``(column, label, x offset, colour)``, each with its interval from
    the columns ``{column}{low}`` and ``{column}{high}``."""
    x = layers["layer"].to_numpy(dtype=float)
    for col, label, off, color in bars:
        y, err = interval(layers, col, f"{col}{low}", f"{col}{high}")
        ax.bar(x + off, y, width=width, color=color, label=label, yerr=err, capsize=2)


def panel_grid(n: int):
    """A figure of ``n`` panels, three a row (spare ones hidden): ``(figure, flat axes)``."""
    plt = pyplot()
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes.flat
