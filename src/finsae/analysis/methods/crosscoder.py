"""The crosscoder: one dictionary over both models' activations side by side; latents shared, base-only or
domain-only by their decoder blocks' norms, Latent Scaling artifacts dropped (:mod:`finsae.analysis.crosscoder`).
Its inputs: ``artifacts/sae/crosscoder_{base}_{domain}/layer_{i}/{tag}`` (and ``{seed_tag}`` for its seed
stability), trained by ``python train.py task=crosscoder``; a crosscoder of another pair or width is logged and
the method reads "not run"."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from finsae.activations.paired import PairedArray
from finsae.analysis import crosscoder as science
from finsae.analysis.artifacts import TableSpec
from finsae.analysis.findings import ci_text, fmt
from finsae.analysis.method_plots import plot_class_counts, plot_delta_histograms
from finsae.analysis.methods.base import DiffingMethod, LayerData, MethodResult, Say, number
from finsae.analysis.plotting import column
from finsae.analysis.saes import PairSaes
from finsae.paths import crosscoder_name
from finsae.sae import TopKSAE, read_meta
from finsae.sae.io import is_sae_dir

log = logging.getLogger("finsae")
NAME = "crosscoder"
"""Method, table (``crosscoder.parquet``) and contexts model (``contexts/crosscoder/``) name."""


class CrosscoderInputs(NamedTuple):
    sae: TopKSAE
    rows: PairedArray
    """The held-out tokens as its input (both models' rows side by side, with its block scales)."""
    sae_seed1: TopKSAE | None
    rows_seed1: PairedArray | None


class Crosscoder(DiffingMethod):
    name = NAME
    tables = (TableSpec(NAME, "crosscoder.parquet", science.CROSSCODER_COLUMNS, "crosscoder table",
                        " with the pair's crosscoders trained (python train.py task=crosscoder layer=i)", exact=True),)
    context_models = (NAME,)
    findings_header = "crosscoder: domain-only / base-only / shared (seed stability)"
    signal_label = "crosscoder (domain-only latents)"
    report_columns = ("n_shared", "n_base_only", "n_domain_only", "n_domain_only_financial",
                      "crosscoder_seed_stability")

    def inputs(self, data: LayerData) -> CrosscoderInputs | None:
        s = data.saes
        base, domain = data.acts(s.base), data.acts(s.domain)
        found = [_pair_crosscoder(s.path(crosscoder_name(s.base, s.domain), data.layer, t), s.base, s.domain,
                                  base.shape[1]) for t in (s.tag, s.seed_tag)]
        if found[0] is None:
            return None
        (sae, scales), seed1 = found
        return CrosscoderInputs(sae, PairedArray(base, domain, scales), seed1[0] if seed1 else None,
                                PairedArray(base, domain, seed1[1]) if seed1 else None)

    def analyze(self, inputs: CrosscoderInputs, data: LayerData, earlier: dict[str, MethodResult],
                say: Say) -> MethodResult:
        xc = science.analyze_layer(data.layer, inputs.sae, inputs.rows, data.held, data.doc_of_row, data.char_start,
                                   data.analysis, sae_seed1=inputs.sae_seed1, paired_rows_seed1=inputs.rows_seed1)
        return MethodResult(xc.row, {NAME: xc.table}, {NAME: xc.contexts})

    def sae_folders(self, saes: PairSaes) -> list[tuple[str, str]]:
        return [(crosscoder_name(saes.base, saes.domain), t) for t in (saes.tag, saes.seed_tag)]

    def figures(self, frames: dict[str, pd.DataFrame], cfg, pair: str) -> dict:
        table = frames.get(NAME)
        if table is None or not len(table):
            return {}
        layers = frames["layers"]
        have = layers[column(layers, "n_domain_only").notna()].sort_values("layer")
        return {"crosscoder_delta": plot_delta_histograms(table, f"{pair}: crosscoder relative decoder norm",
                                                          cfg.crosscoder),
                "crosscoder_classes_by_layer": plot_class_counts(have, f"{pair}: crosscoder latent classes")}

    def findings_cell(self, row: pd.Series) -> str | None:
        if not math.isfinite(number(row, "n_domain_only")):
            return None
        return (f"{ci_text(row, 'n_domain_only', '{:.0f}')} / {ci_text(row, 'n_base_only', '{:.0f}')} / "
                f"{ci_text(row, 'n_shared', '{:.0f}')} ({fmt(number(row, 'crosscoder_seed_stability'), '{:.2f}')})")

    def signal(self, layers: pd.DataFrame) -> pd.Series:
        return pd.to_numeric(column(layers, "n_domain_only"), errors="coerce")

    def describe(self, r: dict) -> str:
        return (f"crosscoder {r['n_shared']} shared / {r['n_base_only']} base-only / {r['n_domain_only']} "
                f"domain-only (seed stability {r['crosscoder_seed_stability']:.2f})")


def _pair_crosscoder(path: Path, base: str, domain: str, d_model: int):
    """``(crosscoder, block scales)`` in ``path`` when it is a crosscoder of this pair at this width, else None
    (a mismatch is logged, never fatal)."""
    if not is_sae_dir(path):
        return None
    info = (read_meta(path).get("extra") or {}).get("crosscoder") or {}
    if (info.get("base"), info.get("domain"), info.get("d_model")) != (base, domain, d_model):
        log.warning("%s is not a crosscoder of %s vs %s at width %d (cfg.json extra.crosscoder %s): skipped",
                    path, base, domain, d_model, info)
        return None
    return science.load_crosscoder(path)
