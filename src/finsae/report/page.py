"""Self-contained HTML pieces: tables from DataFrames, PNG images inline as base64, a little markdown.

Nothing here fetches anything: no scripts, no fonts, no stylesheets from elsewhere, so the page opens offline
and mails as one file.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from finsae.report.tables import drop_empty

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;
color:#1d1d1f;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.2em 0 .4em;font-size:.85em}
.scroll{overflow-x:auto;max-width:100%;margin:.4em 0 1.2em}
.caption{font-size:.85em;color:#444;margin:.8em 0 0}.note{font-size:.8em;color:#666;margin:.1em 0 .8em}
dl.gloss dt{font-weight:600}dl.gloss dd{margin:0 0 .4em 1.2em}
.answer{font-size:1.05em;background:#f5f9ff;border-left:4px solid #3b6fb6;padding:.5em 1em}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:right;vertical-align:top}
th{background:#f3f3f5}td.t,th.t{text-align:left}
.notrun{color:#8a6d00;background:#fff8e1;border:1px solid #f0d98c;padding:.5em .8em;border-radius:4px}
.err{color:#8b0000;background:#fdecea;border:1px solid #f5c2c0;padding:.5em .8em;border-radius:4px}
img{max-width:100%;border:1px solid #eee;margin:.4em 0}
mark{background:#ffe08a;padding:0 .1em}.ctx{font-size:.85em;margin:.15em 0}
nav a{margin-right:1em}code{background:#f3f3f5;padding:0 .25em}
"""


def esc(x: Any) -> str:
    return html.escape(str(x))


def fmt_value(v: Any) -> str:
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


def table(df: pd.DataFrame, max_rows: int = 60, caption: str | None = None,
          raw: set[str] | frozenset[str] = frozenset()) -> str:
    """An HTML table (text columns left-aligned) in a horizontally scrolling box, so it never widens the page;
    rows and columns that are all n/a hidden (a note says which); at most ``max_rows`` rows, saying how many
    were left out. Cells of the ``raw`` columns are HTML the caller made (escaped there), put in as they
    are."""
    if df is None or len(df) == 0:
        return '<p class="notrun">empty table</p>'
    df, hidden = drop_empty(df)
    if df.empty or len(df.columns) == 0:
        return f'<p class="note">{esc(caption or "table")}: nothing measured ({esc(hidden)})</p>'
    shown = df.head(max_rows)
    text_cols = {c for c in shown.columns if shown[c].dtype.kind not in "iufb"}
    head = "".join(f'<th class="{"t" if c in text_cols else ""}">{esc(c)}</th>' for c in shown.columns)
    rows = []
    for rec in shown.itertuples(index=False):
        cells = "".join(f'<td class="{"t" if c in text_cols else ""}">'
                        f"{v if c in raw else esc(fmt_value(v))}</td>"
                        for c, v in zip(shown.columns, rec, strict=True))
        rows.append(f"<tr>{cells}</tr>")
    cap = f'<p class="caption">{esc(caption)}</p>' if caption else ""
    notes = [hidden] if hidden else []
    if len(df) > max_rows:
        notes.append(f"{len(df) - max_rows} more rows not shown.")
    note = f'<p class="note">{esc(" ".join(notes))}</p>' if notes else ""
    return (f'{cap}<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody>'
            f"</table></div>{note}")


def kv_table(d: dict[str, Any], caption: str | None = None) -> str:
    return table(pd.DataFrame({"key": list(d), "value": [fmt_value(v) for v in d.values()]}), caption=caption)


def png_bytes_img(data: bytes, alt: str) -> str:
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def png_img(path: Path, alt: str | None = None) -> str:
    return png_bytes_img(Path(path).read_bytes(), alt or Path(path).stem)


def figure_img(fig, alt: str) -> str:
    """A matplotlib figure as an inline PNG (closed afterwards)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return png_bytes_img(buf.getvalue(), alt)


def not_run(what: str, command: str) -> str:
    return f'<p class="notrun">not run: {esc(what)} (make it with <code>{esc(command)}</code>)</p>'


def error_box(message: str) -> str:
    return f'<p class="err">unreadable: {esc(message)}</p>'


def marked_context(words: list[str], acts: list[float]) -> str:
    """A context with its activating words marked (``<mark>``, title = activation)."""
    top = max((a for a in acts), default=0.0) or 1.0
    out = []
    for w, a in zip(words, acts, strict=False):
        out.append(f'<mark title="{a:.3g}">{esc(w)}</mark>' if a > 0.05 * top and a > 0 else esc(w))
    return '<p class="ctx">' + " ".join(out) + "</p>"


LIST_ITEM = re.compile(r"\s*(?:[-*+]|\d+[.)])\s+(.*)")
"""A markdown list item (bulleted or numbered)."""


def _inline(s: str) -> str:
    s = esc(s)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    s = re.sub(r"\[([^\]]+)\]\((#[^)\s]+)\)", r'<a href="\2">\1</a>', s)  # in-page links only
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", s)


def _pipe_table(rows: list[str]) -> str:
    cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows
             if not re.fullmatch(r"\|?[\s|:-]+\|?", r)]
    head = "".join(f'<th class="t">{_inline(c)}</th>' for c in cells[0])
    body = "".join("<tr>" + "".join(f'<td class="t">{_inline(c)}</td>' for c in r) + "</tr>"
                   for r in cells[1:])
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def markdown(text: str) -> str:
    """The markdown the stages write (headings, pipe tables, lists, paragraphs, ``code``, **bold**, in-page
    links) as HTML."""
    out: list[str] = []
    para: list[str] = []
    rows: list[str] = []
    items: list[str] = []

    def flush():
        if para:
            out.append("<p>" + _inline(" ".join(para)) + "</p>")
            para.clear()
        if rows:
            out.append(_pipe_table(rows))
            rows.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for line in text.splitlines():
        item = LIST_ITEM.fullmatch(line)
        heading = re.match(r"(#+)\s+(.*)", line)
        if line.startswith("|"):
            if not rows:
                flush()
            rows.append(line)
        elif item:
            if not items:
                flush()
            items.append(item.group(1).strip())
        elif heading:
            flush()
            level = min(len(heading.group(1)) + 2, 6)  # the page's own h1/h2 stay above
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif not line.strip():
            flush()
        elif items and line.startswith((" ", "\t")):
            items[-1] += " " + line.strip()  # a list item's continued line
        else:
            if rows or items:
                flush()
            para.append(line.strip())
    flush()
    return "\n".join(out)


def document(title: str, subtitle: str, sections: list[tuple[str, str, str]]) -> str:
    """The whole page: ``sections`` = (anchor, heading, body HTML)."""
    nav = " ".join(f'<a href="#{a}">{esc(h)}</a>' for a, h, _ in sections)
    body = "\n".join(f'<section id="{a}"><h2>{esc(h)}</h2>\n{b}\n</section>' for a, h, b in sections)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1><p>{subtitle}</p><nav>{nav}</nav>\n{body}\n"
            "</body></html>\n")
