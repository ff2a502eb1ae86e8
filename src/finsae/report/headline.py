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

from finsae.report import answer
from finsae.report import markdown
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


def _diffing(study: Study, sentences: list[str]) -> list[HeadlineRow]:
    rows = []
    for folder, s in study.readable("analysis"):
        layers = study.analysis_table(folder, "layers")
        if layers is not None:
            sentences.append(answer.diffing_answer(folder.name, layers))
        if math.isnan(s.mean_overlap_seed_ceiling):
            control = "seed floor and ceiling not run (no seed repeats)"
        else:
            control = (f"seed floor {s.n_specialized_seed_floor} (twin seed 1: {s.n_specialized_seed1} "
                       f"specialized); seed ceiling {s.mean_overlap_seed_ceiling:.3f}")
        measured = f"{s.n_specialized} specialized latents, overlap {s.mean_overlap:.3f}"
        rows.append(HeadlineRow(f"diffing {folder.name} (layers {', '.join(map(str, s.layers))})", measured,
                                control, ("overlap", "seed floor", "seed ceiling")))
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
    rows = []
    for _, s in study.readable("backtest"):
        sentences.append(answer.backtest_answer(s.strategies))
        for r in s.strategies:
            if r.get("period") == "headline" and r.get("strategy") == "long_short":
                rows.append(HeadlineRow(
                    f"backtest {r.get('set')} long-short", f"net Sharpe {r.get('sharpe', float('nan')):.2f} "
                    f"{answer.ci_text(r.get('sharpe_lo'), r.get('sharpe_hi'), '.2f')} after "
                    f"{r.get('cost_bps')} bps",
                    f"PSR {r.get('psr', float('nan')):.2f}, deflated for {r.get('n_trials')} trials: DSR "
                    f"{r.get('dsr', float('nan')):.2f}", ("PSR", "DSR")))
    return rows


def headline(study: Study) -> Headline:
    """The answer's sentences and the science-only headline rows of ``study``."""
    sentences: list[str] = []
    rows = _sae_rows(study)
    rows += _diffing(study, sentences) + _labels(study, sentences) + _backtest(study, sentences)
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
    """README's headline block: :func:`answer_blocks` as markdown, its glossary a level-4 heading."""
    return markdown.render(answer_blocks(study), level=4)
