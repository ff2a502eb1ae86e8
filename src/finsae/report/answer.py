"""The study's answer in a few sentences, generated from the artifacts (never typed), one generator per stage.

Each generator takes a stage's small result (the activation lens, the finance-vs-control comparison, the
analysis' per-layer table, the backtest's books and claim, the label summary) and says what it found in words,
for either outcome, in the answer's order: where the finance twin differs from its base (the lens), whether
that is financial (against the control twin, beyond the fine-tune seed), how its features differ (against the
seed floor), whether the daily or the turnover-aware books trade profitably after costs and whether the
latents fine-tuning changed carry return information (the seed's claim), and whether the labels beat their
strictest control (the selectivity-matched latents, not the shuffled labels).
The numbers in a sentence are the ones in the headline table beside it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

PROFITABLE_DSR = 0.95
"""A set trades profitably when its net Sharpe's 95% CI is above 0 and its deflated Sharpe (DSR) reaches
this."""
SCORE_NAMES = {"embedding_auroc": "embedding AUROC",
               "detection_balanced_accuracy": "detection balanced accuracy",
               "fuzzing_balanced_accuracy": "fuzzing balanced accuracy",
               "intruder_accuracy": "intruder accuracy"}
"""Each label scorer's headline metric (the summary's field) and its name in a sentence."""


def _ok(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and not math.isnan(float(x))


def ci_text(lo, hi, fmt: str = "+.3f") -> str:
    """A 95% CI as `[lo, hi]` in `fmt`, or "(no CI)" when either end is missing."""
    return f"[{lo:{fmt}}, {hi:{fmt}}]" if _ok(lo) and _ok(hi) else "(no CI)"


def _layers(values: Iterable) -> str:
    ls = [str(int(v)) for v in values]
    return ("layer " if len(ls) == 1 else "layers ") + ", ".join(ls)


def diffing_answer(pair: str, layers: pd.DataFrame) -> str:
    """Where the twin of ``pair`` differs from its base, from the analysis' per-layer table (``layers``:
    ``layer``, ``overlap`` and, where run, ``overlap_cross_seed`` beside ``overlap_seed_ceiling``,
    ``specialized_over_floor`` (domain seed 1's specialized latents over their seed floor) with
    ``_lo``/``_hi``)."""
    if layers is None or layers.empty or "overlap" not in layers:
        return f"{pair}: the feature comparison has no per-layer results."
    t = layers.sort_values("layer")
    low = t.loc[t["overlap"].idxmin()]
    if low["overlap"] >= 1:
        return f"{pair}: the twin's features match the base's one to one at every layer (overlap 1.000)."
    # like with like: a seed ceiling (two seeds of one model) stands beside the cross-seed overlap (base seed
    # 0 vs domain seed 1), never beside the overlap of two SAEs from the same initialisation
    cross = low.get("overlap_cross_seed", float("nan"))
    ceiling = low.get("overlap_seed_ceiling", float("nan"))
    versus = (f"; across seeds {cross:.3f} vs {ceiling:.3f} between two seeds of one model)"
              if _ok(cross) and _ok(ceiling) else ")")
    where = (f"{pair}: the twin's features differ most from the base's at layer {int(low['layer'])} "
             f"(overlap {low['overlap']:.3f}" + versus)
    ratio = t.get("specialized_over_floor")
    if ratio is None or not ratio.map(_ok).any():
        return where + ("; no seed repeats were trained, so its specialized latents are not told apart from "
                        "seed noise.")
    above = t[t["specialized_over_floor_lo"] > 1] if "specialized_over_floor_lo" in t else t.iloc[:0]
    if above.empty:
        best = t.loc[t["specialized_over_floor"].idxmax()]
        best_ci = ci_text(best.get("specialized_over_floor_lo"), best.get("specialized_over_floor_hi"), ".2f")
        return (where + "; at no layer do its specialized latents exceed the seed floor (what a second seed "
                f"of the same model already gives): at most {best['specialized_over_floor']:.2f}x the floor "
                f"{best_ci}, "
                f"at layer {int(best['layer'])}.")
    top = above.loc[above["specialized_over_floor"].idxmax()]
    return (where + f"; its specialized latents exceed the seed floor at {_layers(above['layer'])} (most at "
            f"layer {int(top['layer'])}: {top['specialized_over_floor']:.2f}x the floor "
            f"{ci_text(top['specialized_over_floor_lo'], top['specialized_over_floor_hi'], '.2f')}).")


def profitable(row: dict) -> bool:
    """Net Sharpe's CI above 0 and the DSR at least :data:`PROFITABLE_DSR`."""
    ci_above_zero = _ok(row.get("sharpe_lo")) and row["sharpe_lo"] > 0
    return ci_above_zero and _ok(row.get("dsr")) and row["dsr"] >= PROFITABLE_DSR


