"""The demo's job scheduler on tiny jobs: side by side, in dependency order, failures contained, done jobs
skipped (counted calls), logs and progress lines."""

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from finsae.demo.scheduler import (BLOCKED, CACHED, FAILED, RAN, Job, check_graph, latest_progress, run_jobs,
                                   with_dependencies)
from finsae.errors import ConfigError


def _quiet(lines):
    return lines.append


def test_independent_jobs_run_side_by_side(tmp_path):
    # each job waits at a barrier for the other: run one after the other, the barrier times out and both fail
    barrier = threading.Barrier(2, timeout=20)
    jobs = [Job("a", "s", lambda: barrier.wait()), Job("b", "s", lambda: barrier.wait())]
    report = run_jobs(jobs, tmp_path, slots=2, out=_quiet([]), poll_s=0.01)
    assert report.ok, report.results
    assert [r.status for r in report.results.values()] == [RAN, RAN]


def test_processes_run_side_by_side_one_thread_each(tmp_path):
    # two processes, each waiting (up to 20 s) for the other's start marker; each records its thread setting
    code = ("import os, sys, time, pathlib; d = pathlib.Path(sys.argv[1]); me, other = sys.argv[2], sys.argv[3];"
            "(d / me).write_text(os.environ['OMP_NUM_THREADS']); t = time.time()\n"
            "while not (d / other).exists():\n"
            "    time.sleep(0.02)\n"
            "    assert time.time() - t < 20, 'the other job never started'\n")
    jobs = [Job("p1", "s", [sys.executable, "-c", code, str(tmp_path), "p1", "p2"]),
            Job("p2", "s", [sys.executable, "-c", code, str(tmp_path), "p2", "p1"])]
    report = run_jobs(jobs, tmp_path / "logs", slots=2, out=_quiet([]), poll_s=0.01)
    assert report.ok, [(r.name, r.returncode, r.log.read_text()) for r in report.results.values()]
    assert (tmp_path / "p1").read_text() == (tmp_path / "p2").read_text() == "1"


def test_slots_bound_how_many_run_at_once(tmp_path):
    lock, now, peak = threading.Lock(), [0], [0]

    def job():
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        threading.Event().wait(0.05)
        with lock:
            now[0] -= 1

    jobs = [Job(f"j{i}", "s", job) for i in range(4)] + [Job("wide", "w", job, slots=2)]
    assert run_jobs(jobs, tmp_path, slots=2, out=_quiet([]), poll_s=0.005).ok
    assert peak[0] <= 2
    peak[0] = 0
    assert run_jobs([Job(f"m{i}", "s", job) for i in range(3)], tmp_path, slots=1, out=_quiet([]), poll_s=0.005).ok
    assert peak[0] == 1


def test_dependencies_respected(tmp_path):
    order, lock = [], threading.Lock()

    def rec(name):
        def f():
            with lock:
                order.append(name)
        return f

    # d waits for b and c, which wait for a; e is free
    jobs = [Job("d", "late", rec("d"), deps=("b", "c")), Job("b", "mid", rec("b"), deps=("a",)),
            Job("c", "mid", rec("c"), deps=("a",)), Job("a", "early", rec("a")), Job("e", "early", rec("e"))]
    report = run_jobs(jobs, tmp_path, slots=2, out=_quiet([]), poll_s=0.005)
    assert report.ok
    assert sorted(order) == ["a", "b", "c", "d", "e"]
    assert order.index("a") < order.index("b") < order.index("d")
    assert order.index("c") < order.index("d")


def test_a_failure_blocks_only_its_dependents(tmp_path):
    ran = []
    jobs = [Job("bad", "s1", [sys.executable, "-c", "print('boom'); raise SystemExit(3)"]),
            Job("child", "s2", lambda: ran.append("child"), deps=("bad",)),
            Job("grandchild", "s3", lambda: ran.append("grandchild"), deps=("child",)),
            Job("free", "s2", lambda: ran.append("free"))]
    lines = []
    report = run_jobs(jobs, tmp_path, slots=2, out=lines.append, poll_s=0.01)
    assert not report.ok
    st = {n: r.status for n, r in report.results.items()}
    assert st == {"bad": FAILED, "child": BLOCKED, "grandchild": BLOCKED, "free": RAN}
    assert ran == ["free"]
    assert report.results["bad"].returncode == 3
    assert "boom" in report.results["bad"].log.read_text()
    assert any("bad FAILED (exit 3)" in line for line in lines)


