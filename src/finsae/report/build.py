"""The report's sections (:mod:`~finsae.report.sections`), each built once from the artifacts (``Study``).

:data:`SECTIONS` is the one list that the HTML page (:func:`html_sections`) and the results pages
(:func:`finsae.report.results.write_pages`) iterate: a stage's section is one :class:`SectionSpec` line there
and one builder ``(study) -> list[Block]``; a table in a section is one block appended by its builder. The
builders of the analysis, the SAEs and the setup are here, the trading stage's in
:mod:`~finsae.report.trading_sections`, the timing page's in :mod:`~finsae.report.timing_section`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from finsae.errors import FinsaeError
from finsae.labeling.artifacts import LABELS_FILE, PER_LAYER_FILE, read_labels, read_per_layer
from finsae.paths import report_dir
from finsae.report import page, sae_table
from finsae.report.analysis_sections import comparison_blocks, lens_blocks, method_tables, seed_blocks
from finsae.report.headline import answer_blocks
from finsae.report.blocks import per_pair, pick, plots, through
from finsae.report.sections import (
    Block, Context, Figure, Heading, Link, NotRun, Prose, Section, Table, Text, Unreadable)
from finsae.report.study import COMMANDS, Study, store_label
from finsae.report.tables import label_summary_tables, per_layer_display
from finsae.report.timing_section import timing_blocks
from finsae.report.trading_sections import backtest_blocks, canaries_blocks, stocknet_blocks

LAYER_BLOCKS = {
    "overlap of the two SAEs' features, with its controls": [
        "layer", "overlap", "overlap_seed_ceiling_base", "overlap_seed_ceiling_domain", "overlap_null",
        "overlap_null_adjacent", "overlap_random", "overlap_index", "overlap_count_max_cardinality",
        "cross_fvu_corrected_base_on_domain"],
    "financial and specialized latents, with the seed floor": [
        "layer", "n_financial_base", "n_financial", "n_specialized", "n_specialized_seed1",
        "n_specialized_seed_floor", "specialized_over_floor", "specialized_over_floor_lo",
        "specialized_over_floor_hi"],
    "crosscoder and warm-start changes, and how much better the twin's features separate finance": [
        "layer", "n_shared", "n_base_only", "n_domain_only", "n_domain_only_financial",
        "crosscoder_seed_stability", "n_changed", "n_changed_control", "n_changed_financial", "improvement",
        "improvement_genre"],
}
"""The diffing section's per-layer table, as a few narrow tables (one wide one does not fit a page). A diffing
method's report columns (``finsae.analysis.methods``) not placed here get a block of their own."""
ANALYSIS_SETTINGS = ("pair", "base", "domain", "tag", "seed_tag", "layers", "tau", "fdr", "min_auroc",
                     "seconds")
"""The analysis summary's settings (one short table; its counts are the other)."""
SUMMARY_ELSEWHERE = ("docs", "seed_estimates", "n_seeds")
"""Summary fields not in the counts table (the seed estimates have their per-layer table)."""
LABEL_COLUMNS = ["model", "layer", "latent", "role", "financial", "specialized", "status", "label",
                 "description", "n_activating", "embedding_auroc", "embedding_auroc_control", "skip_reason"]
CONTEXTS_PER_LATENT = 3
LATENTS_WITH_CONTEXTS = 4
LABELLED_ROWS = 25
"""The labelled latents shown (the latent browser has them all)."""
LATENT_BROWSER = "latents/index.html"
"""The latent browser (:func:`finsae.report.latents.write_latent_browser`), relative to index.html."""


def layer_blocks() -> dict[str, list[str]]:
    """:data:`LAYER_BLOCKS`, then one block per registered method for its columns no block names."""
    from finsae.analysis.methods import METHODS

    placed = {c for cols in LAYER_BLOCKS.values() for c in cols}
    blocks = dict(LAYER_BLOCKS)
    for m in METHODS.values():
        rest = [c for c in m.report_columns if c not in placed]
        if rest:
            blocks[f"{m.name}"] = ["layer", *rest]
    return blocks


# -- the sections -------------------------------------------------------------------------------------------
def claims_blocks(study: Study) -> list[Block]:
    found = [(f, text) for f in study.pairs("analysis") if (text := study.findings(f)) is not None]
    if not found:
        return [NotRun("no `findings.md` under `analysis/`", COMMANDS["analysis"])]
    return [b for folder, text in found for b in (Heading(folder.name), Prose(text))]


