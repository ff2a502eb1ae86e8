"""Markdown tables of the report's pages and tables (one formatter: numbers to 4 significant digits, NaN as
``n/a``, lists and dicts as JSON), readable as the page's are: columns and rows that are all ``n/a`` hidden
with a note naming them, and a one-row table too wide to read turned into a key/value table."""

from __future__ import annotations

import json
import math

import pandas as pd

from finsae.report.tables import drop_empty, transpose_one_row

MAX_ONE_ROW_COLUMNS = 8
"""A one-row table with more columns than this is written as key/value rows instead."""


def md_table(df: pd.DataFrame) -> str:
    if df is None or len(df) == 0:
        return "(empty)"
    shown, note = drop_empty(df)
    shown = transpose_one_row(shown, MAX_ONE_ROW_COLUMNS)  # after the hiding: it may leave one row
    if shown.empty or len(shown.columns) == 0:
        return f"(nothing measured: {note})"
    out = shown.copy()
    for c in out.columns:
        out[c] = out[c].map(_cell)
    text = "\n".join(["| " + " | ".join(map(str, out.columns)) + " |", "|" + "---|" * len(out.columns),
                      *["| " + " | ".join(map(str, r)) + " |" for r in out.itertuples(index=False)]])
    return f"{text}\n\n({note})" if note else text


def _cell(v) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.4g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return "" if v is None else str(v).replace("|", "\\|").replace("\n", " ")
