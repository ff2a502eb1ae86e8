"""Blocks every stage's section is made of (:mod:`~finsae.report.sections`): each pair under its name and the
command that reproduces it, an artifact read through its stage's contract (or its one-line error), stored
plots, a column pick."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from finsae.report.sections import Block, Figure, Heading, NotRun, Reproduce, Unreadable
from finsae.report.study import COMMANDS, Study, reproduce_command, store_label


def pick(df: pd.DataFrame, preferred: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """The ``preferred`` columns of ``df`` that it has, in that order (all of ``df`` when it has none)."""
    cols = [c for c in preferred if c in df.columns]
    return df[cols] if cols else df


def pair_heading(folder: Path) -> list[Block]:
    """A pair's heading in a section, with the command that reproduces its numbers."""
    return [Heading(folder.name), Reproduce(reproduce_command(folder))]


def per_pair(study: Study, stage: str, body: Callable[[Path, Any], list[Block]]) -> list[Block]:
    """For each pair folder of ``stage``: :func:`pair_heading`, then ``body(folder, summary)`` or the
    summary's one-line error; "not run" with the stage's command when it has no pair."""
    found = study.summaries(stage)
    if not found:
        return [NotRun(f"no {stage} under `{stage}/`", COMMANDS[stage])]
    blocks: list[Block] = []
    for folder, s in found:
        blocks += [*pair_heading(folder), *([Unreadable(s)] if isinstance(s, str) else body(folder, s))]
    return blocks


def through(study: Study, reader, folder: Path, name: str, show: Callable[[Any], list[Block]]) -> list[Block]:
    """``show`` of what a stage contract's ``reader`` read from ``folder/name``, or its one-line error."""
    value = study.through(reader, folder, name)
    return [Unreadable(value)] if isinstance(value, str) else show(value)


def per_file(study: Study, stage: str, name: str, what: str, reader,
             show: Callable[[Any], list[Block]]) -> list[Block]:
    """For each pair folder of ``stage`` holding ``name``: :func:`pair_heading`, then :func:`through`;
    "not run" when none holds it."""
    folders = [f for f in study.pairs(stage) if (f / name).is_file()]
    if not folders:
        return [NotRun(f"no {what} under `{stage}/`", COMMANDS[stage])]
    return [b for folder in folders
            for b in (*pair_heading(folder), *through(study, reader, folder, name, show))]


def plots(study: Study, folder: Path) -> list[Block]:
    """A pair's stored plots (``plots/*.png``), named by their place in the store."""
    return [Figure(f"{folder.name}: {p.stem.replace('_', ' ')}", path=p, label=store_label(p))
            for p in study.analysis_plots(folder)]