def _strategy(r: dict) -> str:
    return (f"{r.get('set')} {str(r.get('strategy', '')).replace('_', '-')}: net Sharpe {r['sharpe']:.2f} "
            f"{ci_text(r.get('sharpe_lo'), r.get('sharpe_hi'), '.2f')}, DSR {r.get('dsr', float('nan')):.2f} "
            f"over {r.get('n_trials')} trials")


def backtest_answer(strategies: list[dict]) -> str:
    """Whether any feature set trades profitably after costs, from the backtest's strategy rows (its headline
    period: ``set``, ``strategy``, ``sharpe`` with ``_lo``/``_hi``, ``dsr``, ``n_trials``, ``cost_bps``)."""
    rows = [r for r in strategies if r.get("period") == "headline" and _ok(r.get("sharpe"))]
    if not rows:
        return "The backtest has no strategy with a Sharpe ratio in its headline period."
    cost = rows[0].get("cost_bps")
    after = f"after costs ({cost:g} bps per side)" if _ok(cost) else "after costs"
    wins = sorted((r for r in rows if profitable(r)), key=lambda r: -r["dsr"])
    if wins:
        sets = sorted({str(r.get("set")) for r in wins})
        return (f"{len(sets)} feature set(s) trade profitably {after} ({', '.join(sets)}; Sharpe CI above 0, "
                f"DSR at least {PROFITABLE_DSR:g}); the strongest is {_strategy(wins[0])}.")
    best = max(rows, key=lambda r: r["sharpe"])
    return (f"No feature set trades profitably {after}: none has its net Sharpe's 95% CI above 0 with a DSR "
            f"of at least {PROFITABLE_DSR:g}; the best is {_strategy(best)}.")


def strictest_label_control(summary, metric: str) -> tuple[str, float, float, float, float] | None:
    """(control's name, its score, diff, lo, hi) of ``metric``: the selectivity-matched latents where they
    were scored, else the shuffled labels; None when neither was."""
    for name, ctl, diff in (("selectivity-matched control latents", "matched_control", "matched_diff"),
                            ("shuffled labels", "control", "diff")):
        value = getattr(summary, f"{metric}_{ctl}", float("nan"))
        if _ok(value):
            return (name, value, getattr(summary, f"{metric}_{diff}", float("nan")),
                    getattr(summary, f"{metric}_{diff}_lo", float("nan")),
                    getattr(summary, f"{metric}_{diff}_hi", float("nan")))
    return None


def labels_answer(summary) -> str:
    """Whether a pair's labels beat their strictest control, per scorer that ran (a ``LabelSummary``)."""
    parts = []
    for metric, name in SCORE_NAMES.items():
        score = getattr(summary, metric, float("nan"))
        ctl = strictest_label_control(summary, metric) if _ok(score) else None
        if ctl is None:
            continue
        control, value, diff, lo, hi = ctl
        verdict = ("beat" if _ok(lo) and lo > 0 else "lose to" if _ok(hi) and hi < 0 else "do not beat")
        parts.append(f"{verdict} {control} on {name} ({score:.3f} vs {value:.3f}, difference {diff:+.3f} "
                     f"{ci_text(lo, hi)})")
    if not parts:
        return f"{summary.pair}: no label score was measured against a control."
    unmatched = "" if any("matched" in p for p in parts) else "; the selectivity-matched control was not run"
    return f"{summary.pair}: the {summary.n_labelled} labels by {summary.llm} {'; '.join(parts)}{unmatched}."



def _lens_at(lens: pd.DataFrame, measure: str, text_type: str = "all", position: str = "tokens"):
    t = lens[(lens["measure"] == measure) & (lens["text_type"] == text_type) & (lens["position"] == position)]
    return t.sort_values("layer").set_index("layer")


