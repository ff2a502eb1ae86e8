"""The analysis stage's artifact contract: what `python analyze.py` writes under ``artifacts/analysis/{pair}/``
(:func:`finsae.paths.analysis_dir`), and the one typed reader of each file for everyone who reads it (the
report, the label and backtest stages, tests).

Layout::

    layers/layer_{i}/row.parquet + meta.json    one layer's results (what a multirun job adds); meta.json last
    layers/layer_{i}/{table}.parquet            each table of the methods that ran at that layer
    layers.parquet                              all layers analysed with the same settings, one row per layer
    {table}.parquet                             each method table over all layers that have it: features,
                                                curves (independent SAEs), crosscoder, warmstart, ...
    contexts/{model}/layer_{i}.parquet          for the labeling stage (a method's own model name too, e.g.
                                                `crosscoder`; read and written by finsae.analysis.contexts)
    plots/*.png  findings.md  summary.json

The method tables are declared by the methods (:attr:`finsae.analysis.methods.base.DiffingMethod.tables`, a
:class:`TableSpec` each) and found through the registry (:func:`specs`).
A missing or unreadable file fails through its reader in one line naming the file and :data:`COMMAND`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

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
LAYERS_TABLE = "layers"
"""The combined per-layer table (``layers.parquet``): one row per layer, the typed fields of every method that
ran there (:class:`finsae.analysis.methods.base.LayerRow`)."""


class TableSpec(NamedTuple):
    """One combined table of the contract: a diffing method declares its per-latent tables with these
    (:attr:`finsae.analysis.methods.base.DiffingMethod.tables`)."""

    name: str
    """Its key (``read_table(folder, name)``) and, per layer, ``layers/layer_{i}/{name}.parquet``."""
    file: str
    """File name of the combined table."""
    columns: tuple[str, ...] = ()
    """Columns it must hold (written and read)."""
    what: str = ""
    """How a one-line error names it."""
    how: str = ""
    """What else it needs besides the analysis run (said after the command when it is missing)."""
    exact: bool = False
    """Written with exactly :attr:`columns`, in order (else every column of the frame)."""


FEATURES_TABLE = "features"
"""One row per (model, layer, latent) of the independent SAEs (what labeling and the backtest read)."""
CURVES_TABLE = "curves"
"""The overlap curve over tau, per layer."""
FEATURES_COLUMNS = ("model", "layer", "latent", "financial")
"""``features.parquet``: one row per (model, layer, latent) with its selectivity; the columns every reader needs
(the full set is built by :func:`finsae.analysis.compare.features_table`)."""
LAYERS_SPEC = TableSpec(LAYERS_TABLE, "layers.parquet", (), "analysis table layers.parquet")


def specs() -> dict[str, TableSpec]:
    """Every combined table by name: ``layers`` and each registered method's tables (in registry order)."""
    from finsae.analysis.methods import METHODS

    out = {LAYERS_TABLE: LAYERS_SPEC}
    for method in METHODS.values():
        out.update({t.name: t for t in method.tables})
    return out


def context_models() -> tuple[str, ...]:
    """The fixed model names under ``contexts/`` that methods own (besides the pair's two models)."""
    from finsae.analysis.methods import METHODS

    return tuple(m for method in METHODS.values() for m in method.context_models)


# -- paths -------------------------------------------------------------------------------------------------
def table_path(folder: str | Path, name: str) -> Path:
    return Path(folder) / _spec(name).file


def _spec(name: str) -> TableSpec:
    table = specs().get(name)
    if table is None:
        raise ValueError(f"no analysis table {name!r} (known: {sorted(specs())})")
    return table


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
    """The combined table ``name`` (a key of :func:`specs`) of an analysis folder, with its contract's columns and
    the reader's extra ``needs``; ``otherwise``: what a reader may do instead when it is missing (said after the
    command)."""
    t = _spec(name)
    how = t.how + (f", or {otherwise}" if otherwise else "")
    return atomic.read_table(table_path(folder, name), t.what, (*t.columns, *needs), COMMAND, how)


def read_layers(folder: str | Path) -> pd.DataFrame:
    return read_table(folder, LAYERS_TABLE)


def read_features(folder: str | Path, otherwise: str = "", needs: tuple[str, ...] = ()) -> pd.DataFrame:
    """``features.parquet``: one row per (model, layer, latent), at least :data:`FEATURES_COLUMNS` and ``needs``."""
    return read_table(folder, FEATURES_TABLE, otherwise, needs)


