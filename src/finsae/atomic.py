"""Publishing files and folders safely: one writer per target, readers see a whole result or none.

A result is built in a staging directory beside its target (same filesystem) and published with one
``rename``, under ``<target>.lock``, so a crash leaves at most a stale staging directory (cleaned by the next
writer) and never a half-written result that a later run could take as finished.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock


def lock_path(entry: Path) -> Path:
    return entry.with_name(entry.name + ".lock")


@contextlib.contextmanager
def locked(entries: Iterable[Path]) -> Iterator[None]:
    """Hold the locks of ``entries``, taken in sorted order so that overlapping requests cannot deadlock."""
    with contextlib.ExitStack() as stack:
        for entry in sorted(set(entries)):
            entry.parent.mkdir(parents=True, exist_ok=True)
            stack.enter_context(FileLock(str(lock_path(entry))))
        yield


@contextlib.contextmanager
def run_lock(ckpt_dir: Path, busy: str) -> Iterator[None]:
    """One run per checkpoint folder ``ckpt_dir`` at a time: a second one refuses at once with ``busy`` (and the
    lock file's path); the lock dies with its holder."""
    from filelock import Timeout

    from finsae.errors import FinsaeError

    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(ckpt_dir.with_name(ckpt_dir.name + ".run.lock")))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise FinsaeError(busy.format(lock=lock.lock_file)) from None
    try:
        yield
    finally:
        lock.release()


def staging_dir(entry: Path) -> Path:
    """A fresh directory beside ``entry``; call with the entry's lock held. Removes stale ones first."""
    for pattern in (f".{entry.name}.tmp-*", f".{entry.name}.old-*"):
        for stale in entry.parent.glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = entry.with_name(f".{entry.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    return tmp


def publish(tmp: Path, entry: Path, marker: str | None = "summary.json") -> None:
    """Make ``tmp`` visible as ``entry`` in one rename (moving a previous entry aside first on rebuild).

    ``marker`` is the file every version of this output holds (a stage's ``summary.json``): an existing
    ``entry`` is replaced only when it is a folder holding it, i.e. a previous version of the same output —
    anything else in its place (another stage's folder, a parent folder, a file) is refused in one line and
    left as it is. ``None`` only where the entry's name itself proves what it is (content-hash cache keys)."""
    if marker is not None:
        if not (tmp / marker).is_file():
            raise ValueError(f"publish: {tmp} lacks its own marker {marker}")
        try:
            check_replaceable(entry, marker)
        except Exception:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    _fsync_dir(tmp)
    old = None
    with _signals_held():  # a stop between the two renames would leave only the .old copy, which the next
        if entry.exists():  # writer cleans as stale
            old = entry.with_name(f".{entry.name}.old-{uuid.uuid4().hex[:8]}")
            os.rename(entry, old)
        os.rename(tmp, entry)
    _fsync_dir(entry.parent)
    if old is not None:
        # Readers that still map the old files keep them alive until they close them.
        shutil.rmtree(old, ignore_errors=True)


def check_replaceable(entry: Path, marker: str = "summary.json") -> None:
    """Refuse, in one line, when something other than a previous version of this output stands at ``entry``
    (a version is a real folder holding ``marker``); what :func:`publish` checks, for stages to call up front."""
    from finsae.errors import FinsaeError

    entry = Path(entry)
    if not (entry.exists() or entry.is_symlink()):
        return
    if entry.is_symlink() or not entry.is_dir() or not (entry / marker).is_file():
        raise FinsaeError(f"{entry} is in the way and is not a previous result of this stage (no {marker} in it): "
                          f"nothing was replaced; move it away or choose another name")


def write_text(path: Path, text: str) -> None:
    """Write ``text`` via a temp file and rename, so a reader (or a done check on the file) never sees half of it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json(path: Path, obj: dict) -> None:
    """Write ``obj`` as JSON via a temp file and rename, so a reader never sees half a file."""
    write_text(path, json.dumps(obj, indent=1, sort_keys=True))


def read_json(path: Path, what: str, fix: str) -> Any:
    """The parsed JSON file ``path``: the one reader of finsae's JSON records (stage summaries, an SAE's
    ``cfg.json``, an exported SAE's config), failing in one line that names ``what``, the file and ``fix``: missing,
    :class:`~finsae.errors.DataMissingError`; unreadable or not JSON, :class:`~finsae.errors.ConfigError`."""
    from finsae.errors import ConfigError, DataMissingError

    path = Path(path)
    if not path.is_file():
        raise DataMissingError(what, path, f"{fix[:1].upper()}{fix[1:]}.")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{what} {path} is not valid JSON ({first}); {fix}") from None


def read_table(path: Path, what: str, columns: Iterable[str], command: str, how: str = ""):
    """A stage's parquet or csv table, checked, with one wording for every stage's readers: a missing file is a
    ``DataMissingError`` ("Make it with `command`{how}."); a damaged or cut one (a csv whose last line has no end,
    as every writer ends its lines) and one without ``columns`` fail in one line naming the file and ``command``."""
    import pandas as pd

    from finsae.errors import DataMissingError, FinsaeError

    path = Path(path)
    if not path.is_file():
        raise DataMissingError(what, path, f"Make it with `{command}`{how}.")
    try:
        if path.suffix == ".parquet":
            table = pd.read_parquet(path)
        else:
            with path.open("rb") as f:
                f.seek(max(path.stat().st_size - 1, 0))
                if f.read(1) != b"\n":
                    raise ValueError("its last line was cut off")
            table = pd.read_csv(path)
    except Exception as e:  # noqa: BLE001 - pyarrow and the csv parser raise many types for a damaged file
        detail = " ".join(str(e).split())[:80]
        raise FinsaeError(f"{path} ({what}) is damaged or cut ({type(e).__name__}: {detail}); delete it and rerun "
                          f"`{command}`") from None
    lacking = [c for c in columns if c not in table.columns]
    if lacking:
        raise FinsaeError(f"{path} ({what}) lacks columns {lacking}; rerun `{command}`")
    return table


def write_table(frame, path: Path, columns: Iterable[str], what: str) -> Path:
    """Write ``frame[columns]`` as parquet via a temp file and rename; a missing column is a bug, named."""
    columns = list(columns)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    frame[columns].to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGTERM/SIGINT until the body is done (they are delivered right after)."""
    held = {signal.SIGTERM, signal.SIGINT}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)
