"""Stopping on SIGTERM/SIGINT without losing work: finish the step, checkpoint, exit 143/130.

Schedulers send SIGTERM on preemption or at the time limit. ``StopOnSignal`` notes the signal, asks the trainer
to stop, and writes ``last.ckpt`` at the end of the step in flight; the stage then raises :class:`Interrupted`,
which the entry point turns into exit code ``128 + signal`` (and the tracking run is marked failed). Lightning's
own SIGTERM handling (it raises ``SIGTERMException``, a ``SystemExit`` with code 0, at the next step) runs beside
ours and is caught by the stage. Under SLURM, Lightning's requeue handling is left in charge.
"""

from __future__ import annotations

import os
import signal

from lightning.pytorch.callbacks import Callback

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(Exception):
    """The run stopped on a signal after saving a checkpoint."""

    def __init__(self, signum: int, message: str):
        self.exit_code = 128 + signum
        super().__init__(message)


class StopOnSignal(Callback):
    def __init__(self, checkpoint: str):
        self.checkpoint = checkpoint
        self.signum: int | None = None
        self.saved = False
        self._previous: dict[int, object] = {}
        self._trainer = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        if "SLURM_JOB_ID" in os.environ or self._previous:
            return
        self._trainer = trainer
        for sig in SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. a spawned worker's helper thread)
                return

    def _handle(self, signum, frame) -> None:
        self.signum = signum
        if self._trainer is not None:
            self._trainer.should_stop = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.signum is not None and not self.saved:
            self.save(trainer)

    def save(self, trainer) -> None:
        trainer.save_checkpoint(self.checkpoint)
        self.saved = True

    def teardown(self, trainer, pl_module, stage: str) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
