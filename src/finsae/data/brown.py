"""The Brown corpus (Francis & Kucera), POS-tagged, from nltk_data's ``brown.zip``.

Each text file (``brown/ca01`` …) holds one sentence per line as ``word/tag`` tokens, paragraphs
separated by blank lines. Genres come from ``brown/cats.txt`` (fallback: the file id's letter).
"""

from __future__ import annotations

import functools
import re
import zipfile
from pathlib import Path

import pandas as pd

from finsae.data._io import file_key, handout, reads_archive, report_malformed, require_path
from finsae.errors import FinsaeError

BROWN_ZIP = "general/brown.zip"
BROWN_UNITS: tuple[str, ...] = ("text", "paragraph", "sentence")
_LETTER_GENRES = {
    "a": "news", "b": "editorial", "c": "reviews", "d": "religion", "e": "hobbies", "f": "lore",
    "g": "belles_lettres", "h": "government", "j": "learned", "k": "fiction", "l": "mystery",
    "m": "science_fiction", "n": "adventure", "p": "romance", "r": "humor",
}
_QUOTES = {"``": '"', "''": '"'}
_FILEID = re.compile(r"(?:^|/)(c[a-r]\d\d)$")


def _strip_tags(line: str) -> tuple[str, int]:
    words, bad = [], 0
    for tok in line.split():
        word, sep, _tag = tok.rpartition("/")
        if not sep or not word:
            bad += 1
            word = tok
        words.append(_QUOTES.get(word, word))
    return " ".join(words), bad


@functools.lru_cache(maxsize=2)
@reads_archive("brown")
def _parse(key: tuple[str, int, int]) -> pd.DataFrame:
    rows = []
    bad_tokens = 0
    with zipfile.ZipFile(key[0]) as zf:
        names = zf.namelist()
        cats_name = next((n for n in names if n.endswith("cats.txt")), None)
        cats = {}
        if cats_name:
            for line in zf.read(cats_name).decode("utf-8", errors="replace").splitlines():
                parts = line.split()
                if len(parts) >= 2:
                    cats[parts[0]] = parts[1]
        for name in sorted(names):
            m = _FILEID.search(name)
            if not m:
                continue
            fileid = m.group(1)
            genre = cats.get(fileid, _LETTER_GENRES.get(fileid[1], ""))
            raw = zf.read(name).decode("utf-8", errors="replace")
            for p_idx, para in enumerate(p for p in re.split(r"\n\s*\n", raw) if p.strip()):
                for s_idx, line in enumerate(ln for ln in para.split("\n") if ln.strip()):
                    text, bad = _strip_tags(line)
                    bad_tokens += bad
                    rows.append((fileid, genre, p_idx, s_idx, text))
    df = pd.DataFrame(rows, columns=["fileid", "category", "paragraph", "sentence", "text"])
    for col in ("fileid", "category", "text"):
        df[col] = df[col].astype("str")
    return report_malformed(df, bad_tokens, "Brown corpus (tokens without a /tag, kept as-is)",
                            action="counted")


@functools.lru_cache(maxsize=4)
def _grouped(key: tuple[str, int, int], unit: str) -> pd.DataFrame:
    sents = _parse(key)
    paras = sents.groupby(["fileid", "category", "paragraph"], sort=False)["text"].agg(" ".join).reset_index()
    if unit == "paragraph":
        out = paras
    else:
        out = paras.groupby(["fileid", "category"], sort=False)["text"].agg("\n\n".join).reset_index()
    for col in ("fileid", "category", "text"):
        out[col] = out[col].astype("str")
    out.attrs = dict(sents.attrs)
    return out


def load_brown(unit: str = "text", data_dir: str | Path | None = None) -> pd.DataFrame:
    """Brown corpus with POS tags stripped (``word/tag`` → ``word``; ````/''`` → ``"``).

    ``unit``: ``"text"`` (500 rows, one per file; paragraphs joined by blank lines, sentences
    by spaces), ``"paragraph"`` or ``"sentence"`` (57,340 sentences).
    Returns columns: ``fileid`` (str, e.g. "ca01"), ``category`` (str genre, e.g. "news"),
    ``text`` (str); plus ``paragraph`` (int64) for paragraphs and ``paragraph``, ``sentence``
    (int64, 0-based within the file / paragraph) for sentences. Tokens keep their spacing
    (``word ,``). ``attrs["malformed_rows"]`` counts tokens that had no tag.
    """
    if unit not in BROWN_UNITS:
        raise FinsaeError(f"Unknown Brown unit {unit!r}; choose one of {list(BROWN_UNITS)}.")
    path = require_path(data_dir, BROWN_ZIP, "Brown corpus zip", "brown")
    key = file_key(path)
    return handout(_parse(key) if unit == "sentence" else _grouped(key, unit))
