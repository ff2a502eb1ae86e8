"""WikiText-2 (Merity et al. 2016; the tokenised pytorch/examples copy with ``<unk>``).

Files ``general/wikitext-2/{test,valid}.txt.gz``. An article starts at a line ``= Title =`` (one
``=`` on each side) that sits between blank lines; ``= = Section = =`` lines are headings.
"""

from __future__ import annotations

import functools
import gzip
import re
from pathlib import Path

import pandas as pd

from finsae.data._io import file_key, handout, reads_archive, report_malformed, require_path
from finsae.errors import FinsaeError

WIKITEXT_DIR = "general/wikitext-2"
WIKITEXT_SPLITS: tuple[str, ...] = ("test", "valid")
_TITLE = re.compile(r"^ ?= (?!=)(.*?[^=]) = ?$")
_HEADING = re.compile(r"^ ?(=(?: =)+) (.*?) (=(?: =)+) ?$")
_AT_TOKENS = ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."))


def _clean_line(line: str) -> str:
    h = _HEADING.match(line)
    if h:
        line = h.group(2)
    for tok, rep in _AT_TOKENS:
        line = line.replace(tok, rep)
    return line.strip()


@functools.lru_cache(maxsize=4)
@reads_archive("wikitext2")
def _parse(key: tuple[str, int, int], clean: bool) -> pd.DataFrame:
    with gzip.open(key[0], "rt", encoding="utf-8", errors="replace") as fh:
        lines = fh.read().split("\n")
    titles: list[str] = []
    bodies: list[list[str]] = []
    orphan = 0
    for i, line in enumerate(lines):
        m = _TITLE.match(line)
        blank_around = (i == 0 or not lines[i - 1].strip()) and (i + 1 >= len(lines) or not lines[i + 1].strip())
        if m and blank_around:
            titles.append(m.group(1).strip())
            bodies.append([])
        elif line.strip():
            if not bodies:
                orphan += 1  # text before the first title
                continue
            bodies[-1].append(_clean_line(line) if clean else line.strip())
    df = pd.DataFrame({
        "title": pd.Series(titles, dtype="str"),
        "text": pd.Series(["\n".join(b) for b in bodies], dtype="str"),
    })
    return report_malformed(df, orphan, f"WikiText-2 {Path(key[0]).name} (lines before the first title)")


def load_wikitext(split: str = "all", data_dir: str | Path | None = None, clean: bool = True) -> pd.DataFrame:
    """WikiText-2 articles of ``split`` (``"test"``, ``"valid"`` or ``"all"`` = both), in file order.

    Returns columns: ``split`` (str), ``title`` (str), ``text`` (str: the article's non-empty
    lines joined with newlines, title excluded). ``clean=True`` turns ``@-@``/``@,@``/``@.@``
    back into ``-``/``,``/``.`` and heading lines ``= = Name = =`` into ``Name``; ``<unk>`` stays.
    60 articles in test and 60 in valid.
    """
    splits = WIKITEXT_SPLITS if split == "all" else (split,)
    frames = []
    for s in splits:
        if s not in WIKITEXT_SPLITS:
            raise FinsaeError(f"Unknown WikiText-2 split {s!r}; choose one of {[*WIKITEXT_SPLITS, 'all']}.")
        path = require_path(data_dir, f"{WIKITEXT_DIR}/{s}.txt.gz", f"WikiText-2 {s} file", "wikitext2")
        df = _parse(file_key(path), clean)
        frames.append(df.assign(split=pd.Series([s] * len(df), dtype="str"))[["split", "title", "text"]])
    out = pd.concat(frames, ignore_index=True)
    out.attrs["malformed_rows"] = sum(int(f.attrs.get("malformed_rows", 0)) for f in frames)
    return handout(out)
