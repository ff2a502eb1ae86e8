"""The report's one section model: what a section says, built once from the artifacts, rendered twice.

A :class:`Section` is a titled list of blocks (:data:`Block`): headings, text, tables (a DataFrame with its
caption), figures, the command that reproduces a pair's numbers, "not run" and "unreadable" lines, the
stages' own markdown (``findings.md``), example contexts, links and a glossary. The stage builders
(:mod:`~finsae.report.build`, :mod:`~finsae.report.trading_sections`, :mod:`~finsae.report.timing_section`)
make sections from a :class:`~finsae.report.study.Study`; :mod:`~finsae.report.page` renders them as the HTML
report and :mod:`~finsae.report.markdown` as the results pages. Neither renderer decides what a table shows:
:meth:`Table.shown` does (all-n/a rows and columns hidden with a note, a wide one-row table turned into
key/value rows, at most ``max_rows`` rows, every value through :func:`~finsae.report.tables.fmt_value`), so
both carry the same cells.

Adding to the report is one change in one place (``docs/report.md`` says more):

* a table (or any block) in a section: append it to the list its builder returns, e.g.
  ``blocks.append(Table(df, caption="turnover by book"))``; a table of the backtest's contract is one line of
  :data:`finsae.report.trading_sections.BACKTEST_TABLES`;
* a stage's section: write ``def my_stage_blocks(study: Study) -> list[Block]`` and add one
  :class:`~finsae.report.build.SectionSpec` line to :data:`finsae.report.build.SECTIONS` (its anchor, title,
  builder, the results page it goes on and whether the HTML page shows it);
* a kind of block: a dataclass here, added to :data:`Block`, and one case in each renderer's ``block``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from finsae.report.tables import drop_empty, fmt_value, transpose_one_row

MAX_ONE_ROW_COLUMNS = 8
"""A one-row table with more columns than this is shown as key/value rows instead."""
MAX_ROWS = 60
"""The rows a table shows by default (the rest are counted in its note)."""


class Ref(NamedTuple):
    """A table cell's link to an anchor of the same section (a glossary term)."""

    text: str
    """What the cell says."""
    anchor: str
    """The anchor it points to (``glossary-dsr``)."""


@dataclass(frozen=True)
class Heading:
    """A sub-heading in a section (a pair's name, "Example contexts")."""

    text: str
    level: int = 1
    """1 directly under the section's title, 2 under a level-1 heading."""


@dataclass(frozen=True)
class Text:
    """A paragraph; may use ``code``, **bold** and in-page ``[links](#anchor)``."""

    text: str
    note: bool = False
    """A small-print note rather than body text."""


@dataclass(frozen=True)
class Answer:
    """The study's answer: one sentence per finding, shown first and set apart."""

    sentences: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A DataFrame shown as a table; its cells are values or tuples of :class:`Ref`."""

    data: pd.DataFrame
    caption: str = ""
    max_rows: int | None = MAX_ROWS
    """At most this many rows are shown (None: all)."""

    @classmethod
    def of_mapping(cls, values: dict[str, Any], caption: str = "") -> Table:
        """A key/value table of ``values``."""
        return cls(pd.DataFrame({"key": list(values), "value": list(values.values())}), caption)

    def shown(self) -> ShownTable:
        """What both renderers show of this table."""
        if self.data is None or len(self.data) == 0:
            return ShownTable([], [], frozenset(), "", "empty table")
        df, hidden = drop_empty(self.data)
        df = transpose_one_row(df, MAX_ONE_ROW_COLUMNS)  # after the hiding: it may leave one row
        if df.empty or len(df.columns) == 0:
            return ShownTable([], [], frozenset(), hidden, f"nothing measured: {hidden}")
        cut = df if self.max_rows is None else df.head(self.max_rows)
        text = frozenset(str(c) for c in cut.columns if cut[c].dtype.kind not in "iufb")
        notes = [hidden] if hidden else []
        if len(df) > len(cut):
            notes.append(f"{len(df) - len(cut)} more rows not shown.")
        rows = [[_cell(v) for v in rec] for rec in cut.itertuples(index=False)]
        return ShownTable([str(c) for c in cut.columns], rows, text, " ".join(notes), "")


def _cell(v: Any) -> str | tuple[Ref, ...]:
    if isinstance(v, tuple) and v and all(isinstance(r, Ref) for r in v):
        return v
    return fmt_value(v)


class ShownTable(NamedTuple):
    """A table as both renderers show it."""

    columns: list[str]
    """Column names, after hiding and transposing."""
    rows: list[list[str | tuple[Ref, ...]]]
    """Formatted cells, row by row."""
    text_columns: frozenset[str]
    """Columns of text (left-aligned on the page)."""
    note: str
    """What was hidden or left out ("" when nothing)."""
    instead: str
    """When not "", nothing is shown but this line (an empty table, nothing measured)."""


@dataclass(frozen=True)
class Figure:
    """A PNG: a stored plot (``path``) or one drawn for the report (``png``)."""

    caption: str
    path: Path | None = None
    """The stored PNG, named on the results pages by its place in the store."""
    png: bytes | None = None
    """The PNG's bytes when it is not stored (the results pages leave it out)."""
    label: str = ""
    """The stored PNG's path relative to the checkout (portable)."""


@dataclass(frozen=True)
class Reproduce:
    """The command that reruns the run behind a pair's numbers."""

    command: str
    """Run from the checkout (it names the folder relative to it)."""


@dataclass(frozen=True)
class NotRun:
    """A stage without artifacts, with the command that makes them."""

    what: str
    """What is missing (may use ``code``)."""
    command: str
    """The command that makes it."""


@dataclass(frozen=True)
class Unreadable:
    """An artifact that could not be read: its one-line error."""

    message: str


@dataclass(frozen=True)
class Context:
    """An example context of a latent, the words it fires on marked."""

    words: tuple[str, ...]
    acts: tuple[float, ...]
    """Each word's activation (a word is marked above 5% of the context's top)."""


@dataclass(frozen=True)
class Link:
    """A link to a page written beside the report (the latent browser)."""

    text: str
    href: str
    """Relative to the report's index.html."""
    label: str
    """Its path relative to the checkout (portable), for the results pages."""
    description: str


@dataclass(frozen=True)
class Glossary:
    """Terms and their one-line glosses; :class:`Ref` cells point at them."""

    title: str
    anchor: str
    """The heading's anchor (what a results page links a term to)."""
    terms: tuple[tuple[str, str, str], ...]
    """(term, its anchor, its gloss)."""


@dataclass(frozen=True)
class Prose:
    """Markdown a stage wrote itself (``findings.md``)."""

    markdown: str
    """Its ``#`` headings go one level under the block's enclosing heading."""


Block = (Heading | Text | Answer | Table | Figure | Reproduce | NotRun | Unreadable | Prose | Context | Link
         | Glossary)
"""Everything a section is made of."""


@dataclass
class Section:
    """One titled part of the report, as built from the artifacts."""

    anchor: str
    """Its id on the page (``diffing``)."""
    title: str
    blocks: list[Block]
    files: set[Path] = field(default_factory=set)
    """The artifact files it was built from (a results page's fingerprint)."""
