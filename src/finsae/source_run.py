"""What a run logged and where its results lie: the source run that ``finsae.reproduce`` re-runs (a Hydra run
folder, an offline W&B run, or an artifact folder that names its run), its config, summary and provenance, and
its artifact folder in a store."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from finsae import provenance
from finsae.errors import ConfigError, DataMissingError
from finsae.paths import (PROJECT_ROOT, analysis_dir, backtest_dir, labels_dir, model_dir, sae_dir)
from finsae.run_finder import is_artifact_folder, run_of_artifact
from finsae.summary import SUMMARY_FILE, StageSummary

SCRIPTS = ("train", "analyze", "label", "backtest")
MISSING_STORE = ("The rerun reads the run's inputs (models, SAEs, analysis) from it; to rebuild them all, pass an "
                 "empty folder you made for it.")


@dataclass
class SourceRun:
    """What a run logged: its config, summary and provenance."""

    folder: Path
    config: dict[str, Any]
    """The stage's config (``name`` says which script)."""
    summary: dict[str, Any]
    """Its summary metrics (``summary.json`` of the run or its artifact; the W&B summary for a W&B run)."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """Code version and data fingerprint the run recorded (empty for runs made before they were recorded)."""
    pair_choice: str | None = None
    """The ``pair=`` option the run chose (names its artifact folder)."""
    kind: str = "hydra"
    """hydra (a run folder: compared with the rerun's summary.json) or wandb (an offline W&B run: compared with the
    rerun's own W&B summary)."""


def _load_yaml(path: Path, what: str) -> Any:
    if not path.is_file():
        raise DataMissingError(what, path, "Pass a stage's run folder (outputs/... holding .hydra/config.yaml) or "
                                           "an offline W&B run folder (wandb/offline-run-*).")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{path} is not valid YAML ({first}); the run's saved config is corrupt") from None


def _pair_choice(config: dict[str, Any], choices: dict[str, Any] | None) -> str | None:
    """The ``pair=`` option whose members the run used (as ``finsae.glue.schemas.pair_name`` decides): the option
    chosen when its members were not overridden (None when they were: the folder is then ``{base}_{domain}``);
    for a W&B run, which does not record the choice, the option with the same members."""
    pair = config.get("pair") or {}
    if choices and choices.get("pair"):
        options = [PROJECT_ROOT / "conf" / "pair" / f"{choices['pair']}.yaml"]
    else:
        options = sorted((PROJECT_ROOT / "conf" / "pair").glob("*.yaml"))
    for option in options:
        if not option.is_file():
            continue
        o = yaml.safe_load(option.read_text()) or {}
        if (o.get("base"), o.get("domain")) == (pair.get("base"), pair.get("domain")):
            return option.stem
    return None


def _check_config(config: Any, path: Path) -> dict[str, Any]:
    if not isinstance(config, dict) or config.get("name") not in SCRIPTS:
        raise ConfigError(f"{path} is not a finsae stage config (no `name` of {SCRIPTS}); the run's saved config "
                          "is corrupt or from another program")
    return config


def read_hydra_run(folder: Path, artifacts: Path | None = None, summary: Path | None = None) -> SourceRun:
    """The Hydra run ``folder``, compared by ``summary`` (default: the run folder's summary.json, else its
    artifact's in ``artifacts`` or the store its config names)."""
    cfg_path = folder / ".hydra" / "config.yaml"
    config = _check_config(_load_yaml(cfg_path, "saved Hydra config"), cfg_path)
    hydra_yaml = folder / ".hydra" / "hydra.yaml"
    choices = None
    if hydra_yaml.is_file():
        h = yaml.safe_load(hydra_yaml.read_text()) or {}
        choices = ((h.get("hydra") or {}).get("runtime") or {}).get("choices")
    run = SourceRun(folder, config, {}, provenance.read(folder) or {}, _pair_choice(config, choices))
    summary = summary or folder / SUMMARY_FILE
    if not summary.is_file():
        summary = artifact_folder(run, artifacts or source_store(run)) / SUMMARY_FILE
    run.summary = read_run_summary(config, summary)
    return run


def read_wandb_run(folder: Path) -> SourceRun:
    from finsae.glue.tracking import read_offline_run, read_offline_summary

    try:
        rec = read_offline_run(folder)
        info = read_offline_summary(folder)
    except (subprocess.CalledProcessError, ValueError, OSError) as e:
        raise ConfigError(f"{folder} is not a readable offline W&B run ({type(e).__name__}); copy the whole "
                          "offline-run-* folder") from None
    check_finished(folder, info)
    summary = info.get("summary", {})
    config = dict(rec["config"])
    prov = config.pop("provenance", {}) or {}
    config = _check_config(config, folder)
    return SourceRun(folder, config, summary, prov, _pair_choice(config, None), kind="wandb")


def check_finished(folder: Path, info: dict[str, Any]) -> None:
    """Refuse an offline W&B run whose summary is not the finished run's: cut (no end record: stopped, or copied
    while it ran) or failed (a non-zero exit code)."""
    code = info.get("exit_code")
    if code is None:
        raise ConfigError(f"{folder} is a cut offline W&B run (no end record, state {info.get('state', 'unknown')}: "
                          f"the run was stopped, or copied while it ran), so its summary is not the run's; copy "
                          f"the run folder again once the run has finished, or reproduce from its Hydra run folder")
    if code != 0:
        raise ConfigError(f"{folder} is an offline W&B run that failed (exit code {code}): it has no finished "
                          f"result to reproduce; rerun the stage itself")


def store_of(run: SourceRun, folder: Path) -> Path | None:
    """The store whose artifact folder for ``run`` is ``folder`` (None: ``folder`` is not where the run publishes)."""
    folder = folder.resolve()
    return next((store for store in folder.parents if artifact_folder(run, store).resolve() == folder), None)


def read_run(folder: str | Path, artifacts: Path | None = None) -> SourceRun:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataMissingError("run folder", folder, "Pass a stage's run folder (outputs/...), an offline W&B run "
                                                     "or an artifact folder (artifacts/...).")
    if list(folder.glob("*.wandb")):
        return read_wandb_run(folder)
    return read_hydra_run(folder, artifacts)


def read_source(folder: str | Path, artifacts: Path | None = None,
                roots: list[Path] | None = None) -> tuple[SourceRun, Path | None]:
    """The run behind ``folder`` (a run folder, an offline W&B run or an artifact folder) and the store to rerun
    from (``artifacts``, or the store of the artifact folder given; None: the one the run's config names). From
    an artifact folder, the compared summary is that folder's (the published numbers) unless the run is W&B's."""
    folder = Path(folder)
    if not (folder.is_dir() and is_artifact_folder(folder)):
        return read_run(folder, artifacts), artifacts
    source = run_of_artifact(folder, roots)
    run = read_wandb_run(source) if list(source.glob("*.wandb")) else \
        read_hydra_run(source, artifacts, folder / SUMMARY_FILE)
    return run, artifacts or store_of(run, folder)


def summary_type(config: dict[str, Any]) -> type[StageSummary]:
    """The summary type of the stage ``config`` runs: its ``summary.json`` is read through it, as by every other
    reader of that artifact (the report, ``skip_if_done``)."""
    name = config["name"]
    if name == "train":
        if config.get("task") == "finetune":
            from finsae.finetune.summary import FinetuneSummary

            return FinetuneSummary
        from finsae.sae.summary import SaeSummary

        return SaeSummary
    if name == "analyze":
        from finsae.analysis.summary import AnalysisSummary

        return AnalysisSummary
    if name == "label":
        from finsae.labeling.summary import LabelSummary

        return LabelSummary
    from finsae.trading.summary import BacktestSummary

    return BacktestSummary


def read_run_summary(config: dict[str, Any], path: Path) -> dict[str, Any]:
    return summary_type(config).read(path).to_dict()


def source_store(run: SourceRun) -> Path:
    """The artifact store the run's config names (``paths.artifacts``; its default when an interpolation)."""
    art = str((run.config.get("paths") or {}).get("artifacts") or "")
    if art and "${" not in art:
        return Path(art)
    return provenance_default_artifacts()


def provenance_default_artifacts() -> Path:
    from finsae.paths import default_artifacts_dir

    return default_artifacts_dir()


def pair_folder_name(run: SourceRun) -> str:
    c = run.config
    if c.get("pair_name"):
        return str(c["pair_name"])
    if run.pair_choice:
        return run.pair_choice
    return f"{c['pair']['base']}_{c['pair']['domain']}"


def artifact_folder(run: SourceRun, store: Path) -> Path:
    """The folder a stage publishes (and its summary.json lives in) under ``store``."""
    c = run.config
    if c["name"] == "train":
        if c.get("task") == "finetune":
            return model_dir(store, c["finetune"]["out_name"])
        return sae_dir(store, c["model"]["name"], int(c["layer"]), c["tag"])
    return {"analyze": analysis_dir, "label": labels_dir, "backtest": backtest_dir}[c["name"]](store, pair_folder_name(run))
