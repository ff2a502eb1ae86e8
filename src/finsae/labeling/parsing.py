"""Tolerant parsing of LLM answers: JSON (bare, fenced, embedded in prose), a truncated JSON object whose label
is complete, or ``Label: ... / Description: ...`` lines. Anything else -- garbage, a refusal, a label cut off
mid-way -- raises ``ParseError``: it is retried, then recorded as a failure, never turned into a label."""

from __future__ import annotations

import json
import re
from typing import NamedTuple

MAX_LABEL_WORDS = 12
MAX_LABEL_CHARS = 120
REFUSAL = re.compile(r"\b(I can(no|')t|I am unable|I'm unable|I'm sorry|I am sorry|as an AI)\b", re.IGNORECASE)
FENCE = re.compile(r"```(?:json)?\s*(.*?)(?:```|$)", re.DOTALL | re.IGNORECASE)
JSON_STR = r'"((?:[^"\\]|\\.)*)'


class ParseError(ValueError):
    """The answer holds no usable label or judgements (the message says why, in a few words)."""


class ParsedLabel(NamedTuple):
    label: str
    """A short label (at most 12 words)."""
    description: str
    """One sentence (may be empty when the answer was cut off before it)."""


def _unescape(s: str) -> str:
    try:
        return json.loads(f'"{s}"')
    except ValueError:
        return s.replace('\\"', '"').replace("\\n", " ")


def _objects(text: str):
    """Every JSON object that decodes from some ``{`` of ``text``, first to last."""
    dec = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            obj, _ = dec.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(obj, dict):
            yield obj


def _clean_label(label: str) -> str:
    label = re.sub(r"\s+", " ", str(label)).strip().strip("*`").rstrip(".;:,").strip()
    while len(label) >= 2 and label[0] == label[-1] and label[0] in "\"'":  # a quoted label: drop the quotes
        label = label[1:-1].strip()
    label = label.rstrip(".;:,").strip()
    if not label:
        raise ParseError("empty label")
    if len(label.split()) > MAX_LABEL_WORDS or len(label) > MAX_LABEL_CHARS:
        raise ParseError(f"label too long ({len(label.split())} words)")
    return label


def _clean_description(d) -> str:
    return re.sub(r"\s+", " ", str(d or "")).strip()


def _strip(text: str, prefill: str) -> str:
    text = text or ""
    if prefill and not text.lstrip().startswith("{"):
        text = prefill + text
    fenced = FENCE.search(text)
    return fenced.group(1) if fenced else text


def parse_label(text: str, prefill: str = "") -> ParsedLabel:
    """The label and description in an explainer's answer (``prefill``: what the assistant turn started with)."""
    raw = _strip(text, prefill)
    if not raw.strip():
        raise ParseError("empty answer")
    for obj in _objects(raw):
        keys = {str(k).lower(): v for k, v in obj.items()}
        if "label" in keys and isinstance(keys["label"], str):
            return ParsedLabel(_clean_label(keys["label"]), _clean_description(keys.get("description")))
    # A truncated object: the label string must be closed; a cut-off description is kept as far as it goes.
    m = re.search(r'"label"\s*:\s*' + JSON_STR + r'"', raw, re.IGNORECASE)
    if m:
        d = re.search(r'"description"\s*:\s*' + JSON_STR, raw[m.end():], re.IGNORECASE)
        return ParsedLabel(_clean_label(_unescape(m.group(1))), _clean_description(_unescape(d.group(1)) if d else ""))
    if re.search(r'"label"\s*:', raw, re.IGNORECASE):
        raise ParseError("answer cut off inside the label")
    m = re.search(r"^\W*label\W*[:\-]\s*(.+)$", raw, re.IGNORECASE | re.MULTILINE)
    if m:
        d = re.search(r"^\W*description\W*[:\-]\s*(.+)$", raw, re.IGNORECASE | re.MULTILINE)
        return ParsedLabel(_clean_label(m.group(1)), _clean_description(d.group(1) if d else ""))
    if REFUSAL.search(raw):
        raise ParseError("refused")
    raise ParseError("no label found")


def _as_bit(v) -> int:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)) and v in (0, 1):
        return int(v)
    s = str(v).strip().lower()
    if s in ("1", "yes", "true", "y"):
        return 1
    if s in ("0", "no", "false", "n"):
        return 0
    raise ParseError(f"answer {v!r} is not 0 or 1")


def parse_answers(text: str, n: int, prefill: str = "") -> list[int]:
    """Exactly ``n`` 0/1 judgements from a scorer's answer (JSON ``{"answers": [...]}``, a bare list, or one
    ``i. 0/1`` line per example)."""
    raw = _strip(text, prefill)
    if not raw.strip():
        raise ParseError("empty answer")
    found = None
    for obj in _objects(raw):
        vals = next((v for k, v in obj.items() if str(k).lower() in ("answers", "answer")), None)
        if isinstance(vals, list):
            found = vals
            break
    if found is None:
        m = re.search(r"\[([^\[\]]*)\]", raw)
        if m:
            found = [v for v in re.split(r"[,\s]+", m.group(1)) if v]
    if found is None:
        lines = re.findall(r"^\s*\d+\s*[.):]\s*(yes|no|true|false|0|1)\b", raw, re.IGNORECASE | re.MULTILINE)
        found = lines or None
    if found is None:
        raise ParseError("refused" if REFUSAL.search(raw) else "no answers found")
    bits = [_as_bit(v) for v in found]
    if len(bits) != n:
        raise ParseError(f"{len(bits)} answers for {n} examples")
    return bits


def parse_intruder(text: str, n: int, prefill: str = "") -> int:
    """The intruder's sentence number (1..n) in an intruder answer: JSON ``{"intruder": k}``, ``[RESPONSE]: k``
    (delphi's format), ``Sentence k``, or a lone number."""
    raw = _strip(text, prefill)
    if not raw.strip():
        raise ParseError("empty answer")
    found = None
    for obj in _objects(raw):
        found = next((v for k, v in obj.items() if str(k).lower() in ("intruder", "answer", "index")), None)
        if found is not None:
            break
    if found is None:
        m = (re.search(r"(?:RESPONSE\]?|intruder(?: is)?|sentence|answer)\W{0,3}(\d+)", raw, re.IGNORECASE)
             or re.fullmatch(r"\W*(\d+)\W*", raw))
        found = m.group(1) if m else None
    if found is None:
        raise ParseError("refused" if REFUSAL.search(raw) else "no intruder found")
    try:
        k = int(str(found).strip())
    except ValueError:
        raise ParseError(f"intruder {found!r} is not a number") from None
    if not 1 <= k <= n:
        raise ParseError(f"intruder {k} is not in 1..{n}")
    return k
