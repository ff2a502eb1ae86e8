"""``python -m finsae.demo [--experiment demo|paper] [--profile default|full] [--only STAGE,...] [--slots N]
[--dry-run]``: the study.

``--experiment demo`` (default): the offline MiniLM study; ``--profile full`` adds what the default's time
budget leaves out (:mod:`finsae.demo.full`: the crosscoder's dictionary-size sweep, the control pairs' feature
diffing at every layer), with its own results pages (``docs/results/full`` unless ``--results`` says
otherwise; README's headline is left alone unless ``--readme`` names it). ``--experiment paper``:
bert-base-uncased vs ProsusAI/finbert at the paper's scale (:mod:`finsae.demo.paper`), on CPU slots, one GPU
per slot (``--gpus N``), the SAEs as DDP over the node's GPUs (``--ddp``) or through Hydra's submitit launcher
on SLURM (``--slurm``).

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
import os
import platform
import signal
import sys
import time

_T0 = time.monotonic()  # before the imports below: total_s is the command's whole wall time

from datetime import datetime, timezone
from pathlib import Path

from finsae import precision, provenance, timing
from finsae.atomic import check_writable
from finsae.demo.full import PROFILES, full_jobs
from finsae.demo.paper import OFFLINE_LABELS_NOTE, PaperOptions, Placement, paper_jobs
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


def _pages_with_timing(artifacts: Path, results_dir: Path | None, readme: Path | None, prov: dict,
                       command: str = "make demo") -> None:
    """The report job ran before this run's timing existed: regenerate the results pages (docs/results, README's
    headline), which include the timing page, now (seconds; the HTML report is not rebuilt), under the
    provenance ``prov`` taken when the run started."""
    from finsae.report import results

    if results_dir is None:
        return
    try:
        results.write_pages(artifacts, results_dir, readme, command, prov)
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
    ap.add_argument("--results", default=None,
                    help="folder of the generated results pages (default docs/results, with --profile full "
                         "docs/results/full; '' for none)")
    ap.add_argument("--readme", default=None,
                    help="README whose headline block is regenerated (default README.md, none with --profile "
                         "full; '' for none)")
    ap.add_argument("--dry-run", action="store_true", help="list the jobs and which are already done")
    ap.add_argument("--experiment", choices=("demo", "paper"), default="demo",
                    help="the study (default demo)")
    ap.add_argument("--profile", choices=PROFILES, default="default",
                    help="--experiment demo: the default study, or full (adds the crosscoder's dictionary-"
                         "size sweep and the control pairs' feature diffing at every layer)")
    paper = ap.add_argument_group("--experiment paper")
    paper.add_argument("--gpus", type=int, default=0,
                       help="GPUs of this node: one job per GPU (slots = GPUs)")
    paper.add_argument("--ddp", action="store_true", help="each SAE as Lightning DDP over all --gpus")
    paper.add_argument("--slurm", action="append", nargs="?", const="", metavar="LAUNCHER_OVERRIDE",
                       help="the SAEs through hydra/launcher=submitit_slurm (one node x 7 GPUs each); repeat "
                            "with hydra.launcher.* overrides, e.g. --slurm hydra.launcher.partition=gpu")
    paper.add_argument("--layers", default="", help="comma-separated layers of both models (default all 12)")
    paper.add_argument("--override", action="append", default=[], metavar="STAGE:KEY=VALUE",
                       help="a Hydra override of one entry point (train, analyze, label, backtest); "
                            "repeatable")
    paper.add_argument("--vllm-model", default=None, help="Qwen2.5-7B-Instruct weights: labels via vLLM")
    paper.add_argument("--vllm-port", type=int, default=8000, help="loopback port of that server")
    return ap.parse_args(argv)


SLURM_NODE = ("hydra.launcher.nodes=1", "hydra.launcher.tasks_per_node=7", "hydra.launcher.gpus_per_node=7",
              "hydra.launcher.cpus_per_task=8", "hydra.launcher.timeout_min=720")
"""One node x 7 GPUs per SAE (conf/trainer/ddp7.yaml), the defaults of ``--slurm``; later ones win."""


def placement(args: argparse.Namespace) -> Placement:
    """Where the jobs run, from the command line (``--gpus N`` makes the slots GPUs)."""
    if args.experiment == "paper" and args.profile != "default":
        raise FinsaeError(f"--profile {args.profile} is for --experiment demo; the paper study has one plan "
                          f"(choose its layers with --layers)")
    if args.experiment == "demo" and (args.gpus or args.ddp or args.slurm or args.layers or args.override
                                      or args.vllm_model):
        raise FinsaeError("--gpus, --ddp, --slurm, --layers, --override and --vllm-model are for "
                          "--experiment paper; the demo runs on CPU slots (--slots)")
    slurm = None if args.slurm is None else (*SLURM_NODE, *(o for o in args.slurm if o))
    place = Placement(slots=args.gpus or args.slots, gpus=args.gpus, ddp=args.ddp, slurm=slurm)
    place.check()
    return place


def paper_options(args: argparse.Namespace) -> PaperOptions:
    """The paper study's choices from the command line (``--override STAGE:KEY=VALUE`` grouped per stage)."""
    overrides: dict[str, list[str]] = {}
    for o in args.override:
        stage, sep, value = o.partition(":")
        if not sep or "=" not in value:
            raise FinsaeError(f"--override {o!r}: give STAGE:KEY=VALUE, e.g. train:sae.tokens=100000")
        overrides.setdefault(stage, []).append(value)
    try:
        layers = (tuple(int(x) for x in args.layers.split(",") if x.strip()) if args.layers
                  else PaperOptions().layers)
    except ValueError:
        raise FinsaeError(f"--layers {args.layers!r}: give comma-separated layer numbers, e.g. 0,5,11") \
            from None
    opts = PaperOptions(layers=layers, overrides={k: tuple(v) for k, v in overrides.items()},
                        vllm_model=args.vllm_model, vllm_port=args.vllm_port)
    opts.check()
    return opts


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


