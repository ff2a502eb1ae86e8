"""Per-latent answer cache: one small JSON file per answer, keyed by a hash of everything that decides it
(SAE, latent, backend, model, prompt version, the examples shown, ...). Written atomically as each answer
arrives, so a killed run resumes without asking again.

Only answers are cached (``ok`` true, with their ``value``); an entry that is not one (unreadable, not JSON,
``{}``, a failure) is damaged: it is ignored with a warning naming the file, the answer asked again and the
entry rewritten."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from finsae.atomic import write_json

log = logging.getLogger(__name__)

ANSWER_DEFAULTS = {"error": None, "attempts": 1, "prompt_tokens": 0, "completion_tokens": 0, "raw": ""}
"""Bookkeeping fields of a cached answer beside ``ok`` and ``value``, for entries written without them."""


def cache_key(**parts: Any) -> str:
    """sha256 of the parts as canonical JSON (so key order and dict order never matter)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class AnswerCache:
    """``get(key)`` / ``put(key, value)`` of JSON objects under ``root``; ``hits`` counts reads that found one."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.hits = 0

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        """The cached answer of ``key``, or None when there is none or its entry is damaged (then asked again)."""
        p = self._path(key)
        if not p.exists():
            return None
        try:
            value = json.loads(p.read_text())
            why = damage(value)
        except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            why = f"unreadable: {type(e).__name__}"
        if why:
            log.warning("label: answer cache entry %s is damaged (%s); asking again and rewriting it", p, why)
            return None
        self.hits += 1
        return {**ANSWER_DEFAULTS, **value}

    def put(self, key: str, value: dict) -> None:
        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        write_json(p, value)

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json")) if self.root.is_dir() else 0


def damage(entry) -> str | None:
    """Why ``entry`` (a parsed cache file) is not a cached answer, or None when it is one."""
    if not isinstance(entry, dict):
        return f"a JSON {type(entry).__name__}, not an object"
    if entry.get("ok") is not True or entry.get("value") is None:
        return f"no answer in it: ok={entry.get('ok')!r}, value={entry.get('value')!r}"[:160]
    bad = [k for k in ("attempts", "prompt_tokens", "completion_tokens")
           if k in entry and (not isinstance(entry[k], int) or isinstance(entry[k], bool))]
    return f"{bad} not counts" if bad else None
