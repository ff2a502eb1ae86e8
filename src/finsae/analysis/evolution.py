"""Evolution across layers: the plots of the per-layer table, each number beside its control band."""

from __future__ import annotations

import numpy as np
import pandas as pd

from finsae.analysis.heldout import CATEGORY_FAMILIES
from finsae.analysis.plotting import column, finish_by_layer, interval, interval_bars, pyplot


def plot_overlap(layers: pd.DataFrame, tau: float, title: str):
    """Base-vs-domain overlap by layer, with both seed ceilings, the null dictionaries and the same-index
    comparison."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4))
    x = layers["layer"]
    ax.fill_between(x, layers["overlap_ci_low"], layers["overlap_ci_high"], alpha=0.25, color="C0")
    ax.plot(x, layers["overlap"], "o-", color="C0", label="base vs domain, same init seed (one-to-one)")
    ax.plot(x, layers["overlap_cross_seed"], "D-", color="C1", label="base vs domain, different seeds")
    ax.plot(x, column(layers, "overlap_seed_ceiling_base"), "s--", color="C2", label="seed ceiling, base pair")
    ax.plot(x, column(layers, "overlap_seed_ceiling_domain"), "^--", color="C4", label="seed ceiling, domain pair")
    ax.plot(x, column(layers, "overlap_null"), "P:", color="C5", label="null: rows from the activation covariance")
    ax.plot(x, column(layers, "overlap_null_adjacent"), "*:", color="C6", label="null: adjacent layer's base SAE")
    ax.plot(x, layers["overlap_random"], "x:", color="grey", label="isotropic random rows (0 by construction)")
    ax.plot(x, layers["overlap_index"], "v:", color="C3", label="same index (write-up's method)")
    ax.set_ylim(-0.02, 1.02)
    return finish_by_layer(fig, ax, layers, f"share of latents matched at cos >= {tau}", title)


def plot_counts(layers: pd.DataFrame, title: str):
    """Financial and specialized latents by layer with bootstrap CIs, and the seed floor."""
    fig, ax = pyplot().subplots(figsize=(6.4, 4))
    x = layers["layer"].to_numpy(dtype=float)
    interval_bars(ax, layers, (("n_financial_base", "financial (base)", -0.2, "C0"),
                               ("n_financial", "financial (domain)", 0.0, "C1"),
                               ("n_specialized", "specialized (domain)", 0.2, "C3")), 0.2, "_ci_low", "_ci_high")
    for col, off, fmt, lab in (("n_specialized_seed1", 0.32, "ko", "domain seed 1's financial latents unmatched in base"),
                               ("n_specialized_seed_floor", 0.42, "k_", "... unmatched in domain seed 0 (seed floor)")):
        y, err = interval(layers, col, f"{col}_lo", f"{col}_hi")
        ax.errorbar(x + off, y, yerr=err, fmt=fmt, markersize=6, capsize=2, label=lab)
    return finish_by_layer(fig, ax, layers, "latents", title)


def plot_selectivity(features: pd.DataFrame, title: str):
    """Distribution of broad-contrast AUROC per layer, base vs domain."""
    plt = pyplot()
    layers = sorted(features["layer"].unique())
    fig, ax = plt.subplots(figsize=(max(6.4, 1.1 * len(layers)), 4))
    for j, role in enumerate(("base", "domain")):
        data = [features[(features.layer == L) & (features.role == role)]["auroc_broad"].dropna() for L in layers]
        pos = np.arange(len(layers)) + (j - 0.5) * 0.35
        parts = ax.violinplot(data, positions=pos, widths=0.33, showmedians=True)
        for b in parts["bodies"]:
            b.set_facecolor(f"C{j}")
    ax.set_xticks(np.arange(len(layers)), [str(L) for L in layers])
    ax.axhline(0.5, color="grey", lw=0.7)
    ax.axhline(0.6, color="grey", lw=0.7, ls="--")
    ax.set_xlabel("layer (left: base, right: domain)")
    ax.set_ylabel("AUROC financial vs general (per latent)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_categories(features: pd.DataFrame, min_auroc: float, title: str):
    """Heatmap: per layer and category, the domain latents most selective for it (AUROC >= min_auroc)."""
    plt = pyplot()
    cats = [c for fam in CATEGORY_FAMILIES.values() for c in fam]
    layers = sorted(features["layer"].unique())
    dom = features[features.role == "domain"]
    grid = np.array([[int(((dom.layer == L) & (dom.best_category == c) & (dom.best_category_auroc >= min_auroc)).sum())
                      for L in layers] for c in cats])
    fig, ax = plt.subplots(figsize=(max(5, 0.8 * len(layers) + 2.5), 5))
    im = ax.imshow(grid, aspect="auto", cmap="magma")
    ax.set_xticks(range(len(layers)), [str(L) for L in layers])
    ax.set_yticks(range(len(cats)), cats, fontsize=7)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            ax.text(j, i, str(grid[i, j]), ha="center", va="center", fontsize=6,
                    color="white" if grid[i, j] < grid.max() / 2 else "black")
    fig.colorbar(im, ax=ax, label=f"domain latents, one-vs-rest AUROC >= {min_auroc}")
    ax.set_xlabel("layer")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_cross_fvu(layers: pd.DataFrame, title: str):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4))
    x = layers["layer"]
    for col, lab, style in (("fvu_base", "base SAE on base", "o-"), ("fvu_domain", "domain SAE on domain", "s-"),
                            ("fvu_base_on_domain", "base SAE on domain", "o--"),
                            ("fvu_domain_on_base", "domain SAE on base", "s--"),
                            ("cross_fvu_corrected_base_on_domain", "base SAE on domain, scale+offset refit", "o:"),
                            ("cross_fvu_corrected_domain_on_base", "domain SAE on base, scale+offset refit", "s:")):
        ax.plot(x, column(layers, col), style, label=lab)
    return finish_by_layer(fig, ax, layers, "held-out FVU", title)


def all_figures(layers: pd.DataFrame, features: pd.DataFrame, tau: float, min_auroc: float, pair: str) -> dict:
    layers = layers.sort_values("layer")
    return {
        "overlap_by_layer": plot_overlap(layers, tau, f"{pair}: feature overlap by layer"),
        "counts_by_layer": plot_counts(layers, f"{pair}: financial and specialized latents"),
        "selectivity_by_layer": plot_selectivity(features, f"{pair}: financial selectivity"),
        "categories_by_layer": plot_categories(features, min_auroc, f"{pair}: category profiles (domain)"),
        "cross_fvu_by_layer": plot_cross_fvu(layers, f"{pair}: cross-reconstruction"),
    }
