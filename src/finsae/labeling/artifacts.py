"""The label stage's artifact contract: ``artifacts/labels/{pair}/`` as ``python label.py`` publishes it, and
the one way every reader (the report, the backtest, ``skip_if_done``, tests) reads it back.

Files::

    labels.parquet   one row per chosen latent (LABEL_KEY, role, status, label, description, every score)
    per_layer.csv    per (model, layer) and overall, each headline score beside its controls (``score_table``)
    summary.json     ``LabelSummary``

The analysis stage's ``features.parquet`` is never rewritten: a reader that wants features with their labels
joins them at read time (:func:`join_labels`, e.g. ``join_labels(features, read_labels(folder))``). A missing or unreadable file fails in one line naming the file
and ``python label.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pandas as pd

from finsae.atomic import locked, publish, read_table, staging_dir
from finsae.errors import DataMissingError, FinsaeError
from finsae.labeling.pipeline import METRICS
from finsae.labeling.summary import LabelSummary
from finsae.summary import SUMMARY_FILE

LABELS_FILE = "labels.parquet"
PER_LAYER_FILE = "per_layer.csv"
MAKES = "python label.py"
"""The command that makes these files."""
LABEL_KEY = ("model", "layer", "latent")
"""Names one latent: the labels table's key, and the columns a features table is joined on."""
LABELS_COLUMNS = (*LABEL_KEY, "label")
"""Columns every labels table has (the stage writes many more)."""
PER_LAYER_COLUMNS = ("model", "layer", "metric", "score", "control")
"""Columns every per-layer table has."""
LABEL_PREFIX = "label_"
"""A features table with its labels joined names their columns ``label``, ``label_description``,
``label_status``, ``label_role`` and ``label_<score>`` (``label_embedding_auroc``, ``label_embedding_auroc_control``,
``label_generic_embedding_auroc``, ...)."""


class LabelArtifacts(NamedTuple):
    """One published labeling run."""

    labels: pd.DataFrame
    """``labels.parquet``: one row per chosen latent (labelled, skipped or failed), every score and control."""
    per_layer: pd.DataFrame
    """``per_layer.csv``: per (model, layer) and overall, each headline score beside its controls."""
    summary: LabelSummary
    """``summary.json``: headline numbers of the run."""


def write_labels(folder: Path, result: LabelArtifacts) -> None:
    """Write the three files into ``folder`` (a staging folder: :func:`publish_labels` publishes)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    result.labels.to_parquet(folder / LABELS_FILE, index=False)
    result.per_layer.to_csv(folder / PER_LAYER_FILE, index=False)
    result.summary.write(folder)


def publish_labels(out_dir: Path, result: LabelArtifacts) -> None:
    """Replace ``out_dir`` (``artifacts/labels/{pair}/``) by ``result`` in one rename, under its lock."""
    out_dir = Path(out_dir)
    with locked([out_dir]):
        tmp = staging_dir(out_dir)
        write_labels(tmp, result)
        publish(tmp, out_dir)


def _missing(what: str, path: Path) -> DataMissingError:
    return DataMissingError(what, path, f"Make it with `{MAKES}`.")


def _table(path: Path, what: str, columns: tuple[str, ...]) -> pd.DataFrame:
    return read_table(path, what, columns, MAKES)


def read_labels(folder: Path, missing_ok: bool = False) -> pd.DataFrame | None:
    """``labels.parquet`` of ``folder``; None when absent and ``missing_ok`` (the label stage has not run)."""
    path = Path(folder) / LABELS_FILE
    if missing_ok and not path.is_file():
        return None
    return _table(path, "labels table", LABELS_COLUMNS)


def read_per_layer(folder: Path) -> pd.DataFrame:
    """``per_layer.csv`` of ``folder``."""
    return _table(Path(folder) / PER_LAYER_FILE, "per-layer label score table", PER_LAYER_COLUMNS)


def read_summary(folder: Path) -> LabelSummary:
    """``summary.json`` of ``folder`` as a :class:`LabelSummary`."""
    path = Path(folder) / SUMMARY_FILE
    if not path.is_file():
        raise _missing("label summary", path)
    try:
        return LabelSummary.read(path)
    except FinsaeError as e:
        raise FinsaeError(f"{str(e).split('; ')[0]}; rerun `{MAKES}`") from None


def read_label_artifacts(folder: Path) -> LabelArtifacts:
    """The whole published run in ``folder``."""
    return LabelArtifacts(read_labels(folder), read_per_layer(folder), read_summary(folder))


def joined_columns(labels: pd.DataFrame, scores: bool = True) -> dict[str, str]:
    """Which columns of ``labels`` :func:`join_labels` adds, and the name each gets in the joined table."""
    cols = {"label": "label", "description": f"{LABEL_PREFIX}description", "status": f"{LABEL_PREFIX}status",
            "role": f"{LABEL_PREFIX}role"}
    if scores:
        cols |= {c: f"{LABEL_PREFIX}{c}" for metrics in METRICS.values() for m in metrics
                 for c in (m, f"{m}_control", f"generic_{m}")}
    return {k: v for k, v in cols.items() if k in labels.columns}


def join_labels(features: pd.DataFrame, labels: pd.DataFrame | None, scores: bool = True) -> pd.DataFrame:
    """``features`` (any table with the columns ``LABEL_KEY``, e.g. the analysis stage's features table) with
    each latent's label, description, status, role and (``scores``) every score and control left-joined on
    ``(model, layer, latent)``; latents without a label get nulls. Label columns ``features`` already holds (a
    features table from before labels were joined at read time) are replaced. ``labels`` None (the label stage
    has not run: ``read_labels(folder, missing_ok=True)``) returns ``features`` unchanged. Where a key column of
    ``features`` holds strings (latents parsed out of feature names), the labels' keys are compared as strings."""
    if labels is None:
        return features
    cols = joined_columns(labels, scores)
    add = labels[[*LABEL_KEY, *cols]].drop_duplicates(list(LABEL_KEY)).rename(columns=cols)
    for k in LABEL_KEY:
        if not pd.api.types.is_numeric_dtype(features[k]):
            add[k] = add[k].astype(str)
    keep = [c for c in features.columns if c != "label" and not c.startswith(LABEL_PREFIX)]
    return features[keep].merge(add, on=list(LABEL_KEY), how="left")
