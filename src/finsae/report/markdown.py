"""The markdown renderer of the section model (:mod:`~finsae.report.sections`): the results pages
(``docs/results/*.md``) and README's headline block.

Tables show what :meth:`~finsae.report.sections.Table.shown` shows (the page's cells, ``|`` escaped), a figure
drawn only for the page is left out and a stored one is named by its place in the store, a glossary term links
to the glossary's heading (GitHub gives list items no anchors).
"""

from __future__ import annotations

import re

import pandas as pd

from finsae.report.sections import (
    Answer, Block, Context, Figure, Glossary, Heading, Link, NotRun, Prose, Ref, Reproduce, Section, Table,
    Text, Unreadable)

MARKED = 0.05
"""A context's word is marked above this share of the context's top activation (as on the page)."""


def md_table(df: pd.DataFrame, max_rows: int | None = None) -> str:
    """``df`` as a markdown table (all rows unless ``max_rows``), shown as the page shows it."""
    return _table(Table(df, max_rows=max_rows), {})


def _cell(v: str | tuple[Ref, ...], anchors: dict[str, str]) -> str:
    if isinstance(v, tuple):
        return ", ".join(f"[{r.text}](#{anchors.get(r.anchor, r.anchor)})" for r in v)
    return v.replace("|", "\\|").replace("\n", " ")


def _table(t: Table, anchors: dict[str, str]) -> str:
    shown = t.shown()
    cap = f"{t.caption[:1].upper()}{t.caption[1:]}:\n\n" if t.caption else ""
    if shown.instead:
        return f"{cap}({shown.instead})"
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns),
             *["| " + " | ".join(_cell(v, anchors) for v in row) + " |" for row in shown.rows]]
    text = "\n".join(lines)
    return f"{cap}{text}\n\n({shown.note})" if shown.note else f"{cap}{text}"


def _context(words: tuple[str, ...], acts: tuple[float, ...]) -> str:
    top = max(acts, default=0.0) or 1.0
    marked = [f"**{w}**" if a > MARKED * top and a > 0 else w for w, a in zip(words, acts, strict=False)]
    return "> " + " ".join(marked)


def shift_headings(text: str, shift: int) -> str:
    """Every markdown heading of ``text`` ``shift`` levels down (at most 6)."""
    return re.sub(r"^(#+)(?=\s)", lambda m: "#" * min(len(m.group(1)) + shift, 6), text, flags=re.M)


def block(b: Block, level: int, anchors: dict[str, str]) -> str:
    """One block as markdown; ``level`` is the heading level of a level-1 :class:`Heading`."""
    match b:
        case Heading(text, depth):
            return f"{'#' * min(level + depth - 1, 6)} {text}"
        case Text(text, _):
            return text
        case Answer(sentences):  # one item per finding, as the page gives each its paragraph
            return "**The answer.**\n\n" + "\n".join(f"- {s}" for s in sentences)
        case Table():
            return _table(b, anchors)
        case Figure(caption, _, _, label):
            return f"Figure: {caption} (`{label}`)" if label else ""
        case Reproduce(command):
            return f"Reproduce: `{command}`"
        case NotRun(what, command):
            return f"not run: {what} (`{command}`)."
        case Unreadable(message):
            return f"unreadable: {message}"
        case Prose(text):
            return shift_headings(text.strip(), level - 1)
        case Context(words, acts):
            return _context(words, acts)
        case Link(text, _, label, description):
            return f"{text} (`{label}`): {description}"
        case Glossary(title, _, terms):
            return f"{'#' * level} {title}\n\n" + "\n".join(f"- **{t}**: {g}" for t, _, g in terms)
    raise TypeError(f"no markdown for {type(b).__name__}")


def glossary_anchors(blocks: list[Block]) -> dict[str, str]:
    """Each glossary term's anchor -> the anchor GitHub gives its glossary's heading."""
    return {a: g.anchor for g in blocks if isinstance(g, Glossary) for _, a, _ in g.terms}


def render(blocks: list[Block], level: int = 2) -> str:
    """Blocks as markdown, a blank line between blocks; level-1 headings at ``level``."""
    anchors = glossary_anchors(blocks)
    return "\n\n".join(text for b in blocks if (text := block(b, level, anchors)))


def page(sections: list[Section]) -> str:
    """A results page's body: one section under the page's own title, several each under its title."""
    if len(sections) == 1:
        return render(sections[0].blocks)
    return "\n\n".join(f"## {s.title}\n\n{render(s.blocks, level=3)}" for s in sections)
