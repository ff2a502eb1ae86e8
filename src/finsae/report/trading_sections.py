"""The trading stage's report sections (:mod:`~finsae.report.sections`): the backtest, StockNet beside the
published baselines, and the leakage canaries; each read through the backtest's contract
(:mod:`finsae.trading.artifacts`).

A table of the backtest's contract in the backtest section is one line of :data:`BACKTEST_TABLES`; a table
needing more than a column pick is a block appended in :func:`_backtest_pair` (the books side by side, the
signal decay, the claim). Each backtest folder is a pair of the section: the demo's walk-forward pair and
its claim folder (``{pair}_claim``, ``features=claim``). A table its reader refuses (an old ``metrics.csv``
without ``book``) is its one "rerun" line, once.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from finsae.report.blocks import per_file, per_pair, pick, plots
from finsae.report.sections import Block, Figure, Table, Text, Unreadable
from finsae.report.study import Study, store_label
from finsae.trading import artifacts as backtest_files
from finsae.trading.page_text import backtest_paragraphs


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
    ContractTable("metrics", "strategies after costs, per book, with PSR/DSR, the trials count and breakeven",
                  ("set", "strategy", "book", "period", "sharpe", "sharpe_lo", "sharpe_hi", "gross_sharpe",
                   "sortino", "max_drawdown", "cagr", "psr", "dsr", "n_trials", "dsr_eff", "n_trials_eff",
                   "turnover", "cost_drag", "breakeven_bps", "breakeven_lo", "breakeven_hi")),
]
"""The contract's tables the backtest section shows, in order, each where its file exists."""
BOOKS = ("daily", "turnover_aware")
"""The books shown side by side (``metrics.csv`` ``book``; the benchmark rows are the market's)."""
BOOK_COLUMNS = ("sharpe", "gross_sharpe", "dsr", "turnover", "cost_drag", "breakeven_bps")
"""What the side-by-side table shows of each book: one column per (measure, book) (the intervals are in the
metrics table below it)."""
BOOK_FIELDS = {"best_net_sharpe": "best net Sharpe",
               "median_breakeven_bps": "median breakeven (bps per side)"}
"""The summary's per-book headline fields (``BacktestSummary.books``) in the key/value table."""


class _Reads:
    """A backtest folder's tables, each read once through the contract; an unreadable one's error is shown
    once (its first use), its later uses show nothing."""

    def __init__(self, study: Study, folder: Path):
        self.study, self.folder, self.got, self.shown = study, folder, {}, set()

    def table(self, name: str) -> pd.DataFrame | None:
        """Table ``name``, or None when absent or unreadable (see :meth:`errors`)."""
        if name not in self.got:
            if not backtest_files.table_path(self.folder, name).is_file():
                self.got[name] = None
            else:
                reader = READERS.get(name, partial(backtest_files.read_table, name=name))
                self.got[name] = self.study.through(reader, self.folder, backtest_files.TABLES[name].file)
        value = self.got[name]
        return None if isinstance(value, str) else value

    def errors(self, *names: str) -> list[Block]:
        """The one-line errors of ``names`` not shown yet."""
        out = [n for n in names if isinstance(self.got.get(n), str) and n not in self.shown]
        self.shown |= set(out)
        return [Unreadable(self.got[n]) for n in out]


READERS = {"metrics": backtest_files.read_metrics, "rank_ic_decay": backtest_files.read_decay,
           "claim": backtest_files.read_claim}
"""The contract's typed readers of the tables that have one (the rest: ``read_table``)."""


def _contract_table(reads: _Reads, spec: ContractTable) -> list[Block]:
    df = reads.table(spec.name)
    if df is None:
        return reads.errors(spec.name)
    for col, value in (spec.rows or {}).items():
        df = df[df[col] == value]
    return [Table(pick(df, list(spec.columns)), spec.caption, max_rows=None)]


def _headline_period(df: pd.DataFrame) -> str:
    return "headline" if (df["period"] == "headline").any() else "full"


