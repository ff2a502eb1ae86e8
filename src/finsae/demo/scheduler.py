"""Run a graph of jobs on a few cores: each job a one-thread process (or a Python callable), started as soon as
its dependencies finished and a core is free, skipped when its ``done`` check says its output already exists.

Two one-thread jobs beat one two-thread job on a small machine, so the unit of parallelism is a *slot* (one
core); a job that spreads over cores itself (a stage with its own worker processes) asks for more slots. A
failed job stops only what depends on it; the rest runs on, and the run ends non-zero. Each job's output goes
to its own log file; the console gets one progress line per stage event (and a heartbeat while jobs run
quietly), with the stage's count and an ETA from the jobs of that stage that already ran, never below what a
running job's own progress bar says is left of its phase. With ``devices`` (GPU ids), a slot is one GPU: a
process job gets the ids of the slots it holds in ``CUDA_VISIBLE_DEVICES``, so side-by-side jobs never share
one.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from finsae.demo.job_tree import parent_death_signal, stop_job
from finsae.errors import ConfigError
from finsae.timing import fmt_seconds

# what a job of n slots is told about its threads (torch reads OMP_NUM_THREADS for its intra-op pool)
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

RAN, CACHED, FAILED, BLOCKED = "ran", "cached", "failed", "blocked"


@dataclass(frozen=True)
class Job:
    """One unit of work of a stage."""

    name: str
    """Unique name, also the log file's name (``log_dir/<name>.log``)."""
    stage: str
    """The stage it counts towards in the progress lines and in ``timing.json``."""
    command: Sequence[str] | Callable[[], object]
    """An argv list run as a process, or a callable run in a thread of this process (tests, light work)."""
    deps: tuple[str, ...] = ()
    """Names of the jobs that must have finished (run or found done) before this one starts."""
    done: Callable[[], bool] | None = None
    """True when the job's output already exists: the job is then not run at all."""
    slots: int = 1
    """Cores the job occupies (its processes' thread count is set to this)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment of the process, over the thread variables."""


class JobResult(NamedTuple):
    name: str
    """The job's name."""
    stage: str
    """Its stage."""
    status: str
    """``ran``, ``cached`` (its done check held: nothing run), ``failed``, or ``blocked`` (a dependency failed)."""
    seconds: float
    """Wall seconds it ran (0 unless it ran or failed)."""
    returncode: int | None
    """The process's exit code (1 for a callable that raised); None when it was not run."""
    log: Path | None
    """Its log file, when it was run."""
    start: float = 0.0
    """Seconds after the run's start when it started."""


@dataclass
class RunReport:
    """What :func:`run_jobs` did."""

    results: dict[str, JobResult]
    """Per job, in the order given."""
    stages: list[str]
    """Stage names in order of first appearance."""
    total_s: float
    """Wall seconds of the whole run."""
    interrupted: bool = False
    """Stopped by SIGINT/SIGTERM: running jobs were asked to stop, nothing new started."""
    signum: int | None = None
    """The signal that stopped the run (None when it was not stopped)."""

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(r.status in (RAN, CACHED) for r in self.results.values())

    def failed(self) -> list[JobResult]:
        return [r for r in self.results.values() if r.status == FAILED]

    def blocked(self) -> list[JobResult]:
        return [r for r in self.results.values() if r.status == BLOCKED]

    def stage_timing(self) -> dict[str, dict]:
        """Per stage: wall seconds from its first start to its last end, summed job seconds, jobs run/cached."""
        out = {}
        for s in self.stages:
            rs = [r for r in self.results.values() if r.stage == s]
            ran = [r for r in rs if r.status in (RAN, FAILED)]
            wall = max((r.start + r.seconds for r in ran), default=0.0) - min((r.start for r in ran), default=0.0)
            out[s] = {"wall_s": round(wall, 1), "job_s": round(sum(r.seconds for r in ran), 1),
                      "jobs_run": sum(r.status == RAN for r in rs), "jobs_cached": sum(r.status == CACHED for r in rs),
                      "jobs_failed": sum(r.status == FAILED for r in rs),
                      "jobs_blocked": sum(r.status == BLOCKED for r in rs),
                      "jobs": {r.name: {"status": r.status, "seconds": round(r.seconds, 1)} for r in rs}}
        return out


