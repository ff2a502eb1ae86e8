"""Finance vs control vs seed pair on planted lens numbers: a change is called financial only when the
whole finance − control interval lies beyond the fine-tune seed spread, in either direction; a seed folder of
the two twins against each other, or a missing pair, is said plainly and calls nothing financial; the findings
lead with the lens and carry the comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finsae.analysis.artifacts import write_analysis_table
from finsae.analysis.comparison import (
    COLUMNS,
    COMPARISON_MD,
    COMPARISON_TABLE,
    PairLens,
    compare_lens,
    comparison_lines,
    refresh_comparison,
)
from finsae.analysis.findings import findings_markdown
from finsae.analysis.lens import LensConfig
from finsae.analysis.summary import AnalysisSummary
from finsae.paths import analysis_dir


def _lens(values: dict[tuple[int, str], tuple[float, float]]) -> pd.DataFrame:
    """A lens table: (layer, measure) -> (value, interval half-width), on all text, tokens."""
    rows = [{"layer": layer, "text_type": "all", "position": "tokens", "measure": measure, "value": v,
             "lo": v - h, "hi": v + h, "n_docs": 100, "n_tokens": 5000, "bootstrap": "exact"}
            for (layer, measure), (v, h) in values.items()]
    return pd.DataFrame(rows)


FINANCE = PairLens("fin", "base", "twin", _lens({(3, "relative_change"): (0.50, 0.03),
                                                  (3, "cka"): (0.60, 0.03),
                                                  (4, "relative_change"): (1.0, 0.05)}))
CONTROL = PairLens("ctl", "base", "control_twin", _lens({(3, "relative_change"): (0.30, 0.03),
                                                          (3, "cka"): (0.90, 0.03)}))


def _seed(rel: float, cka: float, base: str = "base") -> PairLens:
    values = {(3, "relative_change"): (rel, 0.03), (3, "cka"): (cka, 0.03)}
    return PairLens("seed", base, "twin_s2", _lens(values))


def _verdicts(cmp) -> dict[str, str]:
    return dict(zip(cmp.table["measure"], cmp.table["verdict"], strict=True))


def test_financial_only_beyond_the_seed_spread_in_both_directions():
    # effect +0.20 [0.158, 0.242] (relative change) and -0.30 (CKA); seed spreads 0.05 and 0.02
    cmp = compare_lens(FINANCE, CONTROL, _seed(0.45, 0.62))
    assert cmp.seed_like_for_like and list(cmp.table.columns) == list(COLUMNS)
    r = cmp.table.set_index("measure")
    np.testing.assert_allclose(r.loc["relative_change", ["effect", "seed_spread"]], [0.20, 0.05])
    np.testing.assert_allclose(r.loc["relative_change", "effect_lo"], 0.20 - np.hypot(0.03, 0.03))
    assert _verdicts(cmp) == {"relative_change": "financial", "cka": "financial"}
    # the same effects against a seed spread as large as them: not financial
    cmp = compare_lens(FINANCE, CONTROL, _seed(0.30, 0.30))
    assert _verdicts(cmp) == {"relative_change": "within seed spread", "cka": "within seed spread"}
    # a spread just inside the interval's near end: the interval must clear it entirely
    cmp = compare_lens(FINANCE, CONTROL, _seed(0.50 - 0.17, 0.62))
    assert _verdicts(cmp)["relative_change"] == "within seed spread"


def test_a_twin_vs_twin_seed_folder_is_shown_but_calls_nothing_financial():
    cmp = compare_lens(FINANCE, CONTROL, _seed(0.05, 0.98, base="twin"))
    assert not cmp.seed_like_for_like
    assert set(cmp.table["verdict"]) == {"no seed spread"} and cmp.table["seed_spread"].isna().all()
    np.testing.assert_allclose(cmp.table.set_index("measure").loc["relative_change", "seed"], 0.05)
    text = "\n".join(comparison_lines(cmp))
    assert "not base vs another seed" in text and "Missing for a verdict" in text
    assert "Called financial (every measure, text type and position of comparison.parquet): none." in text


def test_missing_pairs_are_said_plainly():
    cmp = compare_lens(FINANCE, "`ctl`: no activation_lens.parquet", "`seed`: no activation_lens.parquet")
    assert not len(cmp.table) and "Control pair missing" in " ".join(cmp.notes)
    assert "nothing to compare" in comparison_lines(cmp)[-1]
    cmp = compare_lens(FINANCE, CONTROL, "`seed`: no activation_lens.parquet")
    assert set(cmp.table["verdict"]) == {"no seed spread"} and "Seed pair missing" in " ".join(cmp.notes)
    assert "Layer 4: analysed for the finance pair only" in " ".join(cmp.notes)


def _analyse(art, name: str, lens: PairLens, cfg: LensConfig) -> list[str] | None:
    """As the stage does: the lens table, the comparison refreshed, then the summary published."""
    folder = analysis_dir(art, name)
    folder.mkdir(parents=True)
    write_analysis_table(folder, "activation_lens", lens.table)
    lines = refresh_comparison(art, name, cfg, (lens.base, lens.domain))
    AnalysisSummary(pair=name, base=lens.base, domain=lens.domain, tag="t", seed_tag="t_seed1").write(folder)
    return lines


@pytest.mark.parametrize("order", [("fin", "ctl", "seed"), ("seed", "ctl", "fin")])
def test_the_last_of_the_three_analyses_writes_the_whole_comparison(tmp_path, order):
    """Each pair analysed once on a fresh store, its summary written after the refresh (as the stage
    does): whichever ends last, the comparison holds all three."""
    cfg = LensConfig(finance_pair="fin", control_pair="ctl", seed_pair="seed")
    pairs = {"fin": FINANCE, "ctl": CONTROL, "seed": _seed(0.45, 0.62)}
    for name in order:
        lines = _analyse(tmp_path, name, pairs[name], cfg)
        assert (lines is not None) == (name == "fin")
    folder = analysis_dir(tmp_path, "fin")
    md = (folder / COMPARISON_MD).read_text()
    assert md.startswith("# Finance vs control vs fine-tune seed") and "| 3 | relative_change | all |" in md
    table = pd.read_parquet(folder / COMPARISON_TABLE)
    assert set(table["verdict"]) == {"financial"}
    assert refresh_comparison(tmp_path, "another_pair", cfg) is None


def test_findings_lead_with_the_lens_and_carry_the_comparison():
    layers = pd.DataFrame({"layer": [0, 1, 2], "lens_rel_change": [0.04, 0.5, 2.1],
                           "lens_rel_change_lo": [0.03, 0.4, 1.9], "lens_rel_change_hi": [0.05, 0.6, 2.3],
                           "lens_affine_r2": [0.99, 0.8, 0.3],
                           "lens_rel_change_fin_minus_gen_lo": [-0.01, 0.1, -0.2],
                           "lens_rel_change_fin_minus_gen_hi": [0.01, 0.3, -0.1],
                           "lens_cls_rel_change": [np.nan] * 3, "overlap": [0.5] * 3,
                           "overlap_index": [0.1] * 3, "n_specialized": [1, 2, 3]})
    lines = comparison_lines(compare_lens(FINANCE, CONTROL, _seed(0.45, 0.62)))
    md = findings_markdown(layers, "fin", "base", "twin", 0.7, 0.6, 0.05, {"financial": 10}, comparison=lines)
    sections = md.split("\n## ")
    assert sections[1].startswith("Where the twin differs") and sections[2].startswith("Is it financial?")
    assert "differ most at layer 2 (relative change 2.100 [1.900, 2.300])" in sections[1]
    assert "(held-out R² >= 0.9) at L0; less at L1, L2" in sections[1]
    assert "interval above 0) at L1; less (interval below 0) at L2" in sections[1]
    assert "[CLS] was not measured" in sections[1] and "| financial |" in sections[2]
    md = findings_markdown(layers, "fin", "base", "twin", 0.7, 0.6, 0.05, {"financial": 10})
    assert "Not compared in this run" in md.split("\n## ")[2]
