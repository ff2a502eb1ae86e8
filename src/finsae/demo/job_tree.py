"""A demo job's processes never outlive the demo: each job runs in a process group of its own (the job and
every process it starts), asked to stop by SIGTERM to its leader (the stages checkpoint on it) and then reaped
as a group; on Linux the leader also watches its parent (``PR_SET_PDEATHSIG``), so a demo killed with SIGKILL,
which runs no cleanup of its own, still stops its jobs: each gets the SIGTERM the demo would have sent."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1
"""prctl option (linux/prctl.h): the signal this process gets when the thread that started it exits."""
GROUP_GRACE_S = 5.0
"""What a stopped job's remaining processes (its workers) get between SIGTERM and SIGKILL."""

_LINUX = sys.platform.startswith("linux")
_LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if _LINUX else None


def parent_death_signal(signum: int = signal.SIGTERM):
    """A ``preexec_fn`` that makes the child get ``signum`` when this process dies (None off Linux, where a
    killed demo cannot take its jobs along). It runs between fork and exec, so it only makes system calls; a
    parent that died before the call is caught by the ``getppid`` check (the child is then an orphan)."""
    if _LIBC is None:
        return None
    parent = os.getpid()
    prctl = _LIBC.prctl

    def watch_parent() -> None:
        prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(128 + signum)

    return watch_parent


def group_alive(pgid: int) -> bool:
    """Whether any process of the group ``pgid`` still exists (zombies count until reaped)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_group(pgid: int, grace_s: float = GROUP_GRACE_S) -> None:
    """SIGTERM what is left of the group ``pgid`` (its leader gone), then SIGKILL after ``grace_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + grace_s
        while sig == signal.SIGTERM and time.monotonic() < deadline and group_alive(pgid):
            time.sleep(0.05)


def stop_job(proc: subprocess.Popen, timeout_s: float) -> int:
    """Stop a job started in its own group: SIGTERM to its leader (a stage saves a checkpoint and stops),
    SIGKILL to the whole group after ``timeout_s``, then the group's leftovers reaped; the leader's exit
    code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        code = proc.wait()
    reap_group(proc.pid)
    return code
