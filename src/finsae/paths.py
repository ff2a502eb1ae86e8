"""Where data and artifacts live. The only place directories are decided in code.

``data_dir``: ``$FINSAE_DATA_DIR`` if set, else ``../shared/data`` (relative to the project root)
when it exists, else ``./data``. ``artifacts``: a stable store that later stages read,
separate from Hydra's per-run ``outputs/``::

    artifacts/models/{name}/                     fine-tuned models (HF format)
    artifacts/activations/{key}/                 activation cache entries
    artifacts/sae/{model}/layer_{i}/{tag}/       trained SAEs
    artifacts/analysis/{pair}/                   feature comparison (analyze.py)
    artifacts/labels/{pair}/                     scored labels (label.py)
    artifacts/checkpoints/labels/{pair}/         the label stage's answer cache (resumes a killed run)
    artifacts/backtest/{pair}/                   trading model and backtest (backtest.py)
    artifacts/backtest/cache/                    tweet encodings (shared by every pair)
    artifacts/backtest/trials.jsonl              the trials ledger (finsae.trading.ledger)
    artifacts/report/                            the study report, SAE tables, demo timing (python -m finsae.report)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from finsae.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
"""A plain name: one path component that cannot climb (no ``/``, not ``.``/``..``, not empty, not hidden)."""


def plain_name(value, key: str) -> str:
    """``value`` if it is a plain name (:data:`NAME`), else a one-line :class:`ConfigError` naming ``key``.

    The one check for every config value that becomes a path component (tags, pair names, model artifact
    names): a value like ``.``, ``../x`` or ``/abs`` would otherwise read or replace folders outside its own."""
    if not isinstance(value, str) or NAME.fullmatch(value) is None:
        raise ConfigError(f"{key}={value!r} must be a plain name (letters, digits, . _ -; not starting with .), "
                          f"not a path")
    return value


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
    return Path(artifacts) / "sae" / plain_name(model, "model") / f"layer_{int(layer)}" / plain_name(tag, "tag")


def sae_root(artifacts: Path) -> Path:
    """Where every model's SAEs live: ``artifacts/sae/``."""
    return Path(artifacts) / "sae"


def sae_layers(artifacts: Path, model: str, tag: str) -> list[int]:
    """The layers that have a folder for ``tag`` under ``model`` (finished or not: ``finsae.sae.io.is_sae_dir``
    tells), by :func:`sae_dir`'s layout."""
    found = (p.parent.name.split("_", 1)[1] for p in sae_root(artifacts).glob(f"{plain_name(model, 'model')}/layer_*/"
                                                                             f"{plain_name(tag, 'tag')}"))
    return sorted(int(i) for i in found if i.lstrip("-").isdigit())


def crosscoder_name(base: str, domain: str) -> str:
    """The model-folder name a crosscoder of a pair publishes under: ``artifacts/sae/crosscoder_{base}_{domain}/``."""
    return f"crosscoder_{base}_{domain}"


def sae_checkpoint_dir(artifacts: Path, model: str, layer: int, tag: str) -> Path:
    """Resumable training state of one SAE run, kept apart from its published result (``sae_dir``)."""
    return (Path(artifacts) / "checkpoints" / "sae" / plain_name(model, "model") / f"layer_{int(layer)}"
            / plain_name(tag, "tag"))


def model_dir(artifacts: Path, name: str) -> Path:
    return Path(artifacts) / "models" / plain_name(name, "model name")


def analysis_dir(artifacts: Path, pair: str) -> Path:
    return Path(artifacts) / "analysis" / plain_name(pair, "pair_name")


def labels_dir(artifacts: Path, pair: str) -> Path:
    return Path(artifacts) / "labels" / plain_name(pair, "pair_name")


def label_cache_dir(artifacts: Path, pair: str) -> Path:
    """The label stage's answer cache of a pair: every LLM (or lexical) answer, kept across runs."""
    return Path(artifacts) / "checkpoints" / "labels" / plain_name(pair, "pair_name")


def backtest_root(artifacts: Path) -> Path:
    """The backtest stage's folder: one folder per pair, the tweet-encoding cache and the trials ledger."""
    return Path(artifacts) / "backtest"


def backtest_dir(artifacts: Path, pair: str) -> Path:
    return backtest_root(artifacts) / plain_name(pair, "pair_name")


def tweet_cache_dir(artifacts: Path) -> Path:
    """Tweet encodings of every (model, layer, SAE), kept across backtests (``finsae.trading.encode``)."""
    return backtest_root(artifacts) / "cache"


def activations_root(artifacts: Path) -> Path:
    return Path(artifacts) / "activations"


def model_dirs(artifacts: Path) -> list[Path]:
    """Every folder under ``artifacts/models/`` (a fine-tuned model's, finished or not)."""
    return sorted(p for p in (Path(artifacts) / "models").glob("*") if p.is_dir())


def sae_dirs(artifacts: Path) -> list[Path]:
    """Every ``artifacts/sae/{model}/layer_{i}/{tag}/`` folder (an SAE run's, finished or not)."""
    return sorted(p for p in sae_root(artifacts).glob("*/layer_*/*") if p.is_dir())


def pair_dirs(artifacts: Path, stage: str) -> list[Path]:
    """Every pair folder of a pair stage (``analysis``, ``labels`` or ``backtest``), finished or not."""
    if stage not in ("analysis", "labels", "backtest"):
        raise ValueError(f"pair_dirs: no pair stage {stage!r}")
    return sorted(p for p in (Path(artifacts) / stage).glob("*") if p.is_dir())


def outputs_root() -> Path:
    """Where Hydra's run folders go (``$FINSAE_OUTPUTS``, else ``outputs``), as ``conf/hydra/default.yaml`` says."""
    return Path(os.environ.get("FINSAE_OUTPUTS", "outputs"))


def results_pages_dir() -> Path:
    """``docs/results/``: the results pages ``python -m finsae.report`` generates."""
    return PROJECT_ROOT / "docs" / "results"


def report_dir(artifacts: Path) -> Path:
    """The study report's folder: ``index.html``, the SAE tables and plots, the demo's ``timing.json`` and logs."""
    return Path(artifacts) / "report"
