"""Plots of the two diffing methods that need no matching: the crosscoder (relative decoder norm per latent,
classes by layer) and the warm-started SAEs (decoder drift of the domain run against the control run); each
method's plug-in (:mod:`finsae.analysis.methods`) says which it draws."""

from __future__ import annotations

import numpy as np
import pandas as pd

from finsae.analysis.plotting import column, finish_by_layer, interval_bars, panel_grid, pyplot


def plot_class_counts(layers: pd.DataFrame, title: str):
    """Shared / base-only / domain-only crosscoder latents by layer (artifacts dropped) with 95% intervals,
    and the seed-1 counts as points."""
    fig, ax = pyplot().subplots(figsize=(6.4, 4))
    x = layers["layer"].to_numpy(dtype=float)
    bars = (("n_shared", "shared", -0.25, "C2"), ("n_base_only", "base-only", 0.0, "C0"),
            ("n_domain_only", "domain-only", 0.25, "C1"))
    interval_bars(ax, layers, bars, 0.25, "_lo", "_hi")
    for col, _, off, _ in bars:
        ax.plot(x + off, column(layers, f"{col}_seed1"), "k_", markersize=10)
    ax.plot([], [], "k_", label="seed 1")
    return finish_by_layer(fig, ax, layers, "crosscoder latents", title)


def plot_warmstart_drift(warmstart: pd.DataFrame, title: str, quantile: float):
    """Per layer, the decoder drift (1 - cosine to the start) of every live latent in the domain run against
    the control run, with the control's ``quantile`` that defines a changed latent; financial latents of the
    domain run in orange."""
    layers = sorted(int(v) for v in warmstart["layer"].unique())
    fig, axes = panel_grid(len(layers))
    for ax, layer in zip(axes, layers, strict=False):
        t = warmstart[(warmstart["layer"] == layer) & warmstart["live"]]
        fin = t["financial"].to_numpy(bool)
        ax.scatter(t.loc[~fin, "drift_control"], t.loc[~fin, "drift_domain"], s=3, alpha=0.5, color="#3a6ea5",
                   label="latent")
        ax.scatter(t.loc[fin, "drift_control"], t.loc[fin, "drift_domain"], s=6, color="C1", label="financial")
        if len(t):
            thr = (float(np.quantile(t["drift_control"].dropna(), quantile)) if t["drift_control"].notna().any()
                   else np.nan)
            hi = float(np.nanmax(t[["drift_domain", "drift_control"]].to_numpy())) or 1.0
            ax.plot([0, hi], [0, hi], color="grey", lw=0.6)
            if np.isfinite(thr):
                ax.axhline(thr, color="k", ls="--", lw=0.7, label=f"control {quantile:.0%} quantile")
        ax.set_title(f"layer {layer}: {int(t['changed'].sum())} changed", fontsize=9)
        ax.set_xlabel("drift, control run", fontsize=7)
        ax.set_ylabel("drift, domain run", fontsize=7)
    axes[0].legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
