"""Warm-started SAEs: the base SAE continued on the twin (domain run) and on the base model itself (control run);
a latent is changed by fine-tuning when its decoder drifts more than the control allows
(:mod:`finsae.analysis.warmstart`). Its inputs: ``{domain}/layer_{i}/{tag}_warm_domain`` and
``{base}/layer_{i}/{tag}_warm_control``, both continued from ``{base}/layer_{i}/{tag}`` (``python train.py
sae.init_from=...``); a run started elsewhere is logged and the method reads "not run"."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from finsae.analysis import warmstart as science
from finsae.analysis.artifacts import FEATURES_TABLE, TableSpec
from finsae.analysis.findings import ci_text, fmt
from finsae.analysis.method_plots import plot_warmstart_drift
from finsae.analysis.methods.base import DiffingMethod, LayerData, MethodResult, Say, number
from finsae.analysis.methods.independent import IndependentSaes
from finsae.analysis.plotting import column
from finsae.analysis.saes import PairSaes
from finsae.sae import TopKSAE, load, read_meta
from finsae.sae.io import is_sae_dir

log = logging.getLogger("finsae")
NAME = "warmstart"
"""Method and table (``warmstart.parquet``) name."""


class WarmRuns(NamedTuple):
    start: TopKSAE
    """The base SAE both runs continued."""
    domain: TopKSAE
    control: TopKSAE


class WarmStart(DiffingMethod):
    name = NAME
    tables = (TableSpec(NAME, "warmstart.parquet", science.WARMSTART_COLUMNS, "warm-start table",
                        " with the warm-started SAEs trained (python train.py sae.init_from=...)", exact=True),)
    findings_header = "warm start: changed vs control"
    signal_label = "warm start (changed above control)"
    report_columns = ("n_changed", "n_changed_control", "n_changed_financial")

    def inputs(self, data: LayerData) -> WarmRuns | None:
        runs = warm_runs(data.saes, data.layer)
        return None if runs is None else WarmRuns(*(load(d) for d in runs))

    def analyze(self, inputs: WarmRuns, data: LayerData, earlier: dict[str, MethodResult],
                say: Say) -> MethodResult:
        s = data.saes
        ws = science.analyze_layer(data.layer, *inputs, data.acts(s.base), data.acts(s.domain), data.held,
                                   data.doc_of_row, data.analysis, start_fired=_base_fired(earlier, s.base))
        return MethodResult(ws.row, {NAME: ws.table})

    def sae_folders(self, saes: PairSaes) -> list[tuple[str, str]]:
        return [(saes.domain, saes.tag + science.DOMAIN_SUFFIX), (saes.base, saes.tag + science.CONTROL_SUFFIX)]

    def figures(self, frames: dict[str, pd.DataFrame], cfg, pair: str) -> dict:
        table = frames.get(NAME)
        if table is None or not len(table):
            return {}
        return {"warmstart_drift": plot_warmstart_drift(table, f"{pair}: warm-start drift, domain vs control",
                                                        cfg.warmstart.quantile)}

    def findings_cell(self, row: pd.Series) -> str | None:
        if not math.isfinite(number(row, "n_changed")):
            return None
        return f"{ci_text(row, 'n_changed', '{:.0f}')} vs {fmt(number(row, 'n_changed_control'), '{:.0f}')}"

    def signal(self, layers: pd.DataFrame) -> pd.Series:
        return column(layers, "n_changed") - column(layers, "n_changed_control")

    def describe(self, r: dict) -> str:
        return f"warm start {r['n_changed']} changed latents vs {r['n_changed_control']} in the control run"


def _base_fired(earlier: dict[str, MethodResult], base: str):
    """Which latents of the base SAE (the runs' start) fire on the held-out tokens, from the independent
    comparison's features when it ran (a latent fires on some token exactly when some document's max is
    positive); None: encode them again."""
    res = earlier.get(IndependentSaes.name)
    if res is None:
        return None
    f = res.tables[FEATURES_TABLE]
    return f.loc[(f["model"] == base) & (f["role"] == "base"), "n_active_docs"].to_numpy() > 0


def warm_runs(saes: PairSaes, layer: int) -> tuple[Path, Path, Path] | None:
    """``(start, domain run, control run)`` folders when both warm runs exist and continue the base SAE."""
    start = saes.path(saes.base, layer)
    runs = (saes.path(saes.domain, layer, saes.tag + science.DOMAIN_SUFFIX),
            saes.path(saes.base, layer, saes.tag + science.CONTROL_SUFFIX))
    if not all(is_sae_dir(d) and _started_from(d, start) for d in runs):
        return None
    return start, *runs


def _started_from(run: Path, start: Path) -> bool:
    """The warm-started SAE in ``run`` was continued from the SAE in ``start`` (its cfg.json init_from)."""
    init = (read_meta(run).get("extra") or {}).get("init_from")
    ok = init is not None and Path(init).parts[-3:] == start.parts[-3:]
    if not ok:
        log.warning("%s was not warm-started from %s (cfg.json extra.init_from=%s): no warm-start analysis",
                    run, start, init)
    return ok
