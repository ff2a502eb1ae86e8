"""One experiment-tracking helper for every stage: W&B (offline by default), CSV, or nothing.

Stages open their run with ``with stage_run(stage, cfg, run_dir, logger_cfg) as tracker:`` (rank zero only,
always finished, failed on error); underneath, ``start_run(stage, cfg, run_dir)`` returns a ``Tracker`` with ``log`` (scalars), ``log_table``
(DataFrames -> ``wandb.Table``), ``log_figure`` (matplotlib figures -> PNG; never float arrays,
which W&B renders black), ``log_artifact`` and ``finish(summary)``. Offline runs live under the run
dir (``<run_dir>/wandb/offline-run-*``) and can be read back with
``wandb leet inspect --summary --json <that dir>`` or ``read_offline_summary``.

Comparing runs: every run of one study carries one W&B ``group`` (the study id: ``logger.group`` when set, else
``study-<base>-vs-<domain>`` from the ``pair`` config every entry point records), ``job_type`` = the stage, and
the stage's run name (model and layer: ``sae-minilm-L3-demo``), so the dashboard groups a study and compares
layers side by side. Reproducing: the W&B config carries the whole resolved config plus ``provenance`` (code
version, data fingerprint; ``finsae.provenance``), also written to ``<run_dir>/provenance.json``, so a run folder
copied off the cluster alone is enough for ``python -m finsae.reproduce``.

Secrets: API keys are read by W&B from the environment; the run config and artifact metadata pass through
``finsae.redaction.redact`` (the one redaction of everything a command writes). Online mode is checked before
``wandb.init``: a key W&B's own format check rejects, or a host that does not answer within W&B's HTTP timeout
(``WANDB_HTTP_TIMEOUT``), is one line, not a traceback minutes later.

Self-contained runs: everything W&B writes (the run, artifact staging, its cache and config) stays inside the run
folder (:func:`keep_wandb_inside`), and every stage summary made inside :func:`stage_run` names the run folder and
the W&B run id (:func:`finsae.summary.run_origin`).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd

from finsae.redaction import REDACTED, SECRET_KEY, is_secret_name, redact  # noqa: F401 - the one redaction
from finsae.summary import run_origin

class Tracker:
    """A run of one stage. ``kind``: wandb, csv or none."""

    def __init__(self, kind: str, run_dir: Path, run=None):
        self.kind = kind
        self.run_dir = Path(run_dir)
        self.run = run
        self._csv_rows: list[dict] = []
        self.finished = False

    @property
    def wandb_dir(self) -> Path | None:
        """The offline run folder (holds the .wandb log), when W&B is on."""
        if self.run is None:
            return None
        return Path(self.run.dir).parent

    def lightning_logger(self):
        """The Lightning logger writing into this same run (False when tracking is off)."""
        from lightning.pytorch.loggers import CSVLogger, WandbLogger

        if self.run is not None:
            return WandbLogger(experiment=self.run)
        if self.kind == "csv":
            return CSVLogger(str(self.run_dir), name="lightning")
        return False

    def log(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self.run is not None:
            self.run.log(dict(metrics), step=step)
        elif self.kind == "csv":
            self._csv_rows.append({"step": step, **metrics})

    def log_table(self, name: str, df: pd.DataFrame) -> None:
        (self.run_dir / "tables").mkdir(parents=True, exist_ok=True)
        df.to_csv(self.run_dir / "tables" / f"{name}.csv", index=False)
        if self.run is not None:
            import wandb

            self.run.log({name: wandb.Table(dataframe=df.reset_index(drop=True))})

    def log_figure(self, name: str, fig) -> Path:
        """Save a matplotlib figure as PNG in the run dir and log it as an image."""
        (self.run_dir / "plots").mkdir(parents=True, exist_ok=True)
        path = self.run_dir / "plots" / f"{name}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        if self.run is not None:
            import wandb

            self.run.log({name: wandb.Image(str(path))})
        import matplotlib.pyplot as plt

        plt.close(fig)
        return path

    def log_artifact(self, path: Path, name: str, type_: str, metadata: dict | None = None) -> None:
        if self.run is None:
            return
        import wandb

        art = wandb.Artifact(re.sub(r"[^A-Za-z0-9_.-]", "-", name), type=type_, metadata=redact(metadata or {}))
        p = Path(path)
        if p.is_dir():
            art.add_dir(str(p))
        else:
            art.add_file(str(p))
        self.run.log_artifact(art)

    def finish(self, summary: dict[str, Any] | None = None, exit_code: int = 0) -> None:
        """Close the run (once): ``exit_code`` != 0 marks a W&B run failed."""
        if self.finished:
            return
        self.finished = True
        summary = summary or {}
        if self.run is not None:
            for k, v in summary.items():
                self.run.summary[k] = v
            self.run.finish(exit_code=exit_code)
            self.run = None
        if self.kind == "csv" and self._csv_rows:
            keys = sorted({k for r in self._csv_rows for k in r}, key=lambda k: (k != "step", k))
            with open(self.run_dir / "metrics.csv", "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=keys)
                w.writeheader()
                w.writerows(self._csv_rows)


def study_id(config: dict, group: str | None = None) -> str:
    """The W&B group of every run of one study: ``group`` (``logger.group``) when set, else named by the models
    trained: the pair's, or, for an SAE of a model outside the pair (``model=`` overridden), that model's."""
    if group:
        return str(group)
    if not isinstance(config, dict):
        return "study"
    pair = config.get("pair")
    members = (pair.get("base"), pair.get("domain")) if isinstance(pair, dict) else (None, None)
    model = config.get("model")
    trained = model.get("name") if isinstance(model, dict) else None
    if config.get("name") == "train" and config.get("task", "sae") == "sae" and trained and trained not in members:
        return f"study-{trained}"
    if all(members):
        return f"study-{members[0]}-vs-{members[1]}"
    return "study"


STAY_OFFLINE = "or stay offline with logger=wandb_offline (the default) and `wandb sync` the run later"
DEFAULT_WANDB_HOST = "https://api.wandb.ai"


def check_online() -> None:
    """Refuse an online W&B run in one line, before ``wandb.init`` (which retries for minutes): no
    ``WANDB_API_KEY``, a key W&B's own format check rejects, or a host (``WANDB_BASE_URL``) that does not answer
    an HTTP request within W&B's HTTP timeout (``WANDB_HTTP_TIMEOUT``, 10 s). Any HTTP answer counts as up."""
    import urllib.error
    import urllib.request

    from wandb import env
    from wandb.sdk.lib.wbauth.validation import check_api_key

    from finsae.errors import ConfigError

    key = os.environ.get("WANDB_API_KEY")
    if not key:
        raise ConfigError(f"logger=wandb logs online and needs WANDB_API_KEY in the environment; set it, {STAY_OFFLINE}")
    problem = check_api_key(key)
    if problem:
        raise ConfigError(f"WANDB_API_KEY is not a W&B API key ({problem.rstrip('.')}); set the key from "
                          f"https://wandb.ai/authorize, {STAY_OFFLINE}")
    host = os.environ.get("WANDB_BASE_URL") or DEFAULT_WANDB_HOST
    timeout = env.get_http_timeout(10)
    try:
        urllib.request.urlopen(urllib.request.Request(host, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        pass  # the host answered (W&B's API root is no page)
    except (OSError, ValueError) as e:  # URLError, a timeout, a refused connection; ValueError: not a URL
        reason = getattr(e, "reason", None) or e
        raise ConfigError(f"logger=wandb logs online but the W&B host {host} did not answer within {timeout:g} s "
                          f"({reason}); check WANDB_BASE_URL and the network, {STAY_OFFLINE}") from None


def start_run(stage: str, config: dict, run_dir: Path, kind: str = "wandb", mode: str = "offline",
              project: str = "finsae", entity: str | None = None, group: str | None = None,
              tags: list[str] | None = None, name: str | None = None) -> Tracker:
    """Create the run for ``stage``. Offline W&B writes under ``run_dir``; online needs WANDB_API_KEY.

    Writes ``<run_dir>/provenance.json`` (code version, data fingerprint) whatever the logger, and adds it to
    the W&B config as ``provenance``."""
    from finsae import provenance

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = config.get("paths") if isinstance(config, dict) else None
    prov = provenance.record(paths.get("data_dir") if isinstance(paths, dict) else None)
    provenance.write(run_dir, {**prov, "stage": stage})
    if kind != "wandb" or mode == "disabled":
        return Tracker(kind if kind != "wandb" else "none", run_dir)
    if mode == "online":
        check_online()
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    keep_wandb_inside(run_dir)
    try:
        run = wandb.init(
            project=project, entity=entity, group=group, job_type=stage, tags=list(tags or []) + [stage], name=name,
            config={**redact(config), "provenance": prov}, dir=str(run_dir), mode=mode, reinit="finish_previous",
            settings=wandb.Settings(console="off", x_disable_stats=True),
        )
    except wandb.errors.Error as e:  # a key the server refuses, a host lost after the check: W&B's own words
        from finsae.errors import ConfigError

        detail = " ".join(str(e).split())[:200]
        raise ConfigError(f"W&B could not start the {mode} run ({type(e).__name__}: {detail}); {STAY_OFFLINE}") from None
    return Tracker("wandb", run_dir, run)


WANDB_STAGING = "wandb-data"
"""Folder under the run folder for what W&B writes beside the run itself (artifact staging, its cache and
logs): inside the run folder, so a run copied off a cluster syncs alone."""
WANDB_DIR_VARS = {"WANDB_DATA_DIR": "data", "WANDB_CACHE_DIR": "cache", "WANDB_ARTIFACT_DIR": "artifacts"}
"""Not ``WANDB_CONFIG_DIR``: W&B only reads the user's settings there (an offline run writes nothing to it)."""


def keep_wandb_inside(run_dir: Path) -> Path:
    """Point every folder W&B writes outside its run (``~/.local/share/wandb`` artifact staging, ``~/.cache/wandb``
    cache and logs, downloads) into ``<run_dir>/wandb-data`` before ``wandb.init`` (which reads them at start).
    Set per run, replacing a previous run's (one process runs every job of a sweep)."""
    root = Path(run_dir).resolve() / WANDB_STAGING
    for var, sub in WANDB_DIR_VARS.items():
        (root / sub).mkdir(parents=True, exist_ok=True)
        os.environ[var] = str(root / sub)
    return root


def is_rank_zero() -> bool:
    """True in the process that owns post-fit work and tracking (rank from the launcher's environment)."""
    from lightning.pytorch.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


@contextlib.contextmanager
def stage_run(stage: str, config: dict, run_dir: Path, logger, **kwargs):
    """The one way a stage opens its run: on rank zero only (other ranks get a silent tracker), and always
    finished, marked failed (exit code 1) when the stage raises. ``logger`` is the ``logger:`` config.

    The group is always the study's (:func:`study_id`): a stage's own ``group=`` default is replaced, so that
    every stage of one study lands in one W&B group."""
    kwargs.pop("group", None)
    if is_rank_zero():
        tracker = start_run(stage, config, run_dir, kind=logger.kind, mode=logger.mode, project=logger.project,
                            entity=logger.entity, group=study_id(config, getattr(logger, "group", None)), **kwargs)
    else:
        tracker = Tracker("none", run_dir)
    try:
        with run_origin(run_dir, tracker.run.id if tracker.run is not None else ""):
            yield tracker
    except BaseException:
        tracker.finish(exit_code=1)
        raise
    finally:
        tracker.finish()


def read_offline_summary(run_path: Path) -> dict:
    """Read an offline run back through W&B's own reader (``wandb leet inspect --summary --json``)."""
    exe = shutil.which("wandb") or str(Path(os.sys.executable).parent / "wandb")
    out = subprocess.run([exe, "leet", "inspect", "--summary", "--json", str(run_path)],
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def read_offline_run(run_path: Path) -> dict:
    """The run record of an offline run, through W&B's own reader (``wandb leet inspect --json``): ``group``,
    ``job_type``, ``name``, ``tags`` and ``config`` as ``wandb.init`` recorded them."""
    exe = shutil.which("wandb") or str(Path(os.sys.executable).parent / "wandb")
    out = subprocess.run([exe, "leet", "inspect", "--json", str(run_path)],
                         capture_output=True, text=True, timeout=120, check=True)
    for line in out.stdout.splitlines():
        rec = json.loads(line) if line.startswith("{") else {}
        if rec.get("type") == "run":
            run = rec["run"]
            config = (run.get("config") or {}).get("update") or {}
            config.pop("_wandb", None)
            return {"group": run.get("run_group"), "job_type": run.get("job_type"), "name": run.get("display_name"),
                    "tags": run.get("tags", []), "project": run.get("project"), "config": config}
    raise ValueError(f"no run record in the offline W&B run {run_path}")
