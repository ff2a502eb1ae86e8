"""``make demo``'s timing artifacts: ``timing.json`` (the latest run) and ``timing_history.jsonl`` (every
run), both in :func:`~finsae.paths.report_dir`; the record's fields, its writer and its readers, and the
targets they are judged against (issue "the whole study in 45 minutes")."""

from __future__ import annotations

import json
from pathlib import Path

from finsae.atomic import write_json
from finsae.errors import FinsaeError

TIMING_FILE = "timing.json"
TIMING_HISTORY_FILE = "timing_history.jsonl"
TARGET_S = {True: 45 * 60, False: 90 * 60}
"""Wall-time target of a whole ``make demo`` from nothing, on 2 cores with (True) and without bf16 units."""
RERUN_TARGET_S = 120
"""Wall-time target of a ``make demo`` that finds everything done."""


def fmt_seconds(s: float) -> str:
    """A duration as the console and the timing page print it: ``0m05s``, ``12m03s``, ``1h05m06s``."""
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def write(folder: Path, record: dict) -> None:
    """Publish ``record`` as ``timing.json`` and append it to ``timing_history.jsonl``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / TIMING_FILE, record)
    with open(folder / TIMING_HISTORY_FILE, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def parse_history(text: str, name: str = TIMING_HISTORY_FILE) -> list[dict]:
    """The records of a ``timing_history.jsonl`` text, oldest first; a damaged line fails naming its
    number."""
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise FinsaeError(f"{name} line {i} is not JSON (a cut write?); delete that line"
                              ) from None
        if not isinstance(rec, dict) or "total_s" not in rec or "stages" not in rec:
            raise FinsaeError(f"{name} line {i} is not a timing record (no total_s / stages)")
        out.append(rec)
    return out


def counts(rec: dict) -> tuple[int, int]:
    """(jobs run or failed, jobs found done) of one record."""
    st = rec.get("stages") or {}
    ran = sum(s.get("jobs_run", 0) + s.get("jobs_failed", 0) for s in st.values())
    return ran, sum(s.get("jobs_cached", 0) for s in st.values())


def is_whole_run(rec: dict) -> bool:
    """Every stage, nothing found done, every job ran: ``make demo`` on a fresh clone."""
    ran, cached = counts(rec)
    return rec.get("ok") is True and not rec.get("only") and ran > 0 and cached == 0


def is_done_rerun(rec: dict) -> bool:
    """Every stage and every job found done: a second ``make demo``."""
    ran, cached = counts(rec)
    return rec.get("ok") is True and not rec.get("only") and ran == 0 and cached > 0
