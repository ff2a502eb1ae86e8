"""``python -m finsae.demo [--only STAGE,...] [--slots N] [--dry-run]``: the offline study, timed.

Runs the jobs of :mod:`finsae.demo.plan` with :func:`finsae.demo.scheduler.run_jobs` (``--slots`` one-thread
jobs at a time, default 2), logs each job to ``artifacts/report/logs/<job>.log``, and writes
``artifacts/report/timing.json``: ``total_s``, one entry per stage (wall and job seconds, jobs run and found
done), the CPU's bf16 flags and the compute dtype the model forwards use. Exit 0 when every job ran or was
already done; 1 (one line on stderr) when a job failed, after the jobs that do not depend on it have run; 2
for a refused command (a second demo on one store: :mod:`finsae.demo.store_lock`); ``128 + signal`` (143
SIGTERM, 130 SIGINT) when stopped: the running jobs save a checkpoint and a rerun continues them. No job
outlives the demo, also when it is killed (:mod:`finsae.demo.job_tree`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import platform
import signal
import sys
import time

_T0 = time.monotonic()  # before the imports below: total_s is the command's whole wall time

from datetime import datetime, timezone
from pathlib import Path

from finsae import precision, provenance, timing
from finsae.atomic import check_writable
from finsae.demo.plan import demo_jobs, report_file
from finsae.demo.scheduler import RunReport, run_jobs, with_dependencies
from finsae.demo.store_lock import store_lock
from finsae.errors import FinsaeError
from finsae.paths import PROJECT_ROOT, default_artifacts_dir, default_data_dir, report_dir, results_pages_dir

LOGS = "logs"


def timing_record(report: RunReport, slots: int, only: list[str] | None, code_version: str) -> dict:
    """What ``timing.json`` holds for one run (``code_version``: the checkout's, taken before the first job: the
    code the run started with)."""
    return {
        "code_version": code_version,
        "total_s": round(time.monotonic() - _T0, 1),
        "ok": report.ok,
        "stage_s": {name: t["wall_s"] for name, t in report.stage_timing().items()},
        "stages": report.stage_timing(),
        "slots": slots,
        "only": only,
        "cpu": provenance.machine_record(),
        "dtype": precision.resolve("auto", "cpu"),
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
    }


def _pages_with_timing(artifacts: Path, results_dir: Path | None, readme: Path | None, prov: dict) -> None:
    """The report job ran before this run's timing existed: regenerate the results pages (docs/results, README's
    headline), which include the timing page, now (seconds; the HTML report is not rebuilt), under the
    provenance ``prov`` taken when the run started."""
    from finsae.report import results

    if results_dir is None:
        return
    try:
        results.write_pages(artifacts, results_dir, readme, "make demo", prov)
    except FinsaeError as e:
        print(f"finsae: warning: the results pages were not regenerated with this run's timing: {e}", file=sys.stderr)


class _Stopped(BaseException):
    """SIGTERM/SIGINT outside the job run (which handles them itself: it stops the jobs first)."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signum)


@contextlib.contextmanager
def _signals_stop_the_demo():
    """SIGTERM and SIGINT raise :class:`_Stopped` (not a traceback, not Python's 130 for both)."""
    def handle(signum, _frame):
        raise _Stopped(signum)

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _parse(argv) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m finsae.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated stages (and what they depend on), e.g. SAEs")
    ap.add_argument("--slots", type=int, default=2, help="jobs at a time (one core each); default 2")
    ap.add_argument("--artifacts", default=str(default_artifacts_dir()))
    ap.add_argument("--results", default=str(results_pages_dir()),
                    help="folder of the generated results pages (default docs/results; '' for none)")
    ap.add_argument("--readme", default=str(PROJECT_ROOT / "README.md"),
                    help="README whose headline block is regenerated ('' for none)")
    ap.add_argument("--dry-run", action="store_true", help="list the jobs and which are already done")
    return ap.parse_args(argv)


def check_folder_arg(folder: Path, flag: str) -> None:
    """Refuse, in one line, a folder argument where a file stands (at it or above it)."""
    for p in (folder, *folder.parents):
        if p.exists() or p.is_symlink():
            if not p.is_dir():
                where = "it is a file" if p == folder else f"{p} is a file"
                raise FinsaeError(f"{flag} {folder}: {where}, not a folder; nothing was run. Give {flag} a "
                                  f"folder (made when missing)")
            return