def check_graph(jobs: Sequence[Job], slots: int) -> None:
    """Refuse duplicate names, unknown dependencies, cycles and jobs wider than the machine."""
    names = [j.name for j in jobs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"job names must be unique; repeated: {dup}")
    by = {j.name: j for j in jobs}
    for j in jobs:
        missing = [d for d in j.deps if d not in by]
        if missing:
            raise ConfigError(f"job {j.name!r} depends on unknown job(s) {missing}")
        if not 1 <= j.slots <= slots:
            raise ConfigError(f"job {j.name!r} asks for {j.slots} slots; 1 to {slots} are available")
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            raise ConfigError(f"dependency cycle: {' -> '.join(path + [n])}")
        state[n] = 1
        for d in by[n].deps:
            visit(d, path + [n])
        state[n] = 2

    for n in names:
        visit(n, [])


def with_dependencies(jobs: Sequence[Job], stages: Sequence[str]) -> list[Job]:
    """The jobs of ``stages`` and every job they depend on, in the given order."""
    by = {j.name: j for j in jobs}
    keep: set[str] = set()
    todo = [j.name for j in jobs if j.stage in stages]
    while todo:
        n = todo.pop()
        if n not in keep:
            keep.add(n)
            todo.extend(by[n].deps)
    return [j for j in jobs if j.name in keep]


def _log_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name) + ".log"


class _Running:
    def __init__(self, job: Job, start: float, log: Path, proc=None, thread=None):
        self.job, self.start, self.log, self.proc, self.thread = job, start, log, proc, thread
        self.returncode: int | None = None  # set by the thread of a callable
        self.devices: list[str] = []  # the GPU ids it holds (with run_jobs(devices=...))


def _start(job: Job, log: Path, t: float, cwd: Path | None, devices: Sequence[str] = ()) -> _Running:
    log.parent.mkdir(parents=True, exist_ok=True)
    if callable(job.command):
        run = _Running(job, t, log)

        def target():
            try:
                job.command()
                run.returncode = 0
            except BaseException:  # noqa: BLE001 - the job fails, the scheduler goes on
                log.write_text(traceback.format_exc())
                run.returncode = 1

        run.thread = threading.Thread(target=target, name=job.name, daemon=True)
        run.thread.start()
        return run
    env = {**os.environ, **{v: str(job.slots) for v in THREAD_VARS}, **job.env}
    if devices:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
    with open(log, "w") as fh:
        fh.write("$ " + shlex.join(map(str, job.command)).replace("\n", "\\n") + "\n")  # one line
        fh.flush()
        # its own session and group (a Ctrl-C at the terminal reaches the demo only, which stops the jobs),
        # and a SIGTERM when the demo dies, even by SIGKILL
        proc = subprocess.Popen(list(map(str, job.command)), stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=True,
                                preexec_fn=parent_death_signal())
    return _Running(job, t, log, proc=proc)


_TQDM = re.compile(r"^(?P<desc>.*?):?\s*\d+%\|[^|]*\|\s*(?P<count>\S+/\S+)\s*\[(?P<elapsed>[^<\]]+)(?:<(?P<left>[^,\]]+))?")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _last_line(log: Path | None) -> str:
    """The last line (``\\r`` or ``\\n`` ended) of a job's log; '' when empty, unreadable or only the command."""
    if log is None:
        return ""
    try:
        with open(log, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            tail = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in re.split(r"[\r\n]", _ANSI.sub("", tail)) if ln.strip()]
    return "" if not lines or lines[-1].startswith("$ ") else lines[-1]


def remaining_seconds(log: Path | None) -> float | None:
    """What the tqdm bar on the last line of a job's log says is left of its phase (``<04:13``, ``<1:02:03``),
    in seconds; None without a bar or an estimate."""
    m = _TQDM.match(_last_line(log))
    if not m or not m["left"] or not re.fullmatch(r"\d+(:\d\d){1,2}", m["left"].strip()):
        return None
    secs = 0
    for part in m["left"].strip().split(":"):
        secs = secs * 60 + int(part)
    return float(secs)