def read_curves(folder: str | Path) -> pd.DataFrame:
    return read_table(folder, CURVES_TABLE)


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
def layer_table_names() -> tuple[str, ...]:
    """The tables of a layer folder: :data:`LAYER_ROW` and every method table (keys of :func:`specs`)."""
    return (LAYER_ROW, *(n for n in specs() if n != LAYERS_TABLE))


def write_layer(folder: str | Path, layer: int, tables: dict[str, pd.DataFrame], meta: dict) -> Path:
    """One layer's folder: ``tables`` maps :data:`LAYER_ROW` and the tables of the methods that ran to their
    frames; a method table of an earlier run that did not run now is removed."""
    d = layer_dir(folder, layer)
    d.mkdir(parents=True, exist_ok=True)
    for name in layer_table_names():
        _write(tables.get(name), d / f"{name}.parquet", name)
    write_json(d / LAYER_META, meta)
    return d


def read_layer_meta(d: Path) -> dict | None:
    """A layer folder's meta.json (written last), or None when it has none (a job that never finished); a
    damaged one is refused in one line naming it."""
    path = d / LAYER_META
    if not path.exists():
        return None
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise _damaged(path, type(e).__name__) from None
    if not isinstance(meta, dict) or not isinstance(meta.get("settings"), dict) or type(meta.get("layer")) is not int:
        raise _damaged(path, "no 'layer' number or 'settings'")
    return meta


def read_layer_row(folder: str | Path, layer: int) -> dict:
    """One finished layer's row (:data:`LAYER_ROW`) as a dict."""
    path = layer_dir(folder, layer) / f"{LAYER_ROW}.parquet"
    return atomic.read_table(path, f"layer table {LAYER_ROW}", (), COMMAND).iloc[0].to_dict()


def _layer_dirs(folder: str | Path) -> list[Path]:
    dirs = [p for p in (Path(folder) / LAYERS_DIR).glob("layer_*") if p.name.split("_", 1)[1].lstrip("-").isdigit()]
    return sorted(dirs, key=lambda p: int(p.name.split("_", 1)[1]))


def check_layer_folders(folder: str | Path, rewritten: list[int] = ()) -> None:
    """Refuse, before any work, a damaged meta.json of a layer this run does not rewrite (its layer would
    otherwise drop out of the combined tables)."""
    for d in _layer_dirs(folder):
        if int(d.name.split("_", 1)[1]) not in rewritten:
            read_layer_meta(d)


def layer_folders(folder: str | Path) -> Iterator[tuple[dict, Callable[[], dict[str, pd.DataFrame]]]]:
    """``(meta, tables)`` of every finished per-layer folder, by layer; ``tables()`` as :func:`write_layer` takes
    them. A folder without meta.json (a job that never finished) is skipped; a damaged one is refused."""
    for d in _layer_dirs(folder):
        meta = read_layer_meta(d)
        if meta is None:
            continue

        def tables(d=d) -> dict[str, pd.DataFrame]:
            names = [n for n in layer_table_names() if n == LAYER_ROW or (d / f"{n}.parquet").is_file()]
            return {n: atomic.read_table(d / f"{n}.parquet", f"layer table {n}", (), COMMAND) for n in names}

        yield meta, tables


# -- the combined folder -----------------------------------------------------------------------------------
def write_tables(folder: str | Path, frames: dict[str, pd.DataFrame]) -> None:
    """The combined tables (keys of :func:`specs`); a method table absent from ``frames`` is removed (no layer
    has it now)."""
    for name in specs():
        write_analysis_table(folder, name, frames.get(name))


def write_analysis_table(folder: str | Path, name: str, frame: pd.DataFrame | None) -> Path:
    """One combined table (``name`` a key of :func:`specs`) in one rename; ``None`` removes it."""
    path = table_path(folder, name)
    _write(frame, path, name)
    return path


def _write(frame: pd.DataFrame | None, path: Path, name: str) -> None:
    """``frame`` to ``path`` in one rename (an exact table: its columns in order; any other table: all of its
    columns, the required ones checked); ``None`` removes an earlier run's file."""
    if frame is None:
        path.unlink(missing_ok=True)
        return
    spec = specs().get(name, TableSpec(name, path.name))
    lacking = [c for c in spec.columns if c not in frame.columns]
    if lacking:
        raise ValueError(f"analysis table {path} lacks columns {lacking}")
    write_table(frame, path, list(spec.columns) if spec.exact else frame.columns, f"analysis table {path.name}")


def write_findings(folder: str | Path, text: str) -> None:
    findings_path(folder).write_text(text)


def write_plot(folder: str | Path, name: str, fig) -> Path:
    path = plot_path(folder, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
