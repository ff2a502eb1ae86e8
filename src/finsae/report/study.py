"""A study's artifacts as the report reads them: each stage through its typed summary and its stored tables.

Every file read goes through :class:`Study` and is remembered (``Study.files_read``), so a generated page can
record a fingerprint of exactly what it was made from (:func:`fingerprint`) and a test can tell when it is stale.
A stage without artifacts is ``None`` (the page says "not run"); an artifact that cannot be read is kept as its
one-line error (the page shows it) rather than ending the report.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from finsae.analysis.summary import AnalysisSummary
from finsae.errors import FinsaeError
from finsae.finetune.summary import FinetuneSummary
from finsae.labeling.summary import LabelSummary
from finsae.sae.summary import SaeSummary
from finsae.summary import SUMMARY_FILE
from finsae.trading.summary import BacktestSummary

COMMANDS = {
    "finetune": "python train.py task=finetune",
    "sae": "python train.py --multirun experiment=demo model=minilm,minilm_fin layer=0,1,2,3,4,5",
    "analysis": "python analyze.py",
    "labels": "python label.py",
    "backtest": "python backtest.py",
}
"""The command that makes each stage's artifacts (named when a stage has not run)."""


@dataclass
class Study:
    """The artifacts under one store (``artifacts/``), read lazily and recorded."""

    artifacts: Path
    files_read: set[Path] = field(default_factory=set)

    def _seen(self, path: Path) -> Path:
        self.files_read.add(Path(path))
        return Path(path)

    def read_json(self, path: Path) -> Any:
        return json.loads(self._seen(path).read_text())

    def read_table(self, path: Path) -> pd.DataFrame:
        path = self._seen(path)
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)

    def read_text(self, path: Path) -> str:
        return self._seen(path).read_text()

    def png(self, path: Path) -> Path:
        return self._seen(path)

    def summary(self, cls, folder: Path):
        """``cls.read(folder)``, or the error text when it cannot be read."""
        try:
            s = cls.read(folder)
        except FinsaeError as e:
            return str(e)
        finally:
            if (Path(folder) / SUMMARY_FILE).is_file():
                self._seen(Path(folder) / SUMMARY_FILE)
        return s

    def through(self, reader, folder: Path, name: str) -> Any:
        """``reader(folder)``, a stage contract's reader of ``folder/name``, recorded; or its one-line error text."""
        self._seen(Path(folder) / name)
        try:
            return reader(folder)
        except FinsaeError as e:
            return str(e)

    # -- stages ------------------------------------------------------------------------------------------------
    def finetunes(self) -> list[tuple[str, FinetuneSummary | str]]:
        return [(f.parent.name, self.summary(FinetuneSummary, f.parent))
                for f in sorted(self.artifacts.glob("models/*/summary.json"))]

    def saes(self) -> pd.DataFrame | None:
        rows = []
        for f in sorted(self.artifacts.glob("sae/*/layer_*/*/summary.json")):
            s = self.summary(SaeSummary, f.parent)
            if isinstance(s, str):
                raise FinsaeError(s)
            rows.append(s.to_dict())
        return pd.DataFrame(rows).sort_values(["tag", "model", "layer", "seed"]).reset_index(drop=True) if rows else None

    def pairs(self, stage: str) -> list[Path]:
        """The pair folders a stage wrote (``analysis/``, ``labels/``, ``backtest/``), those with a summary."""
        return sorted(p.parent for p in self.artifacts.glob(f"{stage}/*/{SUMMARY_FILE}"))

    def analysis(self, folder: Path) -> AnalysisSummary | str:
        return self.summary(AnalysisSummary, folder)

    def labels(self, folder: Path) -> LabelSummary | str:
        return self.summary(LabelSummary, folder)

    def backtest(self, folder: Path) -> BacktestSummary | str:
        return self.summary(BacktestSummary, folder)


def fingerprint(files: set[Path] | list[Path], root: Path) -> str:
    """16 hex digits over the relative path and content of every file (order-free)."""
    h = hashlib.sha256()
    for p in sorted(Path(f) for f in files):
        try:
            rel = p.relative_to(root).as_posix()
        except ValueError:
            rel = p.as_posix()
        h.update(rel.encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest() if p.is_file() else b"<missing>")
    return h.hexdigest()[:16]