def main(argv=None) -> int:
    args = _parse(argv)
    try:
        with _signals_stop_the_demo():
            return _demo(args)
    except _Stopped as e:
        print(f"finsae: demo stopped by {signal.Signals(e.signum).name} before or after its jobs ran; no job "
              f"is left running (rerun to continue)", file=sys.stderr)
        return 128 + e.signum
    except FinsaeError as e:
        print(f"finsae: error: {e}", file=sys.stderr)
        return 2


def _demo(args: argparse.Namespace) -> int:
    artifacts = Path(args.artifacts)
    results_dir = Path(args.results) if args.results else None
    readme = Path(args.readme) if args.readme else None
    check_folder_arg(artifacts, "--artifacts")
    if results_dir is not None:
        check_folder_arg(results_dir, "--results")
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    prov = provenance.record(default_data_dir())
    jobs = demo_jobs(artifacts, run_stamp=stamp, results_dir=results_dir, readme=readme)
    only = [s.strip() for s in args.only.split(",") if s.strip()] or None
    if only:
        stages = {j.stage.lower(): j.stage for j in jobs}
        unknown = [s for s in only if s.lower() not in stages]
        if unknown:
            known = list(dict.fromkeys(stages.values()))
            raise FinsaeError(f"--only {','.join(unknown)}: no such stage; stages: {known}")
        jobs = with_dependencies(jobs, [stages[s.lower()] for s in only])
    if args.slots < 1:
        raise FinsaeError(f"--slots {args.slots}: at least one job must run at a time")
    jobs = [dataclasses.replace(j, slots=min(j.slots, args.slots)) for j in jobs]
    if args.dry_run:
        for j in jobs:
            state = "done" if j.done is not None and j.done() else "to run"
            after = ", ".join(j.deps) if len(j.deps) <= 3 else f"{len(j.deps)} jobs"
            print(f"{j.stage:9s} {j.name:28s} {state:7s} after: {after or '-'}")
        return 0
    check_writable(artifacts, "artifacts folder (--artifacts)")
    with store_lock(artifacts):
        return _run(jobs, args, artifacts, results_dir, readme, only, prov)


def _run(jobs, args, artifacts: Path, results_dir: Path | None, readme: Path | None, only, prov: dict) -> int:
    """Run the jobs (the store held), write the timing, say how it went; the exit code."""
    print(f"demo: {len(jobs)} jobs, {args.slots} at a time; compute dtype {precision.resolve('auto', 'cpu')} "
          f"(bf16 units: {'yes' if precision.cpu_has_bf16() else 'no'}); "
          f"logs in {report_dir(artifacts) / LOGS}", flush=True)
    report = run_jobs(jobs, report_dir(artifacts) / LOGS, slots=args.slots, heartbeat_s=30,
                      out=lambda line: print(line, flush=True))
    record = timing_record(report, args.slots, only, prov["code_version"])
    timing.write(report_dir(artifacts), record)
    if report.ok and only is None and "report" in report.results:
        _pages_with_timing(artifacts, results_dir, readme, prov)
    ran = sum(r.status == "ran" for r in report.results.values())
    cached = sum(r.status == "cached" for r in report.results.values())
    print(f"demo: {timing.fmt_seconds(record['total_s'])} total ({ran} jobs run, {cached} already done); "
          f"timing {report_dir(artifacts) / timing.TIMING_FILE}; report {report_file(artifacts)}")
    if report.interrupted:
        signum = report.signum or signal.SIGINT
        print(f"finsae: demo stopped by {signal.Signals(signum).name}; the running jobs were stopped (each "
              f"saved a checkpoint where it could); rerun to continue", file=sys.stderr)
        return 128 + signum
    if not report.ok:
        bad = report.failed()
        first = bad[0]
        print(f"finsae: error: demo: {len(bad)} job(s) failed ({', '.join(r.name for r in bad)}; first log "
              f"{first.log}); {len(report.blocked())} job(s) depending on them not run", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