def sae_blocks(study: Study) -> list[Block]:
    saes = study.saes()
    if saes is None:
        return [NotRun("no trained SAE under `sae/`", COMMANDS["sae"])]
    return [Figure("SAE quality per layer", png=sae_table.layer_png(saes)),
            Table(pick(saes, sae_table.SAE_COLUMNS), max_rows=None)]


def _diffing_pair(study: Study, folder: Path, s) -> list[Block]:
    """A pair's settings and counts, then the lens and the finance-vs-control comparison (the "where" and
    "is it financial"), the per-layer tables, the seed estimates, the methods' other tables and the plots."""
    fields = {k: v for k, v in s.results().items() if k not in SUMMARY_ELSEWHERE}
    blocks: list[Block] = [
        Table.of_mapping({k: v for k, v in fields.items() if k in ANALYSIS_SETTINGS}, "settings"),
        Table.of_mapping({k: v for k, v in fields.items() if k not in ANALYSIS_SETTINGS},
                         "counts and overlap over all layers"),
        *lens_blocks(study, folder), *comparison_blocks(study, folder)]
    layers = study.analysis_table(folder, "layers")
    if layers is not None:
        for what, cols in layer_blocks().items():
            block = pick(layers, cols)
            measured = block.drop(columns="layer", errors="ignore").notna().any().any()
            blocks.append(Table(block, f"by layer: {what}") if measured
                          else Text(f"by layer: {what}: not run for this pair.", note=True))
        blocks += seed_blocks(layers)
    return blocks + method_tables(study, folder) + plots(study, folder)


def diffing_blocks(study: Study) -> list[Block]:
    link = Link("Latent browser", LATENT_BROWSER, store_label(report_dir(study.artifacts) / LATENT_BROWSER),
                "every financial, specialized, crosscoder-specific and warm-start-changed latent, with its "
                "label and scores, contexts at several activation quantiles, activation histogram, firing "
                "density and diffing facts.")
    return [link, *per_pair(study, "analysis", lambda folder, s: _diffing_pair(study, folder, s))]


def _contexts(study: Study, pair: str, labels: pd.DataFrame) -> list[Block]:
    """Example contexts of the first labelled latents, activating words marked."""
    if not {"layer", "latent"} <= set(labels.columns):
        return []
    out: list[Block] = []
    for _, row in labels.head(LATENTS_WITH_CONTEXTS).iterrows():
        ctx = study.contexts(pair, row.get("model", None), int(row["layer"]))
        if ctx is None:
            continue
        ctx = ctx[(ctx["latent"] == row["latent"]) & (ctx["kind"] == "top")].sort_values("rank")
        if ctx.empty:
            continue
        where = f"layer {int(row['layer'])} latent {int(row['latent'])}"
        out.append(Heading(f"{where}: {row.get('label', '')}", 2))
        out += [Context(tuple(c.words), tuple(float(a) for a in c.acts))
                for c in ctx.head(CONTEXTS_PER_LATENT).itertuples()]
    return [Heading("Example contexts"), *out] if out else []


def _labels_pair(study: Study, folder: Path, s) -> list[Block]:
    blocks: list[Block] = [Table(t, what) for what, t in label_summary_tables(s.results())]
    if (folder / PER_LAYER_FILE).is_file():
        blocks += through(study, read_per_layer, folder, PER_LAYER_FILE,
                          lambda t: [Table(per_layer_display(t), "scores vs controls by layer")])
    if (folder / LABELS_FILE).is_file():
        blocks += through(study, read_labels, folder, LABELS_FILE, lambda lab: [
            Table(pick(lab, LABEL_COLUMNS), "labelled latents", max_rows=LABELLED_ROWS),
            *_contexts(study, folder.name, lab)])
    return blocks


def labels_blocks(study: Study) -> list[Block]:
    return per_pair(study, "labels", lambda folder, s: _labels_pair(study, folder, s))


def _stage_times(study: Study, saes: pd.DataFrame | None) -> pd.DataFrame:
    fts = study.finetunes()
    times = [("finetune", len(fts), sum(s.seconds for _, s in fts if not isinstance(s, str)))] if fts else []
    if saes is not None:
        times.append(("sae", len(saes), float(saes["seconds"].sum())))
    for stage in ("analysis", "labels", "backtest"):
        found = study.summaries(stage)
        if found:
            times.append((stage, len(found), sum(float(getattr(s, "seconds", 0.0)) for _, s in found
                                                 if not isinstance(s, str))))
    return pd.DataFrame(times, columns=["stage", "runs", "seconds"])