def latest_progress(log: Path | None, width: int = 60) -> str:
    """A job's latest progress as its log shows it: the last line (``\\r`` or ``\\n`` ended) of its log,
    a tqdm bar shortened to ``desc count elapsed<left``; '' when the log is empty or unreadable."""
    last = _last_line(log)
    if not last:
        return ""
    m = _TQDM.match(last)
    if m:
        last = f"{m['desc'].strip()} {m['count']} {m['elapsed'].strip()}" + (f"<{m['left'].strip()}" if m["left"] else "")
    return last if len(last) <= width else last[:width - 1] + "…"


def _poll(run: _Running) -> int | None:
    if run.proc is not None:
        return run.proc.poll()
    return None if run.thread.is_alive() else run.returncode


class _Progress:
    """One line per stage event: ``[2/6] SAEs 5/18 (2 running) 12m03s, ETA 40m``."""

    def __init__(self, jobs: Sequence[Job], stages: list[str], slots: int, out: Callable[[str], None], clock):
        self.jobs, self.stages, self.slots, self.out, self.clock = jobs, stages, slots, out, clock
        self.total = {s: sum(j.stage == s for j in jobs) for s in stages}
        self.first_start: dict[str, float] = {}
        self.last_line = clock()

    def line(self, stage: str, results: dict[str, JobResult], running: dict[str, _Running], note: str = "") -> None:
        now = self.clock()
        finished = [r for r in results.values() if r.stage == stage]
        ran = [r for r in finished if r.status == RAN]
        n_run = sum(r.job.stage == stage for r in running.values())
        left = self.total[stage] - len(finished)
        parts = [f"[{self.stages.index(stage) + 1}/{len(self.stages)}] {stage} {len(finished)}/{self.total[stage]}"]
        if n_run:
            parts.append(f"({n_run} running)")
        if stage in self.first_start:
            parts.append(fmt_seconds(now - self.first_start[stage]))
        # what the stage's running jobs' own bars say is left of their current phase: a floor under the estimate
        own = [t for r in running.values() if r.job.stage == stage and (t := remaining_seconds(r.log)) is not None]
        if left and ran:
            mean = sum(r.seconds for r in ran) / len(ran)
            elapsed_running = sum(now - r.start for r in running.values() if r.job.stage == stage)
            width = max(1, min(self.slots, left))
            parts.append(f"ETA {fmt_seconds(max(0.0, (mean * left - elapsed_running) / width, *own))}")
        elif left and own:
            parts.append(f"ETA at least {fmt_seconds(max(own))}")
        elif left and n_run:
            parts.append("ETA after its first job")
        if note:
            parts.append(note)
        self.out(" ".join(parts))
        self.last_line = now


