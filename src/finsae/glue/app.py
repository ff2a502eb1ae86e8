"""What every Hydra entry point does around its stage: validate, run, and fail in one line."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import sys
from pathlib import Path
from collections.abc import Callable
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from finsae.errors import ConfigError, FinsaeError
from finsae.glue.console import quiet_console
from finsae.glue.schemas import override_key, refuse_overrides_not_read, refuse_secret_overrides, validate

log = logging.getLogger("finsae")


def fail(e: FinsaeError) -> None:
    """The one way a user error ends a command: one line on stderr, exit code 2."""
    print(f"finsae: error: {e}", file=sys.stderr)
    sys.exit(2)


class Stopped(BaseException):
    """SIGTERM or SIGINT while a stage runs outside its own checkpointing handler (the SAE stage's
    ``StopOnSignal`` takes over during training). A ``BaseException`` like ``KeyboardInterrupt``, so no
    ``except Exception`` swallows it: every ``finally`` runs on the way out — worker pools killed
    (``finsae.workers.one_thread_pool``), locks released, staging folders removed, the tracking run marked
    failed — and the entry point exits ``128 + signal`` in one line."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


@contextlib.contextmanager
def stop_on_signals():
    """Turn SIGTERM/SIGINT into :class:`Stopped` (once: a second signal while unwinding is ignored, so the
    workers are still killed). Under SLURM, SIGTERM stays Lightning's (its requeue handling)."""
    stopping = []

    def handle(signum, frame):
        if not stopping:
            stopping.append(signum)
            raise Stopped(signum)

    signals = [signal.SIGINT] + ([] if "SLURM_JOB_ID" in os.environ else [signal.SIGTERM])
    previous = {}
    for sig in signals:
        try:
            previous[sig] = signal.signal(sig, handle)
        except ValueError:  # not the main thread: leave signals to it
            break
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stopped(signum: int) -> None:
    """The one way a signal ends a command: one line on stderr, exit code ``128 + signal`` (README's table)."""
    print(f"finsae: stopped by {signal.Signals(signum).name}: the stage in flight published nothing half-done; "
          f"run the command again to redo it", file=sys.stderr)
    sys.exit(128 + signum)


def cli(main: Callable[[], Any]) -> None:
    """Run a Hydra ``main`` after refusing secrets on the command line (before Hydra saves the overrides)."""
    try:
        refuse_secret_overrides(sys.argv[1:])
        main()
    except FinsaeError as e:
        fail(e)
    except KeyboardInterrupt:  # Ctrl-C while Hydra composes, before run_stage: one line, not a traceback
        stopped(signal.SIGINT)


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
        with stop_on_signals():
            typed = validate(cfg)
            refuse_overrides_not_read(typed, _task_overrides())
            check_tracking(typed)
            if isinstance(stage, str):
                stage = importlib.import_module(stage).run
            quiet_console()  # after the stage's imports: Lightning installs its own log handler when imported
            summary = stage(typed, cfg)
    except Stopped as e:
        stopped(e.signum)  # a stopped sweep stops too: the scheduler wants the whole job down
    except KeyboardInterrupt:  # Ctrl-C before the handler was in place (or in a thread)
        stopped(signal.SIGINT)
    except FinsaeError as e:
        if sweep_job is None:
            fail(e)
        return _record_failed_job(sweep_job, 2, str(e))
    except OSError as e:
        from finsae.atomic import disk_error_message

        message = disk_error_message(e)  # a full or read-only disk mid-run: the machine's state, one line
        if message is None:
            if sweep_job is None:
                raise
            log.exception("job %s failed", sweep_job[1])
            return _record_failed_job(sweep_job, 1, f"{type(e).__name__}: {e}")
        if sweep_job is None:
            fail(FinsaeError(message))
        return _record_failed_job(sweep_job, 2, message)
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


def check_tracking(typed: Any) -> None:
    """Online W&B checked before any work (key, host: ``finsae.glue.tracking.check_online``), not when the stage
    opens its run after its heavy part."""
    logger = getattr(typed, "logger", None)
    if logger is not None and logger.kind == "wandb" and logger.mode == "online":
        from finsae.glue.tracking import check_online

        check_online()


def _task_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def precheck(typed: Any) -> None:
    """The checks a stage makes before any work (its module's ``precheck``: shapes from the model's
    config.json, hardware, writable artifacts folder, nothing finished clobbered); none for a config without
    a ``stage_module``."""
    module = getattr(typed, "stage_module", None)
    if module is not None:
        check = getattr(importlib.import_module(module()), "precheck", None)
        if check is not None:
            check(typed)


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


def check_folder_path(path: str | Path, key: str) -> None:
    """Refuse a folder Hydra is about to make (``hydra.run.dir``, ``hydra.sweep.dir``) when a file stands where
    it or one of its parents belongs, or its nearest existing parent cannot take new entries."""
    path = Path(path)
    for p in (path, *path.parents):
        if not p.exists():
            continue
        if not p.is_dir():
            where = "is a file" if p == path else f"cannot be made: {p} is a file"
            raise ConfigError(f"{key}={path} {where}, not a folder; point {key} at a folder")
        if not os.access(p, os.W_OK | os.X_OK):
            raise ConfigError(f"{key}={path} cannot be made: {p} is not writable; point {key} at a writable folder")
        return


