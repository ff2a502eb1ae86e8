"""The analysis side of the report on a planted analysis folder: the activation lens first in the analysis
section, the finance-vs-control verdicts, the seed estimates ("no power" where a test cannot move), a method's
new contract table shown without a report edit, and a headline that compares like with like (domain seed 1's
specialized latents against their seed floor, the cross-seed overlap against the seed ceilings)."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
from report_rendering import html_tables, md_tables

from finsae.analysis import artifacts as analysis_files
from finsae.analysis.comparison import COLUMNS as COMPARISON_COLUMNS
from finsae.analysis.comparison import COMPARISON_TABLE
from finsae.analysis.lens import TABLE_COLUMNS
from finsae.analysis.methods import METHODS
from finsae.analysis.summary import AnalysisSummary
from finsae.report import markdown, page
from finsae.report.build import diffing_blocks
from finsae.report.headline import headline
from finsae.report.study import Study

PAIR = "minilm_fin"
LAYERS = (2, 3)
SEED0_SPECIALIZED, SEED1_SPECIALIZED, FLOOR = 232, 43, 35
"""Planted so that seed 0's count and seed 1's differ: only seed 1's may stand beside the floor."""
SAME_INIT_OVERLAP = 0.1561
"""The same-initialisation overlap: never beside a seed ceiling."""
SEEDS = {  # statistic -> per layer (mean, sd, lo, hi, power, text)
    "n_specialized_repeat": [(40.5, 3.25, 36.0, 45.0, True), (52.0, 4.5, 47.0, 57.0, True)],
    "n_specialized_seed_floor": [(33.0, 2.0, 30.0, 36.0, True), (32.0, 0.0, 32.0, 32.0, False)],
    "n_specialized_over_floor": [(7.5, 1.5, 5.0, 10.0, True), (20.0, 4.5, 15.0, 25.0, False)],
    "overlap_cross_seed": [(0.1375, 0.0125, 0.12, 0.16, True), (0.0875, 0.0125, 0.07, 0.1, True)],
    "overlap_seed_ceiling_base": [(0.1475, 0.005, 0.14, 0.155, True), (0.1325, 0.0075, 0.12, 0.145, True)],
    "overlap_seed_ceiling_domain": [(0.1425, 0.005, 0.135, 0.15, True), (0.1225, 0.005, 0.115, 0.13, True)],
}


def _seed_columns() -> dict[str, list]:
    cols: dict[str, list] = {}
    for name, per_layer in SEEDS.items():
        for k, i in (("mean", 0), ("sd", 1), ("lo", 2), ("hi", 3)):
            cols[f"{name}_seed_{k}"] = [v[i] for v in per_layer]
        cols[f"{name}_n_seeds"] = [3, 3]
        cols[f"{name}_seed_power"] = [v[4] for v in per_layer]
        cols[f"{name}_seed_text"] = [f"{m:g} ± {sd:g} [{lo:g}, {hi:g}] (3 seeds)" if power
                                     else "no power (every financial latent unmatched in both SAEs)"
                                     for m, sd, lo, hi, power in per_layer]
    return cols


def _layers() -> pd.DataFrame:
    return pd.DataFrame({"layer": list(LAYERS), "overlap": [SAME_INIT_OVERLAP, 0.25],
                         "n_specialized": [SEED0_SPECIALIZED - 100, 100], "n_specialized_seed1": [20, 23],
                         "n_specialized_seed_floor": [17, 18], "specialized_over_floor": [1.18, 1.28],
                         "specialized_over_floor_lo": [0.9, 1.05], "specialized_over_floor_hi": [1.4, 1.5],
                         **_seed_columns()})


def _lens() -> pd.DataFrame:
    rows = []
    change = {2: 0.2, 3: 0.44}
    for layer in LAYERS:
        for position in ("tokens", "cls"):
            for text, scale in (("financial", 1.25), ("general", 0.75), ("all", 1.0), ("difference", 0.5)):
                for measure, value in (("relative_change", change[layer] * scale), ("cka", 0.9 - layer / 10),
                                       ("affine_r2", 0.95 - layer / 20), ("top3_share_twin", 0.1)):
                    rows.append({"layer": layer, "text_type": text, "position": position, "measure": measure,
                                 "value": value, "lo": value - 0.01, "hi": value + 0.01, "n_docs": 40,
                                 "n_tokens": 4000, "bootstrap": "exact"})
    return pd.DataFrame(rows)[list(TABLE_COLUMNS)]


def _comparison() -> pd.DataFrame:
    rows = []
    for layer, effect in ((2, 0.02), (3, 0.25)):
        rows.append({"layer": layer, "text_type": "all", "position": "tokens", "measure": "relative_change",
                     "finance": 0.3 + effect, "finance_lo": 0.29 + effect, "finance_hi": 0.31 + effect,
                     "control": 0.3, "control_lo": 0.29, "control_hi": 0.31, "effect": effect,
                     "effect_lo": effect - 0.015, "effect_hi": effect + 0.015, "seed": 0.3 + effect - 0.05,
                     "seed_spread": 0.05,
                     "verdict": "financial" if effect - 0.015 > 0.05 else "within seed spread"})
    return pd.DataFrame(rows)[list(COMPARISON_COLUMNS)]


