"""How long a whole ``make demo`` of today's plan takes on 2 cores, from measured job times: the plan's jobs
replayed through the scheduler's own rule (plan order, a job starts once its dependencies finished and its
slots are free; the first ready job that does not fit waits for room) with each job's seconds from timing
records.

    python bench/demo_schedule.py --timing artifacts/report/timing.json [--timing older.json ...]
        [--set "finetune=541" ...] [--slots 2] [--profile default|full] [--out schedule.json]

Each job takes its seconds from the first ``--timing`` file where it *ran* (``--set NAME=SECONDS`` wins over
them); a job no file measured takes the median of its stage's measured jobs of the same kind (``sae
crosscoder`` apart from ``sae``), and the output lists it under ``estimated``. A timing file of a run that
shared its cores with other work gives longer jobs: say so when quoting the result. Prints the simulated wall
time, the core-minutes, the idle core-minutes, per stage the jobs' sum and span, and writes the replay (start
and end of every job) as JSON.
"""

from __future__ import annotations

import argparse
import heapq
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from finsae.demo.full import full_jobs  # noqa: E402
from finsae.demo.plan import demo_jobs  # noqa: E402


def measured(files: list[Path]) -> dict[str, float]:
    """Job name -> seconds, from the first file where the job ran."""
    out: dict[str, float] = {}
    for f in files:
        for stage in json.loads(f.read_text())["stages"].values():
            for name, j in stage.get("jobs", {}).items():
                if j.get("status") == "ran" and name not in out:
                    out[name] = float(j["seconds"])
    return out


def kind(name: str) -> str:
    """What a job's time resembles: its first word, with the crosscoders and the warm starts apart."""
    if name.startswith("sae crosscoder"):
        return "sae crosscoder"
    if name.startswith("sae ") and "_warm_" in name:
        return "sae warm"
    return name.split(" ")[0]


def durations(jobs, seconds: dict[str, float]) -> tuple[dict[str, float], list[str]]:
    by_kind: dict[str, list[float]] = {}
    for name, s in seconds.items():
        by_kind.setdefault(kind(name), []).append(s)
    out, guessed = {}, []
    for j in jobs:
        if j.name in seconds:
            out[j.name] = seconds[j.name]
        elif kind(j.name) in by_kind:
            out[j.name] = statistics.median(by_kind[kind(j.name)])
            guessed.append(j.name)
        else:
            raise SystemExit(f"demo_schedule: no time for {j.name!r} nor any job of its kind; give --set "
                             f"'{j.name}=SECONDS'")
    return out, guessed


def replay(jobs, seconds: dict[str, float], slots: int) -> dict[str, tuple[float, float]]:
    """(start, end) of every job under the scheduler's rule."""
    pending, done, running, span = list(jobs), set(), [], {}
    used, now = 0, 0.0
    while pending or running:
        for j in list(pending):
            if not all(d in done for d in j.deps):
                continue
            if used + j.slots > slots:
                break  # in order: the first ready job that does not fit waits for room
            pending.remove(j)
            used += j.slots
            span[j.name] = (now, now + seconds[j.name])
            heapq.heappush(running, (now + seconds[j.name], j.name, j.slots))
        if not running:
            raise SystemExit(f"demo_schedule: {pending[0].name} can never start (slots or dependencies)")
        now, name, width = heapq.heappop(running)
        used -= width
        done.add(name)
    return span


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--timing", type=Path, action="append", required=True)
    ap.add_argument("--set", action="append", default=[], help="NAME=SECONDS")
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--profile", choices=("default", "full"), default="default")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    jobs = (full_jobs if a.profile == "full" else demo_jobs)(Path("artifacts"))
    seconds = measured(a.timing)
    for item in a.set:
        name, _, value = item.rpartition("=")
        seconds[name] = float(value)
    secs, guessed = durations(jobs, seconds)
    span = replay(jobs, secs, a.slots)
    wall = max(end for _, end in span.values())
    core = sum(secs[j.name] * j.slots for j in jobs)
    stages: dict[str, dict] = {}
    for j in jobs:
        s = stages.setdefault(j.stage, {"jobs": 0, "job_s": 0.0, "first_start": wall, "last_end": 0.0})
        start, end = span[j.name]
        s["jobs"] += 1
        s["job_s"] += secs[j.name]
        s["first_start"], s["last_end"] = min(s["first_start"], start), max(s["last_end"], end)
    result = {"profile": a.profile, "slots": a.slots, "wall_s": round(wall, 1), "core_s": round(core, 1),
              "idle_core_s": round(a.slots * wall - core, 1), "jobs": len(jobs), "estimated": guessed,
              "stages": stages, "span": {n: [round(s, 1), round(e, 1)] for n, (s, e) in span.items()}}
    print(f"{a.profile} plan, {len(jobs)} jobs on {a.slots} slots: wall {wall / 60:.1f} min, "
          f"{core / 60:.0f} core-min of jobs, {(a.slots * wall - core) / 60:.0f} core-min idle; "
          f"{len(guessed)} job(s) estimated from their kind's median")
    for name, s in stages.items():
        print(f"  {name:9s} {s['jobs']:3d} jobs  {s['job_s'] / 60:6.1f} job-min  "
              f"{s['first_start'] / 60:6.1f} -> {s['last_end'] / 60:6.1f} min")
    if a.out:
        a.out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
