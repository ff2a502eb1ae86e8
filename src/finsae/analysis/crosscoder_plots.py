"""The crosscoder's figures: the relative decoder norm of its latents per layer (classes, artifacts,
median) and the dictionary-size sweep's model-only counts by size."""

from __future__ import annotations

import numpy as np
import pandas as pd

from finsae.analysis.config import CrosscoderConfig
from finsae.analysis.plotting import panel_grid, pyplot

AXIS = {"minder": "relative norm difference (Minder et al.): 0 base-only, 1 domain-only",
        "strict": "norm share ||d_domain|| / (||d_base|| + ||d_domain||)"}


def plot_delta_by_layer(crosscoder: pd.DataFrame, title: str, cuts: CrosscoderConfig):
    """One panel per layer: live latents by ``delta`` (log counts), Latent Scaling artifacts stacked in grey,
    the class cut-offs dashed and the median solid (red, its value in the legend)."""
    layers = sorted(int(v) for v in crosscoder["layer"].unique())
    fig, axes = panel_grid(len(layers))
    bins = np.linspace(0, 1, 41)
    for ax, layer in zip(axes, layers, strict=False):
        t = crosscoder[(crosscoder["layer"] == layer) & (crosscoder["class"] != "dead")]
        art = t["artifact"].to_numpy(bool)
        delta = pd.to_numeric(t["delta"])
        ax.hist([delta[~art].dropna(), delta[art].dropna()], bins=bins, stacked=True,
                color=["#3a6ea5", "#b0b0b0"], label=["latents", "Latent Scaling artifact"])
        for cut in (cuts.base_only_max, cuts.shared_min, cuts.shared_max, cuts.domain_only_min):
            ax.axvline(cut, color="k", lw=0.6, ls="--")
        median = float(delta.median()) if delta.notna().any() else np.nan
        if np.isfinite(median):
            ax.axvline(median, color="#c0392b", lw=1.2, label=f"median {median:.2f}")
        ax.set_yscale("log")
        ax.set_title(f"layer {layer}", fontsize=9)
        ax.legend(fontsize=6)
        ax.set_xlabel(AXIS[cuts.cutoffs], fontsize=6)
    axes[0].set_ylabel("live latents")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_sweep(sweep: pd.DataFrame, title: str):
    """Model-only latents (base-only, domain-only; artifacts dropped) against dictionary size, one line per
    (layer, class); a hollow marker where that size's crosscoder misses the quality bar."""
    fig, ax = pyplot().subplots(figsize=(6.4, 4))
    for i, (layer, g) in enumerate(sweep.sort_values("num_latents").groupby("layer")):
        x = g["num_latents"].to_numpy(float)
        ok = g["meets_bar"].to_numpy(bool)
        for col, style, name in (("n_domain_only", "-", "domain-only"), ("n_base_only", "--", "base-only")):
            y = g[col].to_numpy(float)
            line, = ax.plot(x, y, style, color=f"C{i}", label=f"L{int(layer)} {name}")
            ax.plot(x[ok], y[ok], "o", color=line.get_color())
            ax.plot(x[~ok], y[~ok], "o", mfc="none", color=line.get_color())
    ax.set_xscale("log", base=2)
    sizes = sorted(int(v) for v in sweep["num_latents"].unique())
    ax.set_xticks(sizes, [f"{s:,}" for s in sizes])
    ax.set_xlabel("crosscoder latents (hollow: misses FVU / dead bar)")
    ax.set_ylabel("model-only latents (Latent Scaling artifacts dropped)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
