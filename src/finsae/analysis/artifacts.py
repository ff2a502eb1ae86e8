"""The analysis stage's artifact contract: what `python analyze.py` writes under ``artifacts/analysis/{pair}/``
(:func:`finsae.paths.analysis_dir`), and the one typed reader of each file for everyone who reads it (the
report, the label and backtest stages, tests).

Layout::

    layers/layer_{i}/{row,features,curves}.parquet + meta.json   one layer's results (what a multirun job adds)
    layers/layer_{i}/{crosscoder,warmstart}.parquet              when that layer's crosscoder / warm starts exist
    layers.parquet features.parquet curves.parquet               all layers analysed with the same settings
    crosscoder.parquet warmstart.parquet                         all layers that have them
    contexts/{model}/layer_{i}.parquet                           for the labeling stage (model `crosscoder` too;
                                                                 read and written by finsae.analysis.contexts)
    plots/*.png  findings.md  summary.json

A missing or unreadable file fails through its reader in one line naming the file and :data:`COMMAND`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from finsae.analysis.summary import AnalysisSummary
from finsae import atomic
from finsae.atomic import write_json, write_table
from finsae.errors import DataMissingError, FinsaeError
from finsae.summary import SUMMARY_FILE

COMMAND = "python analyze.py"
"""The command that makes every file here."""
LAYERS_DIR = "layers"
LAYER_META = "meta.json"
LAYER_ROW = "row"
"""A layer folder's one-row table; combined, its rows form ``layers.parquet``."""
CONTEXTS_DIR = "contexts"
PLOTS_DIR = "plots"
FINDINGS_FILE = "findings.md"
TABLES = {"layers": "layers.parquet", "features": "features.parquet", "curves": "curves.parquet",
          "crosscoder": "crosscoder.parquet", "warmstart": "warmstart.parquet"}
"""The combined tables by name."""
METHODS = ("crosscoder", "warmstart")
"""Tables of the two diffing methods that need no matching: present only for layers whose SAEs exist."""

FEATURES_COLUMNS = ("model", "layer", "latent", "financial")
"""``features.parquet``: one row per (model, layer, latent) with its selectivity; the columns every reader needs
(the full set is built by :func:`finsae.analysis.compare.compare_layer`)."""
CROSSCODER_COLUMNS = ("layer", "latent", "delta", "decoder_cosine", "class", "artifact", "beta_eps_own",
                      "beta_eps_other", "beta_r_own", "beta_r_other", "nu_eps", "nu_r", "n_active", "auroc_broad",
                      "auroc_genre", "financial")
"""``crosscoder.parquet``: layer, latent (int64); delta, decoder_cosine (float64); class (str, one of
:data:`finsae.analysis.crosscoder.CLASSES`); artifact (bool: model-specific by delta but flagged by Latent
Scaling); beta_* (the four Latent Scaling fits), nu_eps, nu_r (their ratios; NaN for dead latents); n_active
(analysis tokens it fires on); auroc_broad, auroc_genre (financial selectivity, NaN when not computed),
financial (the project's rule)."""
WARMSTART_COLUMNS = ("layer", "latent", "drift_domain", "drift_control", "selectivity_change", "changed",
                     "financial", "live")
"""``warmstart.parquet``: layer, latent (int64); drift_domain, drift_control, selectivity_change (float64);
changed, financial, live (bool: the latent fires in all three SAEs; only live latents set the threshold and can
be changed)."""
COLUMNS = {"features": FEATURES_COLUMNS, "crosscoder": CROSSCODER_COLUMNS, "warmstart": WARMSTART_COLUMNS}
"""Columns a table must hold (written and read)."""
WHAT = {"layers": "analysis table layers.parquet", "features": "analysis table features.parquet",
        "curves": "analysis table curves.parquet", "crosscoder": "crosscoder table", "warmstart": "warm-start table"}
HOW = {"crosscoder": " with the pair's crosscoders trained (python train.py task=crosscoder layer=i)",
       "warmstart": " with the warm-started SAEs trained (python train.py sae.init_from=...)"}
"""What else a method table needs besides the analysis run."""


# -- paths -------------------------------------------------------------------------------------------------
def table_path(folder: str | Path, name: str) -> Path:
    return Path(folder) / TABLES[name]


def layer_dir(folder: str | Path, layer: int) -> Path:
    return Path(folder) / LAYERS_DIR / f"layer_{int(layer)}"


def contexts_path(folder: str | Path, model: str, layer: int) -> Path:
    return Path(folder) / CONTEXTS_DIR / model / f"layer_{layer}.parquet"


def plot_path(folder: str | Path, name: str) -> Path:
    return Path(folder) / PLOTS_DIR / f"{name}.png"


def plot_paths(folder: str | Path) -> list[Path]:
    return sorted((Path(folder) / PLOTS_DIR).glob("*.png"))


def findings_path(folder: str | Path) -> Path:
    return Path(folder) / FINDINGS_FILE


def summary_path(folder: str | Path) -> Path:
    return Path(folder) / SUMMARY_FILE


def combine_lock(folder: str | Path) -> Path:
    """The entry whose lock (:func:`finsae.atomic.locked`) is held while the combined tables are rewritten (by
    the analysis stage; a stage that rewrites them too takes it as well)."""
    return Path(folder) / "combined"


# -- readers -----------------------------------------------------------------------------------------------
def _missing(what: str, path: Path, how: str = "") -> DataMissingError:
    return DataMissingError(what, path, f"Make it with `{COMMAND}`{how}.")