"""OSError codes that mean the disk or folder, not the code: reported in one line, never as a traceback."""


def check_writable(folder: Path, what: str = "folder", make: bool = True, reserve_gb: float = 0.0) -> None:
    """Fail now, in one line, if ``folder`` cannot take new files (a file in its place or above it, read-only,
    full) — before any work, not at the first checkpoint.

    ``make=False`` makes nothing: it checks the nearest existing folder on the way instead (so a check before
    a sweep leaves no empty folders behind). ``reserve_gb`` also asks for that much free space there."""
    from finsae.errors import FinsaeError

    folder = Path(folder)
    for p in (folder, *folder.parents):
        if p.exists() or p.is_symlink():
            if not p.is_dir():
                where = "it is a file" if p == folder else f"{p} is a file"
                raise FinsaeError(f"the {what} {folder} cannot be written: {where}, not a folder; move it away "
                                  f"or point paths.artifacts at a writable folder")
            existing = p
            break
    else:
        existing = Path("/")
    target = folder if make else existing
    try:
        target.mkdir(parents=True, exist_ok=True)
        probe = target / f".write-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            with open(probe, "wb") as fh:
                fh.write(b"\0" * 4096)
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            probe.unlink(missing_ok=True)  # also when the disk is full: leave nothing behind
    except OSError as e:
        raise FinsaeError(f"the {what} {folder} cannot be written ({e.strerror or e}); point paths.artifacts "
                          f"at a writable folder") from None
    if reserve_gb > 0:
        free = shutil.disk_usage(target).free / 2**30
        if free < reserve_gb:
            raise FinsaeError(f"the {what} {folder} has {free:.1f} GB free, less than the {reserve_gb:g} GB this "
                              f"stage reserves for what it writes there; free space or point paths.artifacts at "
                              f"another disk")


SPACE_RESERVE_GB = 1.0
"""Free space a stage asks for, up front, where it writes big files (activation caches, tweet encodings): a
nearly full disk is refused in one line before any work instead of failing at the first shard."""


def disk_error_message(e: OSError) -> str | None:
    """One line for an OSError that is the disk's fault (full, read-only, no permission), else None."""
    if e.errno not in DISK_ERRORS:
        return None
    where = e.filename or "a file"
    fix = ("free space (or point paths.artifacts at another disk) and rerun" if e.errno in (errno.ENOSPC, errno.EDQUOT)
           else "point paths.artifacts at a writable folder and rerun")
    return f"{where} cannot be written ({e.strerror or os.strerror(e.errno)}): {fix}"
