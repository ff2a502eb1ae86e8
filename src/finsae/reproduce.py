"""Re-run a stage from the config it logged, and compare its summary metrics with the original's.

    python -m finsae.reproduce FOLDER [--out NEW_FOLDER] [--rtol 1e-4] [--atol 1e-6] [--artifacts STORE] [--all]
                               [--runs DIR ...]

``FOLDER`` is a stage's run folder (Hydra's ``outputs/...`` or ``multirun/.../N``, holding
``.hydra/config.yaml``), an offline W&B run folder (``.../wandb/offline-run-*``: its config, as the run recorded
it, is enough when the run was copied off a cluster alone), or an artifact folder
(``artifacts/sae/minilm/layer_3/demo``: its ``summary.json`` names the run folder and W&B run id that made it; the
run folder is used, and when it is not on this machine the offline W&B run of that id under the run folders
``--runs`` names, default ``$FINSAE_OUTPUTS``, ``outputs/`` and ``multirun/``; :mod:`finsae.run_finder`). From an
artifact folder its own ``summary.json`` is the one compared, and its store is the rerun's input store unless
``--artifacts`` names another.

What it does:

1. reads the saved config (the composed config of the Hydra folder, or the resolved config W&B recorded) and the
   provenance (``provenance.json`` or the W&B config's ``provenance``: code version, data fingerprint);
2. warns loudly when the code version (git sha) or the data fingerprint differ from the original's;
3. re-runs the same script (``train.py``, ``analyze.py``, ``label.py``, ``backtest.py``, named by the config's
   ``name``) with that config as its whole config (``--config-path``), so the schema is re-applied and the seed is
   the same, into ``NEW_FOLDER`` (default ``RUN_FOLDER-repro-<time>``): the run folder is ``NEW_FOLDER/run`` and
   the artifact store ``NEW_FOLDER/artifacts`` links the original store's inputs (``--artifacts``, default the
   store the config names) but not the stage's own output, which the rerun makes afresh;
4. prints the summary metrics that differ, old vs new (``--all``: every metric, timings too, printed but not
   compared, :mod:`finsae.metric_diff`), and exits 1 when a metric differs beyond
   ``|new - old| <= atol + rtol * |old|``, 0 when all agree. A missing or corrupt
   config, or a failed rerun, ends in one line on stderr (exit 2, or the rerun's own code).

Refused before any work, in one line: a negative or non-finite tolerance; a store (``--artifacts``, or the one the
config names) that does not exist (the rerun would rebuild every input into an empty store: pass an empty
folder to mean that); an offline W&B run that was cut (stopped, or copied while running: no end record, so its
summary is not the run's); a ``--out`` that is not empty or cannot be written. SIGTERM/SIGINT reach the rerun
(``finsae.child``): it stops as a stage does, and reproduce says so in one line and exits 143/130. The config copy
passes through ``finsae.redaction.redact``: a secret-named key in a saved config is never copied.

No Hydra or W&B import here: the saved config is read as YAML, the rerun is a subprocess, and an offline W&B run
is read through ``wandb leet inspect`` (``finsae.glue.tracking.read_offline_run``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from finsae import provenance
from finsae.child import SignalForwarder, Stopped, stopped_line
from finsae.cli_checks import probe_writable
from finsae.errors import ConfigError, DataMissingError, FinsaeError
from finsae.metric_diff import MetricRow, compare, flatten, print_table  # noqa: F401 - their home before
from finsae.redaction import redact, secret_paths
from finsae.rerun_store import link_inputs, reset_ledger
from finsae.run_finder import is_artifact_folder, run_of_artifact
from finsae.summary import SUMMARY_FILE, StageSummary
from finsae.trading.ledger import LEDGER_FILE
from finsae.paths import (PROJECT_ROOT, analysis_dir, backtest_dir, backtest_root, labels_dir, model_dir,
                          sae_checkpoint_dir, sae_dir)

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
    run.summary = _read_summary(config, summary)
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


def _read_summary(config: dict[str, Any], path: Path) -> dict[str, Any]:
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


def _pair_folder_name(run: SourceRun) -> str:
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
    return {"analyze": analysis_dir, "label": labels_dir, "backtest": backtest_dir}[c["name"]](store, _pair_folder_name(run))


def _outputs(run: SourceRun, store: Path) -> list[Path]:
    """The paths the rerun makes afresh under ``store`` (no stage writes into an upstream stage's folder)."""
    c = run.config
    fresh = [artifact_folder(run, store)]
    if c["name"] == "train" and c.get("task") != "finetune":
        fresh.append(sae_checkpoint_dir(store, c["model"]["name"], int(c["layer"]), c["tag"]))
    if c["name"] == "backtest":  # the trials ledger: rebuilt as the original run found it (reset_ledger)
        fresh.append(backtest_root(store) / LEDGER_FILE)
    return fresh


def _warn(lines: list[str]) -> None:
    bar = "!" * 78
    print(bar, *[f"!! {line}" for line in lines], bar, sep="\n", file=sys.stderr)


def rerun_command(run: SourceRun, config_dir: Path, new_run: Path, new_store: Path) -> list[str]:
    script = PROJECT_ROOT / f"{run.config['name']}.py"
    cmd = [sys.executable, str(script), f"--config-path={config_dir}", "--config-name=config",
           f"hydra.run.dir={new_run}", f"paths.artifacts={new_store}"]
    for flag in ("skip_if_done", "resume", "overwrite", "rescore"):
        if flag in run.config:
            cmd.append(f"{flag}=false")
    if run.config["name"] == "train" and run.config.get("task") == "finetune":
        cmd.append("finetune.skip_if_present=false")
    if "pair_name" in run.config and not run.config.get("pair_name"):
        cmd.append(f"pair_name={_pair_folder_name(run)}")
    return cmd


def _config_for_rerun(run: SourceRun) -> dict[str, Any]:
    """The saved config under its script's schema (so it is validated and typed as the original was), with the
    run-specific paths given back to their resolvers (W&B records them resolved)."""
    config = {"defaults": [f"{run.config['name']}_schema", "_self_"], **json.loads(json.dumps(run.config))}
    paths = config.setdefault("paths", {})
    paths["output_dir"] = "${hydra:runtime.output_dir}"
    if "${" not in str(paths.get("data_dir", "${")) and not Path(str(paths["data_dir"])).is_dir():
        paths["data_dir"] = "${finsae_data_dir:}"  # a cluster path that does not exist here
    return config


def check_versions(run: SourceRun) -> dict[str, Any]:
    """Warn loudly when the code version or the data differ from the run's; returns both sides of each."""
    old_code, now_code = run.provenance.get("code_version"), provenance.code_version()
    warnings = []
    if old_code is None:
        warnings.append(f"the run recorded no code version; reproducing with {now_code}")
    elif old_code != now_code or old_code.endswith("+dirty"):
        warnings.append(f"CODE VERSION DIFFERS: the run was made by {old_code}, this checkout is {now_code}")
    data_dir = (run.config.get("paths") or {}).get("data_dir")
    if not data_dir or "${" in str(data_dir) or not Path(str(data_dir)).is_dir():
        from finsae.paths import default_data_dir

        data_dir = default_data_dir()
    old_data, now_data = run.provenance.get("data_fingerprint"), provenance.data_fingerprint(data_dir)
    if old_data and old_data != now_data:
        warnings.append(f"DATA DIFFERS: the run's data fingerprint is {old_data}, {data_dir} here is {now_data}")
    if warnings:
        _warn(warnings)
    return {"code_version_old": old_code, "code_version_new": now_code, "data_fingerprint_old": old_data,
            "data_fingerprint_new": now_data}


def rerun_summary(run: SourceRun, new_run: Path, new_store: Path) -> dict[str, Any]:
    """The rerun's summary: its own offline W&B run's for a W&B source, else its ``summary.json``."""
    if run.kind == "wandb":
        from finsae.glue.tracking import read_offline_summary

        wandb_runs = sorted((new_run / "wandb").glob("offline-run-*"))
        if not wandb_runs:
            raise ConfigError(f"the rerun in {new_run} made no offline W&B run to compare with (logger changed?)")
        return read_offline_summary(wandb_runs[-1]).get("summary", {})
    summary = new_run / SUMMARY_FILE
    return _read_summary(run.config, summary if summary.is_file() else artifact_folder(run, new_store) / SUMMARY_FILE)


def check_arguments(rtol: float, atol: float, artifacts: str | Path | None) -> None:
    """The checks that need no run folder: tolerances, an explicit store."""
    for name, value in (("--rtol", rtol), ("--atol", atol)):
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{name} must be a finite number >= 0 (|new - old| <= atol + rtol * |old|), got {value}")
    if artifacts is not None and not Path(artifacts).is_dir():
        raise DataMissingError("artifact store (--artifacts)", artifacts, MISSING_STORE)


def reproduce(folder: str | Path, out: str | Path | None = None, rtol: float = 1e-4, atol: float = 1e-6,
              artifacts: str | Path | None = None, env: dict[str, str] | None = None, show_all: bool = False,
              runs: list[Path] | None = None) -> int:
    """Re-run the stage of ``folder`` (a run folder, an offline W&B run or an artifact folder); returns the exit
    code (0 agree, 1 a metric differs); :class:`Stopped` when a signal stopped the rerun (forwarded to it).
    ``show_all``: print every metric, not only those that differ; ``runs``: where to look for the run of an
    artifact folder whose run folder is not here."""
    check_arguments(rtol, atol, artifacts)
    run, found_store = read_source(folder, Path(artifacts) if artifacts else None, runs)
    artifacts = artifacts or found_store
    folder = run.folder
    secrets = secret_paths(run.config)
    if secrets:
        raise ConfigError(f"the saved config of {folder} holds a secret ({', '.join(secrets)}): a stage's config never "
                          f"does (keys come from the environment), so it is neither copied nor rerun; remove it there")
    folder = Path(folder).resolve()
    out = Path(out) if out else folder.with_name(f"{folder.name}-repro-{time.strftime('%Y%m%d-%H%M%S')}")
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise ConfigError(f"--out {out} exists and is not an empty folder; reproduce writes into a new folder")
    probe_writable(out, "--out")
    store = Path(artifacts) if artifacts else source_store(run)
    if not store.is_dir():
        raise DataMissingError("the run's artifact store (paths.artifacts of its config)", store,
                               "Pass --artifacts STORE. " + MISSING_STORE)
    new_store, new_run, config_dir = out / "artifacts", out / "run", out / "config"
    link_inputs(store, new_store, _outputs(run, store))
    if run.config["name"] == "backtest":
        reset_ledger(backtest_root(store) / LEDGER_FILE, backtest_root(new_store) / LEDGER_FILE,
                     run.summary.get("n_trials"))
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "config.yaml").write_text(yaml.safe_dump(redact(_config_for_rerun(run)), sort_keys=False))
    versions = check_versions(run)

    cmd = rerun_command(run, config_dir.resolve(), new_run.resolve(), new_store.resolve())
    print("finsae.reproduce: " + " ".join(cmd[1:]), file=sys.stderr)
    with SignalForwarder() as forwarder:
        code = forwarder.run(cmd, cwd=PROJECT_ROOT, env={**os.environ, **(env or {})})
    if code != 0:
        print(f"finsae: error: the rerun failed with exit code {code} (its output is above; run folder "
              f"{new_run})", file=sys.stderr)
        return code
    rows = compare(run.summary, rerun_summary(run, new_run, new_store), rtol, atol)
    print_table(rows, rtol, atol, show_all)
    bad = [r.key for r in rows if r.status in ("DIFF", "missing")]
    (out / "reproduce.json").write_text(json.dumps(
        {"source": str(folder), **versions, "rtol": rtol, "atol": atol,
         "metrics": [r.__dict__ for r in rows], "differ": bad}, indent=2, default=str) + "\n")
    if bad:
        print(f"finsae.reproduce: {len(bad)} metric(s) differ beyond the tolerance: {', '.join(bad)}", file=sys.stderr)
        return 1
    print(f"finsae.reproduce: all {sum(r.status == 'ok' for r in rows)} metrics agree; rerun in {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m finsae.reproduce", description=__doc__.split("\n\n")[0])
    p.add_argument("run_folder", help="a stage's run folder (outputs/..., holding .hydra/), an offline W&B run, or "
                                      "an artifact folder (artifacts/sae/minilm/layer_3/demo: its run is found)")
    p.add_argument("--out", default=None, help="new folder for the rerun (default: RUN_FOLDER-repro-<time> beside "
                                               "the run folder)")
    p.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance per metric (default 1e-4)")
    p.add_argument("--atol", type=float, default=1e-6, help="absolute tolerance per metric (default 1e-6)")
    p.add_argument("--artifacts", default=None, help="the store holding the run's inputs (default: its config's)")
    p.add_argument("--all", action="store_true", help="print every metric (default: only those that differ)")
    p.add_argument("--runs", action="append", default=None, type=Path, metavar="DIR",
                   help="where the run of an artifact folder may be (repeatable; default $FINSAE_OUTPUTS, outputs/, "
                        "multirun/)")
    a = p.parse_args(argv)
    try:
        with SignalForwarder():  # a stop before or after the rerun: one line too
            return reproduce(a.run_folder, a.out, a.rtol, a.atol, a.artifacts, show_all=a.all, runs=a.runs)
    except FinsaeError as e:
        print(f"finsae: error: {e}", file=sys.stderr)
        return 2
    except Stopped as e:
        print(stopped_line(e.signum, "the rerun was stopped (its checkpoint, if any, stays in its run folder)"),
              file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