def run_jobs(jobs: Sequence[Job], log_dir: str | Path, slots: int = 2, out: Callable[[str], None] = print,
             heartbeat_s: float = 60.0, poll_s: float = 0.1, cwd: str | Path | None = None,
             clock: Callable[[], float] = time.monotonic, devices: Sequence[str] | None = None) -> RunReport:
    """Run ``jobs`` (in the given order of preference) on ``slots`` cores; see the module docstring.

    A job starts once all its dependencies ran or were found done and enough slots are free; among ready jobs
    the earlier one in ``jobs`` goes first (one that does not fit waits, so a wide job is not starved).
    SIGINT/SIGTERM stop the running processes (SIGTERM: the stages save a checkpoint) and start nothing new.
    ``devices``: one GPU id per slot (``len(devices) == slots``); a job gets those of the slots it holds."""
    check_graph(jobs, slots)
    if devices is not None and len(devices) != slots:
        raise ConfigError(f"{len(devices)} GPU id(s) for {slots} slots: give one GPU per slot")
    free_devices = list(devices or ())
    log_dir = Path(log_dir)
    stages = list(dict.fromkeys(j.stage for j in jobs))
    t0 = clock()
    progress = _Progress(jobs, stages, slots, out, clock)
    results: dict[str, JobResult] = {}
    running: dict[str, _Running] = {}
    pending = list(jobs)
    stop = threading.Event()
    stopped_by: list[int] = []

    def on_signal(signum, _frame):
        stopped_by.append(signum)
        stop.set()

    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, on_signal)
    try:
        while (pending or running) and not stop.is_set():
            for name, r in list(running.items()):
                code = _poll(r)
                if code is None:
                    continue
                del running[name]
                free_devices.extend(r.devices)
                status = RAN if code == 0 else FAILED
                results[name] = JobResult(name, r.job.stage, status, clock() - r.start, code, r.log, r.start - t0)
                note = "" if status == RAN else f"{name} FAILED (exit {code}), log {r.log}"
                progress.line(r.job.stage, results, running, note)
            started = _start_ready(pending, results, running, slots, log_dir, progress, t0, clock, cwd,
                                   free_devices)
            if not started and running:
                if clock() - progress.last_line >= heartbeat_s:
                    for s in dict.fromkeys(r.job.stage for r in running.values()):
                        names = ", ".join(n + (f" ({p})" if (p := latest_progress(r.log)) else "")
                                          for n, r in running.items() if r.job.stage == s)
                        progress.line(s, results, running, f"running: {names}")
                time.sleep(poll_s)
            elif not started and pending and not running:  # nothing can ever start: only blocked jobs left
                break
    finally:
        try:
            if running:  # under this run's handlers: a second signal cannot cut the stopping short
                _stop_all(running, results, t0, clock)
        finally:
            for sig, h in handlers.items():
                signal.signal(sig, h)
    return RunReport(results={j.name: results[j.name] for j in jobs if j.name in results}, stages=stages,
                     total_s=clock() - t0, interrupted=stop.is_set(),
                     signum=stopped_by[0] if stopped_by else None)


def _start_ready(pending: list[Job], results, running, slots, log_dir, progress, t0, clock, cwd,
                 free_devices: list[str]) -> bool:
    started = False
    for job in list(pending):
        dep_status = [results[d].status if d in results else None for d in job.deps]
        if any(s in (FAILED, BLOCKED) for s in dep_status):
            pending.remove(job)
            results[job.name] = JobResult(job.name, job.stage, BLOCKED, 0.0, None, None, clock() - t0)
            started = True
            continue
        if any(s is None for s in dep_status):
            continue
        if job.done is not None and job.done():
            pending.remove(job)
            results[job.name] = JobResult(job.name, job.stage, CACHED, 0.0, None, None, clock() - t0)
            if all(r.stage != job.stage or r.status == CACHED for r in results.values()) and \
                    sum(r.stage == job.stage for r in results.values()) == progress.total[job.stage]:
                progress.line(job.stage, results, running, "already done")
            started = True
            continue
        used = sum(r.job.slots for r in running.values())
        if used + job.slots > slots:
            break  # in order: the first ready job that does not fit waits for room
        pending.remove(job)
        now = clock()
        progress.first_start.setdefault(job.stage, now)
        held = [free_devices.pop(0) for _ in range(job.slots)] if free_devices else []
        running[job.name] = _start(job, log_dir / _log_name(job.name), now, cwd, held)
        running[job.name].devices = held
        progress.line(job.stage, results, running, f"started {job.name}")
        started = True
    return started


STOP_TIMEOUT_S = 120.0
"""How long a stopped job may take to save its checkpoint and exit before its whole group is killed."""


def _stop_all(running: dict[str, _Running], results, t0, clock) -> None:
    """Every running job's process tree stopped (all asked at once, then each waited for and reaped)."""
    for r in running.values():
        if r.proc is not None and r.proc.poll() is None:
            r.proc.send_signal(signal.SIGTERM)
    for name, r in running.items():
        code = None if r.proc is None else stop_job(r.proc, STOP_TIMEOUT_S)
        results[name] = JobResult(name, r.job.stage, FAILED, clock() - r.start, code, r.log, r.start - t0)
    running.clear()
