"""The analysis section's tables beyond the per-layer ones (:mod:`~finsae.report.build`): the activation lens
(method 0, the study's primary "where", shown first), the finance vs control vs fine-tune-seed comparison
(:mod:`finsae.analysis.comparison`), and every other table a diffing method declares in the analysis contract
(:attr:`finsae.analysis.methods.base.DiffingMethod.tables`), found through the registry: a method's new table
(``causal.parquet``, ``crosscoder_sweep.parquet``) is shown without a report edit. A per-latent table that the
latent browser and the figures show instead is one name of :data:`LATENT_TABLES`.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import pandas as pd

from finsae import atomic
from finsae.analysis import artifacts as analysis_files
from finsae.analysis.comparison import COLUMNS as COMPARISON_COLUMNS
from finsae.analysis.comparison import COMPARISON_TABLE, SHOWN
from finsae.analysis.methods.lens import TABLE as LENS_TABLE
from finsae.analysis.summary import SEED_TEXT
from finsae.report.blocks import through
from finsae.report.sections import Block, Heading, Table, Text
from finsae.report.study import Study

LENS_MEASURES = {"relative_change": "relative change", "cka": "CKA", "affine_r2": "affine R²"}
"""The lens measures the lens table shows (the figure has the spectra, window share and mean difference)."""
TEXT_TYPES = ("financial", "general", "all", "difference")
"""The lens table's row order within a layer (difference: financial − general)."""
LATENT_TABLES = ("features", "curves", "crosscoder", "warmstart")
"""Method tables of one row per latent (or per tau): the latent browser and the figures show them."""
SHOWN_APART = (analysis_files.LAYERS_TABLE, LENS_TABLE, *LATENT_TABLES)
"""Contract tables this module does not show as a method table (the lens has its own)."""


def _interval(value, lo, hi, spec: str = "{:.3f}") -> str:
    """``value [lo, hi]``; "n/a" without a value, the value alone without an interval."""
    def ok(x) -> bool:
        return isinstance(x, (int, float)) and math.isfinite(x)

    if not ok(value):
        return "n/a"
    if not (ok(lo) and ok(hi)):
        return spec.format(value)
    return f"{spec.format(value)} [{spec.format(lo)}, {spec.format(hi)}]"


def lens_table(lens: pd.DataFrame, position: str) -> pd.DataFrame:
    """Layer × text type of ``lens`` (``activation_lens.parquet``) at ``position`` (``tokens`` or ``cls``):
    each of :data:`LENS_MEASURES` as ``value [lo, hi]``."""
    t = lens[(lens["position"] == position) & lens["measure"].isin(list(LENS_MEASURES))]
    if t.empty:
        return pd.DataFrame()
    t = t.assign(cell=[_interval(r.value, r.lo, r.hi) for r in t.itertuples()])
    wide = t.pivot_table(index=["layer", "text_type"], columns="measure", values="cell", aggfunc="first")
    wide = wide[[m for m in LENS_MEASURES if m in wide.columns]].rename(columns=LENS_MEASURES)
    order = {tt: i for i, tt in enumerate(TEXT_TYPES)}
    wide = wide.reset_index().sort_values(
        ["layer", "text_type"], key=lambda c: c.map(order) if c.name == "text_type" else c)
    return wide.rename(columns={"text_type": "text"}).reset_index(drop=True)


def lens_blocks(study: Study, folder: Path) -> list[Block]:
    """The activation lens first: tokens by layer and text type, [CLS] apart."""
    lens = study.analysis_table(folder, LENS_TABLE)
    if lens is None:
        return [Text("activation lens: not run for this pair.", note=True)]
    out: list[Block] = [Heading("Where the twin differs: the activation lens", 2),
                        Table(lens_table(lens, "tokens"), "activation lens by layer and text type (tokens, "
                              "[CLS] apart; document-bootstrap intervals)", max_rows=None)]
    cls = lens_table(lens, "cls")
    if len(cls):
        out.append(Table(cls, "activation lens at [CLS] (the position the twin's classifier reads)",
                         max_rows=None))
    else:
        out.append(Text("[CLS] not stored for this pair: the lens measured the other tokens only.",
                        note=True))
    return out


