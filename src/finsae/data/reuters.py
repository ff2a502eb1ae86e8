"""Reuters-21578 newswire (1987), read from the SGML files inside the UCI tarball.

The SGML is not valid XML (bare ``&#5;`` control references, unescaped text), so documents are
cut out with regular expressions; bytes are decoded as latin-1 (never fails) and entities are
unescaped, with control characters removed.
"""

from __future__ import annotations

import functools
import html
import re
import tarfile
from pathlib import Path

import pandas as pd

from finsae.data._io import file_key, handout, reads_archive, report_malformed, require_path
from finsae.errors import DataMissingError

REUTERS_TAR = "reuters21578/reuters21578.tar.gz"
REUTERS_CATEGORIES: tuple[str, ...] = ("earn", "acq", "money-fx", "interest", "crude", "grain", "trade")

_ATTR = re.compile(r'([A-Z]+)="([^"]*)"')
_DATE = re.compile(r"(\d{1,2}-[A-Za-z]{3}-\d{4})\s+(\d{1,2}:\d{2}:\d{2})")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]+")


def _field(doc: str, tag: str) -> str | None:
    """Text between ``<TAG>`` and ``</TAG>`` (first occurrence), or None."""
    start = doc.find(f"<{tag}>")
    if start < 0:
        return None
    start += len(tag) + 2
    end = doc.find(f"</{tag}>", start)
    return None if end < 0 else doc[start:end]


def _clean(text: str | None) -> str:
    if not text:
        return ""
    if "&" in text:
        text = html.unescape(text)
    return _CONTROL.sub("", text).strip()


def _drop_signoff(body: str) -> str:
    """Remove the trailing "Reuter" sign-off of a story body."""
    if body.endswith(("Reuter", "REUTER")):
        body = body[: -len("Reuter")].rstrip()
    return body


def _d_list(doc: str, tag: str) -> list[str]:
    block = _field(doc, tag)
    if not block:
        return []
    return [_clean(d.split("</D>", 1)[0]) for d in block.split("<D>")[1:]]


def _parse_doc(attrs: str, doc: str) -> dict:
    a = dict(_ATTR.findall(attrs))
    t_start = doc.find("<TEXT")
    t_open_end = doc.find(">", t_start) if t_start >= 0 else -1
    t_end = doc.find("</TEXT>", t_open_end) if t_open_end >= 0 else -1
    text_attrs = dict(_ATTR.findall(doc[t_start:t_open_end])) if t_end >= 0 else {}
    text_block = doc[t_open_end + 1:t_end] if t_end >= 0 else ""
    body = _field(text_block, "BODY")
    ttype = text_attrs.get("TYPE", "NORM")
    if body is None and ttype == "UNPROC":
        body = text_block
    raw_date = _clean(_field(doc, "DATE"))
    dm = _DATE.search(raw_date)
    return {
        "newid": int(a["NEWID"]),
        "oldid": int(a.get("OLDID", -1)),
        "date": f"{dm.group(1)} {dm.group(2)}" if dm else None,
        "raw_date": raw_date,
        "topics": _d_list(doc, "TOPICS"),
        "places": _d_list(doc, "PLACES"),
        "title": _clean(_field(text_block, "TITLE")),
        "dateline": _clean(_field(text_block, "DATELINE")),
        "body": _drop_signoff(_clean(body)),
        "lewissplit": a.get("LEWISSPLIT", ""),
        "cgisplit": a.get("CGISPLIT", ""),
        "has_topics": a.get("TOPICS", "") == "YES",
        "text_type": ttype,
    }


@functools.lru_cache(maxsize=2)
@reads_archive("reuters21578")
def _parse(key: tuple[str, int, int]) -> pd.DataFrame:
    rows, bad = [], []
    n_files = 0
    with tarfile.open(key[0], mode="r:*") as tf:
        for m in tf:
            if not (m.isfile() and re.search(r"reut2-\d{3}\.sgm$", m.name)):
                continue
            n_files += 1
            f = tf.extractfile(m)
            text = f.read().decode("latin-1") if f is not None else ""
            for chunk in text.split("<REUTERS")[1:]:
                head_end = chunk.find(">")
                end = chunk.find("</REUTERS>")
                try:
                    if head_end < 0 or end < 0:
                        raise ValueError("unterminated <REUTERS> element")
                    rows.append(_parse_doc(chunk[:head_end], chunk[head_end + 1:end]))
                except (KeyError, ValueError):
                    bad.append("<REUTERS" + chunk[:120])
    if n_files == 0:
        raise DataMissingError("Reuters-21578 SGML files (reut2-*.sgm)", f"{key[0]}!reut2-000.sgm",
                               "The archive holds no SGML files; re-download it with "
                               "`python -m finsae.data.fetch --only reuters21578`.")
    df = pd.DataFrame(rows)
    parsed = pd.to_datetime(df["date"], format="%d-%b-%Y %H:%M:%S", errors="coerce")
    undated = parsed.isna()
    bad.extend(f"newid {i}: undated ({d!r})" for i, d in zip(df.loc[undated, "newid"], df.loc[undated, "raw_date"], strict=True))
    df["date"] = parsed.astype("datetime64[ns]")
    df = df.drop(columns="raw_date")
    for col in ("title", "dateline", "body", "lewissplit", "cgisplit", "text_type"):
        df[col] = df[col].astype("str")
    df = df.sort_values("newid", ignore_index=True)
    # documents with an unparsable date are kept (date NaT) and counted as malformed
    return report_malformed(df, len(bad), "Reuters-21578", bad, action="counted (undated ones kept, date NaT)")


def load_reuters(data_dir: str | Path | None = None) -> pd.DataFrame:
    """One row per ``<REUTERS>`` document (21,578), sorted by ``newid``.

    Returns columns: ``newid`` (int64), ``oldid`` (int64), ``date`` (datetime64[ns], naive, from
    ``<DATE>`` like ``26-FEB-1987 15:01:01.79``, fractions dropped; NaT if unparsable),
    ``topics`` and ``places`` (object: list[str]), ``title``, ``dateline``, ``body`` (str; the
    trailing "Reuter" sign-off removed; for TYPE="UNPROC" the whole unprocessed text; "" for
    TYPE="BRIEF" title-only items), ``lewissplit`` (str: TRAIN/TEST/NOT-USED), ``cgisplit``
    (str), ``has_topics`` (bool: the TOPICS="YES" attribute), ``text_type`` (str: NORM, BRIEF,
    UNPROC). ``attrs["malformed_rows"]`` counts unparsable documents and undated ones.
    """
    path = require_path(data_dir, REUTERS_TAR, "Reuters-21578 archive", "reuters21578")
    return handout(_parse(file_key(path)))
