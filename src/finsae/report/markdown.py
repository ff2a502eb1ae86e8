"""Markdown tables of the report's pages and tables (one formatter: numbers to 4 significant digits, NaN as
``n/a``, lists and dicts as JSON)."""

from __future__ import annotations

import json
import math

import pandas as pd


def md_table(df: pd.DataFrame) -> str:
    if df is None or len(df) == 0:
        return "(empty)"
    out = df.copy()
    for c in out.columns:
        out[c] = out[c].map(_cell)
    return "\n".join(["| " + " | ".join(map(str, out.columns)) + " |", "|" + "---|" * len(out.columns),
                      *["| " + " | ".join(map(str, r)) + " |" for r in out.itertuples(index=False)]])


def _cell(v) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.4g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return "" if v is None else str(v)
