"""The latent browser: static, self-contained pages (no server, nothing fetched) to look at latents the way
SAEDashboard and Neuronpedia show them, built only from what the analysis and label stages wrote.

One page per pair, model and layer (``{pair}/{kind}_{model}_layer_{i}.html``), one anchored section per latent
of the classes in :data:`CLASSES`: its label and scores (when labels exist), its top contexts and contexts at
several quantiles of its firing documents (activating words shaded by activation), a histogram of its
per-document max activation, its firing density and its diffing facts. ``index.html`` lists every latent with
a search box (a small inline script) filtering by label, description, class or ``#latent``.

The stored contexts (``finsae.analysis.contexts``) are per latent its top 20 held-out documents and 10 spread
evenly over the rest of its firing documents: with its count of these (``n_active_docs``) each sample's
percentile is known and the histogram weights it by the documents it stands for (else both say so)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

esc = html.escape
"""Every text a page shows, labels (an LLM's answers) above all, goes through this."""

from finsae.analysis import artifacts as analysis_artifacts
from finsae.analysis.contexts import read_contexts
from finsae.analysis.methods.crosscoder import NAME as CONTEXT_MODEL  # its contexts are stored under its name
from finsae.analysis.methods import METHODS
from finsae.analysis.warmstart import DOMAIN_SUFFIX
from finsae.errors import FinsaeError
from finsae.labeling.artifacts import LABEL_KEY, read_labels
from finsae.labeling.pipeline import METRICS
from finsae.paths import analysis_dir, crosscoder_name, labels_dir, pair_dirs, sae_dir
from finsae.report.tables import fmt_value
from finsae.report.svg import bars_svg
from finsae.sae.artifact import FREQUENCY_FILE, read_frequency

CLASSES = ("financial", "specialized", "crosscoder base-only", "crosscoder domain-only", "warm-start changed")
"""What puts a latent in the browser: the ``financial`` and ``specialized`` columns of ``features.parquet``,
``class`` of ``crosscoder.parquet`` (a sparsity artifact is flagged beside it) and ``changed`` of
``warmstart.parquet``."""
N_TOP_SHOWN = 5
"""Top contexts shown per latent (every stored quantile sample is shown below them)."""
HIST_BINS = 24
"""Bins of every histogram."""
FEATURE_FACTS = {"best_match": "best match (other SAE)", "best_match_cos": "its cosine", "match": "1:1 match",
                 "match_cos": "its cosine", "auroc_broad": "AUROC finance vs general",
                 "auroc_genre": "AUROC finance vs news genre", "improvement": "Δ AUROC vs its base partner",
                 "pair_corr": "activation corr. with partner", "best_category": "most selective for",
                 "best_category_auroc": "its AUROC", "n_active_docs": "firing held-out documents"}
CROSSCODER_FACTS = {"delta": "Δ relative decoder norm (0 base, 1 domain)", "decoder_cosine": "cosine",
                    "artifact": "sparsity artifact", "nu_eps": "ν ε", "nu_r": "ν r",
                    "n_active": "firing analysis tokens", "auroc_broad": "AUROC finance vs general",
                    "auroc_genre": "AUROC finance vs news genre"}
WARMSTART_FACTS = {"drift_domain": "drift on the twin (1 − cos)", "drift_control": "in the control run",
                   "selectivity_change": "Δ AUROC (domain − control)", "live": "fires in all three SAEs"}
STYLE = """body{font-family:system-ui,sans-serif;max-width:1180px;margin:1.5em auto;padding:0 1em;
color:#1d1d1f;line-height:1.4;overflow-wrap:anywhere}.wrap{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:.85em}th,td{border:1px solid #ccc;padding:.2em .5em;text-align:left;
vertical-align:top}th{background:#f3f3f5}.none{color:#8a6d00}.chip{display:inline-block;background:#e8eef7;
border-radius:3px;padding:0 .4em;margin-right:.3em;font-size:.8em}.facts span{display:inline-block;
margin-right:1.2em;font-size:.85em}.ctx{font-size:.85em;margin:.15em 0}.ctx i{color:#666;margin-right:.5em}
section.latent{border-top:1px solid #ddd;padding-top:.5em}.plots{display:flex;flex-wrap:wrap;gap:1.5em}
svg{display:block}input{font-size:1em;padding:.3em;width:24em;max-width:100%}"""
SCRIPT = """const q=document.getElementById('q'),n=document.getElementById('n'),
rows=Array.from(document.querySelectorAll('#latents tbody tr'));
q.addEventListener('input',()=>{const t=q.value.trim().toLowerCase();let k=0;
for(const r of rows){const hit=!t||r.dataset.s.includes(t);r.hidden=!hit;k+=hit;}n.textContent=k;});"""

METHOD_TABLES = {t.name: t for m in METHODS.values() for t in m.tables
                 if t.name == m.name and "latent" in t.columns}
"""The per-latent table named after its method (crosscoder, warm start): each browsed apart from the SAEs'
(a method's per-layer table, the lens's or the causal test's, has no latents to browse)."""


@dataclass
class Group:
    """One page: the browsed latents of one model (or crosscoder, or warm start) at one layer of a pair."""

    pair: str
    kind: str
    """``base``, ``domain``, ``model`` (role unknown), ``crosscoder`` or ``warmstart``."""
    model: str
    layer: int
    latents: pd.DataFrame
    """One row per latent: ``latent``, ``classes`` (list of str) and the facts columns of its table."""
    facts: dict[str, str]
    """Columns of ``latents`` shown as diffing facts, with their names."""
    contexts_model: str | None
    """The model whose stored contexts the latents' contexts are (None: none stored for them)."""
    sae: Path | None = None
    """The SAE run whose firing frequencies give the density (None: unknown)."""
    notes: list[str] = field(default_factory=list)

    @property
    def page(self) -> str:
        return f"{self.pair}/{self.kind}_{self.model}_layer_{self.layer}.html"

    @property
    def title(self) -> str:
        return f"{self.pair} · {self.kind} {self.model} · layer {self.layer}"


def _flag(rows: pd.DataFrame, col: str) -> pd.Series:
    flag = rows[col] if col in rows.columns else pd.Series(False, index=rows.index)
    return flag.astype("boolean").fillna(False).astype(bool)


def _marked(rows: pd.DataFrame, flags: dict[str, pd.Series]) -> pd.DataFrame:
    """The rows with any flag set, each with its ``classes`` (the names of its flags)."""
    marks = pd.DataFrame(flags, index=rows.index)
    names = [[n for n, f in zip(marks.columns, r, strict=True) if f] for r in marks.to_numpy()]
    return rows.assign(classes=pd.Series(names, index=rows.index, dtype=object))[marks.any(axis=1)]


def _feature_groups(artifacts: Path, folder: Path, summary, notes: list[str]) -> list[Group]:
    feats = analysis_artifacts.read_features(folder)
    if "specialized" not in feats.columns:
        notes.append(f"{folder.name}: features.parquet has no specialized column: no specialized latents")
    groups = []
    for (model, layer), rows in feats.groupby(["model", "layer"], sort=True):
        # base and domain may be one model (a pair of a model with itself): the role tells them apart
        for role in rows["role"].unique() if "role" in rows.columns else [None]:
            part = rows if role is None else rows[rows["role"] == role]
            kind = role or ("base" if summary and model == summary.base else
                            "domain" if summary and model == summary.domain else "model")
            part = _marked(part, {c: _flag(part, c) for c in CLASSES[:2]})
            sae = sae_dir(artifacts, str(model), int(layer), summary.tag) if summary else None
            groups.append(Group(folder.name, kind, str(model), int(layer), part, FEATURE_FACTS, model, sae))
    return groups


def _method_group(artifacts: Path, folder: Path, summary, name: str, layer: int, rows: pd.DataFrame) -> Group:
    """The crosscoder's (``name`` ``crosscoder``) or the warm starts' (``warmstart``) group at ``layer``."""
    base, domain = (summary.base, summary.domain) if summary else (None, None)
    if name == "crosscoder":
        flags = {c: rows["class"] == c.split()[1].replace("-", "_") for c in CLASSES[2:4]}
        model = crosscoder_name(base, domain) if summary else CONTEXT_MODEL
        sae = sae_dir(artifacts, model, layer, summary.tag) if summary else None
        part = _marked(rows, {"financial": _flag(rows, "financial"), **flags})
        return Group(folder.name, name, model, layer, part, CROSSCODER_FACTS, CONTEXT_MODEL, sae)
    sae = sae_dir(artifacts, domain, layer, summary.tag + DOMAIN_SUFFIX) if summary else None
    note = ("Contexts are those of the base SAE's latent of the same index (where both warm runs started); "
            "the firing density is the warm-started domain SAE's.")
    part = _marked(rows, {CLASSES[4]: _flag(rows, "changed")})
    return Group(folder.name, name, domain or "warm start", layer, part, WARMSTART_FACTS, base, sae, [note])


def _attempt(notes: list[str], pair: str, read, otherwise):
    """``read()``, or ``otherwise`` with its one-line error noted (a damaged file ends no page)."""
    try:
        return read()
    except FinsaeError as e:
        notes.append(f"{pair}: {e}")
        return otherwise


def collect(artifacts: Path) -> tuple[list[Group], list[str]]:
    """The groups (pages) of a store's analysis folders, and one line per thing missing or unreadable."""
    groups, notes, command = [], [], analysis_artifacts.COMMAND
    folders = pair_dirs(artifacts, "analysis")
    if not folders:
        notes.append(f"no feature comparison under analysis/ (make it with `{command}`)")
    for folder in folders:
        summary = _attempt(notes, folder.name, lambda f=folder: analysis_artifacts.read_summary(f), None)
        if analysis_artifacts.table_path(folder, "features").is_file():
            groups += _attempt(notes, folder.name,
                               lambda f=folder, s=summary: _feature_groups(artifacts, f, s, notes), [])
        else:
            notes.append(f"{folder.name}: no features.parquet (made by `{command}`)")
        for name, spec in METHOD_TABLES.items():
            if not analysis_artifacts.table_path(folder, name).is_file():
                notes.append(f"{folder.name}: no {name} table, so no {name} latents (made by "
                             f"`{command}`{spec.how})")
                continue
            table = _attempt(notes, folder.name, lambda f=folder, n=name: analysis_artifacts.read_table(f, n),
                             None)
            groups += [_method_group(artifacts, folder, summary, name, int(layer), rows)
                       for layer, rows in ([] if table is None else table.groupby("layer", sort=True))]
    return groups, notes


def _firing_positions(n_firing, n_top: int, n_quantile: int) -> np.ndarray | None:
    """Position (0 = highest) among the latent's firing documents of each stored quantile sample, as
    ``finsae.analysis.contexts.pick_examples`` chose them; None when the count is unknown or inconsistent."""
    if n_firing is None or pd.isna(n_firing) or n_quantile == 0 or int(n_firing) - n_top < n_quantile:
        return None
    rest = int(n_firing) - n_top
    return n_top + (np.arange(n_quantile) if rest == n_quantile
                    else np.linspace(0, rest - 1, n_quantile).round().astype(int))


def _context_html(words, acts, scale: float, note: str) -> str:
    """One context, each activating word shaded by its activation over ``scale`` (its value on hover)."""
    out = [f'<span style="background:rgba(255,140,0,{0.15 + 0.85 * min(1.0, float(a) / scale):.2f})" '
           f'title="{float(a):.3g}">{esc(w)}</span>' if a > 0 else esc(w)
           for w, a in zip(words, acts, strict=True)]
    return f'<p class="ctx"><i>{esc(note)}</i>{" ".join(out)}</p>'


def _contexts(ctx: dict[str, list] | None, n_firing) -> tuple[str, str]:
    """A latent's max-activation histogram, and its top contexts then quantile samples (with percentile)."""
    if not ctx:
        return "", ('<p class="none">No stored contexts for this latent (the analysis stores those of '
                    'financial latents and a sample of others).</p>')
    top, quant = ctx.get("top", []), ctx.get("quantile", [])
    scale = max(float(np.max(r.acts, initial=0.0)) for r in top + quant) or 1.0
    pos = _firing_positions(n_firing, len(top), len(quant))
    parts = [_context_html(r.words, r.acts, scale, f"top {r.rank + 1} · max {r.max_act:.3g}")
             for r in top[:N_TOP_SHOWN]]
    for i, r in enumerate(quant):
        where = (f"percentile ≈ {100 * (1 - pos[i] / max(int(n_firing) - 1, 1)):.0f}" if pos is not None
                 else f"quantile sample {i + 1} of {len(quant)}")
        parts.append(_context_html(r.words, r.acts, scale, f"{where} · max {r.max_act:.3g}"))
    if not quant:
        parts.append('<p class="none">No quantile samples stored (it fires in no more documents).</p>')
    values = np.array([r.max_act for r in top + quant], np.float64)
    stands_for = (int(n_firing) - len(top)) / len(quant) if pos is not None else 1.0
    weights = np.r_[np.ones(len(top)), np.full(len(quant), stands_for)]
    counts, edges = np.histogram(values, HIST_BINS, range=(0.0, float(values.max()) or 1.0), weights=weights)
    what = (f"per-document max activation over its {int(n_firing)} firing documents (top {len(top)} exact, "
            f"the rest from {len(quant)} quantile samples, each weighted by the documents it stands for)"
            if pos is not None else f"per-document max activation of its {len(values)} stored contexts")
    return bars_svg(counts, edges, what), "".join(parts)


def _density(row, freq: np.ndarray | None, freq_hist) -> tuple[str, str]:
    """Its place in its SAE's log10 firing-frequency histogram ``freq_hist``, and its firing in words."""
    words, plot = [], ""
    if pd.notna(row.get("n_active_docs")):
        words.append(f"fires in {int(row['n_active_docs'])} held-out documents")
    f = float(freq[int(row["latent"])]) if freq is not None and int(row["latent"]) < len(freq) else None
    if f is not None and f > 0:
        words.append(f"fires on {100 * f:.3g}% of its SAE's sae_eval tokens (denser than "
                     f"{100 * float((freq < f).mean()):.0f}% of its latents)")
        plot = bars_svg(*freq_hist, "log10 firing frequency of its SAE's latents (line: it)", np.log10(f))
    elif f is not None:
        words.append("never fired on its SAE's sae_eval tokens")
    text = (f'<p class="ctx">{esc("; ".join(words))}</p>' if words
            else '<p class="none">No firing density stored.</p>')
    return plot, text


def _text(row, col: str) -> str:
    """A text cell of ``row``; empty when absent or null."""
    value = row.get(col) if row is not None else None
    return "" if pd.isna(value) else str(value)


def _label_html(label: pd.Series | None) -> str:
    """The label, its status and description, and each score beside its controls."""
    if label is None:
        return '<p class="none">Not labelled.</p>'
    about = _text(label, "description") or _text(label, "skip_reason")
    out = (f'<p><b>{esc(_text(label, "label") or "(no label)")}</b> <span class="chip">'
           f'{esc(_text(label, "status"))}</span> {esc(about)}</p><div class="facts">')
    for m in (m for ms in METRICS.values() for m in ms):
        if pd.notna(label.get(m)):
            controls = [f"{w} {fmt_value(float(label[c]))}" for w, c in (
                ("shuffled", f"{m}_control"), ("generic", f"generic_{m}"),
                ("matched", f"matched_control_{m}")) if pd.notna(label.get(c))]
            out += f"<span>{esc(m)} {esc(fmt_value(float(label[m])))}"
            out += f"{esc(' (' + ', '.join(controls) + ')' if controls else '')}</span>"
    return out + "</div>"


def _facts_html(group: Group, row) -> str:
    out = []
    for col, name in group.facts.items():
        if pd.isna(row.get(col)):
            continue
        value = fmt_value(row[col].item() if hasattr(row[col], "item") else row[col])
        lo, hi = row.get(f"{col}_ci_low"), row.get(f"{col}_ci_high")
        if pd.notna(lo) and pd.notna(hi):
            value += f" [{fmt_value(float(lo))}, {fmt_value(float(hi))}]"
        out.append(f"<span><b>{esc(name)}</b> {esc(value)}</span>")
    return f'<div class="facts">{"".join(out)}</div>' if out else '<p class="none">No diffing facts.</p>'


def _html(title: str, body: str, script: str = "") -> str:
    script = f"<script>{script}</script>" if script else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title><style>'
            f"{STYLE}</style></head><body>{body}{script}</body></html>")


