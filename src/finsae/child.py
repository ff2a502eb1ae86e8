"""A command that runs a stage as its child (``finsae.reproduce``) stops like the stages do: SIGTERM/SIGINT reach
the child (which checkpoints and exits), the command says so in one line and exits ``128 + signal``, and no child
outlives it — not even when the command itself is killed with SIGKILL (the child gets SIGTERM from the kernel).

No Hydra or W&B import: the commands that use it stay light.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

SIGNALS = (signal.SIGTERM, signal.SIGINT)
PR_SET_PDEATHSIG = 1
"""prctl(2): the signal the kernel sends a process when its parent dies (Linux)."""


class Stopped(BaseException):
    """SIGTERM or SIGINT stopped the command (a ``BaseException``, like ``KeyboardInterrupt``, so that no
    ``except Exception`` swallows it on the way out)."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


def stopped_line(signum: int, what: str) -> str:
    """The one line a stopped command prints (as the stages' ``finsae.glue.app.stopped`` does)."""
    return f"finsae: stopped by {signal.Signals(signum).name}: {what}; run the command again to redo it"


def _stop_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (so a SIGKILLed command leaves no orphan)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the forwarded signals still reach the child
        pass


class SignalForwarder:
    """While entered: SIGTERM/SIGINT raise :class:`Stopped` when no child runs; while :meth:`run` waits for a
    child, the first is forwarded to it (it stops as it would if sent to it: checkpoint, exit), a second kills
    it, and :class:`Stopped` is raised once it has exited."""

    def __init__(self) -> None:
        self.child: subprocess.Popen | None = None
        self.received: list[int] = []
        self._previous: dict[int, object] = {}

    def __enter__(self) -> SignalForwarder:
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, signum: int, frame) -> None:
        self.received.append(signum)
        if self.child is None:
            raise Stopped(signum)
        self.child.send_signal(signum if len(self.received) == 1 else signal.SIGKILL)

    def run(self, cmd: Sequence[str], cwd: str | Path, env: Mapping[str, str]) -> int:
        """Run ``cmd`` to its end and return its exit code; :class:`Stopped` when a signal stopped it. The child
        has its own session, so a terminal's Ctrl-C reaches it once (forwarded), not twice."""
        if self.received:
            raise Stopped(self.received[0])
        self.child = subprocess.Popen(list(cmd), cwd=cwd, env=dict(env), start_new_session=True,
                                      preexec_fn=_stop_with_parent if sys.platform == "linux" else None)
        try:
            code = self.child.wait()
        finally:
            if self.child.poll() is None:  # an exception while waiting: leave nothing running
                self.child.kill()
                self.child.wait()
            self.child = None
        if self.received:
            raise Stopped(self.received[0])
        return code
