"""A quiet console: one handler, one line per event, library noise filtered.

Hydra gives the root logger its handler; Lightning adds its own to ``lightning.pytorch`` (every line twice).
``quiet_console()`` drops Lightning's handler so its records reach the root handler once, keeps Lightning's
hardware summary and tips out (WARNING and above only), sends Python warnings through logging (one line,
not a warning block beside a log line), and ignores deprecation chatter and load reports from libraries.
"""

from __future__ import annotations

import logging
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


def step_progress_bar(total_steps: int):
    """Lightning's tqdm bar over the training steps (ETA included), without the per-validation bars."""
    from lightning.pytorch.callbacks import TQDMProgressBar
    from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

    class StepBar(TQDMProgressBar):
        def init_validation_tqdm(self):
            return Tqdm(disable=True)

    return StepBar(refresh_rate=max(1, total_steps // 200))
