"""How long ``make demo`` takes (``docs/results/timing.md``): the latest whole run by stage, its longest jobs,
and every run on record, read from ``report/timing_history.jsonl`` (:mod:`finsae.timing`). Engineering, not
science: the results pages carry it, the study page does not."""

from __future__ import annotations

import pandas as pd

from finsae import timing
from finsae.paths import report_dir
from finsae.report.sections import Block, Heading, NotRun, Table, Text
from finsae.report.study import Study

LONGEST_JOBS = 10
RUNS_SHOWN = 12


def _runs(study: Study) -> list[dict]:
    path = report_dir(study.artifacts) / timing.TIMING_HISTORY_FILE
    return timing.parse_history(study.read_text(path), str(path)) if path.is_file() else []


def _cpu(rec: dict) -> str:
    cpu = rec.get("cpu") or {}
    units = [f for f, on in (cpu.get("bf16_flags") or {}).items() if on]
    return f"{cpu.get('model', '?')}, {cpu.get('cores', '?')} cores, {', '.join(units) or 'no bf16 units'}"


def _code(rec: dict) -> str:
    """The timed checkout's commit, short (``+dirty`` kept); ``?`` for a run recorded before runs held it."""
    v = str(rec.get("code_version", "?"))
    return v.removesuffix("+dirty")[:12] + ("+dirty" if v.endswith("+dirty") else "")


def _against_target(rec: dict) -> str:
    units = bool((rec.get("cpu") or {}).get("bf16_units"))
    if timing.is_done_rerun(rec):
        target, what = timing.RERUN_TARGET_S, "everything done"
    else:
        target, what = timing.TARGET_S[units], "bf16 units" if units else "no bf16 units"
    met = "met" if rec["total_s"] <= target else "**not met**"
    return f"{met} (target {timing.fmt_seconds(target)}, {what})"


def _job_states(rec: dict) -> str:
    states: dict[str, int] = {}
    for st in rec["stages"].values():
        for j in st["jobs"].values():
            states[j["status"]] = states.get(j["status"], 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(states.items()))


def _run_line(rec: dict) -> str:
    return (f"{timing.fmt_seconds(rec['total_s'])} wall, finished {rec.get('finished_utc', '?')} on "
            f"{_cpu(rec)}; compute dtype {rec.get('dtype')}, {rec.get('slots')} one-thread slots, "
            f"code {_code(rec)}")


def _latest(runs: list[dict]) -> tuple[dict | None, list[Block]]:
    """The run the page details (the latest whole one, else the latest that ran jobs), and its intro."""
    whole = [r for r in runs if timing.is_whole_run(r)]
    if whole:
        rec = whole[-1]
        return rec, [Heading("The latest whole `make demo` (nothing done before it)"),
                     Text(f"{_run_line(rec)}; target {_against_target(rec)}.")]
    with_jobs = [r for r in runs if timing.counts(r)[0] > 0]
    if with_jobs:
        rec = with_jobs[-1]
        return rec, [Text("No whole `make demo` (every job run, none found done, all ok) is on record yet."),
                     Heading("The latest run that ran jobs"),
                     Text(f"{_run_line(rec)}; {'ok' if rec.get('ok') else 'not ok'} "
                          f"(jobs: {_job_states(rec)}).")]
    return None, [Text("No run that ran jobs is on record yet.")]


def _stages_and_jobs(rec: dict) -> list[Block]:
    fmt = timing.fmt_seconds
    stages = pd.DataFrame([{"stage": k, "wall": fmt(v["wall_s"]), "job time": fmt(v["job_s"]),
                            "jobs run": v["jobs_run"], "jobs done before": v["jobs_cached"],
                            "failed or stopped": v.get("jobs_failed", 0),
                            "not started": v.get("jobs_blocked", 0)}
                           for k, v in rec["stages"].items()])
    jobs = sorted(({"job": j, "stage": k, "seconds": round(v["seconds"]), "status": v["status"]}
                   for k, st in rec["stages"].items() for j, v in st["jobs"].items()
                   if v["status"] in ("ran", "failed")), key=lambda r: -r["seconds"])
    return [Table(stages, max_rows=None), Table(pd.DataFrame(jobs[:LONGEST_JOBS]), "longest jobs")]


def _kind(r: dict) -> str:
    if timing.is_whole_run(r):
        return "whole"
    if timing.is_done_rerun(r):
        return "all done"
    if r.get("only"):
        return f"--only {','.join(r['only'])}"
    return "partial" if r.get("ok") else "stopped or failed"


def timing_blocks(study: Study) -> list[Block]:
    runs = _runs(study)
    if not runs:
        return [NotRun("no `report/timing_history.jsonl` yet", "make demo")]
    rec, blocks = _latest(runs)
    if rec is not None:
        blocks += _stages_and_jobs(rec)
    rows = []
    for r in runs[::-1][:RUNS_SHOWN]:
        ran, cached = timing.counts(r)
        kind = _kind(r)
        rows.append({"finished (UTC)": r.get("finished_utc"), "run": kind,
                     "wall": timing.fmt_seconds(r["total_s"]), "jobs run": ran, "jobs done before": cached,
                     "ok": r.get("ok"), "dtype": r.get("dtype"),
                     "machine": _cpu(r), "code": _code(r),
                     "target": _against_target(r) if kind in ("whole", "all done") else ""})
    return blocks + [Heading(f"Every run (newest first, at most {RUNS_SHOWN})"), Table(pd.DataFrame(rows))]