def books_side_by_side(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per (set, strategy) of the headline period (else the full one), each of
    :data:`BOOK_COLUMNS` once per book of :data:`BOOKS` (``sharpe daily``, ``sharpe turnover_aware``, ...)."""
    m = metrics[metrics["book"].isin(BOOKS) & (metrics["period"] == _headline_period(metrics))]
    values = [c for c in BOOK_COLUMNS if c in m.columns]
    if m.empty or not values:
        return pd.DataFrame()
    wide = m.pivot_table(index=["set", "strategy"], columns="book", values=values, aggfunc="first",
                         sort=False)
    cols = [(v, b) for v in values for b in BOOKS if (v, b) in wide.columns]
    out = wide[cols]
    out.columns = [f"{v} {b}" for v, b in cols]
    return out.reset_index()


def decay_table(decay: pd.DataFrame) -> pd.DataFrame:
    """Set × horizon of the headline period's daily rank IC, each cell ``ic [lo, hi]``."""
    d = decay[(decay["period"] == _headline_period(decay)) & (decay["window"] == "day")]
    if d.empty:
        return pd.DataFrame()
    cells = d.assign(cell=[f"{r.ic:+.4f} [{r.lo:+.4f}, {r.hi:+.4f}]" for r in d.itertuples()])
    wide = cells.pivot_table(index="set", columns="horizon", values="cell", aggfunc="first", sort=False)
    wide.columns = [f"{int(h)} day{'s' * (int(h) != 1)}" for h in wide.columns]
    return wide.reset_index()


def _figure(study: Study, path: Path, caption: str) -> list[Block]:
    return [Figure(caption, path=study.png(path), label=store_label(path))] if path.is_file() else []


def _paragraphs(reads: _Reads) -> list[Block]:
    """The stage's generated paragraphs; without readable metrics (absent, or refused: its one line), those
    of the decay and the claim still."""
    metrics = reads.table("metrics")
    refused = reads.errors("metrics")
    if metrics is None and not refused:  # absent: the books paragraph says no book was backtested
        metrics = pd.DataFrame(columns=list(backtest_files.TABLES["metrics"].columns))
    decay, claim = reads.table("rank_ic_decay"), reads.table("claim")
    text = backtest_paragraphs(metrics, decay, claim)
    return [*refused, *reads.errors("rank_ic_decay", "claim"), *(Text(t) for t in text)]


def _settings(s) -> Table:
    fields = {"sets": s.sets, "protocols": s.protocols, "cost (bps per side)": s.cost_bps,
              "walk-forward rows": s.n_rows, "folds": s.n_folds, "trials (for the DSR)": s.n_trials,
              "eval start": s.eval_start}
    for book in BOOKS:
        head = (s.books or {}).get(book) or {}
        fields |= {f"{what} ({book.replace('_', '-')})": head.get(key) for key, what in BOOK_FIELDS.items()}
    return Table.of_mapping(fields)


def _backtest_pair(study: Study, folder: Path, s) -> list[Block]:
    reads = _Reads(study, folder)
    blocks: list[Block] = [_settings(s), *_paragraphs(reads)]
    metrics = reads.table("metrics")
    if metrics is not None:
        blocks.append(Table(books_side_by_side(metrics), "daily and turnover-aware books side by side "
                            "(headline period)", max_rows=None))
        blocks += _figure(study, backtest_files.cost_sweep_plot_path(folder), "net Sharpe by cost per side")
    decay = reads.table("rank_ic_decay")
    if decay is not None:
        blocks.append(Table(decay_table(decay), "signal decay: daily rank IC by horizon [95% day-block CI]",
                            max_rows=None))
        blocks += _figure(study, backtest_files.decay_plot_path(folder), "rank IC by horizon")
    for spec in BACKTEST_TABLES:
        blocks += _contract_table(reads, spec)
    claim = reads.table("claim")
    if claim is not None:
        headline = claim[claim["period"] == _headline_period(claim)]
        blocks.append(Table(headline, "changed latents: paired diffs"))
    shown = {backtest_files.decay_plot_path(folder), backtest_files.cost_sweep_plot_path(folder)}
    return blocks + [f for f in plots(study, folder) if f.path not in shown]


def backtest_blocks(study: Study) -> list[Block]:
    """Each backtest folder (the demo's walk-forward pair, its claim folder ``{pair}_claim``) as a pair."""
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
