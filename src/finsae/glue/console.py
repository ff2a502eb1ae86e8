"""A quiet console: one handler, one line per event, library noise filtered.

Hydra gives the root logger its handler; Lightning adds its own to ``lightning.pytorch`` (every line twice).
``quiet_console()`` drops Lightning's handler so its records reach the root handler once, keeps Lightning's
hardware summary and tips out (WARNING and above only), sends Python warnings through logging (one line,
not a warning block beside a log line), and ignores deprecation chatter and load reports from libraries.
"""

from __future__ import annotations

import logging
import sys
import warnings

LIBRARY_NOISE = (
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",  # lightning on torch >= 2.10
    r"Your `IterableDataset` has `__len__` defined.*",  # ours is exact per rank; workers take whole batches
    r"You defined a `validation_step` but have no `val_dataloader`.*",
    r".*does not have many workers which may be a bottleneck.*",  # activations are read from a memory map
    r".*The number of training batches \(\d+\) is smaller than the logging interval.*",
)


def _one_line(message, category, filename, lineno, line=None) -> str:
    return f"{category.__name__}: {message}"


def quiet_console() -> None:
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            lg.removeHandler(h)
        lg.propagate = True
        lg.setLevel(logging.WARNING)
    logging.captureWarnings(True)
    warnings.formatwarning = _one_line
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    for pattern in LIBRARY_NOISE:
        warnings.filterwarnings("ignore", message=pattern)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the load report of a head we add on purpose (the twin's classifier)
    hf_logging.disable_progress_bar()  # "Loading weights" bars for a 90 MB model


def step_progress_bar(total_steps: int, desc: str = "train", epochs: int | None = None):
    """Lightning's tqdm bar as one bar over the run's optimizer steps (``global_step / total_steps``, ETA
    included), not one bar per epoch.

    Lightning's default bar (Rich, when installed) names the epoch as ``Epoch {e}/{max_epochs - 1}``: a
    step-bounded run (``max_epochs=-1``) reads ``Epoch 0/-2``. Here the description is ``desc``, with
    ``epoch e/epochs`` when the caller knows the epoch count; a resumed run starts at its restored step; the
    sanity/validation bars and Lightning's ``v_num`` are left out."""
    from lightning.pytorch.callbacks import TQDMProgressBar
    from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

    total_steps = max(1, int(total_steps))

    class StepBar(TQDMProgressBar):
        total = total_steps

        def init_validation_tqdm(self):
            return Tqdm(disable=True)

        def init_sanity_tqdm(self):
            return Tqdm(disable=True)

        def _describe(self, trainer) -> str:
            return desc if not epochs else f"{desc} epoch {min(trainer.current_epoch + 1, epochs)}/{epochs}"

        def init_train_tqdm(self):
            return Tqdm(desc=desc, total=total_steps, position=2 * self.process_position, disable=self.is_disabled,
                        leave=True, dynamic_ncols=True, file=sys.stdout, smoothing=0, bar_format=self.BAR_FORMAT)

        def on_train_start(self, trainer, pl_module):
            super().on_train_start(trainer, pl_module)
            self.train_progress_bar.n = min(int(trainer.global_step), total_steps)  # a resumed run's steps
            self.train_progress_bar.set_description(self._describe(trainer))

        def on_train_epoch_start(self, trainer, *_):
            self.train_progress_bar.set_description(self._describe(trainer))  # one bar: no reset per epoch

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            n = min(int(trainer.global_step), total_steps)
            if self._should_update(n, total_steps):
                self.train_progress_bar.n = n
                self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=True)

        def get_metrics(self, trainer, pl_module):
            metrics = super().get_metrics(trainer, pl_module)
            metrics.pop("v_num", None)
            return metrics

    return StepBar(refresh_rate=max(1, total_steps // 200))
