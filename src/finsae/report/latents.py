"""The latent browser: static, self-contained pages (no server, nothing fetched) to look at latents the way
SAEDashboard and Neuronpedia show them, built only from what the analysis and label stages wrote.

Per pair, model and layer one page (``{pair}/{kind}_{model}_layer_{i}.html``), one anchored section per latent of
the classes in :data:`CLASSES`: its label and scores (when labels exist), its top contexts and contexts at
several quantiles of its firing documents (activating words shaded by activation), a histogram of its
per-document max activation, its firing density and its diffing facts. ``index.html`` lists every latent with a
search box (a small inline script) that filters by label, description, class or ``#latent``.

Where the contexts come from (``finsae.analysis.contexts``): per latent the top 20 held-out documents by max
activation and 10 spread evenly over the rest of its firing documents. With the latent's count of firing
documents (``n_active_docs``) each quantile sample's percentile among them is known, and the histogram weights
each sample by the documents it stands for; without it (crosscoder latents) both say so.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from finsae.analysis import artifacts as analysis_artifacts
from finsae.analysis.contexts import read_contexts
from finsae.analysis.crosscoder import CONTEXT_MODEL
from finsae.analysis.warmstart import DOMAIN_SUFFIX
from finsae.errors import FinsaeError
from finsae.labeling.artifacts import LABEL_KEY, read_labels
from finsae.labeling.pipeline import METRICS
from finsae.paths import crosscoder_name, labels_dir, pair_dirs, sae_dir
from finsae.report.page import fmt_value
from finsae.sae.artifact import FREQUENCY_FILE, read_frequency

CLASSES = ("financial", "specialized", "crosscoder base-only", "crosscoder domain-only", "warm-start changed")
"""What puts a latent in the browser: the analysis's ``financial`` and ``specialized`` columns of
``features.parquet``, ``class`` of ``crosscoder.parquet`` (a sparsity artifact is flagged beside it) and
``changed`` of ``warmstart.parquet``."""
N_TOP_SHOWN = 5
"""Top contexts shown per latent (every stored quantile sample is shown below them)."""
HIST_BINS = 24
FEATURE_FACTS = {"best_match": "best match (other SAE)", "best_match_cos": "its cosine", "match": "one-to-one match",
                 "match_cos": "its cosine", "auroc_broad": "AUROC finance vs general", "auroc_genre":
                 "AUROC finance vs news genre", "improvement": "Δ AUROC vs its base partner",
                 "pair_corr": "activation corr. with partner", "best_category": "most selective for",
                 "best_category_auroc": "its AUROC", "n_active_docs": "firing held-out documents"}
CROSSCODER_FACTS = {"delta": "Δ relative decoder norm (0 base, 1 domain)", "decoder_cosine": "decoder cosine",
                    "artifact": "sparsity artifact", "nu_eps": "ν ε", "nu_r": "ν r",
                    "n_active": "firing analysis tokens", "auroc_broad": "AUROC finance vs general",
                    "auroc_genre": "AUROC finance vs news genre"}
WARMSTART_FACTS = {"drift_domain": "drift on the finance twin (1 − cos)", "drift_control": "drift in the control run",
                   "selectivity_change": "Δ AUROC (domain run − control run)", "live": "fires in all three SAEs"}
STYLE = """body{font-family:system-ui,sans-serif;max-width:1180px;margin:1.5em auto;padding:0 1em;color:#1d1d1f;
line-height:1.4;overflow-wrap:anywhere}.wrap{overflow-x:auto;max-width:100%}table{border-collapse:collapse;
font-size:.85em}th,td{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}th{background:#f3f3f5}
.none{color:#8a6d00}.err{color:#8b0000}.chip{display:inline-block;background:#e8eef7;border-radius:3px;padding:0 .4em;
margin-right:.3em;font-size:.8em}.facts span{display:inline-block;margin-right:1.2em;font-size:.85em}
.ctx{font-size:.85em;margin:.15em 0}.ctx i{color:#666;font-size:.9em;margin-right:.5em}section.latent{border-top:1px
solid #ddd;padding-top:.5em}svg{display:block}input{font-size:1em;padding:.3em;width:24em;max-width:100%}"""
SCRIPT = """const q=document.getElementById('q'),n=document.getElementById('n'),
rows=Array.from(document.querySelectorAll('#latents tbody tr'));
q.addEventListener('input',()=>{const t=q.value.trim().toLowerCase();let k=0;
for(const r of rows){const hit=!t||r.dataset.s.includes(t);r.hidden=!hit;k+=hit;}n.textContent=k;});"""


def esc(x) -> str:
    return html.escape(str(x), quote=True)


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


def _classes(rows: pd.DataFrame, flags: dict[str, pd.Series]) -> pd.Series:
    return pd.Series([[name for name, f in flags.items() if f.iloc[i]] for i in range(len(rows))], index=rows.index)


def _flag(rows: pd.DataFrame, col: str) -> pd.Series:
    if col not in rows.columns:
        return pd.Series(False, index=rows.index)
    return rows[col].astype("boolean").fillna(False).astype(bool)


def _feature_groups(artifacts: Path, folder: Path, summary, notes: list[str]) -> list[Group]:
    feats = analysis_artifacts.read_features(folder)
    if "specialized" not in feats.columns:
        notes.append(f"{folder.name}: features.parquet has no specialized column; specialized latents not shown")
    groups = []
    for (model, layer), rows in feats.groupby(["model", "layer"], sort=True):
        roles = rows["role"].unique() if "role" in rows.columns else [None]
        for role in roles:
            part = rows if role is None else rows[rows["role"] == role]
            kind = role or ("base" if summary and model == summary.base else
                            "domain" if summary and model == summary.domain else "model")
            flags = {"financial": _flag(part, "financial"), "specialized": _flag(part, "specialized")}
            part = part.assign(classes=_classes(part, flags))[flags["financial"] | flags["specialized"]]
            sae = sae_dir(artifacts, str(model), int(layer), summary.tag) if summary else None
            groups.append(Group(folder.name, kind, str(model), int(layer), part, FEATURE_FACTS, str(model), sae))
    return groups


def _method_groups(artifacts: Path, folder: Path, summary, notes: list[str]) -> list[Group]:
    groups = []
    base, domain = (summary.base, summary.domain) if summary else (None, None)
    for name, reader in (("crosscoder", analysis_artifacts.read_crosscoder),
                         ("warmstart", analysis_artifacts.read_warmstart)):
        if not analysis_artifacts.table_path(folder, name).is_file():
            notes.append(f"{folder.name}: no {name} table, so no {name} latents "
                         f"(made by `{analysis_artifacts.COMMAND}`{analysis_artifacts.HOW[name]})")
            continue
        table = reader(folder)
        for layer, rows in table.groupby("layer", sort=True):
            if name == "crosscoder":
                flags = {c: rows["class"] == c.split()[1].replace("-", "_") for c in CLASSES[2:4]}
                flags["financial"] = _flag(rows, "financial")
                model, ctx = crosscoder_name(base, domain) if base else CONTEXT_MODEL, CONTEXT_MODEL
                sae = sae_dir(artifacts, model, int(layer), summary.tag) if summary else None
            else:
                flags = {"warm-start changed": _flag(rows, "changed")}
                model, ctx = domain or "warm start", base
                sae = sae_dir(artifacts, domain, int(layer), summary.tag + DOMAIN_SUFFIX) if summary else None
            keep = np.logical_or.reduce([f.to_numpy() for f in flags.values()])
            part = rows.assign(classes=_classes(rows, flags))[keep]
            facts = CROSSCODER_FACTS if name == "crosscoder" else WARMSTART_FACTS
            groups.append(Group(folder.name, name, model, int(layer), part, facts, ctx, sae))
            if name == "warmstart":
                groups[-1].notes.append("Contexts are the base SAE's latent of the same index (where both warm "
                                        "runs started); density is the warm-started domain SAE's.")
    return groups


def collect(artifacts: Path) -> tuple[list[Group], list[str]]:
    """Every page's group of a store's analysis folders, and one line per thing that is missing or unreadable."""
    groups, notes = [], []
    folders = pair_dirs(artifacts, "analysis")
    if not folders:
        notes.append(f"no feature comparison under analysis/ (make it with `{analysis_artifacts.COMMAND}`)")
    for folder in folders:
        summary = None
        if not analysis_artifacts.summary_path(folder).is_file():
            notes.append(f"{folder.name}: no analysis summary.json, so no SAE tag: firing densities not shown")
        for step in ("summary", "features", "methods"):
            try:
                if step == "summary" and analysis_artifacts.summary_path(folder).is_file():
                    summary = analysis_artifacts.read_summary(folder)
                elif step == "features" and analysis_artifacts.table_path(folder, "features").is_file():
                    groups += _feature_groups(artifacts, folder, summary, notes)
                elif step == "features":
                    notes.append(f"{folder.name}: no features.parquet (made by `{analysis_artifacts.COMMAND}`)")
                elif step == "methods":
                    groups += _method_groups(artifacts, folder, summary, notes)
            except FinsaeError as e:
                notes.append(f"{folder.name}: {e}")
    return groups, notes


# -- pieces of a latent's section ----------------------------------------------------------------------------
def _bars_svg(counts: np.ndarray, edges: np.ndarray, xlabel: str, mark: float | None = None) -> str:
    """A small inline SVG histogram (bars scaled to the largest bin), its range and ``xlabel`` under it."""
    w, h, n = 260, 56, len(counts)
    top = float(counts.max()) if len(counts) and counts.max() > 0 else 1.0
    bw = w / max(n, 1)
    bars = "".join(f'<rect x="{i * bw:.1f}" y="{h - c / top * h:.1f}" width="{bw - 1:.1f}" height="{c / top * h:.1f}"'
                   f' fill="#3a6ea5"/>' for i, c in enumerate(counts) if c > 0)
    if mark is not None and len(edges) > 1 and edges[-1] > edges[0]:
        x = (mark - edges[0]) / (edges[-1] - edges[0]) * w
        bars += f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{h}" stroke="#d2691e" stroke-width="2"/>'
    lo, hi = (fmt_value(float(edges[0])), fmt_value(float(edges[-1]))) if len(edges) else ("", "")
    return (f'<svg width="{w}" height="{h + 14}" role="img" aria-label="{esc(xlabel)}">{bars}'
            f'<text x="0" y="{h + 12}" font-size="10">{esc(lo)}</text><text x="{w}" y="{h + 12}" font-size="10" '
            f'text-anchor="end">{esc(hi)}</text></svg><div class="ctx">{esc(xlabel)}</div>')


def _firing_positions(n_firing, n_top: int, n_quantile: int) -> np.ndarray | None:
    """Position (0 = highest) among the latent's firing documents of each stored quantile sample, as
    ``finsae.analysis.contexts.pick_examples`` chose them; None when the count is unknown or inconsistent."""
    if n_firing is None or pd.isna(n_firing) or n_quantile == 0:
        return None
    rest = int(n_firing) - n_top
    if rest < n_quantile:
        return None
    return n_top + (np.arange(n_quantile) if rest == n_quantile
                    else np.linspace(0, rest - 1, n_quantile).round().astype(int))


def _context_html(words, acts, scale: float, note: str) -> str:
    out = []
    for w, a in zip(words, acts, strict=True):
        if a > 0:
            alpha = min(1.0, float(a) / scale) if scale > 0 else 1.0
            out.append(f'<span style="background:rgba(255,140,0,{0.15 + 0.85 * alpha:.2f})" '
                       f'title="{float(a):.3g}">{esc(w)}</span>')
        else:
            out.append(esc(w))
    return f'<p class="ctx"><i>{esc(note)}</i>{" ".join(out)}</p>'


def _contexts_and_histogram(ctx: pd.DataFrame | None, n_firing) -> str:
    """Top contexts, quantile samples with their percentile, and the max-activation histogram of one latent."""
    if ctx is None or ctx.empty:
        return ('<p class="none">No stored contexts for this latent (the analysis stores those of financial '
                'latents and a sample of others).</p>')
    top = ctx[ctx["kind"] == "top"].sort_values("rank")
    quant = ctx[ctx["kind"] == "quantile"].sort_values("rank")
    scale = float(max((max(a, default=0.0) for a in ctx["acts"]), default=0.0))
    pos = _firing_positions(n_firing, len(top), len(quant))
    parts = [_context_html(r.words, r.acts, scale, f"top {r.rank + 1} · max {r.max_act:.3g}")
             for r in top.head(N_TOP_SHOWN).itertuples()]
    for i, r in enumerate(quant.itertuples()):
        where = (f"≈ {100 * (1 - pos[i] / max(int(n_firing) - 1, 1)):.0f}th percentile" if pos is not None
                 else f"quantile sample {i + 1} of {len(quant)}")
        parts.append(_context_html(r.words, r.acts, scale, f"{where} · max {r.max_act:.3g}"))
    if quant.empty:
        parts.append('<p class="none">No quantile samples stored (it fires in no more documents than its top '
                     'ones).</p>')
    values = np.r_[top["max_act"].to_numpy(float), quant["max_act"].to_numpy(float)]
    weights = np.r_[np.ones(len(top)), np.full(len(quant), (int(n_firing) - len(top)) / len(quant)
                                               if pos is not None else 1.0)]
    counts, edges = np.histogram(values, HIST_BINS, range=(0.0, float(values.max()) or 1.0), weights=weights)
    what = (f"per-document max activation over its {int(n_firing)} firing documents (top {len(top)} exact, the "
            f"rest from {len(quant)} quantile samples weighted by the documents each stands for)" if pos is not None
            else f"per-document max activation of its {len(values)} stored firing contexts")
    return _bars_svg(counts, edges, what) + "".join(parts)


def _density(group: Group, row, freq: np.ndarray | None) -> str:
    parts = []
    if "n_active_docs" in row and pd.notna(row["n_active_docs"]):
        parts.append(f"fires in {int(row['n_active_docs'])} held-out documents")
    latent = int(row["latent"])
    if freq is not None and latent < len(freq):
        f = float(freq[latent])
        parts.append(f"fires on {100 * f:.3g}% of its SAE's sae_eval tokens (denser than "
                     f"{100 * float((freq < f).mean()):.0f}% of its latents)" if f > 0
                     else "never fired on its SAE's sae_eval tokens")
    return f'<p class="ctx">{esc("; ".join(parts))}</p>' if parts else '<p class="none">No firing density stored.</p>'


def _text(row, col: str) -> str:
    """A text cell of ``row``; empty when absent or null."""
    value = row.get(col) if row is not None else None
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _label_html(label: pd.Series | None) -> str:
    if label is None:
        return '<p class="none">Not labelled.</p>'
    head = f'<p><b>{esc(_text(label, "label") or "(no label)")}</b> <span class="chip">{esc(_text(label, "status"))}'
    head += f'</span> {esc(_text(label, "description") or _text(label, "skip_reason"))}</p>'
    scores = []
    for m in (m for ms in METRICS.values() for m in ms):
        if m in label.index and pd.notna(label[m]):
            controls = [f"{w} {fmt_value(float(label[c]))}" for w, c in (("shuffled", f"{m}_control"),
                        ("generic", f"generic_{m}"), ("matched", f"matched_control_{m}"))
                        if c in label.index and pd.notna(label[c])]
            scores.append(f"<span>{esc(m)} {esc(fmt_value(float(label[m])))}"
                          f"{esc(' (' + ', '.join(controls) + ')' if controls else '')}</span>")
    return head + (f'<div class="facts">{"".join(scores)}</div>' if scores else "")


def _facts_html(group: Group, row) -> str:
    out = []
    for col, name in group.facts.items():
        if col not in row or (not isinstance(row[col], str) and pd.isna(row[col])):
            continue
        value = fmt_value(row[col].item() if hasattr(row[col], "item") else row[col])
        lo, hi = row.get(f"{col}_ci_low"), row.get(f"{col}_ci_high")
        if lo is not None and hi is not None and pd.notna(lo) and pd.notna(hi):
            value += f" [{fmt_value(float(lo))}, {fmt_value(float(hi))}]"
        out.append(f"<span><b>{esc(name)}</b> {esc(value)}</span>")
    return f'<div class="facts">{"".join(out)}</div>' if out else '<p class="none">No diffing facts stored.</p>'


# -- pages -----------------------------------------------------------------------------------------------------
def _html(title: str, body: str, script: str = "") -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>'
            f"<body>{body}{f'<script>{script}</script>' if script else ''}</body></html>")


def _read_frequency(group: Group) -> np.ndarray | None:
    if group.sae is None or not (group.sae / FREQUENCY_FILE).is_file():
        group.notes.append("No firing frequencies of this SAE (train.py writes them; the analysis summary names "
                           "the SAE tag).")
        return None
    return read_frequency(group.sae)


def _read_contexts(artifacts: Path, group: Group) -> dict[int, pd.DataFrame]:
    if group.contexts_model is None:
        return {}
    folder = Path(artifacts) / "analysis" / group.pair
    if not analysis_artifacts.contexts_path(folder, group.contexts_model, group.layer).is_file():
        group.notes.append(f"No stored contexts of {group.contexts_model} at layer {group.layer}.")
        return {}
    try:
        ctx = read_contexts(folder, group.contexts_model, group.layer)
    except FinsaeError as e:
        group.notes.append(str(e))
        return {}
    return {int(k): v for k, v in ctx[ctx["kind"] != "negative"].groupby("latent")}


def write_group_page(artifacts: Path, out_dir: Path, group: Group, labels: pd.DataFrame | None) -> Path:
    """The page of one group: the SAE's firing-frequency histogram, then one section per latent."""
    freq = _read_frequency(group)
    contexts = _read_contexts(artifacts, group)
    sections = []
    for _, row in group.latents.sort_values("latent").iterrows():
        latent = int(row["latent"])
        key = (group.model, group.layer, latent)
        label = labels.loc[key] if labels is not None and key in labels.index else None
        chips = "".join(f'<span class="chip">{esc(c)}</span>' for c in row["classes"])
        sections.append(f'<section class="latent" id="l{latent}"><h3>latent {latent} {chips}</h3>'
                        f"{_label_html(label)}{_facts_html(group, row)}{_density(group, row, freq)}"
                        f"{_contexts_and_histogram(contexts.get(latent), row.get('n_active_docs'))}</section>")
    head = [f'<p><a href="../index.html">all latents</a></p><h1>{esc(group.title)}</h1>']
    if freq is not None and (freq > 0).any():
        counts, edges = np.histogram(np.log10(freq[freq > 0]), HIST_BINS)
        head.append(_bars_svg(counts, edges, f"log10 firing frequency of this SAE's latents on sae_eval tokens "
                                             f"({int((freq == 0).sum())} never fired)"))
    head += [f'<p class="none">{esc(n)}</p>' for n in group.notes]
    path = Path(out_dir) / group.page
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_html(group.title, "".join(head + sections)))
    return path