def _read_frequency(group: Group) -> np.ndarray | None:
    if group.sae is not None and (group.sae / FREQUENCY_FILE).is_file():
        return np.asarray(read_frequency(group.sae), np.float64).ravel()
    group.notes.append("No firing frequencies of this SAE (train.py writes them; the analysis summary names "
                       "the SAE tag).")
    return None


def _read_contexts(artifacts: Path, group: Group) -> dict[int, dict[str, list]]:
    """Per latent, its stored contexts by kind (top, quantile), each list in rank order."""
    folder, model, by_latent = analysis_dir(artifacts, group.pair), group.contexts_model, {}
    read = (lambda: read_contexts(folder, model, group.layer)) if model else (lambda: None)
    ctx = _attempt(group.notes, group.pair, read, None)
    kept = [] if ctx is None else ctx[ctx["kind"] != "negative"].sort_values(["latent", "rank"]).itertuples()
    for r in kept:
        by_latent.setdefault(int(r.latent), {}).setdefault(r.kind, []).append(r)
    return by_latent


def write_group_page(artifacts: Path, out_dir: Path, group: Group, labels: pd.DataFrame | None) -> Path:
    """The page of one group: its SAE's firing-frequency histogram, then one section per latent."""
    freq = _read_frequency(group)
    fired = freq[freq > 0] if freq is not None else np.zeros(0)
    freq_hist = np.histogram(np.log10(fired), HIST_BINS) if len(fired) else None
    contexts = _read_contexts(artifacts, group)
    sections = []
    for _, row in group.latents.sort_values("latent").iterrows():
        latent = int(row["latent"])
        label = _label_of(labels, group, latent)
        chips = "".join(f'<span class="chip">{esc(c)}</span>' for c in row["classes"])
        hist, ctx = _contexts(contexts.get(latent), row.get("n_active_docs"))
        density_plot, density = _density(row, freq if freq_hist else None, freq_hist)
        sections.append(f'<section class="latent" id="l{latent}"><h3>latent {latent} {chips}</h3>'
                        f'{_label_html(label)}{_facts_html(group, row)}<div class="plots">{hist}'
                        f"{density_plot}</div>{density}{ctx}</section>")
    head = [f'<p><a href="../index.html">all latents</a></p><h1>{esc(group.title)}</h1>']
    if freq_hist is not None:
        head.append(bars_svg(*freq_hist, f"log10 firing frequency of this SAE's latents on sae_eval tokens "
                                          f"({int((freq == 0).sum())} never fired)"))
    # errors name files by path: the store's own path is left out, so the pages stay portable
    head += [f'<p class="none">{esc(n.replace(str(artifacts), artifacts.name))}</p>' for n in group.notes]
    path = Path(out_dir) / group.page
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_html(group.title, "".join(head + sections)))
    return path


