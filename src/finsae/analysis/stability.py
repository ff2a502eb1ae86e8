"""Seed stability of an SAE setting: how many latents two seeds of the same model and layer share.

``python -m finsae.analysis.stability`` reads every pair of SAEs ``…_s0`` / ``…_s1`` under
``artifacts/sae/{model}/layer_{i}/`` (what ``sweeps/stability.sh`` trains, plus ``demo`` / ``demo_seed1``),
matches their decoders one-to-one (:mod:`finsae.analysis.matching`) and writes
``artifacts/report/stability.{md,parquet,png}``: per setting the one-to-one share at tau = 0.7 (the *seed
ceiling*), the median best-match cosine, the random-decoder baseline, and each seed's held-out (``sae_eval``)
FVU and dead share from its summary. Only SAE weights and training-side summaries are read.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from finsae.analysis.matching import DEFAULT_TAU, match_decoders, overlap, random_unit_rows
from finsae.paths import default_artifacts_dir, report_dir, sae_root
from finsae.sae import load
from finsae.sae.io import is_sae_dir
from finsae.sae.summary import SaeSummary

SEED_PAIRS = (("_s0", "_s1"), ("", "_seed1"))
"""Tag suffixes of a seed pair: ``stab_..._s0``/``stab_..._s1``, and ``demo``/``demo_seed1``."""


def seed_pairs(layer_dir: Path) -> list[tuple[str, str]]:
    """``(tag_seed0, tag_seed1)`` pairs of finished SAEs in one ``artifacts/sae/{model}/layer_{i}`` folder."""
    tags = {p.name for p in layer_dir.iterdir() if is_sae_dir(p)} if layer_dir.is_dir() else set()
    out = []
    for t in sorted(tags):
        for s0, s1 in SEED_PAIRS:
            if t.endswith(s1) and (base := t[: len(t) - len(s1)] + s0) in tags:
                out.append((base, t))
    return out


def pair_stability(dir0: Path, dir1: Path, tau: float = DEFAULT_TAU) -> dict:
    """Seed ceiling and its context for the SAEs in ``dir0`` and ``dir1`` (same model, layer, setting)."""
    a, b = load(dir0).W_dec.detach(), load(dir1).W_dec.detach()
    m = match_decoders(a, b)
    rnd = match_decoders(random_unit_rows(*a.shape, seed=1), b)
    s0, s1 = SaeSummary.read(dir0), SaeSummary.read(dir1)
    return {
        "num_latents": int(a.shape[0]), "k": s0.k, "tokens": s0.tokens, "lr": s0.lr, "batch_size": s0.batch_size,
        "passes": s0.tokens / max(s0.activation_tokens, 1),
        f"one_to_one_{tau}": overlap(m.one_to_one_cos, tau), "median_best_cos": float(np.median(m.best_ab_cos)),
        "mutual_nn": float(m.mutual.mean()), f"random_{tau}": overlap(rnd.one_to_one_cos, tau),
        "fvu_s0": s0.fvu, "fvu_s1": s1.fvu, "dead_s0": s0.dead_fraction, "dead_s1": s1.dead_fraction,
    }


def stability_table(artifacts: Path, models: list[str] | None = None, tau: float = DEFAULT_TAU) -> pd.DataFrame:
    root = sae_root(artifacts)
    rows = []
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        if models and model_dir.name not in models:
            continue
        for layer_dir in sorted(model_dir.glob("layer_*")):
            index = layer_dir.name.split("_", 1)[1]
            if not index.lstrip("-").isdigit():  # sae_dir's layout: layer_{i}, i may be -1 (the last layer)
                continue
            layer = int(index)
            for t0, t1 in seed_pairs(layer_dir):
                rows.append({"model": model_dir.name, "layer": layer, "setting": t0.removesuffix("_s0"),
                             **pair_stability(layer_dir / t0, layer_dir / t1, tau)})
    return pd.DataFrame(rows)


def plot_stability(table: pd.DataFrame, path: Path, tau: float = DEFAULT_TAU) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    fvu = table[["fvu_s0", "fvu_s1"]].mean(axis=1)
    sc = ax.scatter(fvu, table[f"one_to_one_{tau}"], c=np.log2(table["num_latents"]), s=30 + 8 * table["passes"],
                    cmap="viridis")
    for (_, r), x in zip(table.iterrows(), fvu, strict=True):
        ax.annotate(f"{r['num_latents']}/k{r['k']}/{r['passes']:.1f}p L{r['layer']}", (x, r[f"one_to_one_{tau}"]),
                    fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.axvline(0.2, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("held-out FVU (mean of the two seeds)")
    ax.set_ylabel(f"seed ceiling: one-to-one share at cos >= {tau}")
    fig.colorbar(sc, ax=ax, label="log2 latents")
    ax.set_title("SAE seed stability (marker size: passes over the data)")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--artifacts", type=Path, default=default_artifacts_dir())
    p.add_argument("--models", nargs="*", default=None)
    args = p.parse_args(argv)
    table = stability_table(args.artifacts, args.models)
    if table.empty:
        raise SystemExit(f"finsae: error: no seed pairs of SAEs under {sae_root(args.artifacts)}; "
                         f"run sweeps/stability.sh first")
    out = report_dir(args.artifacts)
    out.mkdir(parents=True, exist_ok=True)
    table = table.sort_values(["model", "layer", "num_latents", "k", "tokens"])
    table.to_parquet(out / "stability.parquet", index=False)
    cols = ["model", "layer", "num_latents", "k", "tokens", "passes", "lr", f"one_to_one_{DEFAULT_TAU}",
            "median_best_cos", "mutual_nn", f"random_{DEFAULT_TAU}", "fvu_s0", "fvu_s1", "dead_s0", "dead_s1"]
    (out / "stability.md").write_text(table[cols].to_markdown(index=False, floatfmt=".3f") + "\n")
    plot_stability(table, out / "stability.png")
    print(table[cols].to_string(index=False, float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main()
