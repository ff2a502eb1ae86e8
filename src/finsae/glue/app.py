"""What every Hydra entry point does around its stage: validate, run, and fail in one line."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path
from collections.abc import Callable
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from finsae.errors import FinsaeError
from finsae.glue.console import quiet_console
from finsae.glue.schemas import refuse_secret_overrides, validate

log = logging.getLogger("finsae")


def fail(e: FinsaeError) -> None:
    """The one way a user error ends a command: one line on stderr, exit code 2."""
    print(f"finsae: error: {e}", file=sys.stderr)
    sys.exit(2)


def cli(main: Callable[[], Any]) -> None:
    """Run a Hydra ``main`` after refusing secrets on the command line (before Hydra saves the overrides)."""
    try:
        refuse_secret_overrides(sys.argv[1:])
    except FinsaeError as e:
        fail(e)
    main()


def run_stage(cfg: DictConfig, stage: str | Callable[[Any, DictConfig], dict]) -> float | None:
    """Validate ``cfg`` into typed schemas, run ``stage(typed, raw)``, return its ``objective`` for sweepers.

    ``stage`` may be a module path whose ``run`` is imported only after validation passed, so a bad value
    fails before heavy imports.

    A ``FinsaeError`` (bad value, missing file, offline hub, corrupt cache) prints one line and exits 2; a run
    stopped by SIGTERM/SIGINT (checkpoint saved) exits 143/130; any other failure raises (exit 1).
    """
    os.environ.setdefault("WANDB_MODE", "offline")
    sweep_job = _sweep_job()
    try:
        typed = validate(cfg)
        if isinstance(stage, str):
            stage = importlib.import_module(stage).run
        quiet_console()  # after the stage's imports: Lightning installs its own log handler when imported
        summary = stage(typed, cfg)
    except FinsaeError as e:
        if sweep_job is None:
            fail(e)
        return _record_failed_job(sweep_job, 2, str(e))
    except Exception as e:
        from finsae.glue.interrupt import Interrupted

        if isinstance(e, Interrupted):
            print(f"finsae: {e}", file=sys.stderr)
            sys.exit(e.exit_code)  # a stopped sweep stops: the scheduler wants the whole job down
        if sweep_job is None:
            raise
        log.exception("job %s failed", sweep_job[1])
        return _record_failed_job(sweep_job, 1, f"{type(e).__name__}: {e}")
    obj = summary.get("objective") if isinstance(summary, dict) else getattr(summary, "objective", None)
    return float(obj) if obj is not None else None


FAILED_JOBS = "failed_jobs.tsv"


def _sweep_job() -> tuple[str, str] | None:
    """(sweep dir, "num: overrides") inside a Hydra multirun job, else None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    h = HydraConfig.get()
    return h.sweep.dir, f"{h.job.num}: {' '.join(h.overrides.task)}"


def _record_failed_job(job: tuple[str, str], code: int, message: str) -> None:
    """In a sweep a failing job does not end the sweep: it is recorded, and ``SweepReport`` fails the sweep at
    the end. A file, not memory, so launchers that run jobs in other processes report too."""
    sweep_dir, name = job
    print(f"finsae: error: job {name}: {message}", file=sys.stderr)
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(sweep_dir) / FAILED_JOBS, "a") as fh:
        fh.write(f"{code}\t{name}\t{message}\n")
    return None


class SweepReport(Callback):
    """Hydra callback (conf/hydra/default.yaml): at the end of a multirun, list the failed jobs and exit
    non-zero (2 when every failure was a bad config or input, else 1)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        path = Path(config.hydra.sweep.dir) / FAILED_JOBS
        if not path.is_file():
            return
        rows = [line.split("\t", 2) for line in path.read_text().splitlines() if line]
        print(f"finsae: error: {len(rows)} job(s) of the sweep failed (see {path}):", file=sys.stderr)
        for _, name, _ in rows:
            print(f"  job {name}", file=sys.stderr)
        sys.exit(2 if all(code == "2" for code, *_ in rows) else 1)


def resolved_config(cfg: DictConfig) -> dict:
    """The fully resolved config as a plain dict (what W&B and summary.json record)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