def _labels_of(artifacts: Path, pair: str, notes: list[str]) -> pd.DataFrame | None:
    labels = _attempt(notes, pair, lambda: read_labels(labels_dir(artifacts, pair), missing_ok=True), None)
    if labels is None:
        notes.append(f"{pair}: no labels shown (make them with `python label.py`)")
    return None if labels is None else labels.drop_duplicates(list(LABEL_KEY)).set_index(list(LABEL_KEY))


def _label_of(labels: pd.DataFrame | None, group: Group, latent: int) -> pd.Series | None:
    """A latent's label (the label stage labels the base and domain SAEs' latents only)."""
    key = (group.model, group.layer, latent)
    known = labels is not None and group.kind not in METHOD_TABLES and key in labels.index
    return labels.loc[key] if known else None


def _index(groups: list[Group], labels: dict[str, pd.DataFrame | None], notes: list[str]) -> str:
    """The index page: notes, the pages with their counts per class, and every latent behind a search box."""
    pages, rows = [], []
    for g in groups:
        counts = "".join(f"<td>{sum(c in cs for cs in g.latents['classes'])}</td>" for c in CLASSES)
        pages.append(f'<tr><td><a href="{esc(g.page)}">{esc(g.title)}</a></td>{counts}</tr>')
        for latent, classes in zip(g.latents["latent"].astype(int), g.latents["classes"], strict=True):
            found = _label_of(labels.get(g.pair), g, latent)
            text, marks = _text(found, "label"), ", ".join(classes)
            search = f"#{latent} {marks} {_text(found, 'description')} {text}".lower()
            rows.append(f'<tr data-s="{esc(search)}"><td>{esc(g.title)}</td><td><a href="{esc(g.page)}#l'
                        f'{latent}">{latent}</a></td><td>{esc(marks)}</td><td>{esc(text)}</td></tr>')
    body = ["<h1>Latent browser</h1>", f"<p>Every {esc(', '.join(CLASSES))} latent the artifacts mark, with "
            "its label, contexts, activation histogram, firing density and diffing facts.</p>"]
    body += [f'<p class="none">{esc(n)}</p>' for n in notes]
    if not rows:
        return _html("Latent browser", "".join(body) + '<p class="none">No latent of these classes.</p>')
    classes = "".join(f"<th>{esc(c)}</th>" for c in CLASSES)
    body += [f'<h2>Pages</h2><div class="wrap"><table><thead><tr><th>page</th>{classes}</tr></thead><tbody>'
             f'{"".join(pages)}</tbody></table></div><h2>Latents</h2><p><input id="q" type="search" '
             f'placeholder="label, class or #latent" aria-label="filter latents"> <span id="n">{len(rows)}'
             f'</span> of {len(rows)} shown</p><div class="wrap"><table id="latents"><thead><tr><th>page</th>'
             f'<th>latent</th><th>classes</th><th>label</th></tr></thead><tbody>{"".join(rows)}</tbody>'
             "</table></div>"]
    return _html("Latent browser", "".join(body), SCRIPT)


def write_latent_browser(artifacts_dir: str | Path, out_dir: str | Path) -> Path:
    """The latent browser of the store ``artifacts_dir`` written into ``out_dir``; returns ``index.html``."""
    artifacts = Path(artifacts_dir)
    if not artifacts.is_dir():
        raise FinsaeError(f"no artifacts folder {artifacts}; pass the store the stages wrote (artifacts/)")
    groups, notes = collect(artifacts)
    notes += [f"{g.title}: no latent of these classes" for g in groups if not len(g.latents)]
    groups = [g for g in groups if len(g.latents)]
    labels = {p: _labels_of(artifacts, p, notes) for p in dict.fromkeys(g.pair for g in groups)}
    for g in groups:
        write_group_page(artifacts, Path(out_dir), g, labels[g.pair])
    index = Path(out_dir) / "index.html"
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text(_index(groups, labels, [n.replace(str(artifacts), artifacts.name) for n in notes]))
    return index
