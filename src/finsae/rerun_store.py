"""The artifact store a ``finsae.reproduce`` rerun writes into: the original store's inputs linked, the stage's own
outputs left out (the rerun makes them afresh), the backtest trials ledger as the original run found it."""

from __future__ import annotations

import json
from pathlib import Path


def reset_ledger(src: Path, dst: Path, n_trials: int | None) -> None:
    """Give the rerun the backtest trials ledger as the original run found it: the entries before the original's
    own (the DSR deflates by every trial in the ledger, so appending to today's ledger would count more trials
    than the original did). The original's entries are the run id of its ``n_trials``-th entry."""
    if not src.is_file():
        return
    lines = [line for line in src.read_text().splitlines() if line.strip()]
    keep = lines
    if n_trials and 0 < int(n_trials) <= len(lines):
        own = json.loads(lines[int(n_trials) - 1]).get("run")
        first = next(i for i, line in enumerate(lines) if json.loads(line).get("run") == own)
        keep = lines[:first]
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("".join(line + "\n" for line in keep))


def link_inputs(src: Path, dst: Path, fresh: list[Path]) -> None:
    """Make ``dst`` a store holding ``src``'s entries as symlinks, except ``fresh`` paths (left out), with folders
    on the way to them recreated. Lock files are not linked."""
    dst.mkdir(parents=True, exist_ok=True)
    if not src.is_dir():
        return
    rel_fresh = {p.relative_to(src) for p in fresh}

    def walk(rel: Path) -> None:
        for entry in sorted((src / rel).iterdir()):
            r = rel / entry.name
            if r in rel_fresh or entry.name.endswith(".lock") or any(
                    f.parent == rel and entry.name.startswith((f"{f.name}.", f".{f.name}.")) for f in rel_fresh):
                continue  # the output, its staging folders, and lock files (a lock belongs to one store)
            if any(r in s.parents for s in rel_fresh) and entry.is_dir():
                (dst / r).mkdir(parents=True, exist_ok=True)
                walk(r)
            else:
                (dst / r).symlink_to(entry.resolve())

    walk(Path("."))