def _study(tmp_path) -> Study:
    art = tmp_path / "artifacts"
    folder = art / "analysis" / PAIR
    folder.mkdir(parents=True)
    layers = _layers()
    s = AnalysisSummary(pair=PAIR, base="minilm", domain=PAIR, tag="t", seed_tag="t_s1", layers=list(LAYERS),
                        n_specialized=SEED0_SPECIALIZED, n_specialized_seed1=SEED1_SPECIALIZED,
                        n_specialized_seed_floor=FLOOR, mean_overlap=SAME_INIT_OVERLAP,
                        mean_overlap_seed_ceiling=0.148)
    s.add_seed_estimates(layers)
    s.write(folder)
    layers.to_parquet(analysis_files.table_path(folder, "layers"), index=False)
    _lens().to_parquet(analysis_files.table_path(folder, "activation_lens"), index=False)
    _comparison().to_parquet(folder / COMPARISON_TABLE, index=False)
    return Study(art)


def test_headline_compares_seed1_specialized_with_its_floor_and_cross_seed_overlap_with_ceilings(tmp_path):
    h = headline(_study(tmp_path))
    rows = {r.result: r for r in h.rows}
    seed1 = rows[f"diffing {PAIR}: specialized latents of domain seed 1"]
    assert seed1.measured.startswith(f"{SEED1_SPECIALIZED} ")
    assert seed1.control.startswith(f"seed floor {FLOOR} ")
    text = " ".join(f"{r.measured} {r.control}" for r in h.rows)
    assert str(SEED0_SPECIALIZED) not in text  # seed 0's count never stands beside the floor
    assert f"{SAME_INIT_OVERLAP:.3f}" not in text  # nor the same-initialisation overlap beside a ceiling
    layer2 = rows[f"diffing {PAIR} layer 2, over 3 seeds"]
    assert "specialized 40.5 ± 3.25 [36, 45] (3 seeds)" in layer2.measured
    assert "cross-seed overlap 0.1375 ± 0.0125" in layer2.measured
    assert "seed floor 33 ± 2 [30, 36]" in layer2.control
    assert "0.1475 ± 0.005 [0.14, 0.155] (3 seeds) (base)" in layer2.control
    layer3 = rows[f"diffing {PAIR} layer 3, over 3 seeds"]
    assert "over the floor no power" in layer3.measured and "seed floor no power" in layer3.control


def test_answer_leads_with_the_lens_then_whether_it_is_financial(tmp_path):
    sentences = headline(_study(tmp_path)).sentences
    assert sentences[0].startswith(f"{PAIR}: the twin's activations differ most from the base's at layer 3 "
                                   "(relative change 0.440 [0.430, 0.450]")
    assert "larger on financial than on general text at layers 2, 3" in sentences[0]
    assert sentences[1].startswith("Against the control twin and beyond the fine-tune seed spread, 1 of 2 "
                                   "lens measures are called financial, at layer 3")
    assert "feature" in sentences[2] or "specialized" in sentences[2]  # then how (the feature methods)


def test_lens_comes_first_in_the_analysis_section_and_a_method_table_needs_no_edit(tmp_path, monkeypatch):
    study = _study(tmp_path)
    folder = study.artifacts / "analysis" / PAIR
    toy = analysis_files.TableSpec("toy_effect", "toy_effect.parquet", ("layer", "effect"),
                                   "toy effect table")
    monkeypatch.setitem(METHODS, "toy", SimpleNamespace(name="toy", tables=(toy,), report_columns=(),
                                                        context_models=()))
    pd.DataFrame({"layer": [2, 3], "effect": [0.125, 0.875]}).to_parquet(folder / toy.file, index=False)
    blocks = diffing_blocks(study)
    md, html = markdown.render(blocks), page.render(blocks)
    assert html_tables(html) == md_tables(md)
    low = md.lower()
    lens_at, first_layer_table = low.index("activation lens by layer and text type"), low.index("by layer:")
    assert lens_at < low.index("finance vs control") < first_layer_table
    tables = md_tables(md)
    lens = next(t for t in tables if t[0][:2] == ["layer", "text"])
    assert lens[0] == ["layer", "text", "relative change", "CKA", "affine R²"]
    assert lens[1] == ["2", "financial", "0.250 [0.240, 0.260]", "0.700 [0.690, 0.710]",
                       "0.850 [0.840, 0.860]"]
    assert "activation lens at [cls]" in low
    verdicts = next(t for t in tables if "verdict" in t[0])
    assert [r[-1] for r in verdicts[1:]] == ["within seed spread", "financial"]
    toy_table = next(t for t in tables if t[0] == ["layer", "effect"])
    assert toy_table[1:] == [["2", "0.125"], ["3", "0.875"]] and "toy effect table" in low
    seeds = next(t for t in tables if "n_specialized_over_floor" in t[0])
    assert "no power (every financial latent unmatched in both SAEs)" in seeds[2]


def test_a_twin_equal_to_its_base_is_said_not_to_differ():
    """A lens of a model against itself (relative change 0 everywhere) names no layer as where it differs."""
    from finsae.report.answer import lens_answer

    rows = [dict(layer=layer, measure="relative_change", text_type="all", position="tokens", value=v, lo=v,
                 hi=v) for layer, v in ((0, 0.0), (1, 0.0))]
    said = lens_answer("p", pd.DataFrame(rows))
    assert said == "p: the twin's activations do not differ from the base's at any layer (relative change 0)."
    rows[1].update(value=0.2, lo=0.1, hi=0.3)
    assert "differ most from the base's at layer 1" in lens_answer("p", pd.DataFrame(rows))