def lens_answer(pair: str, lens: pd.DataFrame) -> str:
    """Where the twin of ``pair`` differs from its base, from its activation lens
    (``activation_lens.parquet``): the layer of the largest relative change, with CKA and affine R² there,
    and the layers where the change is larger on financial than on general text (difference interval above
    0)."""
    change = _lens_at(lens, "relative_change")
    if change.empty:
        return f"{pair}: the activation lens has no relative change measured."
    top = int(change["value"].idxmax())
    r = change.loc[top]
    if not r["value"] > 0:
        return (f"{pair}: the twin's activations do not differ from the base's at any layer "
                "(relative change 0).")
    where = (f"{pair}: the twin's activations differ most from the base's at layer {top} (relative change "
             f"{r['value']:.3f} {ci_text(r['lo'], r['hi'], '.3f')}")
    for measure, name in (("cka", "linear CKA"), ("affine_r2", "affine R²")):
        t = _lens_at(lens, measure)
        if top in t.index:
            where += f", {name} {t.loc[top, 'value']:.3f}"
    first = int(change.index[0])
    where += f"; {change['value'].iloc[0]:.3f} at layer {first})" if first != top else ")"
    diff = _lens_at(lens, "relative_change", "difference")
    if not len(diff):
        return where + "."
    above = diff[diff["lo"] > 0]
    if above.empty:
        return where + "; at no layer is the change larger on financial than on general text."
    return (where + f"; the change is larger on financial than on general text at {_layers(above.index)} "
            "(difference interval above 0).")


def comparison_answer(cmp: pd.DataFrame) -> str:
    """Whether the finance twin's change is *financial*, from ``comparison.parquet``: how many lens keys
    (layer, measure, text type, position) have finance − control beyond the fine-tune seed spread, and at
    which layers."""
    if cmp is None or cmp.empty:
        return "No layer has both the finance and the control pair's lens: nothing is called financial yet."
    if (cmp["verdict"] == "no seed spread").all():
        return ("Against the control twin nothing is called financial: the like-for-like fine-tune seed "
                "pair is missing, so no seed spread bounds the finance − control effect.")
    fin = cmp[cmp["verdict"] == "financial"]
    if fin.empty:
        return ("Against the control twin no lens measure is called financial: every finance − control "
                "effect lies within the fine-tune seed spread.")
    main = fin[(fin["measure"] == "relative_change") & (fin["position"] == "tokens")
               & (fin["text_type"] == "all")]
    lead = (f"; the relative change (all text) at {_layers(sorted(main['layer']))}" if len(main) else "")
    return (f"Against the control twin and beyond the fine-tune seed spread, {len(fin)} of {len(cmp)} lens "
            f"measures are called financial, at {_layers(sorted(set(fin['layer'])))}{lead}.")


def _book(name: str, h: dict) -> str:
    nan = float("nan")
    return (f"the {name} books' best is {h.get('best_set')} {str(h.get('best_strategy')).replace('_', '-')} "
            f"at net Sharpe {h.get('best_net_sharpe', nan):.2f} (DSR {h.get('best_dsr', nan):.2f}), their "
            f"median breakeven {h.get('median_breakeven_bps', nan):.1f} bps per side")


def books_answer(books: dict, folder: str = "") -> str:
    """The daily books beside the turnover-aware ones (``BacktestSummary.books``: per book its headline),
    and whether either's best trades profitably (:func:`profitable`: its net Sharpe's CI above 0 and a DSR of
    at least :data:`PROFITABLE_DSR`; a headline without the CI is not called profitable); ``folder`` (the
    backtest folder) leads the sentence when given."""
    daily, aware = books.get("daily"), books.get("turnover_aware")
    if daily is None:
        return "The backtest has no daily book."
    cost = daily.get("cost_bps")
    text = (f"at {cost:g} bps per side" if _ok(cost) else "after costs") + f", {_book('daily', daily)}"
    text = f"{folder}: {text}" if folder else text[0].upper() + text[1:]
    text += ("; the turnover-aware books did not run" if aware is None
             else f"; {_book('turnover-aware', aware)}")
    wins = [b for b, h in (("daily", daily), ("turnover-aware", aware)) if h is not None
            and profitable({"sharpe_lo": h.get("best_net_sharpe_lo"), "dsr": h.get("best_dsr")})]
    rule = f"net Sharpe's 95% CI above 0 and a DSR of at least {PROFITABLE_DSR:g}"
    return text + (f": the {' and '.join(wins)} books trade profitably ({rule})." if wins
                   else f": no book trades profitably (none has its {rule}).")


def claim_answer(folder: str, claim: list[dict]) -> str:
    """The seed's claim tested (``BacktestSummary.claim`` rows): the answer of the trading stage's paragraph
    (:func:`finsae.trading.claim.claim_paragraph`), less its numbers (the backtest section has them)."""
    from finsae.trading.claim import claim_paragraph

    text = claim_paragraph(pd.DataFrame(claim))
    _, asked, rest = text.partition("? ")
    answer = rest.partition(" Over the ")[0] if asked else text
    return (f"The seed's claim ({folder}): do the latents fine-tuning changed carry return information that "
            f"the twin's sentiment and the unchanged latents do not? {answer}")