def page_targets(args: argparse.Namespace) -> tuple[Path | None, Path | None]:
    """(results pages folder, README) this run regenerates: the flags, else the profile's defaults (the full
    profile writes its own pages and leaves README's headline, which is the default study's, alone)."""
    full = args.experiment == "demo" and args.profile == "full"
    results = args.results if args.results is not None else str(results_pages_dir() / "full" if full
                                                                  else results_pages_dir())
    readme = args.readme if args.readme is not None else ("" if full else str(PROJECT_ROOT / "README.md"))
    return (Path(results) if results else None), (Path(readme) if readme else None)


def _demo(args: argparse.Namespace) -> int:
    artifacts = Path(args.artifacts)
    results_dir, readme = page_targets(args)
    check_folder_arg(artifacts, "--artifacts")
    if results_dir is not None:
        check_folder_arg(results_dir, "--results")
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    prov = provenance.record(default_data_dir())
    place = placement(args)
    if args.experiment == "paper":
        jobs = paper_jobs(artifacts, place, paper_options(args), run_stamp=stamp, results_dir=results_dir,
                          readme=readme)
    else:
        make = full_jobs if args.profile == "full" else demo_jobs
        jobs = make(artifacts, run_stamp=stamp, results_dir=results_dir, readme=readme)
    only = [s.strip() for s in args.only.split(",") if s.strip()] or None
    if only:
        stages = {j.stage.lower(): j.stage for j in jobs}
        unknown = [s for s in only if s.lower() not in stages]
        if unknown:
            known = list(dict.fromkeys(stages.values()))
            raise FinsaeError(f"--only {','.join(unknown)}: no such stage; stages: {known}")
        jobs = with_dependencies(jobs, [stages[s.lower()] for s in only])
    jobs = [dataclasses.replace(j, slots=min(j.slots, place.slots)) for j in jobs]
    if args.experiment == "paper" and args.vllm_model is None and any(j.name == "labels" for j in jobs):
        print(OFFLINE_LABELS_NOTE, flush=True)
    if args.dry_run:
        for j in jobs:
            state = "done" if j.done is not None and j.done() else "to run"
            after = ", ".join(j.deps) if len(j.deps) <= 3 else f"{len(j.deps)} jobs"
            print(f"{j.stage:9s} {j.name:40s} {state:7s} {place.where(j):16s} after: {after or '-'}")
        return 0
    check_writable(artifacts, "artifacts folder (--artifacts)")
    # the stages read the store from $FINSAE_ARTIFACTS (conf/paths): the jobs write where the done checks look
    os.environ["FINSAE_ARTIFACTS"] = str(artifacts.resolve())
    with store_lock(artifacts):
        return _run(jobs, args, place, artifacts, results_dir, readme, only, prov)


def _run(jobs, args, place: Placement, artifacts: Path, results_dir: Path | None, readme: Path | None, only,
         prov: dict) -> int:
    """Run the jobs (the store held), write the timing, say how it went; the exit code."""
    unit = f"one GPU each (GPUs 0-{place.gpus - 1})" if place.gpus else "one core each"
    print(f"{args.experiment}: {len(jobs)} jobs, {place.slots} at a time, {unit}; compute dtype "
          f"{precision.resolve('auto', 'cpu')} (bf16 units: {'yes' if precision.cpu_has_bf16() else 'no'}); "
          f"logs in {report_dir(artifacts) / LOGS}", flush=True)
    devices = [str(i) for i in range(place.gpus)] if place.gpus else None
    report = run_jobs(jobs, report_dir(artifacts) / LOGS, slots=place.slots, heartbeat_s=30,
                      out=lambda line: print(line, flush=True), devices=devices)
    record = timing_record(report, place.slots, only, prov["code_version"])
    record["experiment"] = args.experiment
    record["profile"] = args.profile
    timing.write(report_dir(artifacts), record)
    if report.ok and only is None and "report" in report.results:
        command = "make demo" if args.profile == "default" else "python -m finsae.demo --profile full"
        _pages_with_timing(artifacts, results_dir, readme, prov, command)
    ran = sum(r.status == "ran" for r in report.results.values())
    cached = sum(r.status == "cached" for r in report.results.values())
    total = timing.fmt_seconds(record["total_s"])
    print(f"{args.experiment}: {total} total ({ran} jobs run, {cached} already done); "
          f"timing {report_dir(artifacts) / timing.TIMING_FILE}; report {report_file(artifacts)}")
    if report.interrupted:
        signum = report.signum or signal.SIGINT
        print(f"finsae: {args.experiment} stopped by {signal.Signals(signum).name}; the running jobs were "
              f"stopped (each saved a checkpoint where it could); rerun to continue", file=sys.stderr)
        return 128 + signum
    if not report.ok:
        bad = report.failed()
        first = bad[0]
        names = ", ".join(r.name for r in bad)
        print(f"finsae: error: {args.experiment}: {len(bad)} job(s) failed ({names}; first log {first.log}); "
              f"{len(report.blocked())} job(s) depending on them not run", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
