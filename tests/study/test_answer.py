"""The answer's sentence generators (finsae.report.answer), each on small synthetic stage results, for both
outcomes; the readable-table helpers (finsae.report.tables, md_table, page.table, page.markdown)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finsae.labeling.summary import LabelSummary
from finsae.report import answer, page
from finsae.report.markdown import md_table
from finsae.report.tables import drop_empty, label_summary_tables, per_layer_display

NAN = float("nan")


def _layers(ratio, lo, hi, overlap=(0.4, 0.2, 0.3)) -> pd.DataFrame:
    return pd.DataFrame({"layer": [0, 1, 2], "overlap": list(overlap),
                         "overlap_seed_ceiling": [0.5, 0.45, 0.5], "overlap_cross_seed": [0.38, 0.18, 0.29],
                         "specialized_over_floor": ratio, "specialized_over_floor_lo": lo,
                         "specialized_over_floor_hi": hi})


def test_diffing_answer_names_the_layers_above_the_seed_floor():
    text = answer.diffing_answer("p", _layers([1.1, 2.5, 1.8], [0.9, 1.6, 1.2], [1.3, 3.4, 2.4]))
    assert "differ most from the base's at layer 1 (overlap 0.200; across seeds 0.180 vs 0.450" in text
    assert "exceed the seed floor at layers 1, 2 (most at layer 1: 2.50x the floor [1.60, 3.40])" in text


def test_diffing_answer_says_when_no_layer_beats_the_seed_floor():
    text = answer.diffing_answer("p", _layers([1.1, 0.9, 1.3], [0.7, 0.6, 0.95], [1.5, 1.2, 1.7]))
    assert "at no layer do its specialized latents exceed the seed floor" in text
    assert "at most 1.30x the floor [0.95, 1.70], at layer 2" in text


def test_diffing_answer_without_seed_repeats_or_differences():
    unseeded = answer.diffing_answer("p", _layers([NAN] * 3, [NAN] * 3, [NAN] * 3))
    assert "no seed repeats were trained" in unseeded
    same = answer.diffing_answer("p", _layers([NAN] * 3, [NAN] * 3, [NAN] * 3, overlap=(1.0, 1.0, 1.0)))
    assert "match the base's one to one at every layer" in same
    assert "no per-layer results" in answer.diffing_answer("p", pd.DataFrame())


def _strategy(set_, sharpe, lo, hi, dsr, period="headline", strategy="long_short"):
    return {"set": set_, "strategy": strategy, "period": period, "sharpe": sharpe, "sharpe_lo": lo,
            "sharpe_hi": hi, "dsr": dsr, "n_trials": 12, "cost_bps": 10.0}


def test_backtest_answer_no_set_profitable():
    rows = [_strategy("price", -4.06, -6.0, -2.0, 0.0), _strategy("domain_sae", 0.8, -0.4, 2.0, 0.6),
            _strategy("domain_sae", 9.0, 8.0, 10.0, 1.0, period="full")]  # not the headline period: ignored
    text = answer.backtest_answer(rows)
    assert text.startswith("No feature set trades profitably after costs (10 bps per side)")
    assert "the best is domain_sae long-short: net Sharpe 0.80 [-0.40, 2.00], DSR 0.60 over 12 trials" in text


def test_backtest_answer_names_the_profitable_sets():
    rows = [_strategy("price", -1.0, -2.0, 0.5, 0.1), _strategy("domain_sae", 2.1, 0.7, 3.5, 0.97),
            _strategy("sentiment", 1.5, 0.1, 2.9, 0.96, strategy="long_only"),
            _strategy("base_sae", 1.9, 0.4, 3.4, 0.90)]  # CI above 0 but DSR short of 0.95: not profitable
    text = answer.backtest_answer(rows)
    assert text.startswith("2 feature set(s) trade profitably after costs (10 bps per side) "
                           "(domain_sae, sentiment;")
    assert "strongest is domain_sae long-short: net Sharpe 2.10 [0.70, 3.50], DSR 0.97" in text
    assert not answer.profitable(rows[3]) and answer.profitable(rows[1])
    assert "no strategy" in answer.backtest_answer([])


def _labels(**scores) -> LabelSummary:
    return LabelSummary(pair="p", backend="x", llm="qwen", prompt_version="v", scorers=["embedding"],
                        n_selected=10, n_targets=5, n_controls=5, n_labelled=10, n_skipped=0,
                        n_failed=0, **scores)


def test_labels_answer_uses_the_matched_control_not_the_shuffled_one():
    s = _labels(embedding_auroc=0.707, embedding_auroc_control=0.555, embedding_auroc_diff=0.152,
                embedding_auroc_diff_lo=0.1, embedding_auroc_diff_hi=0.2,
                embedding_auroc_matched_control=0.722,
                embedding_auroc_matched_diff=-0.071, embedding_auroc_matched_diff_lo=-0.221,
                embedding_auroc_matched_diff_hi=0.101)
    text = answer.labels_answer(s)
    assert ("do not beat selectivity-matched control latents on embedding AUROC (0.707 vs 0.722, "
            "difference -0.071 [-0.221, +0.101])") in text
    assert "0.555" not in text


def test_labels_answer_beats_and_loses():
    beats = _labels(detection_balanced_accuracy=0.8, detection_balanced_accuracy_matched_control=0.6,
                    detection_balanced_accuracy_matched_diff=0.2,
                    detection_balanced_accuracy_matched_diff_lo=0.1,
                    detection_balanced_accuracy_matched_diff_hi=0.3)
    beat = answer.labels_answer(beats)
    assert "beat selectivity-matched control latents on detection balanced accuracy" in beat
    loses = _labels(embedding_auroc=0.5, embedding_auroc_control=0.7, embedding_auroc_diff=-0.2,
                    embedding_auroc_diff_lo=-0.3, embedding_auroc_diff_hi=-0.1)
    text = answer.labels_answer(loses)
    assert "lose to shuffled labels on embedding AUROC" in text
    assert "selectivity-matched control was not run" in text
    assert "no label score was measured" in answer.labels_answer(_labels())


def test_drop_empty_hides_all_na_columns_and_rows_and_says_which():
    df = pd.DataFrame({"name": ["a", "b", "c"], "x": [1.0, NAN, 2.0], "y": [NAN, NAN, NAN],
                       "z": ["u", None, "w"]})
    shown, note = drop_empty(df)
    assert list(shown.columns) == ["name", "x", "z"] and list(shown["name"]) == ["a", "c"]
    assert note == "1 column(s) all n/a hidden: y; 1 row(s) all n/a hidden: b."
    assert drop_empty(df.drop(columns="y").dropna()).note == ""


def test_md_table_transposes_a_wide_one_row_table_and_hides_na():
    wide = pd.DataFrame([{f"c{i}": (NAN if i % 2 else i) for i in range(30)}])
    text = md_table(wide)
    assert text.startswith("| field | value |") and "| c0 | 0 |" in text and "c1 |" not in text
    assert "15 column(s) all n/a hidden: c1, c3" in text
    narrow = md_table(pd.DataFrame({"name": ["u", "v"], "a": [1, 2], "b": [NAN, NAN]}))
    assert narrow.splitlines()[0] == "| name | a |" and "hidden: b" in narrow


def test_a_table_of_nothing_but_na_says_so():
    df = pd.DataFrame({"name": ["a", "b"], "x": [NAN, NAN]})
    assert md_table(df).startswith("(nothing measured: 1 column(s) all n/a hidden: x; 2 row(s)")
    html = page.table(df, caption="cap")
    assert "<table" not in html and "cap: nothing measured" in html


def test_md_table_transposes_what_is_one_row_once_na_rows_are_hidden():
    scores = pd.DataFrame([{"metric": m, **{f"c{i}": (i if m == "a" else NAN) for i in range(12)}}
                           for m in ("a", "b", "c")])
    text = md_table(scores)
    assert text.startswith("| field | value |\n|---|---|\n| metric | a |\n| c0 | 0 |")
    assert "2 row(s) all n/a hidden: b, c" in text


def test_per_layer_display_names_the_overall_row():
    t = per_layer_display(pd.DataFrame({"model": ["all", "m"], "layer": [-99, 3], "score": [0.5, 0.6]}))
    assert list(t["layer"]) == [3, "all"] and "-99" not in md_table(t)


def test_label_summary_becomes_short_tables():
    s = _labels(embedding_auroc=0.7, embedding_auroc_control=0.5).to_dict()
    (_, run), (_, scores) = label_summary_tables(s)
    assert len(run) <= 16 and "cost_usd" not in set(run["field"])  # NaN cost: not a row
    shown, note = drop_empty(scores)
    assert list(shown["metric"]) == ["embedding_auroc"] and "detection_balanced_accuracy" in note
    assert set(shown.columns) == {"metric", "score", "shuffled labels"}


def test_page_table_scrolls_and_notes_hidden():
    df = pd.DataFrame({"name": ["u", "v"], "a": [1.0, 2.0], "b": [np.nan, np.nan]})
    html = page.table(df, caption="cap")
    assert '<div class="scroll"><table>' in html and "hidden: b" in html and "<th" in html
    assert html.count("<th ") == 2 and html.startswith('<p class="caption">cap</p>')


@pytest.mark.parametrize("bullet", ["-", "*", "1."])
def test_markdown_list_renders_as_a_list(bullet):
    html = page.markdown(f"Intro line\n\n{bullet} first\n  continued\n{bullet} second `x`\n\nafter")
    assert "<ul><li>first continued</li><li>second <code>x</code></li></ul>" in html
    assert html.startswith("<p>Intro line</p>") and html.endswith("<p>after</p>")


def _book(best, dsr, breakeven, lo=None):
    return {"period": "headline", "n_books": 4, "best_set": "sentiment", "best_strategy": "long_short",
            "best_net_sharpe": best, "best_net_sharpe_lo": best - 1 if lo is None else lo,
            "best_gross_sharpe": best + 2, "best_dsr": dsr,
            "median_net_sharpe": best - 1, "median_turnover": 1.25, "median_cost_drag": 0.5,
            "median_breakeven_bps": breakeven,
            "n_breakeven_above_cost": 0, "cost_bps": 10.0}


def test_books_answer_puts_the_daily_and_turnover_aware_books_side_by_side():
    losing = answer.books_answer({"daily": _book(-4.25, 0.0, 3.5), "turnover_aware": _book(0.5, 0.5, 12.5)})
    assert losing.startswith("At 10 bps per side, the daily books' best is sentiment long-short at net "
                             "Sharpe -4.25 (DSR 0.00), their median breakeven 3.5 bps per side; the "
                             "turnover-aware")
    assert losing.endswith("no book trades profitably (none has its net Sharpe's 95% CI above 0 and a DSR of "
                           "at least 0.95).")
    winning = answer.books_answer({"daily": _book(-4.25, 0.0, 3.5), "turnover_aware": _book(2.5, 0.97, 40.0)})
    assert winning.endswith("the turnover-aware books trade profitably (net Sharpe's 95% CI above 0 and a "
                            "DSR of at least 0.95).")
    # a DSR of 0.97 whose Sharpe interval holds 0 is not profitable, nor one without its interval
    for lo in (-0.2, float("nan")):
        books = {"daily": _book(-4.25, 0.0, 3.5), "turnover_aware": _book(2.5, 0.97, 40.0, lo)}
        wide = answer.books_answer(books)
        assert "no book trades profitably" in wide
    assert "turnover-aware books did not run" in answer.books_answer({"daily": _book(-1.0, 0.1, 2.0)})
    named = answer.books_answer({"daily": _book(-4.25, 0.0, 3.5)}, "minilm_fin_claim")
    assert named.startswith("minilm_fin_claim: at 10 bps per side, the daily books' best is")


def test_comparison_answer_calls_nothing_financial_without_a_seed_spread():
    cmp = pd.DataFrame({"layer": [2, 3], "measure": ["relative_change"] * 2, "text_type": ["all"] * 2,
                        "position": ["tokens"] * 2, "verdict": ["no seed spread"] * 2})
    assert "nothing is called financial: the like-for-like fine-tune seed pair is missing" in \
        answer.comparison_answer(cmp)
    within = cmp.assign(verdict="within seed spread")
    assert "lies within the fine-tune seed spread" in answer.comparison_answer(within)


def test_claim_answer_gives_the_claims_verdict_without_its_numbers():
    rows = [{"comparison": c, "set": "changed_sae", "baseline": f"{c}_sae", "metric": "rank_ic",
             "strategy": "long_short", "period": "headline", "diff": d, "diff_lo": d - 0.01,
             "diff_hi": d + 0.01, "n_days": 200, "changed": "warm start"}
            for c, d in (("unchanged", -0.0125), ("sentiment", 0.0))]
    text = answer.claim_answer("minilm_fin_claim", rows)
    assert text.startswith("The seed's claim (minilm_fin_claim): do the latents fine-tuning changed carry")
    assert text.endswith("? No: their daily rank IC falls short of the unchanged latents.")
