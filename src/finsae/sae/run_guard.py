"""Guards of one SAE training run: never clobber a finished SAE or an unfinished run's checkpoints, never resume
a checkpoint under a changed config, never let two runs of one (model, layer, tag) train at once."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch
from finsae.atomic import run_lock as atomic_run_lock

from finsae.errors import ConfigError
from finsae.sae.config import SaeTrainConfig
from finsae.summary import is_published

LAST_CHECKPOINT = "last.ckpt"


def check_no_work_lost(out_dir: Path, ckpt_dir: Path, resume: bool, overwrite: bool) -> str | None:
    """Refuse a run that would clobber a finished SAE in ``out_dir`` or an unfinished run's checkpoints in
    ``ckpt_dir``; the checkpoint to resume from, if any (None with ``resume`` too when there is none)."""
    if is_published(out_dir) and not overwrite:
        raise ConfigError(f"{out_dir} holds a finished SAE; skip_if_done=true keeps it, overwrite=true trains a new "
                          f"one (the old one is replaced only once the new one is complete)")
    last = Path(ckpt_dir) / LAST_CHECKPOINT
    if resume:
        return str(last) if last.exists() else None
    if last.exists() and not overwrite:
        raise ConfigError(f"{ckpt_dir} holds the checkpoint of an unfinished run; resume=true continues it, "
                          f"overwrite=true starts over")
    return None


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


HPARAM_PREFIX = {"sae_cfg": "sae.", "train_cfg": "sae.", "run": ""}
"""The checkpoint's hyper-parameter groups and the override prefix a user writes them with."""

ADDED_KNOBS = {"sae.init_from_any_layer": False, "sae.init_refit": SaeTrainConfig.init_refit,
               "sae.dictionary": SaeTrainConfig.dictionary,
               "sae.affine_fit_tokens": SaeTrainConfig.affine_fit_tokens}
"""Knobs added since checkpoints were first written, with the value a checkpoint without one was trained at
(a run checkpointed before the knob existed resumes unless the knob is now set otherwise). ``init_refit``
takes its default: it only decides a warm start's first weights, which a resume replaces by the
checkpoint's."""


def check_same_config(ckpt_path: str, hparams: dict[str, Any]) -> None:
    """Refuse to resume the checkpoint ``ckpt_path`` (its ``hyper_parameters``) when it was trained with other
    ``hparams`` (it would train a hybrid); the changed keys are named as overrides."""
    try:
        saved = torch.load(ckpt_path, map_location="cpu", weights_only=False)["hyper_parameters"]
    except Exception as e:  # noqa: BLE001 - truncated or foreign file: say which and what to do
        raise ConfigError(f"checkpoint {ckpt_path} is unreadable ({type(e).__name__}); drop resume=true and use "
                          f"overwrite=true to start over") from None
    now = {k: _flat(dict(hparams.get(k) or {}), p) for k, p in HPARAM_PREFIX.items()}
    then = {k: _flat(dict(saved.get(k) or {}), p) for k, p in HPARAM_PREFIX.items()}
    for group in HPARAM_PREFIX:
        then[group].update({key: v for key, v in ADDED_KNOBS.items() if key in now[group] and key not in then[group]})
    changed = sorted({key for k in HPARAM_PREFIX for key in now[k].keys() | then[k].keys()
                      if now[k].get(key) != then[k].get(key)})
    if changed:
        raise ConfigError(f"resume=true with a changed config: {changed} differ from checkpoint {ckpt_path}; "
                          f"resume with the original values, or overwrite=true to start over")


def run_lock(ckpt_dir: Path, hold: bool = True):
    """One run per checkpoint folder at a time: a second one refuses at once. ``hold`` false (ranks other than
    zero under DDP) takes no lock."""
    if not hold:
        return contextlib.nullcontext()
    return atomic_run_lock(ckpt_dir, "another run is training this SAE now (lock {lock}); wait for it, or pick "
                                     "another tag=")
