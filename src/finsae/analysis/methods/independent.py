"""Independent SAEs: two separately trained dictionaries (base and twin, same tag) matched by decoder cosine,
every number beside its control (:mod:`finsae.analysis.compare`). Its SAEs are required: the stage refuses a
layer without them before any work (:meth:`finsae.analysis.saes.PairSaes.resolve_layers`)."""

from __future__ import annotations

import math

import pandas as pd

from finsae.analysis.artifacts import CURVES_TABLE, FEATURES_COLUMNS, FEATURES_TABLE, TableSpec
from finsae.analysis.compare import LayerInputs, compare_layer
from finsae.analysis.evolution import all_figures
from finsae.analysis.findings import NOT_RUN, ci_text
from finsae.analysis.methods.base import DiffingMethod, LayerData, MethodResult, Say, number
from finsae.analysis.plotting import column
from finsae.analysis.saes import PairSaes
from finsae.sae import load


class IndependentSaes(DiffingMethod):
    name = "independent"
    tables = (TableSpec(FEATURES_TABLE, "features.parquet", FEATURES_COLUMNS, "analysis table features.parquet"),
              TableSpec(CURVES_TABLE, "curves.parquet", (), "analysis table curves.parquet"))
    findings_header = "independent SAEs: specialized (domain seed 1) vs seed floor"
    signal_label = "independent SAEs (specialized above the seed floor)"
    report_columns = ("overlap", "overlap_seed_ceiling_base", "overlap_seed_ceiling_domain", "overlap_null",
                      "overlap_null_adjacent", "overlap_random", "overlap_index", "overlap_count_max_cardinality",
                      "n_financial_base", "n_financial", "n_specialized_seed1", "n_specialized_seed_floor",
                      "specialized_over_floor", "cross_fvu_corrected_base_on_domain", "improvement",
                      "improvement_genre")

    def inputs(self, data: LayerData) -> LayerInputs:
        s, layer = data.saes, data.layer
        saes = {m: load(s.path(m, layer)) for m in (s.base, s.domain)}
        inp = LayerInputs(
            layer=layer, base_name=s.base, domain_name=s.domain, base=saes[s.base], domain=saes[s.domain],
            base_acts=data.acts(s.base), domain_acts=data.acts(s.domain), doc_of_row=data.doc_of_row,
            char_start=data.char_start, heldout=data.held, base_seed=s.seed_sae(s.base, layer, saes[s.base]),
            domain_seed=s.seed_sae(s.domain, layer, saes[s.domain]))
        inp.adjacent_layer, inp.adjacent = s.adjacent_sae(s.base, layer)
        return inp

    def analyze(self, inputs: LayerInputs, data: LayerData, earlier: dict[str, MethodResult],
                say: Say) -> MethodResult:
        res = compare_layer(inputs, data.analysis, progress=say)
        return MethodResult(res.row, {FEATURES_TABLE: res.features, CURVES_TABLE: res.curves}, res.contexts)

    def sae_folders(self, saes: PairSaes) -> list[tuple[str, str]]:
        return [(m, t) for m in (saes.base, saes.domain) for t in (saes.tag, saes.seed_tag)]

    def figures(self, frames: dict[str, pd.DataFrame], cfg, pair: str) -> dict:
        return all_figures(frames["layers"], frames[FEATURES_TABLE], cfg.tau, cfg.min_auroc, pair)

    def findings_cell(self, row: pd.Series) -> str:
        if not math.isfinite(number(row, "n_specialized_seed1")):
            return NOT_RUN + " (no seed repeats)"
        return f"{ci_text(row, 'n_specialized_seed1', '{:.0f}')} vs {ci_text(row, 'n_specialized_seed_floor', '{:.0f}')}"

    def signal(self, layers: pd.DataFrame) -> pd.Series:
        return column(layers, "n_specialized_seed1") - column(layers, "n_specialized_seed_floor")

    def describe(self, r: dict) -> str:
        return (f"overlap {r['overlap']:.3f} (seed ceilings {r['overlap_seed_ceiling_base']:.3f} base / "
                f"{r['overlap_seed_ceiling_domain']:.3f} domain, covariance null {r['overlap_null']:.3f}), financial "
                f"{r['n_financial_base']} base / {r['n_financial']} domain, specialized {r['n_specialized']}; on "
                f"domain seed 1's financial latents {r['n_specialized_seed1']} unmatched in base vs seed floor "
                f"{r['n_specialized_seed_floor']}")

