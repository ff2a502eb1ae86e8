"""The crosscoder: one dictionary over both models' activations side by side; latents shared, base-only,
domain-only or re-weighted by their decoder blocks' norms, Latent Scaling artifacts dropped
(:mod:`finsae.analysis.crosscoder`). Its inputs: ``artifacts/sae/crosscoder_{base}_{domain}/layer_{i}/{tag}``
(and ``{seed_tag}`` for its seed stability), trained by ``python train.py task=crosscoder``, and where they
exist the dictionary-size sweep's ``{tag}_sweep{latents}`` (:mod:`finsae.analysis.crosscoder_sweep`); a
crosscoder of another pair or width is logged and skipped (the method reads "not run" without the first)."""

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
from finsae.analysis.crosscoder_plots import plot_delta_by_layer, plot_sweep
from finsae.analysis.crosscoder_sweep import SWEEP, SWEEP_COLUMNS, SweepPoint, sweep_table, sweep_tags
from finsae.analysis.method_plots import plot_class_counts
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
    folder: Path
    """Its SAE folder."""
    sweep: tuple[SweepPoint, ...] = ()
    """The other sizes of the dictionary-size sweep at this layer."""


class Crosscoder(DiffingMethod):
    name = NAME
    tables = (TableSpec(NAME, "crosscoder.parquet", science.CROSSCODER_COLUMNS, "crosscoder table",
                        " with the pair's crosscoders trained (python train.py task=crosscoder layer=i)", exact=True),
              TableSpec(SWEEP, "crosscoder_sweep.parquet", SWEEP_COLUMNS, "crosscoder dictionary-size sweep",
                        " with the sweep's crosscoders trained (python -m finsae.demo --profile full)",
                        exact=True))
    context_models = (NAME,)
    findings_header = ("crosscoder: domain-only / base-only / shared (seed 1) (seed stability); re-weighted "
                       "to base / twin (seed 1); median delta; shared latents' block cosine high / low")
    signal_label = "crosscoder (domain-only latents)"
    seed_statistics = ("n_shared", "n_base_only", "n_domain_only", "n_domain_only_financial", "n_reweighted")
    report_columns = ("n_shared", "n_base_only", "n_domain_only", "n_domain_only_financial", "n_reweighted",
                      "delta_median", "crosscoder_seed_stability")

    def inputs(self, data: LayerData) -> CrosscoderInputs | None:
        s = data.saes
        name = crosscoder_name(s.base, s.domain)
        base, domain = data.acts(s.base), data.acts(s.domain)
        found = [_pair_crosscoder(s.path(name, data.layer, t), s.base, s.domain, base.shape[1])
                 for t in (s.tag, s.seed_tag)]
        if found[0] is None:
            return None
        (sae, scales), seed1 = found
        sweep = []
        for tag in sweep_tags(s.artifacts, name, s.tag, data.layer):
            point = _pair_crosscoder(s.path(name, data.layer, tag), s.base, s.domain, base.shape[1])
            if point is not None:
                sweep.append(SweepPoint(tag, point[0], PairedArray(base, domain, point[1]),
                                        s.path(name, data.layer, tag)))
        return CrosscoderInputs(sae, PairedArray(base, domain, scales), seed1[0] if seed1 else None,
                                PairedArray(base, domain, seed1[1]) if seed1 else None,
                                s.path(name, data.layer), tuple(sweep))

    def analyze(self, inputs: CrosscoderInputs, data: LayerData, earlier: dict[str, MethodResult],
                say: Say) -> MethodResult:
        xc = science.analyze_layer(data.layer, inputs.sae, inputs.rows, data.held, data.doc_of_row,
                                   data.char_start, data.analysis, sae_seed1=inputs.sae_seed1,
                                   paired_rows_seed1=inputs.rows_seed1)
        tables = {NAME: xc.table}
        if inputs.sweep:
            say(f"{NAME} sweep ({len(inputs.sweep) + 1} sizes)")
            first = (data.saes.tag, xc.table, inputs.folder)
            tables[SWEEP] = sweep_table(data.layer, first, list(inputs.sweep), data.analysis.crosscoder,
                                        xc.row.nu_eps_shared)
        return MethodResult(xc.row, tables, {NAME: xc.contexts})

    def sae_folders(self, saes: PairSaes, cfg) -> list[tuple[str, str]]:
        name = crosscoder_name(saes.base, saes.domain)
        seeds = saes.seed_tags or (saes.seed_tag,)
        return [(name, t) for t in (saes.tag, *seeds, *sweep_tags(saes.artifacts, name, saes.tag))]

    def figures(self, frames: dict[str, pd.DataFrame], cfg, pair: str) -> dict:
        table = frames.get(NAME)
        if table is None or not len(table):
            return {}
        layers = frames["layers"]
        have = layers[column(layers, "n_domain_only").notna()].sort_values("layer")
        figs = {"crosscoder_delta": plot_delta_by_layer(table, f"{pair}: crosscoder relative decoder norm",
                                                        cfg.crosscoder),
                "crosscoder_classes_by_layer": plot_class_counts(have, f"{pair}: crosscoder latent classes")}
        sweep = frames.get(SWEEP)
        if sweep is not None and len(sweep):
            figs[SWEEP] = plot_sweep(sweep, f"{pair}: crosscoder model-only latents by dictionary size")
        return figs

    def findings_cell(self, row: pd.Series) -> str | None:
        if not math.isfinite(number(row, "n_domain_only")):
            return None

        def count(col: str) -> str:
            return f"{ci_text(row, col, '{:.0f}')} ({fmt(number(row, f'{col}_seed1'), '{:.0f}')})"

        def num(col: str, spec: str = "{:.0f}") -> str:
            return fmt(number(row, col), spec)

        return (f"{count('n_domain_only')} / {count('n_base_only')} / {count('n_shared')} "
                f"({num('crosscoder_seed_stability', '{:.2f}')}); re-weighted {num('n_reweighted_base')} / "
                f"{num('n_reweighted_domain')} ({num('n_reweighted_seed1')}){_examples(row)}; median "
                f"{num('delta_median', '{:.2f}')}; "
                f"shared cos {num('n_shared_cos_high')} / {num('n_shared_cos_low')}")

    def signal(self, layers: pd.DataFrame) -> pd.Series:
        return pd.to_numeric(column(layers, "n_domain_only"), errors="coerce")

    def describe(self, r: dict) -> str:
        return (f"crosscoder {r['n_shared']} shared / {r['n_base_only']} base-only / {r['n_domain_only']} "
                f"domain-only / {r['n_reweighted']} re-weighted (seed stability "
                f"{r['crosscoder_seed_stability']:.2f}; {r['crosscoder_cutoffs']} cut-offs)")


def _examples(row: pd.Series) -> str:
    """The re-weighted examples of a findings row, e.g. `` (e.g. 412 (delta 0.84, cos 0.97))``, or ""."""
    text = row.get("reweighted_examples") if "reweighted_examples" in row else None
    if not isinstance(text, str) or not text:
        return ""
    return " (e.g. " + "; ".join(text.split("; ")[:2]) + ")"


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
