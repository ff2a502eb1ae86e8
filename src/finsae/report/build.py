"""The study report's sections, each built only from one stage's artifacts (``Study``)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from finsae.errors import FinsaeError
from finsae.labeling.artifacts import LABELS_FILE, PER_LAYER_FILE, read_labels, read_per_layer
from finsae.report import page, sae_table
from finsae.report.headline import GLOSSARY, anchor, headline
from finsae.report.study import COMMANDS, Study, reproduce_command
from finsae.report.tables import label_summary_tables, per_layer_display
from finsae.trading import artifacts as backtest_files
from finsae.trading.claim import claim_paragraph

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
ANALYSIS_SETTINGS = ("pair", "base", "domain", "tag", "seed_tag", "layers", "tau", "fdr", "min_auroc",
                     "seconds")
"""The analysis summary's settings (one short table; its counts are the other)."""
LABEL_COLUMNS = ["model", "layer", "latent", "role", "financial", "specialized", "status", "label", "description",
                 "n_activating", "embedding_auroc", "embedding_auroc_control", "skip_reason"]
METRIC_COLUMNS = ["set", "strategy", "period", "sharpe", "sharpe_lo", "sharpe_hi", "sortino", "max_drawdown",
                  "cagr", "psr", "dsr", "n_trials", "dsr_eff", "n_trials_eff", "turnover"]
CONTEXTS_PER_LATENT = 3
LATENTS_WITH_CONTEXTS = 4


def _pick(df: pd.DataFrame, preferred: list[str]) -> pd.DataFrame:
    cols = [c for c in preferred if c in df.columns]
    return df[cols] if cols else df


def _pngs(study: Study, folder: Path) -> str:
    return "".join(page.png_img(p, f"{folder.parent.name}/{folder.name}/{p.name}") for p in study.analysis_plots(folder))


def setup(study: Study, prov: dict, saes: pd.DataFrame | None) -> str:
    parts = [page.kv_table({"artifacts": str(study.artifacts), "code version (this report)": prov["code_version"],
                            "data folder": prov["data_dir"], "data fingerprint": prov["data_fingerprint"],
                            "machine": prov["machine"], "python": prov["python"]})]
    fts = study.finetunes()
    if fts:
        rows = [{"model": name, **({"error": s} if isinstance(s, str) else {
            "base": s.base_model, "PhraseBank test acc.": s.phrasebank_test_accuracy,
            "macro F1": s.phrasebank_test_macro_f1, "probe acc.": s.probe_test_accuracy, "code version": s.code_version,
            "seconds": s.seconds})} for name, s in fts]
        parts += ["<h3>Models</h3>", page.table(pd.DataFrame(rows))]
    else:
        parts.append(page.not_run("no fine-tuned twin under models/", COMMANDS["finetune"]))
    times = []
    if fts:
        times.append(("finetune", len(fts), sum(s.seconds for _, s in fts if not isinstance(s, str))))
    if saes is not None:
        times.append(("sae", len(saes), float(saes["seconds"].sum())))
        cfg = saes.groupby(["tag", "num_latents", "k", "tokens"], dropna=False).size().reset_index(name="SAEs")
        parts += ["<h3>SAE settings</h3>", page.table(cfg)]
    for stage, reader in (("analysis", study.analysis), ("labels", study.labels), ("backtest", study.backtest)):
        ss = [reader(f) for f in study.pairs(stage)]
        ok = [s for s in ss if not isinstance(s, str)]
        if ss:
            times.append((stage, len(ss), sum(float(getattr(s, "seconds", 0.0)) for s in ok)))
    parts += ["<h3>How long each stage took</h3>",
              page.table(pd.DataFrame(times, columns=["stage", "runs", "seconds"])) if times
              else page.not_run("no stage", "make demo")]
    return "\n".join(parts)


def sae_quality(saes: pd.DataFrame | None) -> str:
    if saes is None:
        return page.not_run("no trained SAE under sae/", COMMANDS["sae"])
    fig = sae_table.layer_figure(saes)
    return page.figure_img(fig, "SAE quality per layer") + page.table(_pick(saes, sae_table.SAE_COLUMNS))


def pair_heading(folder: Path) -> str:
    """A pair's heading in a section, with the command that reproduces its numbers."""
    return (f"<h3>{page.esc(folder.name)}</h3><p class=\"note\">reproduce: "
            f"<code>{page.esc(reproduce_command(folder))}</code></p>")


