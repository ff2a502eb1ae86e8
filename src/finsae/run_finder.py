"""From an artifact folder to the run that made it (``python -m finsae.reproduce ARTIFACT_FOLDER``): its
``summary.json`` names the run folder and W&B run id (:class:`finsae.summary.StageSummary`); the run folder is
used where it is on this machine, else the offline W&B run of that id under the usual run folders."""

from __future__ import annotations

import os
from pathlib import Path

from finsae.atomic import read_json
from finsae.errors import ConfigError, DataMissingError
from finsae.paths import PROJECT_ROOT
from finsae.summary import SUMMARY_FILE


def is_artifact_folder(folder: Path) -> bool:
    """A published stage folder (its summary.json, no run config, no W&B log), not a run folder."""
    return ((folder / SUMMARY_FILE).is_file() and not (folder / ".hydra").is_dir()
            and not list(folder.glob("*.wandb")))


def default_run_roots() -> list[Path]:
    """Where run folders live here (``conf/hydra/default.yaml``): ``$FINSAE_OUTPUTS``, ``outputs/``, ``multirun/``."""
    roots = [Path(os.environ["FINSAE_OUTPUTS"])] if os.environ.get("FINSAE_OUTPUTS") else []
    return roots + [PROJECT_ROOT / "outputs", PROJECT_ROOT / "multirun"]


def run_of_artifact(folder: Path, roots: list[Path] | None = None) -> Path:
    """The run that made the artifact ``folder``: the run folder its summary.json names, else the offline W&B run
    of its W&B run id under the run folder or ``roots``; one line when neither is here."""
    raw = read_json(folder / SUMMARY_FILE, "stage summary", "rerun the stage that writes it")
    named = str(raw.get("run_dir") or "") if isinstance(raw, dict) else ""
    run_id = str(raw.get("wandb_run_id") or "") if isinstance(raw, dict) else ""
    if not named and not run_id:
        raise ConfigError(f"{folder / SUMMARY_FILE} names no run (written before summaries recorded their run); "
                          "pass the run folder (outputs/...) that made it instead")
    run_dir = PROJECT_ROOT / named if named else None  # a relative run_dir is the project root's
    if run_dir is not None and (run_dir / ".hydra" / "config.yaml").is_file():
        return run_dir
    searched = [run_dir / "wandb"] if run_dir is not None else []
    searched += roots if roots is not None else default_run_roots()
    if run_id:
        for root in (r for r in searched if r.is_dir()):
            found = sorted(root.rglob(f"offline-run-*-{run_id}"))
            if found:
                return found[-1]
    raise DataMissingError(f"the run that made {folder} (run folder {named or '?'}, W&B run {run_id or '?'})",
                           run_dir or folder, "Copy the run folder (or its wandb/offline-run-* folder) here and pass "
                           "it, or name the folder holding it with --runs DIR.")
