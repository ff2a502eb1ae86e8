"""Independent SAEs: two separately trained dictionaries (base and twin, same tag) matched by decoder cosine,
every number beside its control (:mod:`finsae.analysis.compare`), and its counts and overlaps at every seed
the layer has (:mod:`finsae.analysis.seed_repeats`: mean ± seed SD). Its SAEs are required: the stage refuses
a layer without them before any work (:meth:`finsae.analysis.saes.PairSaes.resolve_layers`)."""

from __future__ import annotations

import math
from typing import NamedTuple

import pandas as pd

from finsae.analysis.artifacts import CURVES_TABLE, FEATURES_COLUMNS, FEATURES_TABLE, TableSpec
from finsae.analysis.compare import LayerInputs, compare_layer
from finsae.analysis.evolution import all_figures
from finsae.analysis.findings import NOT_RUN, ci_text
from finsae.analysis.methods.base import DiffingMethod, LayerData, MethodResult, Say, number
from finsae.analysis.plotting import column
from finsae.analysis.saes import PairSaes
from finsae.analysis.seed_repeats import SeedRepeatInputs, SeedSaes, counts_from_layer_scores, seed_samples
from finsae.sae import load


class IndependentInputs(NamedTuple):
    layer: LayerInputs
    """Seed 0 with the first seed repeat (seed ceilings and floor)."""
    seeds: SeedRepeatInputs
    """Every seed with SAEs of both models (the seed SDs)."""


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

    def inputs(self, data: LayerData) -> IndependentInputs:
        s, layer = data.saes, data.layer
        saes = {m: load(s.path(m, layer)) for m in (s.base, s.domain)}
        inp = LayerInputs(
            layer=layer, base_name=s.base, domain_name=s.domain, base=saes[s.base], domain=saes[s.domain],
            base_acts=data.acts(s.base), domain_acts=data.acts(s.domain), doc_of_row=data.doc_of_row,
            char_start=data.char_start, heldout=data.held, base_seed=s.seed_sae(s.base, layer, saes[s.base]),
            domain_seed=s.seed_sae(s.domain, layer, saes[s.domain]))
        inp.adjacent_layer, inp.adjacent = s.adjacent_sae(s.base, layer)
        seeds = [SeedSaes(s.tag, inp.base, inp.domain)]
        for tag in s.repeats(layer):
            pair = [s.seed_sae(m, layer, saes[m], tag) for m in (s.base, s.domain)]
            if None not in pair:
                seeds.append(SeedSaes(tag, *pair))
        return IndependentInputs(inp, SeedRepeatInputs(seeds, inp.base_acts, inp.domain_acts, data.doc_of_row,
                                                       data.held))

    def analyze(self, inputs: IndependentInputs, data: LayerData, earlier: dict[str, MethodResult],
                say: Say) -> MethodResult:
        res = compare_layer(inputs.layer, data.analysis, progress=say)
        # the SAEs the comparison scored (seed 0, first repeat) are counted from its scores, not encoded again
        known = counts_from_layer_scores(res.scores, inputs.seeds, data.saes.seed_tag, data.analysis)
        return MethodResult(res.row, {FEATURES_TABLE: res.features, CURVES_TABLE: res.curves}, res.contexts,
                            seeds=seed_samples(inputs.seeds, data.analysis, progress=say, known=known))

    def sae_folders(self, saes: PairSaes, cfg) -> list[tuple[str, str]]:
        return [(m, t) for m in (saes.base, saes.domain) for t in (saes.tag, *saes.seed_tags)]

    def figures(self, frames: dict[str, pd.DataFrame], cfg, pair: str) -> dict:
        return all_figures(frames["layers"], frames[FEATURES_TABLE], cfg.tau, cfg.min_auroc, pair)

    def findings_cell(self, row: pd.Series) -> str:
        """The seed repeats' specialized count vs their floor as mean ± seed SD [hierarchical interval] ("no
        power" where the floor is saturated); the seed-1 values with their document intervals where the
        layer's table has no seed estimates."""
        if not math.isfinite(number(row, "n_specialized_seed1")):
            return NOT_RUN + " (no seed repeats)"
        texts = [row.get(f"{k}_seed_text") for k in ("n_specialized_repeat", "n_specialized_seed_floor")]
        if all(isinstance(t, str) and t for t in texts):
            return f"{texts[0]} vs {texts[1]}"
        return f"{ci_text(row, 'n_specialized_seed1', '{:.0f}')} vs {ci_text(row, 'n_specialized_seed_floor', '{:.0f}')}"

    def signal(self, layers: pd.DataFrame) -> pd.Series:
        """The seed repeats' mean excess over their floor, NaN where that test has no power (never 0); the
        seed-1 difference where a layer has no seed estimates."""
        seed1 = column(layers, "n_specialized_seed1") - column(layers, "n_specialized_seed_floor")
        mean = column(layers, "n_specialized_over_floor_seed_mean")
        # NaN (no estimate at that layer) is not False
        no_power = column(layers, "n_specialized_over_floor_seed_power").eq(0)
        return mean.where(mean.notna(), seed1).mask(no_power)

    def describe(self, r: dict) -> str:
        line = (f"overlap {r['overlap']:.3f} (seed ceilings {r['overlap_seed_ceiling_base']:.3f} base / "
                f"{r['overlap_seed_ceiling_domain']:.3f} domain, covariance null {r['overlap_null']:.3f}), financial "
                f"{r['n_financial_base']} base / {r['n_financial']} domain, specialized {r['n_specialized']}; on "
                f"domain seed 1's financial latents {r['n_specialized_seed1']} unmatched in base vs seed floor "
                f"{r['n_specialized_seed_floor']}")
        if "n_specialized_repeat_seed_text" in r:
            line += (f"; over the seed repeats: specialized {r['n_specialized_repeat_seed_text']} vs floor "
                     f"{r['n_specialized_seed_floor_seed_text']}, cross-seed overlap "
                     f"{r['overlap_cross_seed_seed_text']}")
        return line