def _damaged(path: Path, why: str) -> FinsaeError:
    return FinsaeError(f"{path} is damaged or cut ({why}); delete it and rerun `{COMMAND}`")


def read_table(folder: str | Path, name: str, otherwise: str = "", needs: tuple[str, ...] = ()) -> pd.DataFrame:
    """The combined table ``name`` (a key of :data:`TABLES`) of an analysis folder, with its contract's columns and
    the reader's extra ``needs``; ``otherwise``: what a reader may do instead when it is missing (said after the
    command)."""
    how = HOW.get(name, "") + (f", or {otherwise}" if otherwise else "")
    return atomic.read_table(table_path(folder, name), WHAT[name], (*COLUMNS.get(name, ()), *needs), COMMAND, how)


def read_layers(folder: str | Path) -> pd.DataFrame:
    return read_table(folder, "layers")


def read_features(folder: str | Path, otherwise: str = "", needs: tuple[str, ...] = ()) -> pd.DataFrame:
    """``features.parquet``: one row per (model, layer, latent), at least :data:`FEATURES_COLUMNS` and ``needs``."""
    return read_table(folder, "features", otherwise, needs)


def read_curves(folder: str | Path) -> pd.DataFrame:
    return read_table(folder, "curves")


def read_crosscoder(folder: str | Path) -> pd.DataFrame:
    return read_table(folder, "crosscoder")


def read_warmstart(folder: str | Path) -> pd.DataFrame:
    return read_table(folder, "warmstart")


def read_summary(folder: str | Path) -> AnalysisSummary:
    """``summary.json``, typed; its ``layers`` must be layer numbers."""
    path = summary_path(folder)
    if not path.is_file():
        raise _missing("analysis summary", path)
    try:
        summary = AnalysisSummary.read(path)
    except FinsaeError as e:
        raise FinsaeError(f"{e} (`{COMMAND}` writes it)") from None
    if not all(type(x) is int for x in summary.layers):
        raise FinsaeError(f"{path}: 'layers' is {summary.layers!r}, not a list of layer numbers; rerun `{COMMAND}`")
    return summary


def read_findings(folder: str | Path) -> str:
    path = findings_path(folder)
    if not path.is_file():
        raise _missing("analysis findings", path)
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise _damaged(path, type(e).__name__) from None


# -- per-layer folders -------------------------------------------------------------------------------------
def write_layer(folder: str | Path, layer: int, tables: dict[str, pd.DataFrame], meta: dict) -> Path:
    """One layer's folder: ``tables`` maps :data:`LAYER_ROW`, ``features``, ``curves`` and the methods that ran
    to their frames; a method table of an earlier run that did not run now is removed."""
    d = layer_dir(folder, layer)
    d.mkdir(parents=True, exist_ok=True)
    for name in (LAYER_ROW, "features", "curves", *METHODS):
        _write(tables.get(name), d / f"{name}.parquet", name)
    write_json(d / LAYER_META, meta)
    return d


def layer_folders(folder: str | Path) -> Iterator[tuple[dict, dict[str, pd.DataFrame]]]:
    """``(meta, tables)`` of every readable per-layer folder, by layer; ``tables`` as :func:`write_layer` takes
    them. A folder without a readable meta.json (a job that never finished) is skipped."""
    dirs = sorted((Path(folder) / LAYERS_DIR).glob("layer_*"), key=lambda p: int(p.name.split("_", 1)[1]))
    for d in dirs:
        try:
            meta = json.loads((d / LAYER_META).read_text())
        except (OSError, ValueError):
            continue

        def tables(d=d) -> dict[str, pd.DataFrame]:
            names = [LAYER_ROW, "features", "curves", *(m for m in METHODS if (d / f"{m}.parquet").is_file())]
            return {n: atomic.read_table(d / f"{n}.parquet", f"layer table {n}", (), COMMAND) for n in names}

        yield meta, tables


# -- the combined folder -----------------------------------------------------------------------------------
def write_tables(folder: str | Path, frames: dict[str, pd.DataFrame]) -> None:
    """The combined tables (keys of :data:`TABLES`); a method table absent from ``frames`` is removed (no layer
    has it now)."""
    for name in TABLES:
        write_analysis_table(folder, name, frames.get(name))


def write_analysis_table(folder: str | Path, name: str, frame: pd.DataFrame | None) -> Path:
    """One combined table (``name`` a key of :data:`TABLES`) in one rename; ``None`` removes it."""
    path = table_path(folder, name)
    _write(frame, path, name)
    return path


def _write(frame: pd.DataFrame | None, path: Path, name: str) -> None:
    """``frame`` to ``path`` in one rename (a method table: its :data:`COLUMNS` in order; any other table: all
    of its columns, the required ones checked); ``None`` removes an earlier run's file."""
    if frame is None:
        path.unlink(missing_ok=True)
        return
    required = list(COLUMNS.get(name, ()))
    lacking = [c for c in required if c not in frame.columns]
    if lacking:
        raise ValueError(f"analysis table {path} lacks columns {lacking}")
    write_table(frame, path, required if name in METHODS else frame.columns, f"analysis table {path.name}")


def write_findings(folder: str | Path, text: str) -> None:
    findings_path(folder).write_text(text)


def write_plot(folder: str | Path, name: str, fig) -> Path:
    path = plot_path(folder, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
