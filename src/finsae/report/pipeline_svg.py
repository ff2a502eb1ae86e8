"""README's picture of the pipeline (``docs/pipeline.svg``): each stage, the command that runs it and the
artifacts folder it writes, and the report made from all of them. Plain SVG text boxes and arrows, written by
code so the picture follows :data:`STAGES`; ``python -m finsae.report.pipeline_svg [PATH]`` rewrites it and a
test checks that the committed file is current."""

from __future__ import annotations

import sys
from html import escape
from pathlib import Path
from typing import NamedTuple


class Stage(NamedTuple):
    name: str
    """What the stage does."""
    command: str
    """The entry point that runs it."""
    artifacts: str
    """The folder under ``artifacts/`` it writes."""
    what: str
    """What is in that folder, in a few words."""


STAGES = [
    Stage("fine-tune", "train.py task=finetune", "models/", "the finance twin"),
    Stage("SAEs", "train.py", "sae/", "one SAE per model, layer"),
    Stage("feature diffing", "analyze.py", "analysis/", "matches, controls, contexts"),
    Stage("labels", "label.py", "labels/", "LLM labels, scores"),
    Stage("backtest", "backtest.py", "backtest/", "walk-forward, costs, DSR"),
]
"""The stages in order; each reads the artifacts of those before it."""
REPORT = Stage("report", "python -m finsae.report", "report/index.html",
               "docs/results/*.md, README's headline")
BOX_W, BOX_H, GAP, MARGIN, ROW_GAP = 160, 52, 28, 16, 34
DEFAULT_PATH = Path("docs") / "pipeline.svg"


def _box(x: float, y: float, w: float, title: str, line: str, fill: str) -> str:
    return (f'<rect x="{x}" y="{y}" width="{w}" height="{BOX_H}" rx="6" fill="{fill}" stroke="#555"/>'
            f'<text x="{x + w / 2}" y="{y + 21}" class="t">{escape(title)}</text>'
            f'<text x="{x + w / 2}" y="{y + 39}" class="s">{escape(line)}</text>')


def _arrow(x1: float, y1: float, x2: float, y2: float) -> str:
    return f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" marker-end="url(#a)"/>'


def pipeline_svg() -> str:
    """The picture as SVG text."""
    width = 2 * MARGIN + len(STAGES) * BOX_W + (len(STAGES) - 1) * GAP
    rows = [MARGIN, MARGIN + BOX_H + ROW_GAP, MARGIN + 2 * (BOX_H + ROW_GAP)]
    height = rows[2] + BOX_H + MARGIN + 18
    parts = [f'<text x="{MARGIN}" y="{height - MARGIN + 4}" class="h">blue: stages and their commands · '
             "yellow: what each writes under artifacts/ (later stages read the earlier ones) · "
             "green: the report</text>"]
    report_w = width - 2 * MARGIN
    for i, st in enumerate(STAGES):
        x = MARGIN + i * (BOX_W + GAP)
        parts.append(_box(x, rows[0], BOX_W, st.name, st.command, "#e8f0fb"))
        parts.append(_box(x, rows[1], BOX_W, st.artifacts, st.what, "#fff6df"))
        parts.append(_arrow(x + BOX_W / 2, rows[0] + BOX_H, x + BOX_W / 2, rows[1] - 2))
        if i + 1 < len(STAGES):
            parts.append(_arrow(x + BOX_W - 10, rows[1], x + BOX_W + GAP + 10, rows[0] + BOX_H + 2))
        parts.append(_arrow(x + BOX_W / 2, rows[1] + BOX_H, x + BOX_W / 2, rows[2] - 2))
    parts.append(_box(MARGIN, rows[2], report_w, f"{REPORT.name} ({REPORT.command})",
                      f"{REPORT.artifacts}, {REPORT.what}: the answer, tables and plots", "#e7f6ea"))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">\n'
            '<title>finsae pipeline: stages, the artifacts they write, the report made from them</title>\n'
            '<style>.t{font-size:13px;font-weight:bold;text-anchor:middle;fill:#1d1d1f}'
            '.s{font-size:11px;text-anchor:middle;fill:#333}.h{font-size:11px;fill:#666}'
            "line{stroke:#555;stroke-width:1.4}</style>\n"
            '<defs><marker id="a" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
            'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>\n'
            + "\n".join(parts) + "\n</svg>\n")


def main(argv: list[str] | None = None) -> int:
    path = Path(argv[0]) if argv else DEFAULT_PATH
    path.write_text(pipeline_svg())
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
