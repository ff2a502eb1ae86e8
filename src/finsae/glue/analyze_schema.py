"""Typed Hydra schema of `python analyze.py` (its root config and its own config groups).

``register(cs)`` is called by :func:`finsae.glue.schemas.register_schemas`.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore


def register(cs: ConfigStore) -> None:
    """Stage not built yet (see finsae.glue.pending): nothing to register."""