def test_a_raising_callable_fails_with_its_traceback_logged(tmp_path):
    def boom():
        raise ValueError("no such thing")

    report = run_jobs([Job("x", "s", boom)], tmp_path, out=_quiet([]), poll_s=0.005)
    r = report.results["x"]
    assert r.status == FAILED and r.returncode == 1
    assert "ValueError: no such thing" in r.log.read_text()


def test_rerun_with_everything_done_runs_nothing(tmp_path):
    calls = {"a": 0, "b": 0, "c": 0}

    def make(name):
        def f():
            calls[name] += 1
            (tmp_path / f"{name}.out").write_text("x")
        return f

    def jobs():
        return [Job(n, "s" + n, make(n), deps=d, done=lambda n=n: (tmp_path / f"{n}.out").exists())
                for n, d in (("a", ()), ("b", ("a",)), ("c", ("a", "b")))]

    first = run_jobs(jobs(), tmp_path / "logs", out=_quiet([]), poll_s=0.005)
    assert first.ok and calls == {"a": 1, "b": 1, "c": 1}
    lines = []
    second = run_jobs(jobs(), tmp_path / "logs", out=lines.append, poll_s=0.005)
    assert second.ok and calls == {"a": 1, "b": 1, "c": 1}
    assert {r.status for r in second.results.values()} == {CACHED}
    assert all("already done" in line for line in lines) and len(lines) == 3
    # one output removed: only that job runs again
    (tmp_path / "b.out").unlink()
    third = run_jobs(jobs(), tmp_path / "logs", out=_quiet([]), poll_s=0.005)
    assert third.ok and calls == {"a": 1, "b": 2, "c": 1}


def test_process_output_goes_to_its_log_and_progress_lines_count(tmp_path):
    jobs = [Job(f"sae m L{i}", "SAEs", [sys.executable, "-c", f"print('layer {i}')"]) for i in range(3)]
    jobs.append(Job("report", "report", [sys.executable, "-c", "print('done')"], deps=tuple(j.name for j in jobs)))
    lines = []
    report = run_jobs(jobs, tmp_path, slots=2, out=lines.append, poll_s=0.01)
    assert report.ok
    assert "layer 1" in Path(report.results["sae m L1"].log).read_text()
    assert report.results["sae m L1"].log.name == "sae_m_L1.log"
    assert any(line.startswith("[1/2] SAEs 3/3") for line in lines)
    assert any(line.startswith("[1/2] SAEs 1/3") and "ETA" in line for line in lines)
    assert any(line.startswith("[2/2] report 1/1") for line in lines)
    timing = report.stage_timing()
    assert set(timing) == {"SAEs", "report"}
    assert timing["SAEs"]["jobs_run"] == 3 and timing["report"]["jobs_cached"] == 0


def test_heartbeat_shows_each_running_jobs_own_progress(tmp_path):
    # a job that draws a real tqdm bar (carriage returns, no newline), then waits until the heartbeat named it
    seen = tmp_path / "seen"
    code = ("import sys, time, pathlib; from tqdm import tqdm\n"
            "bar = tqdm(total=40, desc='encode minilm L3', unit='tok', mininterval=0)\n"
            "bar.update(17); sys.stderr.flush(); t = time.time()\n"
            "while not pathlib.Path(sys.argv[1]).exists():\n"
            "    time.sleep(0.02)\n"
            "    assert time.time() - t < 30, 'no heartbeat'\n")
    lines = []

    def out(line):
        lines.append(line)
        if "encode minilm L3 17/40" in line:
            seen.touch()

    report = run_jobs([Job("tweets", "backtest", [sys.executable, "-c", code, str(seen)])], tmp_path / "logs",
                      out=out, heartbeat_s=0.05, poll_s=0.01)
    assert report.ok, report.results["tweets"].log.read_text()
    assert any("running: tweets (encode minilm L3 17/40 00:00" in line for line in lines), lines
    assert report.results["tweets"].log.read_text().startswith("$ " + sys.executable + " -c 'import sys")
    assert latest_progress(None) == "" and latest_progress(tmp_path / "absent.log") == ""
    (tmp_path / "plain.log").write_text("$ python train.py\nepoch 3: loss " + "9" * 100 + "\n")
    assert latest_progress(tmp_path / "plain.log").startswith("epoch 3: loss 9") and \
        len(latest_progress(tmp_path / "plain.log")) == 60


