"""What every Hydra entry point does around its stage: validate, run, and fail in one line."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from finsae.errors import FinsaeError
from finsae.glue.console import quiet_console
from finsae.glue.schemas import refuse_secret_overrides, validate

log = logging.getLogger("finsae")


def fail(e: FinsaeError) -> None:
    """The one way a user error ends a command: one line on stderr, exit code 2."""
    print(f"finsae: error: {e}", file=sys.stderr)
    sys.exit(2)


def cli(main: Callable[[], Any]) -> None:
    """Run a Hydra ``main`` after refusing secrets on the command line (before Hydra saves the overrides)."""
    try:
        refuse_secret_overrides(sys.argv[1:])
    except FinsaeError as e:
        fail(e)
    main()


def run_stage(cfg: DictConfig, stage: str | Callable[[Any, DictConfig], dict]) -> float | None:
    """Validate ``cfg`` into typed schemas, run ``stage(typed, raw)``, return its ``objective`` for sweepers.

    ``stage`` may be a module path whose ``run`` is imported only after validation passed, so a bad value
    fails before heavy imports.

    A ``FinsaeError`` (bad value, missing file, offline hub, corrupt cache) prints one line and exits 2; a run
    stopped by SIGTERM/SIGINT (checkpoint saved) exits 143/130; any other failure raises (exit 1).
    """
    os.environ.setdefault("WANDB_MODE", "offline")
    try:
        typed = validate(cfg)
        if isinstance(stage, str):
            stage = importlib.import_module(stage).run
        quiet_console()  # after the stage's imports: Lightning installs its own log handler when imported
        summary = stage(typed, cfg)
    except FinsaeError as e:
        fail(e)
    except Exception as e:
        from finsae.glue.interrupt import Interrupted

        if not isinstance(e, Interrupted):
            raise
        print(f"finsae: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    obj = summary.get("objective") if isinstance(summary, dict) else getattr(summary, "objective", None)
    return float(obj) if obj is not None else None


def resolved_config(cfg: DictConfig) -> dict:
    """The fully resolved config as a plain dict (what W&B and summary.json record)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