def sweep_jobs(config: DictConfig) -> list[list[str]] | None:
    """Each job's overrides as Hydra's basic sweeper will launch them (comma lists, ``range()``, ``choice()``,
    ``glob()`` over config groups, plus ``hydra.sweeper.params``); None under another sweeper (optuna, ...),
    whose jobs are known only as it runs."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not str(OmegaConf.select(config, "hydra.sweeper._target_") or "").endswith(".BasicSweeper"):
        return None
    params = [f"{k}={v}" for k, v in (OmegaConf.select(config, "hydra.sweeper.params") or {}).items()]
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    overrides = parser.parse_overrides(params + list(config.hydra.overrides.task))
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def _job_problem(config: DictConfig, num: int, overrides: list[str], local: bool) -> str | None:
    """What makes job ``num`` of a sweep fail before any work (composition, ``validate``, and where the jobs
    run on this machine the stage's ``precheck``), composed as the launcher will compose it; None when fine."""
    import copy

    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException
    from omegaconf import open_dict, read_write
    from omegaconf.errors import OmegaConfBaseException

    try:
        job = GlobalHydra.instance().config_loader().load_sweep_config(config, list(overrides))
        with read_write(job.hydra), open_dict(job.hydra):
            job.hydra.job.num = num
            job.hydra.job.id = f"precheck_{num}"
            job.hydra.runtime.output_dir = os.path.abspath(os.path.join(config.hydra.sweep.dir,
                                                                        str(job.hydra.sweep.subdir)))
        HydraConfig.instance().set_config(job)
        task_cfg = copy.deepcopy(job)
        with read_write(task_cfg), open_dict(task_cfg):
            del task_cfg["hydra"]
        typed = validate(task_cfg)
        refuse_overrides_not_read(typed, list(overrides))
        if local:
            precheck(typed)
    except FinsaeError as e:
        return str(e)
    except (HydraException, OmegaConfBaseException) as e:  # a group option that does not exist, ...
        return " ".join(str(e).split("Config search path")[0].split())
    return None


def check_sweep(config: DictConfig) -> None:
    """Refuse a multirun, before its first job starts, when any job's config is bad (one line naming each bad
    job by its swept overrides). Failures that only running shows are still recorded job by job.

    Under a launcher that runs the jobs here (Hydra's basic one, joblib) each job's stage ``precheck`` runs
    too; under one that sends them to other machines (submitit, ...) composition and ``validate`` only, as
    hardware, files and the hub are those machines' to check. Other sweepers (optuna, ...) choose their jobs
    as they run: no pre-pass (``sweep_jobs``)."""
    from hydra.core.hydra_config import HydraConfig

    jobs = sweep_jobs(config)
    if not jobs:
        return
    launcher = str(OmegaConf.select(config, "hydra.launcher._target_") or "").rsplit(".", 1)[-1]
    local = launcher in ("BasicLauncher", "JoblibLauncher")  # both run every job on this machine
    swept = {override_key(o) for o in {o for job in jobs for o in job} if sum(o in job for job in jobs) < len(jobs)}
    master = HydraConfig.instance().cfg
    bad = []
    try:
        for num, overrides in enumerate(jobs):
            problem = _job_problem(config, num, overrides, local)
            if problem is not None:
                named = " ".join(o for o in overrides if override_key(o) in swept) or " ".join(overrides)
                bad.append(f"job {num} ({named}): {problem}")
    finally:
        HydraConfig.instance().cfg = master
    if bad:
        raise ConfigError(f"no job of the sweep was started: {len(bad)} of {len(jobs)} job(s) would fail: "
                          + "; ".join(bad))


def _check_run_name(config: DictConfig) -> None:
    """``name`` names the run folder (conf/hydra/default.yaml): a plain name, checked before Hydra makes it."""
    from finsae.paths import plain_name

    if "name" in config:
        plain_name(config.get("name"), "name")


class CheckBeforeWork(Callback):
    """Hydra callback (conf/hydra/default.yaml): before Hydra makes a folder, refuse a run or sweep folder that
    cannot be one; before a multirun's first job, refuse the sweep when any job's config is bad."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from omegaconf.errors import OmegaConfBaseException

        try:
            _check_run_name(config)
            check_folder_path(config.hydra.run.dir, "hydra.run.dir")
        except FinsaeError as e:
            fail(e)
        except OmegaConfBaseException:  # a run dir that resolves only inside the job: Hydra reports it
            pass

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Hydra has just saved the job's configs (``.hydra/*.yaml``; a sweep's ``multirun.yaml``): mask any
        secret a config file or an override put there (``finsae.redaction``), whatever the job does next."""
        from hydra.types import RunMode

        from finsae.redaction import redact_yaml_file

        saved = []
        if config.hydra.output_subdir is not None:
            saved += sorted((Path(config.hydra.runtime.output_dir) / str(config.hydra.output_subdir)).glob("*.yaml"))
        if config.hydra.mode == RunMode.MULTIRUN:
            saved.append(Path(config.hydra.sweep.dir) / "multirun.yaml")
        for path in saved:
            if path.is_file():
                redact_yaml_file(path)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            _check_run_name(config)
            check_folder_path(config.hydra.sweep.dir, "hydra.sweep.dir")
            check_sweep(config)
        except FinsaeError as e:
            fail(e)


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
    """The fully resolved config as a plain dict, secrets masked (``finsae.redaction``): what W&B and the stages'
    records hold."""
    from finsae.redaction import redact

    return redact(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False))