def _labels_of(artifacts: Path, pair: str, notes: list[str]) -> pd.DataFrame | None:
    try:
        labels = read_labels(labels_dir(artifacts, pair), missing_ok=True)
    except FinsaeError as e:
        notes.append(f"{pair}: {e}")
        return None
    if labels is None:
        notes.append(f"{pair}: no labels (make them with `python label.py`)")
        return None
    return labels.drop_duplicates(list(LABEL_KEY)).set_index(list(LABEL_KEY))


def _index(groups: list[Group], labels: dict[str, pd.DataFrame | None], notes: list[str]) -> str:
    pages, rows = [], []
    for g in groups:
        counts = {c: int(sum(c in cs for cs in g.latents["classes"])) for c in CLASSES}
        pages.append(f'<tr><td><a href="{esc(g.page)}">{esc(g.title)}</a></td>'
                     + "".join(f"<td>{counts[c]}</td>" for c in CLASSES) + "</tr>")
        lab = labels.get(g.pair)
        for _, r in g.latents.sort_values("latent").iterrows():
            key = (g.model, g.layer, int(r["latent"]))
            found = lab.loc[key] if lab is not None and key in lab.index else None
            text, desc = _text(found, "label"), _text(found, "description")
            search = f"#{key[2]} {text} {desc} {' '.join(r['classes'])}".lower()
            rows.append(f'<tr data-s="{esc(search)}"><td>{esc(g.title)}</td><td><a href="{esc(g.page)}#l{key[2]}">'
                        f"{key[2]}</a></td><td>{esc(', '.join(r['classes']))}</td><td>{esc(text)}</td></tr>")
    body = ["<h1>Latent browser</h1>", f"<p>Every {', '.join(CLASSES)} latent the artifacts mark, with its label, "
            "contexts, activation histogram, firing density and diffing facts.</p>"]
    body += [f'<p class="none">{esc(n)}</p>' for n in notes]
    if not rows:
        body.append('<p class="none">No latent of these classes in the artifacts.</p>')
        return _html("Latent browser", "".join(body))
    head = "".join(f"<th>{esc(c)}</th>" for c in CLASSES)
    body += [f'<h2>Pages</h2><div class="wrap"><table><thead><tr><th>page</th>{head}</tr></thead><tbody>'
             f'{"".join(pages)}</tbody></table></div>',
             '<h2>Latents</h2><p><input id="q" type="search" placeholder="label, class or #latent" '
             f'aria-label="filter latents"> <span id="n">{len(rows)}</span> of {len(rows)} shown</p>',
             '<div class="wrap"><table id="latents"><thead><tr><th>page</th><th>latent</th><th>classes</th>'
             f'<th>label</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>']
    return _html("Latent browser", "".join(body), SCRIPT)


def write_latent_browser(artifacts_dir: str | Path, out_dir: str | Path) -> Path:
    """The latent browser of the store ``artifacts_dir`` written into ``out_dir``; returns its ``index.html``."""
    artifacts = Path(artifacts_dir)
    if not artifacts.is_dir():
        raise FinsaeError(f"no artifacts folder {artifacts}; pass the store the stages wrote (e.g. artifacts/)")
    groups, notes = collect(artifacts)
    notes += [f"{g.title}: no latent of these classes" for g in groups if not len(g.latents)]
    groups = [g for g in groups if len(g.latents)]
    labels = {p: _labels_of(artifacts, p, notes) for p in dict.fromkeys(g.pair for g in groups)}
    out = Path(out_dir)
    for g in groups:
        write_group_page(artifacts, out, g, labels[g.pair])
    index = out / "index.html"
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text(_index(groups, labels, notes))
    return index
