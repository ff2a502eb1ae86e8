"""Per-latent answer cache: one small JSON file per answer, keyed by a hash of everything that decides it
(SAE, latent, backend, model, prompt version, the examples shown, ...). Written atomically as each answer
arrives, so a killed run resumes without asking again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from finsae.atomic import write_json


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
        p = self._path(key)
        try:
            value = json.loads(p.read_text())
        except (OSError, ValueError):
            return None  # absent, or cut off by a crash before the rename: ask again
        self.hits += 1
        return value

    def put(self, key: str, value: dict) -> None:
        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        write_json(p, value)

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json")) if self.root.is_dir() else 0
