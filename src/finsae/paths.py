"""Where data and artifacts live. The only place directories are decided in code.

``data_dir``: ``$FINSAE_DATA_DIR`` if set, else ``../shared/data`` (relative to the project root)
when it exists, else ``./data``. ``artifacts``: a stable store that later stages read,
separate from Hydra's per-run ``outputs/``::

    artifacts/models/{name}/                     fine-tuned models (HF format)
    artifacts/activations/{key}/                 activation cache entries
    artifacts/sae/{model}/layer_{i}/{tag}/       trained SAEs
    artifacts/analysis/{pair}/                   feature comparison (analyze.py)
    artifacts/labels/{pair}/                     scored labels (label.py)
    artifacts/backtest/{pair}/                   trading model and backtest (backtest.py)
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def default_data_dir() -> Path:
    env = os.environ.get("FINSAE_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    shared = (PROJECT_ROOT / ".." / "shared" / "data").resolve()
    if shared.is_dir():
        return shared
    return (PROJECT_ROOT / "data").resolve()


def default_artifacts_dir() -> Path:
    env = os.environ.get("FINSAE_ARTIFACTS")
    if env:
        return Path(env).expanduser().resolve()
    return (PROJECT_ROOT / "artifacts").resolve()


def sae_dir(artifacts: Path, model: str, layer: int, tag: str) -> Path:
    return Path(artifacts) / "sae" / model / f"layer_{layer}" / tag


def crosscoder_name(base: str, domain: str) -> str:
    """The model-folder name a crosscoder of a pair publishes under: ``artifacts/sae/crosscoder_{base}_{domain}/``."""
    return f"crosscoder_{base}_{domain}"


def sae_checkpoint_dir(artifacts: Path, model: str, layer: int, tag: str) -> Path:
    """Resumable training state of one SAE run, kept apart from its published result (``sae_dir``)."""
    return Path(artifacts) / "checkpoints" / "sae" / model / f"layer_{layer}" / tag


def model_dir(artifacts: Path, name: str) -> Path:
    return Path(artifacts) / "models" / name


def analysis_dir(artifacts: Path, pair: str) -> Path:
    return Path(artifacts) / "analysis" / pair


def labels_dir(artifacts: Path, pair: str) -> Path:
    return Path(artifacts) / "labels" / pair


def backtest_dir(artifacts: Path, pair: str) -> Path:
    return Path(artifacts) / "backtest" / pair


def activations_root(artifacts: Path) -> Path:
    return Path(artifacts) / "activations"
