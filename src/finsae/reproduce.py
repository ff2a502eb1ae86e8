"""Re-run a stage from the config it logged, and compare its summary metrics with the original's.

    python -m finsae.reproduce RUN_FOLDER [--out NEW_FOLDER] [--rtol 1e-4] [--atol 1e-6] [--artifacts STORE]

``RUN_FOLDER`` is a stage's run folder (Hydra's ``outputs/...`` or ``multirun/.../N``, holding
``.hydra/config.yaml``) or an offline W&B run folder (``.../wandb/offline-run-*``: its config, as the run recorded
it, is enough when the run was copied off a cluster alone).

What it does:

1. reads the saved config (the composed config of the Hydra folder, or the resolved config W&B recorded) and the
   provenance (``provenance.json`` or the W&B config's ``provenance``: code version, data fingerprint);
2. warns loudly when the code version (git sha) or the data fingerprint differ from the original's;
3. re-runs the same script (``train.py``, ``analyze.py``, ``label.py``, ``backtest.py``, named by the config's
   ``name``) with that config as its whole config (``--config-path``), so the schema is re-applied and the seed is
   the same, into ``NEW_FOLDER`` (default ``RUN_FOLDER-repro-<time>``): the run folder is ``NEW_FOLDER/run`` and
   the artifact store ``NEW_FOLDER/artifacts`` links the original store's inputs (``--artifacts``, default the
   store the config names) but not the stage's own output, which the rerun makes afresh;
4. prints each summary metric old vs new and exits 1 when a metric differs beyond ``|new - old| <= atol + rtol *
   |old|`` (timings are printed, not compared), 0 when all agree. A missing or corrupt config, or a failed
   rerun, ends in one line on stderr (exit 2, or the rerun's own code).

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
from finsae.errors import ConfigError, DataMissingError, FinsaeError
from finsae.summary import SUMMARY_FILE, StageSummary
from finsae.trading.ledger import LEDGER_FILE
from finsae.paths import (PROJECT_ROOT, analysis_dir, backtest_dir, backtest_root, labels_dir, model_dir,
                          sae_checkpoint_dir, sae_dir)

SCRIPTS = ("train", "analyze", "label", "backtest")
TIMING_WORDS = ("second", "time", "per_second", "wall", "elapsed", "_runtime", "_timestamp")
"""A summary key holding any of these is a timing: printed, never compared."""
SKIPPED_KEYS = ("code_version", "rescored_code_version", "_step", "_wandb")


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


def read_hydra_run(folder: Path, artifacts: Path | None = None) -> SourceRun:
    cfg_path = folder / ".hydra" / "config.yaml"
    config = _check_config(_load_yaml(cfg_path, "saved Hydra config"), cfg_path)
    hydra_yaml = folder / ".hydra" / "hydra.yaml"
    choices = None
    if hydra_yaml.is_file():
        h = yaml.safe_load(hydra_yaml.read_text()) or {}
        choices = ((h.get("hydra") or {}).get("runtime") or {}).get("choices")
    run = SourceRun(folder, config, {}, provenance.read(folder) or {}, _pair_choice(config, choices))
    summary = folder / SUMMARY_FILE
    if not summary.is_file():
        summary = artifact_folder(run, artifacts or source_store(run)) / SUMMARY_FILE
    run.summary = _read_summary(config, summary)
    return run


def read_wandb_run(folder: Path) -> SourceRun:
    from finsae.glue.tracking import read_offline_run, read_offline_summary

    try:
        rec = read_offline_run(folder)
        summary = read_offline_summary(folder).get("summary", {})
    except (subprocess.CalledProcessError, ValueError, OSError) as e:
        raise ConfigError(f"{folder} is not a readable offline W&B run ({type(e).__name__}); copy the whole "
                          "offline-run-* folder") from None
    config = dict(rec["config"])
    prov = config.pop("provenance", {}) or {}
    config = _check_config(config, folder)
    return SourceRun(folder, config, summary, prov, _pair_choice(config, None), kind="wandb")


def read_run(folder: str | Path, artifacts: Path | None = None) -> SourceRun:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataMissingError("run folder", folder, "Pass a stage's run folder (outputs/...) or an offline W&B run.")
    if list(folder.glob("*.wandb")):
        return read_wandb_run(folder)
    return read_hydra_run(folder, artifacts)


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


def _timing(key: str) -> bool:
    return any(w in key.lower() for w in TIMING_WORDS)


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    return None


@dataclass
class MetricRow:
    key: str
    old: Any
    new: Any
    status: str
    """ok, DIFF, timing (printed only), missing."""


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested summary fields as flat keys (``strategies[0].sharpe``, ``stocknet.price.mcc``); a list of plain
    values becomes its JSON text; W&B tables and images (``_type``) are left out."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            if "_type" not in v:
                out.update(flatten(v, key + "."))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for i, x in enumerate(v):
                out.update(flatten(x, f"{key}[{i}]."))
        elif isinstance(v, list):
            out[key] = json.dumps(v, default=str)
        else:
            out[key] = v
    return out


def compare(old: dict[str, Any], new: dict[str, Any], rtol: float, atol: float) -> list[MetricRow]:
    old, new = flatten(old), flatten(new)
    rows = []
    for key in sorted(set(old) | set(new)):
        if key in SKIPPED_KEYS or key.startswith("_") and not _timing(key):
            continue
        a, b = old.get(key), new.get(key)
        if _timing(key):
            rows.append(MetricRow(key, a, b, "timing"))
        elif key not in old or key not in new:
            rows.append(MetricRow(key, a, b, "missing"))
        else:
            x, y = _number(a), _number(b)
            if x is not None and y is not None:
                same = (math.isnan(x) and math.isnan(y)) or (not math.isnan(x) and not math.isnan(y)
                                                               and abs(y - x) <= atol + rtol * abs(x))
            else:
                same = a == b
            rows.append(MetricRow(key, a, b, "ok" if same else "DIFF"))
    return rows


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "-" if v is None else str(v)


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


def reproduce(folder: str | Path, out: str | Path | None = None, rtol: float = 1e-4, atol: float = 1e-6,
              artifacts: str | Path | None = None, env: dict[str, str] | None = None) -> int:
    """Re-run the stage of ``folder``; returns the exit code (0 agree, 1 a metric differs)."""
    run = read_run(folder, Path(artifacts) if artifacts else None)
    folder = Path(folder).resolve()
    out = Path(out) if out else folder.with_name(f"{folder.name}-repro-{time.strftime('%Y%m%d-%H%M%S')}")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} exists and is not empty; reproduce writes into a new folder")
    store = Path(artifacts) if artifacts else source_store(run)
    new_store, new_run, config_dir = out / "artifacts", out / "run", out / "config"
    link_inputs(store, new_store, _outputs(run, store))
    if run.config["name"] == "backtest":
        reset_ledger(backtest_root(store) / LEDGER_FILE, backtest_root(new_store) / LEDGER_FILE,
                     run.summary.get("n_trials"))
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "config.yaml").write_text(yaml.safe_dump(_config_for_rerun(run), sort_keys=False))

    old_code = run.provenance.get("code_version")
    now_code = provenance.code_version()
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

    cmd = rerun_command(run, config_dir.resolve(), new_run.resolve(), new_store.resolve())
    print("finsae.reproduce: " + " ".join(cmd[1:]), file=sys.stderr)
    r = subprocess.run(cmd, cwd=PROJECT_ROOT, env={**os.environ, **(env or {})}, check=False)
    if r.returncode != 0:
        print(f"finsae: error: the rerun failed with exit code {r.returncode} (its output is above; run folder "
              f"{new_run})", file=sys.stderr)
        return r.returncode
    if run.kind == "wandb":
        from finsae.glue.tracking import read_offline_summary

        wandb_runs = sorted((new_run / "wandb").glob("offline-run-*"))
        if not wandb_runs:
            raise ConfigError(f"the rerun in {new_run} made no offline W&B run to compare with (logger changed?)")
        new = read_offline_summary(wandb_runs[-1]).get("summary", {})
    else:
        summary = new_run / SUMMARY_FILE
        new = _read_summary(run.config, summary if summary.is_file() else artifact_folder(run, new_store) / SUMMARY_FILE)
    rows = compare(run.summary, new, rtol, atol)
    width = max([len(r.key) for r in rows] + [6])
    print(f"{'metric':<{width}}  {'old':>14}  {'new':>14}  status   (tolerance |new-old| <= {atol:g} + {rtol:g}*|old|)")
    for row in rows:
        print(f"{row.key:<{width}}  {_fmt(row.old):>14}  {_fmt(row.new):>14}  {row.status}")
    bad = [r.key for r in rows if r.status in ("DIFF", "missing")]
    (out / "reproduce.json").write_text(json.dumps(
        {"source": str(folder), "code_version_old": old_code, "code_version_new": now_code,
         "data_fingerprint_old": old_data, "data_fingerprint_new": now_data, "rtol": rtol, "atol": atol,
         "metrics": [r.__dict__ for r in rows], "differ": bad}, indent=2, default=str) + "\n")
    if bad:
        print(f"finsae.reproduce: {len(bad)} metric(s) differ beyond the tolerance: {', '.join(bad)}", file=sys.stderr)
        return 1
    print(f"finsae.reproduce: all {sum(r.status == 'ok' for r in rows)} metrics agree; rerun in {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m finsae.reproduce", description=__doc__.split("\n\n")[0])
    p.add_argument("run_folder", help="a stage's run folder (outputs/..., holding .hydra/) or an offline W&B run")
    p.add_argument("--out", default=None, help="new folder for the rerun (default: RUN_FOLDER-repro-<time>)")
    p.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance per metric (default 1e-4)")
    p.add_argument("--atol", type=float, default=1e-6, help="absolute tolerance per metric (default 1e-6)")
    p.add_argument("--artifacts", default=None, help="the store holding the run's inputs (default: its config's)")
    a = p.parse_args(argv)
    try:
        return reproduce(a.run_folder, a.out, a.rtol, a.atol, a.artifacts)
    except FinsaeError as e:
        print(f"finsae: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
