"""Models declared by config files: ``conf/model/{name}.yaml`` is a model's one declaration, read by Hydra for
``train.py model=NAME`` and by :func:`finsae.models.get_spec` for every stage that names the model (a pair's
crosscoder, the analysis of both models, the backtest's tweet encoding, a fine-tune's base).

A user's own pair is two such files with ``path:`` (weights on disk, since hubs may be unreachable) and one
``conf/pair`` file naming them; ``path:`` in ``conf/model/bert_base.yaml`` points the paper's base model at a
local copy for every stage at once. Files outside the checkout: a folder laid out like ``conf/`` (``model/``,
``pair/``) named by ``$FINSAE_CONFIG_DIR``, which the stages read after ``conf/`` and Hydra reads through
``hydra.searchpath=[file://$FINSAE_CONFIG_DIR]`` (the study runner passes it to its jobs).

No Hydra here (the core imports none): the files are read as plain YAML, only ``name``, ``path`` and ``seed``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from finsae.errors import ConfigError

CONFIG_DIR_ENV = "FINSAE_CONFIG_DIR"
"""An extra config folder (``model/``, ``pair/`` inside), read after the checkout's ``conf/``."""


class Declaration(NamedTuple):
    """What one ``conf/model/*.yaml`` says about a model."""

    name: str
    """The model's name (its ``name:``, else the file's stem)."""
    path: str | None
    """``path:``: a local folder with ``config.json`` and the weights (``~`` and ``$VAR`` expanded)."""
    seed: int | None
    """``seed:`` (a random tiny model's init seed)."""
    file: Path
    """The file it came from (named in errors)."""


def config_dirs() -> list[Path]:
    """The config folders, in the order Hydra searches them: the checkout's ``conf/``, then
    ``$FINSAE_CONFIG_DIR``."""
    from finsae.paths import PROJECT_ROOT

    extra = os.environ.get(CONFIG_DIR_ENV, "").strip()
    return [PROJECT_ROOT / "conf", *([Path(extra).expanduser()] if extra else [])]


def searchpath_override() -> list[str]:
    """The Hydra override that lets an entry point compose ``model=`` and ``pair=`` options of
    ``$FINSAE_CONFIG_DIR`` (none when it is unset)."""
    extra = config_dirs()[1:]
    return [f"hydra.searchpath=[file://{extra[0].resolve()}]"] if extra else []


def declarations() -> dict[str, Declaration]:
    """Every model declared in the config folders' ``model/*.yaml`` by name (the first folder that declares a
    name wins, as in Hydra's search path)."""
    import yaml

    found: dict[str, Declaration] = {}
    for folder in config_dirs():
        for f in sorted((folder / "model").glob("*.yaml")):
            try:
                raw = yaml.safe_load(f.read_text()) or {}
            except (OSError, yaml.YAMLError) as e:
                raise ConfigError(f"{f} is not readable YAML ({str(e).splitlines()[0]}); fix or remove it") \
                    from None
            if not isinstance(raw, dict):
                raise ConfigError(f"{f} is not a model config (a mapping with name: and path:)")
            decl = _declaration(raw, f)
            found.setdefault(decl.name, decl)
    return found


def _declaration(raw: dict, f: Path) -> Declaration:
    name, path, seed = str(raw.get("name") or f.stem), raw.get("path"), raw.get("seed")
    if path is not None:
        if "${" in str(path):
            raise ConfigError(f"{f}: path: {path} is an interpolation the stages outside Hydra cannot "
                              f"resolve; write the folder itself (~ and $VAR are expanded)")
        path = os.path.expanduser(os.path.expandvars(str(path)))
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError(f"{f}: seed: {seed!r} is not an integer")
    return Declaration(name, path, seed, f)
