"""Read back what the report's two renderers wrote: the tables (header and cells) and the numbers of an HTML
fragment and of a markdown page, so a test can say that both carry the same."""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser

NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
MD_LINK_TARGET = re.compile(r"\]\(#[^)\s]*\)")
"""An in-page link's target in markdown (the page's ``href`` is an attribute, not text)."""
MD_NUMBERED_ITEM = re.compile(r"^\s*\d+[.)]\s+", flags=re.M)
"""A numbered list item's number (the page's ``<li>`` has none in its text)."""


class _Html(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None
        if tag in ("p", "li", "dt", "dd", "h3", "h4", "h5", "h6", "td", "th"):
            self.text.append("\n")

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        self.text.append(data)


def html_tables(fragment: str) -> list[list[list[str]]]:
    """Every ``<table>`` of ``fragment``: its rows (the header first), each a list of cell texts."""
    parser = _Html()
    parser.feed(fragment)
    return parser.tables


def _md_cells(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    out = []
    for c in cells:
        c = c.replace("\\|", "|").strip()
        c = re.sub(r"\[([^\]]+)\]\(#[^)\s]*\)", r"\1", c)  # a linked term: its text
        out.append(c.replace("`", "").replace("**", ""))
    return out


def md_tables(page: str) -> list[list[list[str]]]:
    """Every pipe table of ``page``: its rows (the header first, the ``|---|`` line left out)."""
    tables, current = [], None
    for line in page.splitlines():
        if line.startswith("|"):
            if current is None:
                current = []
                tables.append(current)
            if not re.fullmatch(r"\|?[\s|:-]+\|?", line):
                current.append(_md_cells(line))
        else:
            current = None
    return tables


def html_numbers(fragment: str) -> Counter:
    """The numbers in ``fragment``'s text (not in its tags' attributes: image data, anchors)."""
    parser = _Html()
    parser.feed(fragment)
    return Counter(NUMBER.findall("".join(parser.text)))


def md_numbers(page: str, named_by_path: tuple[str, ...] = ("Figure: ",)) -> Counter:
    """The numbers in ``page``'s text, less in-page link targets and the lines starting with one of
    ``named_by_path`` (a figure or a linked page, which the results pages name by its path)."""
    kept = [line for line in page.splitlines() if not line.startswith(named_by_path)]
    text = MD_NUMBERED_ITEM.sub("", MD_LINK_TARGET.sub("]", "\n".join(kept)))
    return Counter(NUMBER.findall(text))
