"""The study's headline: the answer in sentences (:mod:`~finsae.report.answer`), then the science-only table,
each row with its strictest control beside it, and a glossary of the terms the table uses.

:func:`headline` gathers the sentences and rows from the artifacts; :func:`answer_blocks` makes them the
report's first section (:mod:`~finsae.report.sections`), which the page, ``docs/results/headline.md`` and
README's headline block (:func:`headline_markdown`) render. How long the study takes is engineering, on the
timing page.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import pandas as pd

from finsae.analysis.comparison import COMPARISON_TABLE
from finsae.analysis.methods.lens import TABLE as LENS_TABLE
from finsae.report import answer
from finsae.report import markdown
from finsae.report.analysis_sections import read_comparison
from finsae.report.sections import Answer, Block, Glossary, NotRun, Ref, Table
from finsae.report.study import Study

GLOSSARY = {
    "FVU": "fraction of variance unexplained: the SAE's reconstruction error over the activations' variance "
           "(0 is perfect, 1 no better than the mean).",
    "L0": "latents active per token (a top-k SAE has exactly k).",
    "loss recovered": "share of the model's task loss kept when the SAE's reconstruction replaces the layer "
                      "(1 = as the clean model, 0 = as zeroing the layer).",
    "overlap": "share of latents with a one-to-one match (decoder cosine at least tau) between the base's "
               "and the twin's SAEs at a layer.",
    "seed floor": "specialized latents that a second seed of the same model already shows (seed noise); the "
                  "twin differs where its count exceeds this.",
    "seed ceiling": "overlap between two seeds of one model: the most overlap two SAEs of identical "
                    "activations reach.",
    "selectivity-matched control": "latents as selective for another topic, labelled and scored the same "
                                   "way: the strictest test that a label names what its latent does.",
    "PSR": "probabilistic Sharpe ratio: the probability that the true Sharpe ratio is above 0, given the "
           "track record's length, skew and kurtosis.",
    "DSR": "deflated Sharpe ratio: the PSR against the best Sharpe that the number of trials tried would "
           "give by chance (at least 0.95 to call a strategy profitable).",
}
"""One-line glosses of the terms in the headline table (anchors ``#glossary-<term>`` on the page)."""


NAN = float("nan")
SEED_STATISTICS = ("n_specialized_repeat", "n_specialized_seed_floor", "n_specialized_over_floor",
                   "overlap_cross_seed", "overlap_seed_ceiling_base", "overlap_seed_ceiling_domain")
"""The seed estimates (``AnalysisSummary.seed_estimates``) the headline compares, like with like."""


class HeadlineRow(NamedTuple):
    result: str
    """What was measured (stage and pair or set)."""
    measured: str
    """The number(s) measured."""
    control: str
    """The strictest control beside it."""
    terms: tuple[str, ...]
    """The glossary terms the row uses."""


class Headline(NamedTuple):
    sentences: list[str]
    """The answer, one sentence per finding."""
    rows: list[HeadlineRow]
    """The science-only headline table."""


def anchor(term: str) -> str:
    """The glossary anchor of ``term`` (``glossary-seed-floor``)."""
    return "glossary-" + term.lower().replace(" ", "-")


def _sae_rows(study: Study) -> list[HeadlineRow]:
    df = study.saes()
    if df is None:
        return []
    rows = []
    for (model, tag), g in df[df["seed"].fillna(0) == 0].groupby(["model", "tag"]):
        lr = g["loss_recovered"].dropna() if "loss_recovered" in g else pd.Series(dtype=float)
        control = (f"loss recovered {lr.min():.3f}-{lr.max():.3f} (vs zeroing the layer)" if len(lr)
                   else "loss recovered not measured")
        rows.append(HeadlineRow(f"SAE {model} [{tag}]", f"FVU {g['fvu'].min():.3f}-{g['fvu'].max():.3f}, L0 "
                                f"{g['l0'].median():.0f} over {len(g)} layer(s); dead at most "
                                f"{100 * g['dead_fraction'].max():.2f}%", control,
                                ("FVU", "L0", "loss recovered")))
    return rows


def seed_cell(estimate: dict | None) -> str:
    """One statistic at one layer over the seeds (``AnalysisSummary.seed_estimates``): mean ± seed SD
    [hierarchical bootstrap] (n seeds), "no power (why)" where its test cannot move, "n/a" where not run."""
    if not estimate:
        return "n/a"
    text = str(estimate.get("text") or "n/a")
    if not estimate.get("power", True) and not text.startswith("no power"):
        return f"no power ({text})"
    return text


def _by_layer(lens, measure: str) -> str:
    t = lens[(lens["measure"] == measure) & (lens["text_type"] == "all") & (lens["position"] == "tokens")]
    return ", ".join(f"L{int(r.layer)} {r.value:.3f}" for r in t.sort_values("layer").itertuples())


def _comparison_row(pair: str, cmp) -> HeadlineRow:
    fin = cmp[cmp["verdict"] == "financial"]
    where = f" (layers {', '.join(str(int(x)) for x in sorted(set(fin['layer'])))})" if len(fin) else ""
    spread = "" if (cmp["verdict"] != "no seed spread").any() else " (seed pair missing: no spread)"
    return HeadlineRow(f"finance vs control {pair}", f"{len(fin)} of {len(cmp)} lens measures called "
                       f"financial{where}", f"finance − control beyond ± the fine-tune seed spread{spread}",
                       ())


def _lens(study: Study, sentences: list[str]) -> list[HeadlineRow]:
    """The activation lens of each pair (where the twin differs), then the finance pair's comparison with
    the control twin beyond the fine-tune seed (whether it is financial)."""
    rows, verdicts = [], []
    for folder, _ in study.readable("analysis"):
        lens = study.analysis_table(folder, LENS_TABLE)
        if lens is not None and len(lens):
            sentences.append(answer.lens_answer(folder.name, lens))
            rows.append(HeadlineRow(f"activation lens {folder.name}",
                                    f"relative change by layer: {_by_layer(lens, 'relative_change')}",
                                    f"linear CKA by layer: {_by_layer(lens, 'cka')}", ()))
        if (folder / COMPARISON_TABLE).is_file():
            cmp = study.through(read_comparison, folder, COMPARISON_TABLE)
            if isinstance(cmp, str):
                rows.append(HeadlineRow(f"finance vs control {folder.name}", cmp, "", ()))
            else:
                verdicts.append(answer.comparison_answer(cmp))
                rows.append(_comparison_row(folder.name, cmp))
    sentences += verdicts
    return rows


def _diffing(study: Study, sentences: list[str]) -> list[HeadlineRow]:
    """Like with like: domain seed 1's specialized latents against the seed floor of those same latents
    (never seed 0's count against it), over the seeds where there are repeats, with the test of their
    difference; the cross-seed overlap (base seed 0 vs domain seed s) against the seed ceilings (never the
    same-initialisation overlap). The seed SD is the uncertainty."""
    rows = []
    for folder, s in study.readable("analysis"):
        layers = study.analysis_table(folder, "layers")
        if layers is not None:
            sentences.append(answer.diffing_answer(folder.name, layers))
        where = f"diffing {folder.name}"
        if math.isnan(s.mean_overlap_seed_ceiling) and not s.seed_estimates:
            rows.append(HeadlineRow(where, f"{s.n_specialized} specialized latents (seed 0), overlap "
                                    f"{s.mean_overlap:.3f}", "seed floor and ceiling not run (no seed "
                                    "repeats)", ("overlap",)))
            continue
        rows.append(HeadlineRow(f"{where}: specialized latents of domain seed 1",
                                f"{s.n_specialized_seed1} (layers with seed repeats)",
                                f"seed floor {s.n_specialized_seed_floor} (the same latents unmatched in "
                                "domain seed 0)", ("seed floor",)))
        est = s.seed_estimates
        for layer in sorted({int(k) for k in est.get("n_specialized_repeat", {})}):
            at = {name: est.get(name, {}).get(str(layer)) for name in SEED_STATISTICS}
            rows.append(HeadlineRow(
                f"{where} layer {layer}, over {(at['n_specialized_repeat'] or {}).get('n_seeds')} seeds",
                f"specialized {seed_cell(at['n_specialized_repeat'])}; over the floor "
                f"{seed_cell(at['n_specialized_over_floor'])}; cross-seed overlap "
                f"{seed_cell(at['overlap_cross_seed'])}",
                f"seed floor {seed_cell(at['n_specialized_seed_floor'])}; seed ceiling "
                f"{seed_cell(at['overlap_seed_ceiling_base'])} (base), "
                f"{seed_cell(at['overlap_seed_ceiling_domain'])} (twin)",
                ("overlap", "seed floor", "seed ceiling")))
    return rows


def _labels(study: Study, sentences: list[str]) -> list[HeadlineRow]:
    rows = []
    for folder, s in study.readable("labels"):
        sentences.append(answer.labels_answer(s))
        metric = next((m for m in answer.SCORE_NAMES if not math.isnan(getattr(s, m))), "embedding_auroc")
        ctl = answer.strictest_label_control(s, metric)
        control = ("not measured" if ctl is None else
                   f"{ctl[0]} {ctl[1]:.3f} (difference {ctl[2]:+.3f} {answer.ci_text(ctl[3], ctl[4])})")
        rows.append(HeadlineRow(f"labels {folder.name}", f"{s.n_labelled} labelled by {s.llm}; "
                                f"{answer.SCORE_NAMES[metric]} {getattr(s, metric):.3f}", control,
                                ("selectivity-matched control",) if ctl and "matched" in ctl[0] else ()))
    return rows


def _backtest(study: Study, sentences: list[str]) -> list[HeadlineRow]:
    """Per backtest folder, the daily books beside the turnover-aware ones, then the seed's claim."""
    rows = []
    for folder, s in study.readable("backtest"):
        sentences.append(answer.books_answer(s.books, folder.name) if s.books
                         else answer.backtest_answer(s.strategies))
        if s.claim:
            sentences.append(answer.claim_answer(folder.name, s.claim))
        for book, h in (s.books or {}).items():
            rows.append(HeadlineRow(
                f"backtest {folder.name} {book.replace('_', '-')} books",
                f"best net Sharpe {h.get('best_net_sharpe', NAN):.2f} ({h.get('best_set')} "
                f"{h.get('best_strategy')}; gross {h.get('best_gross_sharpe', NAN):.2f}); median breakeven "
                f"{h.get('median_breakeven_bps', NAN):.1f} bps per side",
                f"cost {h.get('cost_bps', NAN):g} bps per side; DSR {h.get('best_dsr', NAN):.2f} deflated "
                f"for {s.n_trials} trials", ("DSR",)))
    return rows


def headline(study: Study) -> Headline:
    """The answer's sentences and the science-only headline rows of ``study``."""
    sentences: list[str] = []
    rows = _sae_rows(study)
    rows += _lens(study, sentences) + _diffing(study, sentences) + _backtest(study, sentences)
    rows += _labels(study, sentences)
    return Headline(sentences, rows)


def answer_blocks(study: Study) -> list[Block]:
    """The report's first section: the answer's sentences, the science-only headline table (each row beside
    its strictest control, its terms linked to the glossary) and the glossary of the terms it uses."""
    h = headline(study)
    if not h.rows:
        return [NotRun("no artifacts yet", "make demo")]
    table = pd.DataFrame([{"result": r.result, "measured": r.measured, "strictest control": r.control,
                           "terms": tuple(Ref(t, anchor(t)) for t in r.terms)} for r in h.rows])
    used = [t for t in GLOSSARY if any(t in r.terms for r in h.rows)]
    return [*([Answer(tuple(h.sentences))] if h.sentences else []),
            Table(table, "headline numbers, each beside its strictest control"),
            Glossary("Glossary", "glossary", tuple((t, anchor(t), GLOSSARY[t]) for t in used))]


def headline_markdown(study: Study) -> str:
    """README's headline block: the answer's sentences of :func:`answer_blocks` (or what is not run yet) and
    where the rest is: the headline table with each number's strictest control and the glossary are the
    headline page (``docs/results/headline.md``), so README stays a reference."""
    blocks = [b for b in answer_blocks(study) if not isinstance(b, (Table, Glossary))]
    return (markdown.render(blocks, level=4) + "\n\nEach number beside its strictest control, with a "
            "glossary of the terms: [docs/results/headline.md](docs/results/headline.md).")