def setup_blocks(study: Study) -> list[Block]:
    prov = study.provenance or {}
    blocks: list[Block] = [Table.of_mapping({
        "artifacts": store_label(study.artifacts), "code version (this report)": prov.get("code_version"),
        "data folder": prov.get("data_dir"), "data fingerprint": prov.get("data_fingerprint"),
        "machine": prov.get("machine"), "python": prov.get("python")})]
    fts = study.finetunes()
    if fts:
        rows = [{"model": name, **({"error": s} if isinstance(s, str) else {
            "base": s.base_model, "PhraseBank test acc.": s.phrasebank_test_accuracy,
            "macro F1": s.phrasebank_test_macro_f1, "probe acc.": s.probe_test_accuracy,
            "code version": s.code_version, "seconds": s.seconds})} for name, s in fts]
        blocks += [Heading("Models"), Table(pd.DataFrame(rows))]
    else:
        blocks.append(NotRun("no fine-tuned twin under `models/`", COMMANDS["finetune"]))
    try:
        saes = study.saes()
    except FinsaeError:
        saes = None  # the SAE section shows the error
    if saes is not None:
        cfg = saes.groupby(["tag", "num_latents", "k", "tokens"], dropna=False).size()
        cfg = cfg.reset_index(name="SAEs")
        blocks += [Heading("SAE settings"), Table(cfg)]
    times = _stage_times(study, saes)
    return blocks + [Heading("How long each stage took"),
                     Table(times) if len(times) else NotRun("no stage", "make demo")]


# -- the registry -------------------------------------------------------------------------------------------
class SectionSpec(NamedTuple):
    """One section of the report."""

    anchor: str
    """Its id on the page."""
    title: str
    build: Callable[[Study], list[Block]]
    """Its builder."""
    page: str | None
    """The results page it goes on (a key of :data:`finsae.report.results.PAGES`); None: none."""
    html: bool = True
    """Whether the HTML page shows it."""


SECTIONS = [
    SectionSpec("answer", "What the study found", answer_blocks, "headline"),
    SectionSpec("claims", "The write-up's claims beside what was measured", claims_blocks, "analysis"),
    SectionSpec("sae", "SAE quality per layer", sae_blocks, "sae"),
    SectionSpec("diffing", "Feature diffing by layer, with controls", diffing_blocks, "analysis"),
    SectionSpec("labels", "Financial latents, their labels and scores vs controls", labels_blocks, "labels"),
    SectionSpec("stocknet", "StockNet benchmark beside the published baselines", stocknet_blocks, "backtest"),
    SectionSpec("backtest", "Backtest: equity curves and metrics", backtest_blocks, "backtest"),
    SectionSpec("canaries", "Leakage canaries", canaries_blocks, "backtest"),
    SectionSpec("setup", "Setup: models, data, code version, stage times", setup_blocks, None),
    SectionSpec("timing", "make demo: how long the study takes", timing_blocks, "timing", html=False),
]
"""Every section, in the page's order (the answer first, the setup last)."""


def build_section(spec: SectionSpec, study: Study) -> Section:
    """``spec``'s section, with the artifact files it was built from; an artifact that fails the whole builder
    makes it one "unreadable" line."""
    before = set(study.files_read)
    study.files_read.clear()
    try:
        blocks = spec.build(study)
    except FinsaeError as e:
        blocks = [Unreadable(str(e))]
    section = Section(spec.anchor, spec.title, blocks, set(study.files_read))
    study.files_read |= before
    return section


def html_sections(study: Study) -> list[Section]:
    """The sections the HTML page shows, in order."""
    return [build_section(spec, study) for spec in SECTIONS if spec.html]


def section_html(anchor: str, study: Study) -> str:
    """One section's body as HTML, its builder's errors raised (for tests of one stage's section)."""
    spec = next(s for s in SECTIONS if s.anchor == anchor)
    return page.render(spec.build(study))


stocknet = partial(section_html, "stocknet")
backtest = partial(section_html, "backtest")
canaries = partial(section_html, "canaries")
labels = partial(section_html, "labels")
"""One stage's section as HTML (the names the stages' tests call)."""
