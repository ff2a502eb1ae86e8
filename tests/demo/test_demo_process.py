"""``python -m finsae.demo`` as a process, on one sleeping job instead of the study: one demo per store, the
signals' exit codes and lines, no job left running however the demo ends, a file given as the store."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from finsae.demo import __main__ as demo_main

# the real demo's main on one job that records its pid and sleeps (as long as a stage would run)
DEMO = """
import sys
from finsae.demo import __main__ as demo
from finsae.demo.scheduler import Job

art, pid_file, stubborn = sys.argv[1], sys.argv[2], len(sys.argv) > 3
sleeper = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(300)"
if stubborn:  # a job that ignores SIGTERM: killed once the stop timeout is over
    sleeper = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); " + sleeper
    from finsae.demo import scheduler
    scheduler.STOP_TIMEOUT_S = 3
demo.demo_jobs = lambda artifacts, **_: [Job("sleeper", "sleep", [sys.executable, "-c", sleeper, pid_file])]
sys.exit(demo.main(["--artifacts", art, "--results", "", "--readme", ""]))
"""
WAIT_S = 60


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(predicate, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def start_demo(tmp_path):
    """Start demos (killed, with their sleepers, at the end); each returns (process, sleeper pid)."""
    started: list[tuple[subprocess.Popen, Path]] = []

    def start(art: Path, name: str = "a", *extra: str):
        pid_file = tmp_path / f"{name}.pid"
        proc = subprocess.Popen([sys.executable, "-c", DEMO, str(art), str(pid_file), *extra],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append((proc, pid_file))
        _wait_for(lambda: pid_file.is_file() and pid_file.read_text() or proc.poll() is not None, "the job")
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        return proc, int(pid_file.read_text())

    yield start
    for proc, pid_file in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        if pid_file.is_file() and pid_file.read_text() and _alive(pid := int(pid_file.read_text())):
            os.kill(pid, signal.SIGKILL)


def test_a_second_demo_on_one_store_is_refused_naming_the_first(tmp_path, start_demo):
    art = tmp_path / "art"
    first, _ = start_demo(art)
    second = tmp_path / "b.pid"
    try:
        r = subprocess.run([sys.executable, "-c", DEMO, str(art), str(second)], capture_output=True,
                           text=True, timeout=WAIT_S)
    finally:  # a second demo that was let in started a job of its own
        if second.is_file() and second.read_text() and _alive(pid := int(second.read_text())):
            os.kill(pid, signal.SIGKILL)
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.count("\n") == 1 and "another demo is running" in r.stderr, r.stderr
    assert f"pid {first.pid} on " in r.stderr and "since 20" in r.stderr
    assert not (tmp_path / "b.pid").exists()  # its job never started
    other, _ = start_demo(tmp_path / "other_art", "c")  # another store is free
    assert other.poll() is None


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_demo_and_its_job_in_one_line(tmp_path, start_demo, sig):
    signum = getattr(signal, sig)
    proc, job = start_demo(tmp_path / "art")
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 128 + signum, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    assert err.strip().splitlines()[-1].startswith(f"finsae: demo stopped by {sig}"), err[-2000:]
    _wait_for(lambda: not _alive(job), "the job to end")
    # the store is free again
    again, _ = start_demo(tmp_path / "art", "again")
    assert again.poll() is None


def test_a_second_signal_while_the_jobs_stop_does_not_leave_one_running(tmp_path, start_demo):
    proc, job = start_demo(tmp_path / "art", "a", "stubborn")
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)  # as an impatient user or a scheduler would
    _, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 143 and "Traceback" not in err, err[-2000:]
    _wait_for(lambda: not _alive(job), "the stubborn job to be killed")


def test_a_demo_killed_with_sigkill_leaves_no_job_running(tmp_path, start_demo):
    proc, job = start_demo(tmp_path / "art")
    proc.kill()
    proc.wait(timeout=WAIT_S)
    _wait_for(lambda: not _alive(job), "the killed demo's job to end")
    again, _ = start_demo(tmp_path / "art", "again")  # the lock died with its holder
    assert again.poll() is None


def test_a_stopped_job_tree_is_reaped_with_its_leftover_children(tmp_path):
    """A job whose own child ignores its death (a worker that outlives its stage) is reaped with its group."""
    from finsae.demo.job_tree import stop_job

    child_pid = tmp_path / "child.pid"
    code = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
            "'import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "open(sys.argv[1], \"w\").write(str(os.getpid())); time.sleep(300)', sys.argv[1]]); "
            "time.sleep(300)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(child_pid)], start_new_session=True)
    try:
        _wait_for(lambda: child_pid.is_file() and child_pid.read_text(), "the child")
        child = int(child_pid.read_text())
        assert stop_job(proc, timeout_s=WAIT_S) == -signal.SIGTERM
        _wait_for(lambda: not _alive(child), "the child to be reaped")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.mark.parametrize("where", ["itself", "above"])
def test_a_file_given_as_the_store_is_refused_in_one_line(tmp_path, capsys, where):
    blocker = tmp_path / "art"
    blocker.write_text("precious")
    art = blocker if where == "itself" else blocker / "sub"
    assert demo_main.main(["--artifacts", str(art), "--results", "", "--readme", ""]) == 2
    err = capsys.readouterr().err
    assert err.startswith("finsae: error: --artifacts ") and err.count("\n") == 1 and "is a file" in err, err
    assert blocker.read_text() == "precious"
