"""One demo per artifacts store: two demos on one store would train the same models twice at once and write
over each other's logs. The lock is an OS file lock (``filelock``), so a demo killed even by SIGKILL holds it
no longer; who holds it (pid, host, since when) is written beside it for the one line a second demo prints."""

from __future__ import annotations

import contextlib
import json
import os
import platform
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from filelock import FileLock, Timeout

from finsae.atomic import write_json
from finsae.errors import FinsaeError

LOCK_FILE = ".demo.lock"
"""The lock, at the store's root."""
HOLDER_FILE = ".demo.holder.json"
"""Who holds the lock, written by the holder once it has it (the lock file itself is truncated by takers)."""


class Holder(NamedTuple):
    """The demo that holds a store."""

    pid: int
    """Its process id."""
    host: str
    """The machine it runs on."""
    since: str
    """When it took the store (UTC, ISO 8601)."""


def read_holder(artifacts: Path) -> Holder | None:
    """The recorded holder of the store; None when the record is missing or unreadable (a holder that has
    only just taken the lock)."""
    try:
        raw = json.loads((Path(artifacts) / HOLDER_FILE).read_text())
        return Holder(int(raw["pid"]), str(raw["host"]), str(raw["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _refusal(artifacts: Path) -> FinsaeError:
    holder = read_holder(artifacts)
    who = (f"pid {holder.pid} on {holder.host}, since {holder.since}" if holder is not None
           else "holder not yet recorded")
    kill = f"kill {holder.pid}" if holder else "kill it"
    return FinsaeError(f"another demo is running on the store {artifacts} ({who}); wait for it to end or "
                       f"stop it ({kill}), or give this one another --artifacts")


@contextlib.contextmanager
def store_lock(artifacts: Path) -> Iterator[Holder]:
    """Hold the store ``artifacts`` for this process (made when missing); a second holder is refused at once
    in one line naming the first."""
    artifacts = Path(artifacts)
    artifacts.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(artifacts / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise _refusal(artifacts) from None
    try:
        me = Holder(os.getpid(), platform.node(), datetime.now(timezone.utc).isoformat(timespec="seconds"))
        write_json(artifacts / HOLDER_FILE, me._asdict())
        yield me
    finally:
        lock.release()