def read_comparison(folder: Path) -> pd.DataFrame:
    """``comparison.parquet`` of the finance pair's folder, its columns checked."""
    return atomic.read_table(Path(folder) / COMPARISON_TABLE, "lens comparison table",
                             list(COMPARISON_COLUMNS), analysis_files.COMMAND)


def comparison_table(cmp: pd.DataFrame) -> pd.DataFrame:
    """The keys :data:`finsae.analysis.comparison.SHOWN` of ``cmp``, each estimate with its interval."""
    keyed = cmp.set_index(["measure", "text_type", "position"])
    t = keyed[keyed.index.isin(SHOWN)].reset_index().sort_values(
        ["layer", "position", "measure", "text_type"], ascending=[True, False, False, True])
    return pd.DataFrame({
        "layer": t["layer"], "measure": t["measure"], "text": t["text_type"], "position": t["position"],
        **{role: [_interval(r[role], r[f"{role}_lo"], r[f"{role}_hi"]) for _, r in t.iterrows()]
           for role in ("finance", "control")},
        "finance − control": [_interval(r["effect"], r["effect_lo"], r["effect_hi"], "{:+.3f}")
                              for _, r in t.iterrows()],
        "seed spread": t["seed_spread"], "verdict": t["verdict"]}).reset_index(drop=True)


def verdict_sentence(cmp: pd.DataFrame) -> str:
    """What the comparison calls financial, over every key of ``comparison.parquet``."""
    counts = cmp["verdict"].value_counts()
    tally = ", ".join(f"{v}: {int(n)}" for v, n in counts.items())
    fin = cmp[cmp["verdict"] == "financial"]
    called = "; ".join(f"L{int(r.layer)} {r.measure} ({r.text_type}, {r.position}) {r.effect:+.3f}"
                       for r in fin.itertuples()) or "none"
    return f"Verdicts over every lens measure ({tally}). Called financial: {called}."


def comparison_blocks(study: Study, folder: Path) -> list[Block]:
    """Finance vs control vs the fine-tune seed (in the finance pair's folder only)."""
    if not (folder / COMPARISON_TABLE).is_file():
        return []
    return [Heading("Is it financial? Finance vs control twin, beyond the fine-tune seed", 2),
            *through(study, read_comparison, folder, COMPARISON_TABLE, lambda cmp: [
                Text(verdict_sentence(cmp)),
                Table(comparison_table(cmp), "finance − control, called financial where its interval lies "
                      "beyond ± the seed spread (finance vs the seed pair)", max_rows=None)])]


def method_tables(study: Study, folder: Path) -> list[Block]:
    """Every other table a diffing method declares (not in :data:`SHOWN_APART`), where its file exists."""
    out: list[Block] = []
    for name, spec in analysis_files.specs().items():
        if name in SHOWN_APART or not analysis_files.table_path(folder, name).is_file():
            continue
        caption = spec.what or name
        out += through(study, partial(analysis_files.read_table, name=name), folder, spec.file,
                       lambda t, caption=caption: [Table(t, caption)])
    return out


def seed_table(layers: pd.DataFrame) -> pd.DataFrame:
    """Per layer, every statistic with seed estimates (``{stat}_seed_text``: mean ± seed SD [hierarchical
    bootstrap over seed and document], or "no power (why)" where its test cannot move); empty without any."""
    cols = [c for c in layers.columns if c.endswith(SEED_TEXT)]
    t = layers[["layer", *cols]].sort_values("layer")
    t = t[t[cols].notna().any(axis=1)] if cols else t.iloc[:0]
    return t.rename(columns={c: c.removesuffix(SEED_TEXT) for c in cols}).reset_index(drop=True)


def seed_blocks(layers: pd.DataFrame) -> list[Block]:
    t = seed_table(layers)
    if t.empty:
        return [Text("by layer, over the seeds: no seed repeats for this pair (the counts above are seed 0's "
                     "and seed 1's alone).", note=True)]
    return [Table(t, "by layer, over the seeds: mean ± seed SD [hierarchical bootstrap over seed and source "
                  "document] (the headline uncertainty)", max_rows=None)]
