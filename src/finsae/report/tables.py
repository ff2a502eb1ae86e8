"""Readable tables, the same for the page and the markdown pages: rows and columns that are all ``n/a`` hidden
(with a note naming them), one-row tables turned into short key/value tables, and the label summary's many
fields grouped into a few small tables (one per scorer) instead of one wall."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import pandas as pd

OVERALL_LAYER = -99
"""The label stage's per-layer table marks its all-layers row with this layer (``model="all"``)."""
LABEL_RUN_FIELDS = ["backend", "llm", "prompt_version", "embedder", "n_selected", "n_targets", "n_controls",
                    "n_labelled", "n_skipped", "n_failed", "n_cached", "requests", "prompt_tokens",
                    "completion_tokens", "cost_usd", "seconds"]
"""The label summary's run facts (the first small table)."""
LABEL_SCORE_PARTS = {"score": "", "shuffled labels": "_control", "shuffled diff": "_diff", "lo": "_diff_lo",
                     "hi": "_diff_hi", "beats shuffled": "_beats_control", "random latents": "_random",
                     "matched control": "_matched_control", "matched diff": "_matched_diff",
                     "matched lo": "_matched_diff_lo", "matched hi": "_matched_diff_hi",
                     "generic label": "_generic", "generic diff": "_generic_diff"}
"""Columns of the label scores table: each scorer's metric ``m`` with these suffixes."""
LABEL_METRICS = ["embedding_auroc", "detection_balanced_accuracy", "fuzzing_balanced_accuracy",
                 "intruder_accuracy"]


def _missing(v: Any) -> bool:
    return (v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and v in ("", "n/a"))
            or (isinstance(v, tuple) and not v))


def fmt_value(v: Any) -> str:
    """One value as the report shows it: 4 significant digits (3 in scientific notation), NaN as ``n/a``,
    booleans as yes/no, lists and dicts spelled out."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt_value(x) for x in v)
    if isinstance(v, dict):
        return ", ".join(f"{k}: {fmt_value(x)}" for k, x in v.items())
    return str(v)


class Shown(NamedTuple):
    table: pd.DataFrame
    """The table without its all-n/a rows and columns."""
    note: str
    """Which were hidden ("" when none)."""


def drop_empty(df: pd.DataFrame, key: str | None = None) -> Shown:
    """``df`` without the columns, and the rows, whose every value is missing (NaN, None, ""); ``key`` names
    the column that names a row (the first column when None), left out of the row test."""
    if df is None or df.empty:
        return Shown(df, "")
    empty = df.map(_missing)
    cols = [c for c in df.columns if empty[c].all()]
    key = key if key is not None else df.columns[0]
    rest = [c for c in df.columns if c != key]
    rows = empty[rest].all(axis=1) if rest and len(df) > 1 else pd.Series(False, index=df.index)
    shown = df.loc[~rows, [c for c in df.columns if c not in cols]]
    notes = []
    if cols:
        notes.append(f"{len(cols)} column(s) all n/a hidden: {', '.join(map(str, cols))}")
    if rows.any():
        names = ", ".join(str(v) for v in df.loc[rows, key]) if key in df else str(int(rows.sum()))
        notes.append(f"{int(rows.sum())} row(s) all n/a hidden: {names}")
    return Shown(shown, "; ".join(notes) + ("." if notes else ""))


def transpose_one_row(df: pd.DataFrame, max_columns: int) -> pd.DataFrame:
    """A one-row table wider than ``max_columns`` as a key/value table (a wide one-row table does not fit)."""
    if df is None or len(df) != 1 or len(df.columns) <= max_columns:
        return df
    return pd.DataFrame({"field": [str(c) for c in df.columns], "value": list(df.iloc[0])})


def per_layer_display(table: pd.DataFrame) -> pd.DataFrame:
    """The label stage's per-layer scores; its all-layers row named (layer ``all``, not -99) last."""
    if table is None or "layer" not in table:
        return table
    out = table.copy()
    overall = out["layer"] == OVERALL_LAYER
    out["layer"] = out["layer"].astype(object).where(~overall, "all")
    return pd.concat([out[~overall], out[overall]], ignore_index=True)


def label_summary_tables(fields: dict[str, Any]) -> list[tuple[str, pd.DataFrame]]:
    """A label summary (``LabelSummary.to_dict()``) as short tables: the run's facts, then one row per scorer
    with its score beside each control (scorers not run, and controls not measured, hidden)."""
    present = [f for f in LABEL_RUN_FIELDS if f in fields and not _missing(fields[f])]
    run = pd.DataFrame({"field": present, "value": [fields[f] for f in present]})
    scores = pd.DataFrame([{"metric": m, **{name: fields.get(m + suffix, float("nan"))
                                            for name, suffix in LABEL_SCORE_PARTS.items()}}
                           for m in LABEL_METRICS if m in fields])
    return [("the labeling run", run), ("each scorer's score beside its controls (diff = score - control, "
                                        "lo/hi = its 95% CI)", scores)]
