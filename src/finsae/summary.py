"""Typed stage summaries: one dataclass per stage, written as ``summary.json`` and read back through the same
type (by the report, by ``skip_if_done``), never by string keys spread over files."""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from finsae.atomic import read_json, write_json
from finsae.errors import FinsaeError

SUMMARY_FILE = "summary.json"


def is_published(folder: str | Path) -> bool:
    """A finished stage run: every stage publishes its folder in one rename with ``summary.json`` in it (or
    writes that file last), so its presence is the one "done" check (``skip_if_done``, run guards)."""
    return (Path(folder) / SUMMARY_FILE).is_file()


S = TypeVar("S", bound="StageSummary")


@dataclass
class StageSummary:
    """Base of every stage's summary record."""

    @property
    def objective(self) -> float | None:
        """The number a Hydra sweeper minimises (None: the stage has none)."""
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def scalars(self) -> dict[str, float | int | str]:
        """The fields that are plain numbers or strings (what W&B summaries and artifact metadata take)."""
        out = {}
        for k, v in self.to_dict().items():
            if isinstance(v, bool) or v is None:
                continue
            if isinstance(v, (int, str)) or (isinstance(v, float) and math.isfinite(v)):
                out[k] = v
        return out

    def write(self, *dirs: Path) -> None:
        """Write ``summary.json`` into each of ``dirs`` (atomically: a reader never sees half a file)."""
        for d in dirs:
            Path(d).mkdir(parents=True, exist_ok=True)
            write_json(Path(d) / SUMMARY_FILE, self.to_dict())

    @classmethod
    def read(cls: type[S], path: str | Path) -> S:
        """The summary in ``path`` (a folder or its summary.json); one clear error when missing or corrupt."""
        path = Path(path)
        if path.is_dir() or path.name != SUMMARY_FILE:
            path = path / SUMMARY_FILE
        raw = read_json(path, cls.__name__, "rerun the stage that writes it")
        names = {f.name for f in fields(cls)}
        if not isinstance(raw, dict):
            raise FinsaeError(f"{path} is not a {cls.__name__} (not a JSON object); rerun the stage that wrote it")
        missing = sorted(f.name for f in fields(cls)
                         if f.name not in raw and f.default is MISSING and f.default_factory is MISSING)
        if missing:
            raise FinsaeError(f"{path} is not a {cls.__name__} (missing {missing}); rerun the stage that wrote it")
        for f in fields(cls):  # a list field holding a string or null would be iterated wrongly much later
            if f.default_factory is list and f.name in raw and not isinstance(raw[f.name], list):
                raise FinsaeError(f"{path}: {f.name!r} is {raw[f.name]!r}, not a list; rerun the stage that wrote it")
        return cls(**{k: v for k, v in raw.items() if k in names})
