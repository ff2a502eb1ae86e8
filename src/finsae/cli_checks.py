"""The checks the command-line tools (``finsae.export``, ``finsae.reproduce``, ``finsae.report``) make on the
folders they write, before any work: the stages' own guards (:func:`finsae.atomic.check_writable`, the
``summary.json`` marker of :func:`finsae.atomic.check_replaceable`) with the fix worded for the command's option
instead of a config key."""

from __future__ import annotations

from pathlib import Path

from finsae.atomic import check_writable
from finsae.errors import ConfigError, FinsaeError
from finsae.summary import SUMMARY_FILE


def probe_writable(folder: str | Path, option: str) -> None:
    """Refuse, in one line naming ``option``, a folder that cannot be written (a file at it or above it, a
    read-only or full disk), making nothing: the nearest existing folder on the way is probed."""
    try:
        check_writable(Path(folder), f"{option} folder", make=False)
    except FinsaeError as e:  # the stages' wording names their config key; a command names its option
        raise FinsaeError(str(e).replace("paths.artifacts", option)) from None


def published_result(path: str | Path) -> Path | None:
    """The folder at or above ``path`` that a stage published (it holds the stages' ``summary.json``), else None."""
    for p in (Path(path), *Path(path).parents):
        if (p / SUMMARY_FILE).is_file():
            return p
    return None


def store_of(path: str | Path) -> Path | None:
    """The artifacts store ``path`` lies in by the SAE layout (``STORE/sae/MODEL/layer_I/...``), else None."""
    parts = Path(path).absolute().parts
    for i in range(len(parts) - 2):
        if parts[i] == "sae" and parts[i + 2].startswith("layer_") and i > 0:
            return Path(*parts[:i])
    return None


def inside(path: str | Path, folder: str | Path) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (both resolved: links and ``..`` followed)."""
    p, f = Path(path).resolve(), Path(folder).resolve()
    return p == f or f in p.parents


def check_new_output(out: str | Path, option: str, stores: list[Path], force: bool,
                     targets: list[Path] | None = None) -> None:
    """Refuse to write ``out`` (the folders ``targets`` in it) when it is not empty or lies in one of ``stores``,
    unless ``force``; and, even with ``force``, when a target is or lies inside a published result. Then probe
    that it can be written. Nothing is made or changed."""
    out = Path(out)
    for target in targets or [out]:
        hit = published_result(target)
        if hit is not None:
            raise ConfigError(f"{option} {out} would write into {hit}, a published result (it holds "
                              f"{SUMMARY_FILE}): nothing is written over a stage's result, even with --force; "
                              f"choose another folder")
    if not force:
        store = next((s for s in stores if inside(out, s)), None)
        if store is not None:
            raise ConfigError(f"{option} {out} lies inside the artifacts store {store}, whose folders the stages "
                              f"read and replace; choose a folder outside it (or pass --force)")
        if out.is_dir() and any(out.iterdir()):
            raise ConfigError(f"{option} {out} is not empty; choose a new or empty folder (or pass --force to "
                              f"write beside what is there)")
    probe_writable(out, option)
