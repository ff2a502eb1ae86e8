"""The trading stage's report sections (:mod:`~finsae.report.sections`): the backtest, StockNet beside the
published baselines, and the leakage canaries; each read through the backtest's contract
(:mod:`finsae.trading.artifacts`).

A table of the backtest's contract in the backtest section is one line of :data:`BACKTEST_TABLES`; a table
needing more than a column pick is a block appended in :func:`_backtest_pair`.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from finsae.report.blocks import per_file, per_pair, pick, plots, through
from finsae.report.sections import Block, Table, Text
from finsae.report.study import Study
from finsae.trading import artifacts as backtest_files
from finsae.trading.claim import claim_paragraph


class ContractTable(NamedTuple):
    """A table of the backtest's contract as the backtest section shows it."""

    name: str
    """Its name in :data:`finsae.trading.artifacts.TABLES`."""
    caption: str
    columns: tuple[str, ...] = ()
    """The columns shown, in order (none: all)."""
    rows: dict[str, str] | None = None
    """Only the rows with these values (``{"period": "headline"}``)."""


BACKTEST_TABLES = [
    ContractTable("metrics", "strategies after costs, with PSR/DSR and the trials count",
                  ("set", "strategy", "period", "sharpe", "sharpe_lo", "sharpe_hi", "sortino", "max_drawdown",
                   "cagr", "psr", "dsr", "n_trials", "dsr_eff", "n_trials_eff", "turnover")),
]
"""The contract's tables the backtest section shows, in order, each where its file exists."""


def _contract_table(study: Study, folder: Path, spec: ContractTable) -> list[Block]:
    path = backtest_files.table_path(folder, spec.name)
    if not path.is_file():
        return []

    def show(df: pd.DataFrame) -> list[Block]:
        for col, value in (spec.rows or {}).items():
            df = df[df[col] == value]
        return [Table(pick(df, list(spec.columns)), spec.caption, max_rows=None)]

    return through(study, partial(backtest_files.read_table, name=spec.name), folder, path.name, show)


def _backtest_pair(study: Study, folder: Path, s) -> list[Block]:
    blocks: list[Block] = [
        Table.of_mapping({"sets": s.sets, "protocols": s.protocols, "cost (bps per side)": s.cost_bps,
                          "walk-forward rows": s.n_rows, "folds": s.n_folds,
                          "trials (for the DSR)": s.n_trials, "eval start": s.eval_start})]
    for spec in BACKTEST_TABLES:
        blocks += _contract_table(study, folder, spec)
    if backtest_files.has_claim(folder):
        blocks += through(study, backtest_files.read_claim, folder, backtest_files.TABLES["claim"].file,
                          lambda c: [Text(claim_paragraph(c)),
                                     Table(c[c["period"] == "headline"], "changed latents: paired diffs")])
    return blocks + plots(study, folder)


def backtest_blocks(study: Study) -> list[Block]:
    return per_pair(study, "backtest", lambda folder, s: _backtest_pair(study, folder, s))


def _percent(accuracy):
    """An accuracy as the published table gives it (percent); one already in percent as it is."""
    return 100 * float(accuracy) if accuracy is not None and float(accuracy) <= 1 else accuracy


def _stocknet_table(bench) -> list[Block]:
    from finsae.trading.stocknet import PUBLISHED

    ours = [{"model": f"ours: {name}", "accuracy": _percent(v.get("accuracy")), "mcc": v.get("mcc"),
             "n_test": v.get("n_test")} for name, v in bench.sets.items()]
    table = pd.concat([pd.DataFrame(ours), PUBLISHED.assign(model="published: " + PUBLISHED["model"])],
                      ignore_index=True)
    return [Table(table, "test accuracy (%) and MCC")]


def stocknet_blocks(study: Study) -> list[Block]:
    return per_file(study, "backtest", backtest_files.STOCKNET_FILE, "StockNet benchmark",
                    backtest_files.read_stocknet, _stocknet_table)


def _canaries_table(records: dict) -> list[Block]:
    rows = [{"canary": k, **(v if isinstance(v, dict) else {"value": v})} for k, v in records.items()]
    rows = [{k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in r.items()} for r in rows]
    return [Table(pd.DataFrame(rows))]


def canaries_blocks(study: Study) -> list[Block]:
    return per_file(study, "backtest", backtest_files.CANARIES_FILE, "canaries", backtest_files.read_canaries,
                    _canaries_table)