def diffing(study: Study) -> str:
    folders = study.pairs("analysis")
    if not folders:
        return page.not_run("no feature comparison under analysis/", COMMANDS["analysis"])
    parts = []
    for folder in folders:
        parts.append(pair_heading(folder))
        s = study.analysis(folder)
        if isinstance(s, str):
            parts.append(page.error_box(s))
            continue
        fields = {k: v for k, v in s.results().items() if k != "docs"}
        parts += [page.kv_table({k: v for k, v in fields.items() if k in ANALYSIS_SETTINGS},
                                caption="settings"),
                  page.kv_table({k: v for k, v in fields.items() if k not in ANALYSIS_SETTINGS},
                                caption="counts and overlap over all layers")]
        layers = study.analysis_table(folder, "layers")
        if layers is not None:
            for what, cols in layer_blocks().items():
                block = _pick(layers, cols)
                measured = block.drop(columns="layer", errors="ignore")
                parts.append(page.table(block, caption=f"by layer: {what}") if measured.notna().any().any()
                             else f'<p class="note">by layer: {page.esc(what)}: not run for this pair.</p>')
        parts.append(_pngs(study, folder))
    return "\n".join(parts)


LATENT_BROWSER = "latents/index.html"
"""The latent browser (:func:`finsae.report.latents.write_latent_browser`), relative to the report's index.html."""


def latent_browser_link() -> str:
    return (f'<p><a href="{LATENT_BROWSER}">Latent browser</a>: every financial, specialized, crosscoder-specific '
            "and warm-start-changed latent, with its label and scores, contexts at several activation quantiles, "
            "activation histogram, firing density and diffing facts.</p>")


def claims(study: Study) -> str:
    found = [(f.name, text) for f in study.pairs("analysis") if (text := study.findings(f)) is not None]
    if not found:
        return page.not_run("no findings.md under analysis/", COMMANDS["analysis"])
    return "\n".join(f"<h3>{page.esc(name)}</h3>" + page.markdown(text) for name, text in found)


def _contexts(study: Study, pair: str, labels: pd.DataFrame) -> str:
    """Example contexts of the first labelled latents, activating words marked."""
    if not {"layer", "latent"} <= set(labels.columns):
        return ""
    out = []
    for _, row in labels.head(LATENTS_WITH_CONTEXTS).iterrows():
        model = row.get("model", None)
        ctx = study.contexts(pair, model, int(row["layer"]))
        if ctx is None:
            continue
        ctx = ctx[(ctx["latent"] == row["latent"]) & (ctx["kind"] == "top")].sort_values("rank").head(CONTEXTS_PER_LATENT)
        if ctx.empty:
            continue
        label = row.get("label", "")
        out.append(f"<h4>layer {int(row['layer'])} latent {int(row['latent'])}: {page.esc(label)}</h4>")
        out += [page.marked_context(list(c.words), [float(a) for a in c.acts]) for c in ctx.itertuples()]
    return ("<h3>Example contexts</h3>" + "".join(out)) if out else ""


def labels(study: Study) -> str:
    folders = study.pairs("labels")
    if not folders:
        return page.not_run("no labels under labels/", COMMANDS["labels"])
    parts = []
    for folder in folders:
        parts.append(pair_heading(folder))
        s = study.labels(folder)
        if isinstance(s, str):
            parts.append(page.error_box(s))
            continue
        parts += [page.table(t, caption=what) for what, t in label_summary_tables(s.results())]
        if (folder / PER_LAYER_FILE).is_file():
            table = study.through(read_per_layer, folder, PER_LAYER_FILE)
            parts.append(page.error_box(table) if isinstance(table, str)
                         else page.table(per_layer_display(table), caption="scores vs controls by layer"))
        if (folder / LABELS_FILE).is_file():
            lab = study.through(read_labels, folder, LABELS_FILE)
            if isinstance(lab, str):
                parts.append(page.error_box(lab))
                continue
            parts.append(page.table(_pick(lab, LABEL_COLUMNS), max_rows=25, caption="labelled latents"))
            parts.append(_contexts(study, folder.name, lab))
    return "\n".join(parts)


def stocknet(study: Study) -> str:
    from finsae.trading.stocknet import PUBLISHED

    folders = [f for f in study.pairs("backtest") if (f / backtest_files.STOCKNET_FILE).is_file()]
    if not folders:
        return page.not_run("no StockNet benchmark under backtest/", COMMANDS["backtest"])
    parts = []
    for folder in folders:
        parts.append(pair_heading(folder))
        bench = study.through(backtest_files.read_stocknet, folder, backtest_files.STOCKNET_FILE)
        if isinstance(bench, str):
            parts.append(page.error_box(bench))
            continue
        ours = [{"model": f"ours: {name}", "accuracy": 100 * float(v["accuracy"]) if v.get("accuracy") is not None
                 and float(v["accuracy"]) <= 1 else v.get("accuracy"), "mcc": v.get("mcc"), "n_test": v.get("n_test")}
                for name, v in bench.sets.items()]
        table = pd.concat([pd.DataFrame(ours), PUBLISHED.assign(model="published: " + PUBLISHED["model"])],
                          ignore_index=True)
        parts.append(page.table(table, caption="test accuracy (%) and MCC"))
    return "\n".join(parts)


