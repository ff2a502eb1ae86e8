"""The HTML renderer of the section model (:mod:`~finsae.report.sections`): the study report's page.

Self-contained: tables in scrolling boxes, PNG images inline as base64, the stages' markdown as HTML;
nothing here fetches anything (no scripts, no fonts, no stylesheets from elsewhere), so the page opens
offline and mails as one file.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any

import pandas as pd

from finsae.report.sections import (
    MAX_ROWS, Answer, Block, Context, Figure, Glossary, Heading, Link, NotRun, Prose, Ref, Reproduce, Section,
    Table, Text, Unreadable)

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1180px;margin:2em auto;
padding:0 1em;color:#1d1d1f;line-height:1.45}
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


def table(df: pd.DataFrame, max_rows: int | None = MAX_ROWS, caption: str | None = None) -> str:
    """An HTML table (text columns left-aligned) in a horizontally scrolling box, so it never widens the page;
    what it shows is :meth:`Table.shown <finsae.report.sections.Table.shown>`'s."""
    return _table(Table(df, caption or "", max_rows))


def _cell_html(v: str | tuple[Ref, ...]) -> str:
    if isinstance(v, tuple):
        return ", ".join(f'<a href="#{esc(r.anchor)}">{esc(r.text)}</a>' for r in v)
    return esc(v)


def _table(t: Table) -> str:
    shown = t.shown()
    if shown.instead:
        if not shown.note:
            return f'<p class="notrun">{esc(shown.instead)}</p>'
        return f'<p class="note">{esc(t.caption or "table")}: {esc(shown.instead)}</p>'
    text = shown.text_columns
    head = "".join(f'<th class="{"t" if c in text else ""}">{esc(c)}</th>' for c in shown.columns)
    rows = ["<tr>" + "".join(f'<td class="{"t" if c in text else ""}">{_cell_html(v)}</td>'
                             for c, v in zip(shown.columns, rec, strict=True)) + "</tr>"
            for rec in shown.rows]
    cap = f'<p class="caption">{esc(t.caption)}</p>' if t.caption else ""
    note = f'<p class="note">{esc(shown.note)}</p>' if shown.note else ""
    return (f'{cap}<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody>'
            f"</table></div>{note}")


def png_bytes_img(data: bytes, alt: str) -> str:
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def not_run(what: str, command: str) -> str:
    """A stage that has not run (``what`` may use ``code``) and the command that makes its artifacts."""
    return f'<p class="notrun">not run: {_inline(what)} (make it with <code>{esc(command)}</code>)</p>'


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


def markdown(text: str, shift: int = 2) -> str:
    """The markdown the stages write (headings, pipe tables, lists, paragraphs, ``code``, **bold**, in-page
    links) as HTML; a heading ``#`` becomes ``<h{1 + shift}>`` (the page's own h1/h2 stay above)."""
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
            level = min(len(heading.group(1)) + shift, 6)
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


def _figure(f: Figure) -> str:
    data = f.png if f.png is not None else Path(f.path).read_bytes()
    return png_bytes_img(data, f.caption)


def block(b: Block) -> str:
    """One block as HTML."""
    match b:
        case Heading(text, level):
            return f"<h{level + 2}>{esc(text)}</h{level + 2}>"
        case Text(text, note):
            return f'<p class="note">{_inline(text)}</p>' if note else f"<p>{_inline(text)}</p>"
        case Answer(sentences):
            return '<div class="answer">' + "".join(f"<p>{esc(x)}</p>" for x in sentences) + "</div>"
        case Table():
            return _table(b)
        case Figure():
            return _figure(b)
        case Reproduce(command):
            return f'<p class="note">reproduce: <code>{esc(command)}</code></p>'
        case NotRun(what, command):
            return not_run(what, command)
        case Unreadable(message):
            return error_box(message)
        case Prose(text):
            return markdown(text)
        case Context(words, acts):
            return marked_context(list(words), list(acts))
        case Link(text, href, _, description):
            return f'<p><a href="{esc(href)}">{esc(text)}</a>: {esc(description)}</p>'
        case Glossary(title, anchor, terms):
            items = "".join(f'<dt id="{esc(a)}">{esc(t)}</dt><dd>{esc(g)}</dd>' for t, a, g in terms)
            return f'<h3 id="{esc(anchor)}">{esc(title)}</h3><dl class="gloss">{items}</dl>'
    raise TypeError(f"no HTML for {type(b).__name__}")


def render(blocks: list[Block]) -> str:
    """Blocks (a section's body) as HTML, one block a line."""
    return "\n".join(block(b) for b in blocks)


def document(title: str, subtitle: str, sections: list[Section]) -> str:
    """The whole page: a navigation bar, then each section under its title."""
    nav = " ".join(f'<a href="#{s.anchor}">{esc(s.title)}</a>' for s in sections)
    body = "\n".join(f'<section id="{s.anchor}"><h2>{esc(s.title)}</h2>\n{render(s.blocks)}\n</section>'
                     for s in sections)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1><p>{subtitle}</p><nav>{nav}</nav>\n"
            f"{body}\n</body></html>\n")