def test_the_eta_is_never_below_what_a_running_jobs_bar_has_left(tmp_path):
    """Two jobs of a stage: the short one ran (10 s), the other's bar says 4m13s are left of it: the line says
    so, not the short job's mean; before any job ran, the bar's estimate is a floor."""
    from finsae.demo.scheduler import JobResult, _Progress, _Running, remaining_seconds

    bar = "encode minilm_fin L3:  58%|█████▊    | 2001171/3459004 [06:14<04:13, 5348.1tok/s]"
    log = tmp_path / "tweets.log"
    log.write_text("$ python backtest.py encode_only=domain\n" + "\r".join([bar.replace("<04:13", "<09:59"), bar]))
    assert remaining_seconds(log) == 253.0
    (tmp_path / "long.log").write_text("x: 10%|█| 1/10 [00:01<1:02:03, 1.0it/s]")
    assert remaining_seconds(tmp_path / "long.log") == 3723.0
    (tmp_path / "unknown.log").write_text("x: 0%|          | 0/10 [00:00<?, ?it/s]")
    assert remaining_seconds(tmp_path / "unknown.log") is None and remaining_seconds(tmp_path / "absent.log") is None

    a, b = Job("tweets minilm", "tweets", ["true"]), Job("tweets minilm_fin", "tweets", ["true"])
    lines, now = [], [100.0]
    progress = _Progress([a, b], ["tweets"], 2, lines.append, clock=lambda: now[0])
    running = {b.name: _Running(b, 90.0, log)}
    progress.line("tweets", {}, running)
    assert "ETA at least 4m13s" in lines[-1]
    done = {a.name: JobResult(a.name, "tweets", RAN, 10.0, 0, None)}
    progress.line("tweets", done, running)
    assert lines[-1].startswith("[1/1] tweets 1/2 (1 running)") and "ETA 4m13s" in lines[-1]
    log.write_text("$ python backtest.py encode_only=domain\n")  # no bar: the mean of the jobs that ran
    progress.line("tweets", done, running)
    assert "ETA 0m00s" in lines[-1]


@pytest.mark.parametrize("jobs, message", [
    ([Job("a", "s", "x".split()), Job("a", "s", "y".split())], "unique"),
    ([Job("a", "s", "x".split(), deps=("nope",))], "unknown"),
    ([Job("a", "s", "x".split(), deps=("b",)), Job("b", "s", "x".split(), deps=("a",))], "cycle"),
    ([Job("a", "s", "x".split(), slots=3)], "slots"),
])
def test_bad_graphs_refused_before_any_work(jobs, message):
    with pytest.raises(ConfigError, match=message):
        check_graph(jobs, 2)


def test_with_dependencies_keeps_what_a_stage_needs():
    jobs = [Job("f", "finetune", ["x"]), Job("s", "SAEs", ["x"], deps=("f",)), Job("a", "analyze", ["x"], deps=("s",))]
    assert [j.name for j in with_dependencies(jobs, ["SAEs"])] == ["f", "s"]


def test_a_stop_signal_stops_running_jobs_and_starts_nothing_new(tmp_path):
    marker = tmp_path / "sleeper.started"
    code = f"import pathlib, time; pathlib.Path({str(marker)!r}).write_text('x'); time.sleep(60)"

    def stop_when_sleeper_runs():
        t = time.time()
        while not marker.exists() and time.time() - t < 20:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)  # as `kill` or a scheduler would

    jobs = [Job("sleeper", "s", [sys.executable, "-c", code]), Job("stopper", "s", stop_when_sleeper_runs),
            Job("later", "t", [sys.executable, "-c", "print(1)"], deps=("sleeper",))]
    report = run_jobs(jobs, tmp_path / "logs", slots=2, out=_quiet([]), poll_s=0.01)
    assert report.interrupted and not report.ok
    assert report.results["sleeper"].status == FAILED
    assert report.results["sleeper"].returncode == -signal.SIGTERM  # it was asked to stop, not left running
    assert "later" not in report.results
