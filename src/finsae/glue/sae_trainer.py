"""The SAE stage's Lightning trainer: checkpoints every ``trainer.checkpoint_every`` steps (and ``last.ckpt``)
under ``artifacts/checkpoints/``, ``trainer.val_checks`` validation passes per run, and a fit that a signal stops with a
checkpoint (:class:`~finsae.glue.interrupt.StopOnSignal`) and a one-line :class:`Interrupted`."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

from finsae.glue.console import step_progress_bar
from finsae.glue.interrupt import Interrupted, StopOnSignal
from finsae.sae.run_guard import LAST_CHECKPOINT


def sae_trainer(t, total: int, logger, ckpt_dir: Path, desc: str) -> tuple[L.Trainer, StopOnSignal]:
    """The trainer of ``total`` steps on the ``trainer:`` settings ``t`` (``t.val_checks`` evenly spaced
    validations), and the callback that stops it on a signal with a checkpoint."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    stopper = StopOnSignal(str(ckpt_dir / LAST_CHECKPOINT))
    ckpt = ModelCheckpoint(dirpath=str(ckpt_dir), every_n_train_steps=t.checkpoint_every, save_last=True,
                           save_top_k=0, enable_version_counter=False)
    trainer = L.Trainer(
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy,
        precision=t.precision, max_steps=total, max_epochs=-1, logger=logger,
        callbacks=[ckpt, stopper, *([step_progress_bar(total, desc)] if t.progress_bar else [])],
        enable_progress_bar=t.progress_bar, enable_model_summary=False, log_every_n_steps=max(1, min(20, total // 20)),
        num_sanity_val_steps=0, check_val_every_n_epoch=None, limit_val_batches=1.0 if t.val_checks else 0,
        val_check_interval=max(1, total // max(1, t.val_checks)),
        use_distributed_sampler=False, deterministic=False,
    )
    return trainer, stopper


def fit(trainer: L.Trainer, stopper: StopOnSignal, module, data, ckpt_path: str | None) -> float:
    """Fit (resuming from ``ckpt_path``); returns the seconds it took. A signal ends it with a checkpoint and
    :class:`Interrupted` naming the step and how to continue."""
    t_fit = time.time()
    try:
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    except SIGTERMException:
        if stopper.signum is None:  # Lightning saw SIGTERM before our handler was installed
            stopper.signum = signal.SIGTERM
    fit_seconds = time.time() - t_fit
    if stopper.signum is not None:
        if not stopper.saved:
            stopper.save(trainer)
        raise Interrupted(stopper.signum, f"stopped by {signal.Signals(stopper.signum).name} at step "
                                          f"{trainer.global_step}; checkpoint {stopper.checkpoint}; rerun with "
                                          f"resume=true to continue")
    return fit_seconds