def backtest(study: Study) -> str:
    folders = study.pairs("backtest")
    if not folders:
        return page.not_run("no backtest under backtest/", COMMANDS["backtest"])
    parts = []
    for folder in folders:
        parts.append(pair_heading(folder))
        s = study.backtest(folder)
        if isinstance(s, str):
            parts.append(page.error_box(s))
            continue
        parts.append(page.kv_table({"sets": s.sets, "protocols": s.protocols, "cost (bps per side)": s.cost_bps,
                                    "walk-forward rows": s.n_rows, "folds": s.n_folds,
                                    "trials (for the DSR)": s.n_trials, "eval start": s.eval_start}))
        metrics = backtest_files.table_path(folder, "metrics")
        if metrics.is_file():
            m = study.through(backtest_files.read_metrics, folder, metrics.name)
            parts.append(page.error_box(m) if isinstance(m, str) else page.table(_pick(m, METRIC_COLUMNS),
                         caption="strategies after costs, with PSR/DSR and the trials count"))
        if backtest_files.has_claim(folder):
            c = study.through(backtest_files.read_claim, folder, backtest_files.TABLES["claim"].file)
            parts.append(page.error_box(c) if isinstance(c, str) else
                         f"<p>{page.esc(claim_paragraph(c))}</p>"
                         + page.table(c[c["period"] == "headline"], caption="changed latents: paired diffs"))
        parts.append(_pngs(study, folder))
    return "\n".join(parts)


def canaries(study: Study) -> str:
    folders = [f for f in study.pairs("backtest") if (f / backtest_files.CANARIES_FILE).is_file()]
    if not folders:
        return page.not_run("no canaries under backtest/", COMMANDS["backtest"])
    parts = []
    for folder in folders:
        c = study.through(backtest_files.read_canaries, folder, backtest_files.CANARIES_FILE)
        if isinstance(c, str):
            parts += [f"<h3>{page.esc(folder.name)}</h3>", page.error_box(c)]
            continue
        rows = [{"canary": k, **(v if isinstance(v, dict) else {"value": v})} for k, v in c.items()]
        rows = [{k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in r.items()} for r in rows]
        parts += [f"<h3>{page.esc(folder.name)}</h3>", page.table(pd.DataFrame(rows))]
    return "\n".join(parts)


def answer(study: Study) -> str:
    """The study's answer in sentences, the science-only headline table (each row beside its strictest
    control, its terms linked to the glossary) and the glossary."""
    h = headline(study)
    if not h.rows:
        return page.not_run("no artifacts yet", "make demo")
    rows = pd.DataFrame([{"result": r.result, "measured": r.measured, "strictest control": r.control,
                          "terms": ", ".join(f'<a href="#{anchor(t)}">{page.esc(t)}</a>' for t in r.terms)}
                         for r in h.rows])
    used = [t for t in GLOSSARY if any(t in r.terms for r in h.rows)]
    gloss = "".join(f'<dt id="{anchor(t)}">{page.esc(t)}</dt><dd>{page.esc(GLOSSARY[t])}</dd>' for t in used)
    sentences = "".join(f"<p>{page.esc(x)}</p>" for x in h.sentences)
    return (f'<div class="answer">{sentences}</div>' if sentences else "") + \
        page.table(rows, caption="headline numbers, each beside its strictest control", raw={"terms"}) + \
        f'<h3 id="glossary">Glossary</h3><dl class="gloss">{gloss}</dl>'


def all_sections(study: Study, prov: dict) -> list[tuple[str, str, str]]:
    try:
        saes = study.saes()
        sae_error = None
    except FinsaeError as e:
        saes, sae_error = None, str(e)
    built = [
        ("answer", "What the study found", answer(study)),
        ("claims", "The write-up's claims beside what was measured", claims(study)),
        ("sae", "SAE quality per layer", page.error_box(sae_error) if sae_error else sae_quality(saes)),
        ("diffing", "Feature diffing by layer, with controls", latent_browser_link() + diffing(study)),
        ("labels", "Financial latents, their labels and scores vs controls", labels(study)),
        ("stocknet", "StockNet benchmark beside the published baselines", stocknet(study)),
        ("backtest", "Backtest: equity curves and metrics", backtest(study)),
        ("canaries", "Leakage canaries", canaries(study)),
        ("setup", "Setup: models, data, code version, stage times", setup(study, prov, saes)),
    ]
    return built
