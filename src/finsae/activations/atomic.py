"""Cache entries: a whole entry or none (publishing itself: ``finsae.atomic``), checked sizes, verification marks.

An entry is a directory ``root/<key>/`` with ``manifest.json`` written last. It is built in a staging
directory beside it (same filesystem) and published with one ``rename``, under ``root/<key>.lock``, so a
crash leaves at most a stale staging directory (cleaned by the next builder) and never a half entry.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from finsae.atomic import write_json
from finsae.errors import CacheCorruptError

MANIFEST = "manifest.json"
VERIFIED = "verified.json"
REBUILD_HINT = "rerun with rebuild_cache=true (python train.py ... rebuild_cache=true) to rebuild it"


def check_size(path: Path, expected_bytes: int, what: str) -> int:
    """The size of ``path``; ``CacheCorruptError`` if it is missing or not ``expected_bytes`` long."""
    if not path.is_file():
        raise CacheCorruptError(f"{what} {path} is missing; {REBUILD_HINT}")
    size = path.stat().st_size
    if size != expected_bytes:
        raise CacheCorruptError(f"{what} {path} has {size} bytes but its manifest says {expected_bytes} "
                                f"(truncated or overwritten); {REBUILD_HINT}")
    return size


def is_complete(entry: Path) -> bool:
    return (entry / MANIFEST).is_file()


def read_manifest(entry: Path) -> dict:
    path = entry / MANIFEST
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError as e:
        raise CacheCorruptError(f"{path} is missing: {entry} is not a finished cache entry; {REBUILD_HINT}") from e
    except (OSError, ValueError) as e:
        raise CacheCorruptError(f"{path} is unreadable ({e}); {REBUILD_HINT}") from e


def mark_verified(entry: Path) -> None:
    """Record that every checksum of ``entry`` was checked once (best effort: a read-only store just
    verifies again next time)."""
    with contextlib.suppress(OSError):
        write_json(entry / VERIFIED, {"verified": True})


def was_verified(entry: Path) -> bool:
    return (entry / VERIFIED).is_file()


