"""A study's artifacts as the report reads them: each stage through its typed summary and its stored tables.

Every file read goes through :class:`Study` and is remembered (``Study.files_read``), so a generated page can
record a fingerprint of exactly what it was made from (:func:`fingerprint`) and a test can tell when it is stale.
A stage without artifacts is ``None`` (the page says "not run"); an artifact that cannot be read is kept as its
one-line error (the page shows it) rather than ending the report.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from finsae.analysis import artifacts as analysis_artifacts
from finsae.analysis.contexts import read_contexts
from finsae.analysis.summary import AnalysisSummary
from finsae.errors import FinsaeError
from finsae.finetune.summary import FinetuneSummary
from finsae.labeling import artifacts as label_artifacts
from finsae.labeling.summary import LabelSummary
from finsae.paths import PROJECT_ROOT, analysis_dir, model_dirs, pair_dirs, sae_dirs
from finsae.sae.summary import SaeSummary
from finsae.summary import SUMMARY_FILE
from finsae.trading.summary import BacktestSummary

COMMANDS = {
    "finetune": "python train.py task=finetune",
    "sae": "python train.py --multirun experiment=demo model=minilm,minilm_fin layer=0,1,2,3,4,5",
    "analysis": analysis_artifacts.COMMAND,
    "labels": "python label.py",
    "backtest": "python backtest.py",
}
"""The command that makes each stage's artifacts (named when a stage has not run)."""


@dataclass
class Study:
    """The artifacts under one store (``artifacts/``), read lazily and recorded."""

    artifacts: Path
    files_read: set[Path] = field(default_factory=set)
    provenance: dict | None = None
    """The report run's provenance (machine, code version, data folder), for the setup section."""

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
                for d in model_dirs(self.artifacts) for f in [d / SUMMARY_FILE] if f.is_file()]

    def saes(self) -> pd.DataFrame | None:
        rows = []
        for f in (d / SUMMARY_FILE for d in sae_dirs(self.artifacts) if (d / SUMMARY_FILE).is_file()):
            s = self.summary(SaeSummary, f.parent)
            if isinstance(s, str):
                raise FinsaeError(s)
            rows.append(s.to_dict())
        return pd.DataFrame(rows).sort_values(["tag", "model", "layer", "seed"]).reset_index(drop=True) if rows else None

    def pairs(self, stage: str) -> list[Path]:
        """The pair folders a stage wrote (``analysis/``, ``labels/``, ``backtest/``), those with a summary."""
        return [d for d in pair_dirs(self.artifacts, stage) if (d / SUMMARY_FILE).is_file()]

    def summaries(self, stage: str) -> list[tuple[Path, Any]]:
        """Each pair folder of ``stage`` (``analysis``, ``labels``, ``backtest``) with its summary or its
        one-line error."""
        read = {"analysis": self.analysis, "labels": self.labels, "backtest": self.backtest}[stage]
        return [(folder, read(folder)) for folder in self.pairs(stage)]

    def readable(self, stage: str) -> list[tuple[Path, Any]]:
        """:meth:`summaries` that could be read."""
        return [(folder, s) for folder, s in self.summaries(stage) if not isinstance(s, str)]

    def analysis(self, folder: Path) -> AnalysisSummary | str:
        """The analysis summary (:func:`finsae.analysis.artifacts.read_summary`), or its one-line error."""
        return self.through(analysis_artifacts.read_summary, folder, SUMMARY_FILE)

    def analysis_table(self, folder: Path, name: str) -> pd.DataFrame | None:
        """A combined analysis table (:data:`finsae.analysis.artifacts.TABLES`), None when that file is absent."""
        path = analysis_artifacts.table_path(folder, name)
        if not path.is_file():
            return None
        self._seen(path)
        return analysis_artifacts.read_table(folder, name)

    def findings(self, folder: Path) -> str | None:
        """``findings.md`` of an analysis folder, None when absent."""
        path = analysis_artifacts.findings_path(folder)
        if not path.is_file():
            return None
        self._seen(path)
        return analysis_artifacts.read_findings(folder)

    def analysis_plots(self, folder: Path) -> list[Path]:
        return [self.png(p) for p in analysis_artifacts.plot_paths(folder)]

    def contexts(self, pair: str, model: str | None, layer: int) -> pd.DataFrame | None:
        """Stored contexts of ``model`` (None: the last model folder that has ``layer``) at ``layer`` of a pair's
        analysis, None when absent."""
        folder = analysis_dir(self.artifacts, pair)
        models = [model] if isinstance(model, str) and model else sorted(p.name for p in (folder / analysis_artifacts.CONTEXTS_DIR).glob("*"))
        found = [m for m in models if analysis_artifacts.contexts_path(folder, m, layer).is_file()]
        if not found:
            return None
        self._seen(analysis_artifacts.contexts_path(folder, found[-1], layer))
        return read_contexts(folder, found[-1], layer)

    def labels(self, folder: Path) -> LabelSummary | str:
        """The label summary (:func:`finsae.labeling.artifacts.read_summary`), or its one-line error."""
        return self.through(label_artifacts.read_summary, folder, SUMMARY_FILE)

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


def store_label(path: Path) -> str:
    """How pages name a store or a folder in it: its path relative to the checkout (``artifacts``,
    ``../demo/artifacts`` beside it), never an absolute machine path."""
    return Path(os.path.relpath(Path(path).resolve(), PROJECT_ROOT.resolve())).as_posix()


def reproduce_command(folder: Path) -> str:
    """The command that re-runs the run behind an artifact folder and compares its numbers (finsae.reproduce)."""
    return f"python -m finsae.reproduce {store_label(folder)}"

