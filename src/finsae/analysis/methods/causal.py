"""The causal test (:mod:`finsae.analysis.causal_layer`): does the twin's behaviour live in what no affine map
of the base explains at a layer, and in the latents the warm start calls changed? It runs where the twin is a
sequence classifier (``analysis.causal.enabled``), after the warm start (whose changed latents it ablates:
without the warm start only the affine patch runs)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from finsae.analysis import causal_layer as science
from finsae.analysis.artifacts import TableSpec
from finsae.analysis.findings import ci_text, fmt
from finsae.analysis.methods.base import DiffingMethod, LayerData, MethodResult, Say, number
from finsae.analysis.methods.warmstart import NAME as WARMSTART
from finsae.analysis.methods.warmstart import warm_runs
from finsae.analysis.plotting import column, interval, layer_ticks, pyplot
from finsae.analysis.saes import PairSaes
from finsae.analysis.warmstart import DOMAIN_SUFFIX
from finsae.sae import load

log = logging.getLogger("finsae")
NAME = "causal"
"""Method and table (``causal.parquet``) name."""


class Causal(DiffingMethod):
    name = NAME
    tables = (TableSpec(NAME, "causal.parquet", tuple(science.CAUSAL_COLUMNS), "causal-test table",
                        " with the twin a classifier (python train.py task=finetune)", exact=True),)
    findings_header = "causal: matters? (Δaccuracy, affine patch; changed − random latents, mean abs Δlogit)"
    signal_label = "causal test (accuracy points lost when layer L is the base's affine image)"

    def inputs(self, data: LayerData) -> science.CausalInputs | None:
        cfg = data.analysis.causal
        if not cfg.enabled:
            return None
        layers = sorted({layer for _, layer in data.arrays})
        return science.layer_inputs(data.saes, data.held, layers, cfg)

    def analyze(self, inputs: science.CausalInputs, data: LayerData, earlier: dict[str, MethodResult],
                say: Say) -> MethodResult:
        s = data.saes
        sae, changed = _changed_latents(earlier, s, data.layer)
        res = science.causal_layer(data.layer, inputs, data.acts(s.base), data.acts(s.domain),
                                   data.doc_of_row, data.held, data.analysis.causal, sae, changed, say)
        return MethodResult(res.row, {NAME: res.table})

    def sae_folders(self, saes: PairSaes, cfg) -> list[tuple[str, str]]:
        return [(saes.domain, saes.tag + DOMAIN_SUFFIX)]

    def figures(self, frames: dict[str, pd.DataFrame], cfg, pair: str) -> dict:
        layers = frames.get("layers")
        ran = None if layers is None else layers[column(layers, "causal_accuracy_change").notna()]
        if ran is None or not len(ran):
            return {}
        title = f"{pair}: what the twin loses, by layer"
        return {"causal_by_layer": plot_causal(ran.sort_values("layer"), title)}

    def findings_cell(self, row: pd.Series) -> str | None:
        if not math.isfinite(number(row, "causal_accuracy_change")):
            return None
        lost = number(row, "causal_accuracy_change_hi") < 0
        cell = f"{'yes' if lost else 'no'}: Δacc {ci_text(row, 'causal_accuracy_change', '{:+.3f}')}"
        if math.isfinite(number(row, "ablation_dlogit_diff")):
            cell += (f"; {fmt(number(row, 'ablation_n_latents'), '{:.0f}')} changed latents "
                     f"{ci_text(row, 'ablation_dlogit_diff', '{:+.3f}')}")
        return cell

    def signal(self, layers: pd.DataFrame) -> pd.Series:
        return 0.0 - 100 * column(layers, "causal_accuracy_change")  # 0.0 -: no "-0" in the findings

    def describe(self, r: dict) -> str:
        line = (f"causal: affine patch Δaccuracy {r['causal_accuracy_change']:+.3f} (twin "
                f"{r['causal_twin_accuracy']:.3f}), |Δlogit| {r['causal_dlogit']:.3f}")
        if math.isfinite(r["ablation_dlogit_diff"]):
            line += (f"; ablating {r['ablation_n_latents']:.0f} changed latents |Δlogit| "
                     f"{r['ablation_dlogit_changed']:.3f} vs {r['ablation_dlogit_random']:.3f} random")
        return line


def _changed_latents(earlier: dict[str, MethodResult], saes: PairSaes, layer: int):
    """``(the warm start's domain SAE, its changed latents)``, or ``(None, None)`` where the warm start did
    not run or changed nothing."""
    res = earlier.get(WARMSTART)
    if res is None:
        return None, None
    table = res.tables[WARMSTART]
    changed = table.loc[table["changed"].astype(bool), "latent"].to_numpy(np.int64)
    runs = warm_runs(saes, layer)
    if not len(changed) or runs is None:
        return None, None
    return load(runs[1]), changed


def plot_causal(layers: pd.DataFrame, title: str):
    """Two panels by layer: the accuracy change when layer L is the base's affine image (and the raw base
    states), and the mean |logit change| of the affine patch and of ablating the changed vs random latents."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    x = layers["layer"].to_numpy(float)
    acc = "causal_accuracy_change"
    y, err = interval(layers, acc, f"{acc}_lo", f"{acc}_hi")
    left.errorbar(x, y, yerr=err, fmt="o-", capsize=3, label="affine image of the base")
    left.plot(x, column(layers, "causal_accuracy_change_base"), "s--", color="grey", label="raw base states")
    left.axhline(0, color="k", lw=0.6)
    left.set_ylabel("accuracy change (patched − twin)")
    y, err = interval(layers, "causal_dlogit", "causal_dlogit_lo", "causal_dlogit_hi")
    right.errorbar(x, y, yerr=err, fmt="o-", capsize=3, label="affine patch")
    right.plot(x, column(layers, "ablation_dlogit_changed"), "^-", color="C3", label="ablate changed latents")
    right.plot(x, column(layers, "ablation_dlogit_random"), "v:", color="C7", label="ablate random latents")
    right.set_ylabel("mean |logit change|")
    for ax in (left, right):
        layer_ticks(ax, layers)
        ax.set_xlabel("layer")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
