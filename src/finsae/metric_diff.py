"""Old vs new summary metrics, as ``finsae.reproduce`` compares them: nested summaries flattened to keys, numbers
within ``|new - old| <= atol + rtol * |old|`` (NaN equals NaN), timings printed but never compared."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

TIMING_WORDS = ("second", "time", "per_second", "wall", "elapsed", "_runtime", "_timestamp")
"""A summary key holding any of these is a timing: printed, never compared."""
SKIPPED_KEYS = ("code_version", "rescored_code_version", "_step", "_wandb", "run_dir", "wandb_run_id")
"""Not results: which code and which run made them (a rerun is another run)."""


def _timing(key: str) -> bool:
    return any(w in key.lower() for w in TIMING_WORDS)


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    return None


@dataclass
class MetricRow:
    key: str
    old: Any
    new: Any
    status: str
    """ok, DIFF, timing (printed only), missing."""


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested summary fields as flat keys (``strategies[0].sharpe``, ``stocknet.price.mcc``); a list of plain
    values becomes its JSON text; W&B tables and images (``_type``) are left out."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            if "_type" not in v:
                out.update(flatten(v, key + "."))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for i, x in enumerate(v):
                out.update(flatten(x, f"{key}[{i}]."))
        elif isinstance(v, list):
            out[key] = json.dumps(v, default=str)
        else:
            out[key] = v
    return out


def compare(old: dict[str, Any], new: dict[str, Any], rtol: float, atol: float) -> list[MetricRow]:
    old, new = flatten(old), flatten(new)
    rows = []
    for key in sorted(set(old) | set(new)):
        if key in SKIPPED_KEYS or key.startswith("_") and not _timing(key):
            continue
        a, b = old.get(key), new.get(key)
        if _timing(key):
            rows.append(MetricRow(key, a, b, "timing"))
        elif key not in old or key not in new:
            rows.append(MetricRow(key, a, b, "missing"))
        else:
            x, y = _number(a), _number(b)
            if x is not None and y is not None:
                same = (math.isnan(x) and math.isnan(y)) or (not math.isnan(x) and not math.isnan(y)
                                                               and abs(y - x) <= atol + rtol * abs(x))
            else:
                same = a == b
            rows.append(MetricRow(key, a, b, "ok" if same else "DIFF"))
    return rows


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "-" if v is None else str(v)


def print_table(rows: list[MetricRow], rtol: float, atol: float, show_all: bool = False) -> None:
    """The comparison as a table on stdout, one metric a line: only the metrics that differ or are missing on one
    side, then a line counting the rest (``show_all``: every metric, timings included)."""
    shown = rows if show_all else [r for r in rows if r.status in ("DIFF", "missing")]
    if shown:
        width = max([len(r.key) for r in shown] + [6])
        print(f"{'metric':<{width}}  {'old':>14}  {'new':>14}  status   "
              f"(tolerance |new-old| <= {atol:g} + {rtol:g}*|old|)")
        for row in shown:
            print(f"{row.key:<{width}}  {_fmt(row.old):>14}  {_fmt(row.new):>14}  {row.status}")
    if not show_all:
        agree = sum(r.status == "ok" for r in rows)
        timings = sum(r.status == "timing" for r in rows)
        print(f"{agree} metric(s) agree within the tolerance and {timings} timing(s) are not compared "
              f"(not listed; --all lists every metric)")
