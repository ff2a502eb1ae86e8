"""The fine-tune's resumable state, as the SAE fits keep theirs: each phase (masked-LM pass, classifier)
checkpoints under ``artifacts/checkpoints/finetune/{out_name}/{phase}/last.ckpt`` (weights, optimizer,
schedule, step, and the random state that dropout and masking draw from), so ``resume=true`` continues a
stopped or killed run where it left off and ends where the uninterrupted run would have. The guards: an
unfinished run's checkpoints are never clobbered, never resumed under a changed recipe, and one run per twin
trains at a time."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, NamedTuple

from finsae.atomic import run_lock as atomic_run_lock

from finsae.errors import ConfigError
from finsae.paths import plain_name

LAST_CHECKPOINT = "last.ckpt"
MLM, CLASSIFIER = "mlm", "classifier"
"""The phases, in order; each its own subfolder of the run's checkpoint folder."""
RECIPE_KEY = "finsae_finetune_recipe"
"""Where a checkpoint records the recipe it was trained with (compared on resume)."""


def checkpoint_dir(artifacts: Path, out_name: str) -> Path:
    """Resumable state of the fine-tune that makes ``out_name``, apart from the published twin."""
    return Path(artifacts) / "checkpoints" / "finetune" / plain_name(out_name, "finetune.out_name")


class ResumePoint(NamedTuple):
    """Where a run starts: the checkpoint of each phase to continue (None: the phase starts afresh)."""

    mlm: str | None
    """The masked-LM pass's ``last.ckpt`` (at its last step once the pass is over)."""
    classifier: str | None
    """The classifier's ``last.ckpt``; when set, the masked-LM pass is over and is not run again."""


def resume_point(ckpt_dir: Path, resume: bool, overwrite: bool) -> ResumePoint:
    """The checkpoints a run continues from with ``resume``; refuses, in one line, a run that would clobber an
    unfinished run's checkpoints (neither ``resume`` nor ``overwrite``)."""
    found = {phase: Path(ckpt_dir) / phase / LAST_CHECKPOINT for phase in (MLM, CLASSIFIER)}
    found = {phase: str(p) for phase, p in found.items() if p.is_file()}
    if found and not resume and not overwrite:
        raise ConfigError(f"{ckpt_dir} holds the checkpoint of an unfinished fine-tune; resume=true "
                          f"continues it, overwrite=true starts over")
    if not resume:
        return ResumePoint(None, None)
    return ResumePoint(found.get(MLM), found.get(CLASSIFIER))


def start_over(ckpt_dir: Path) -> None:
    """Remove an earlier run's checkpoints (asked for with ``overwrite=true``, or the twin is published)."""
    if Path(ckpt_dir).exists():
        shutil.rmtree(ckpt_dir)


def check_same_recipe(ckpt_path: str, recipe: dict[str, Any]) -> None:
    """Refuse to resume ``ckpt_path`` when it was trained with another ``recipe`` (it would make a hybrid
    twin); the changed keys are named."""
    import torch

    try:
        saved = torch.load(ckpt_path, map_location="cpu", weights_only=False, mmap=True).get(RECIPE_KEY) or {}
    except Exception as e:  # noqa: BLE001 - truncated or foreign file: say which and what to do
        raise ConfigError(f"checkpoint {ckpt_path} is unreadable ({type(e).__name__}); drop resume=true and "
                          f"use overwrite=true to start over") from None
    changed = sorted(k for k in recipe.keys() | saved.keys() if recipe.get(k) != saved.get(k))
    if changed:
        raise ConfigError(f"resume=true with a changed recipe: {changed} differ from checkpoint {ckpt_path}; "
                          f"resume with the original values, or overwrite=true to start over")


def run_lock(ckpt_dir: Path):
    """One fine-tune per twin at a time: a second one refuses at once (the lock dies with its holder)."""
    return atomic_run_lock(ckpt_dir, f"another fine-tune is making {Path(ckpt_dir).name} now (lock {{lock}}); "
                                     f"wait for it, or choose another finetune.out_name")
