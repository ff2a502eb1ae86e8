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
import sys
import time
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
from finsae.source_run import (MISSING_STORE, SourceRun, pair_folder_name, read_run_summary, artifact_folder,
                               read_source, source_store)
from finsae.summary import SUMMARY_FILE
from finsae.trading.ledger import LEDGER_FILE
from finsae.paths import (PROJECT_ROOT, backtest_root, sae_checkpoint_dir)

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
        cmd.append(f"pair_name={pair_folder_name(run)}")
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
    return read_run_summary(run.config, summary if summary.is_file() else artifact_folder(run, new_store) / SUMMARY_FILE)


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
