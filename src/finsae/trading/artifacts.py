"""The backtest stage's artifact contract: what `python backtest.py` writes under
``artifacts/backtest/{pair}/`` (:func:`finsae.paths.backtest_dir`), and the one typed reader of each file for
everyone who reads it (the protocols, the glue, the report, tests).

Files::

    predictions.parquet positions.parquet returns.parquet  the walk-forward's out-of-sample rows
    metrics.csv accuracy.csv rank_ic.csv importance.csv    its tables (per set, strategy, book, period, ...)
    rank_ic_decay.csv                                      the signal's rank IC at 1-20 days (decay)
    book_knobs.csv cost_sweep.csv                          the turnover-aware book's knobs per fold; both
                                                           books' net Sharpe at each cost of the sweep
    benchmarks.csv canaries.json                           the market benchmarks' returns; the canaries
    benchmark_stocknet.json                                the published ACL18 protocol
    fit_windows.parquet                                    every fitted object's rows (the leakage check's)
    claim.csv                                              changed vs unchanged / random latents / sentiment
    plots/equity_{kind}.png  tearsheet_{set}_{kind}.html   figures
    plots/rank_ic_decay.png plots/cost_sweep.png
    summary.json                                           ``BacktestSummary``

and beside the pair folders, ``artifacts/backtest/trials.jsonl`` (the trials ledger,
:mod:`finsae.trading.ledger`).
A missing or damaged file fails through its reader in one line naming the file and :data:`MAKES`.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pandas as pd

from finsae import atomic
from finsae.atomic import write_json
from finsae.errors import DataMissingError, FinsaeError
from finsae.summary import SUMMARY_FILE
from finsae.trading.summary import BacktestSummary

MAKES = "python backtest.py"
"""The command that makes every file here."""
LEDGER_FILE = "trials.jsonl"
"""The trials ledger, in ``artifacts/backtest/`` (shared by every pair)."""
PLOTS_DIR = "plots"
CANARIES_FILE = "canaries.json"
STOCKNET_FILE = "benchmark_stocknet.json"
FIT_WINDOWS_FILE = "fit_windows.parquet"


class TableSpec(NamedTuple):
    file: str
    what: str
    columns: tuple[str, ...]
    """Columns every reader may rely on (the writer writes more)."""


TABLES = {
    "predictions": TableSpec("predictions.parquet", "backtest predictions",
                             ("set", "fold", "ticker", "date", "pred_ret", "prob_up")),
    "positions": TableSpec("positions.parquet", "backtest positions",
                           ("date", "set", "strategy", "book", "ticker", "weight")),
    "returns": TableSpec("returns.parquet", "backtest returns",
                         ("date", "set", "strategy", "book", "net", "gross", "turnover", "cost")),
    "metrics": TableSpec("metrics.csv", "backtest metrics",
                         ("set", "strategy", "book", "period", "start", "end", "n_days", "sharpe",
                          "gross_sharpe", "psr", "dsr", "n_trials", "cost_bps", "turnover", "cost_drag",
                          "breakeven_bps", "breakeven_lo", "breakeven_hi")),
    "accuracy": TableSpec("accuracy.csv", "backtest direction accuracy",
                          ("set", "model", "period", "accuracy", "mcc")),
    "rank_ic": TableSpec("rank_ic.csv", "backtest rank IC", ("set", "model", "period", "rank_ic", "n_days")),
    "rank_ic_decay": TableSpec("rank_ic_decay.csv", "backtest signal decay",  # = decay.DecayRow's fields
                               ("set", "period", "window", "horizon", "ic", "lo", "hi", "n_days",
                                "block_days")),
    "book_knobs": TableSpec("book_knobs.csv", "backtest turnover-aware knobs",
                            ("set", "strategy", "fold", "train_start", "train_end", "test_start", "test_end",
                             "half_life", "band", "train_sharpe", "n_train_days")),
    "cost_sweep": TableSpec("cost_sweep.csv", "backtest cost sweep",
                            ("set", "strategy", "book", "period", "cost_bps", "net_sharpe", "net_sharpe_lo",
                             "net_sharpe_hi")),
    "importance": TableSpec("importance.csv", "backtest feature importance",
                            ("set", "feature", "gain", "shap")),
    "benchmarks": TableSpec("benchmarks.csv", "backtest market benchmarks", ("date",)),
    "claim": TableSpec("claim.csv", "backtest changed-latents claim",
                       ("comparison", "set", "baseline", "metric", "strategy", "period", "diff", "diff_lo",
                        "diff_hi", "n_days", "changed")),
    "fit_windows": TableSpec(FIT_WINDOWS_FILE, "backtest fit windows",
                             ("set", "what", "fit_start", "fit_end", "test_start", "test_end", "protocol")),
}
"""Every table by name: its file, what it is called in an error, and its columns."""


class WalkForwardTables(NamedTuple):
    """The walk-forward protocol's tables, as written."""

    predictions: pd.DataFrame
    positions: pd.DataFrame
    returns: pd.DataFrame
    metrics: pd.DataFrame
    accuracy: pd.DataFrame
    rank_ic: pd.DataFrame
    importance: pd.DataFrame
    benchmarks: pd.DataFrame
    """``date`` index, one column per market benchmark."""
    canaries: dict
    """Per canary: what it is, accuracy, MCC, Sharpe net and gross, DSR, CAGR."""
    rank_ic_decay: pd.DataFrame
    """:func:`finsae.trading.decay.rank_ic_decay` of every set's traded score, per period."""
    book_knobs: pd.DataFrame
    """The turnover-aware book's knobs per (set, strategy, fold) (empty: no such book ran)."""
    cost_sweep: pd.DataFrame
    """Both books' net Sharpe per (set, strategy, book, period) at each cost (empty: no sweep)."""


class StocknetBenchmark(NamedTuple):
    """``benchmark_stocknet.json``."""

    sets: dict
    """Per set: accuracy, MCC, their CIs, the difference from always-up, ``n_test``."""
    seed_spread: dict
    """Per price-only set: test accuracy over the LightGBM seeds."""
    counts: dict
    """Our train / dev / test sample counts."""
    published_counts: dict
    published: list
    """The paper's table (one record per model)."""


# -- paths -------------------------------------------------------------------------------------------------
def table_path(folder: str | Path, name: str) -> Path:
    return Path(folder) / TABLES[name].file


def equity_plot_path(folder: str | Path, kind: str) -> Path:
    return Path(folder) / PLOTS_DIR / f"equity_{kind}.png"


def decay_plot_path(folder: str | Path) -> Path:
    return Path(folder) / PLOTS_DIR / "rank_ic_decay.png"


def cost_sweep_plot_path(folder: str | Path) -> Path:
    return Path(folder) / PLOTS_DIR / "cost_sweep.png"


def tearsheet_path(folder: str | Path, set_name: str, kind: str) -> Path:
    return Path(folder) / f"tearsheet_{set_name}_{kind}.html"


def tearsheet_paths(folder: str | Path) -> list[Path]:
    return sorted(Path(folder).glob("tearsheet_*.html"))


def ledger_path(backtest_root: str | Path) -> Path:
    return Path(backtest_root) / LEDGER_FILE


# -- writers -------------------------------------------------------------------------------------------------
def write_walk_forward(folder: Path, t: WalkForwardTables) -> None:
    """Write the walk-forward's tables into ``folder`` (a staging folder: the glue publishes it)."""
    folder = Path(folder)
    t.predictions.to_parquet(table_path(folder, "predictions"), index=False)
    t.positions.to_parquet(table_path(folder, "positions"), index=False)
    t.returns.to_parquet(table_path(folder, "returns"), index=False)
    for name in ("metrics", "accuracy", "rank_ic", "importance", "rank_ic_decay"):
        getattr(t, name).to_csv(table_path(folder, name), index=False)
    for name in ("book_knobs", "cost_sweep"):  # only when the turnover-aware book ran
        if len(getattr(t, name)):
            getattr(t, name).to_csv(table_path(folder, name), index=False)
    t.benchmarks.to_csv(table_path(folder, "benchmarks"))
    write_json(folder / CANARIES_FILE, t.canaries)
    (folder / PLOTS_DIR).mkdir(exist_ok=True)


def write_stocknet(folder: Path, bench: StocknetBenchmark) -> None:
    write_json(Path(folder) / STOCKNET_FILE, bench._asdict())


def write_fit_windows(folder: Path, windows: pd.DataFrame) -> None:
    """Every fitted object's record (nothing when no protocol fitted anything)."""
    if len(windows):
        windows.to_parquet(table_path(folder, "fit_windows"), index=False)


def write_claim(folder: Path, table: pd.DataFrame) -> None:
    """``claim.csv`` (:func:`finsae.trading.claim.claim_table`; nothing when no set was paired)."""
    if len(table):
        table.to_csv(table_path(folder, "claim"), index=False)


def has_claim(folder: str | Path) -> bool:
    return table_path(folder, "claim").is_file()


# -- readers -------------------------------------------------------------------------------------------------
def read_table(folder: str | Path, name: str) -> pd.DataFrame:
    """Table ``name`` of :data:`TABLES` in ``folder``, checked (missing, damaged, or without its columns: one
    line naming the file and :data:`MAKES`)."""
    spec = TABLES[name]
    return atomic.read_table(Path(folder) / spec.file, spec.what, spec.columns, MAKES)


def read_metrics(folder: str | Path) -> pd.DataFrame:
    """``metrics.csv``: one row per (set, strategy, period)."""
    return read_table(folder, "metrics")


def read_decay(folder: str | Path) -> pd.DataFrame:
    """``rank_ic_decay.csv``: one row per (set, period, window, horizon) (:mod:`finsae.trading.decay`)."""
    types = {"set": str, "period": str, "window": str, "horizon": int}
    return read_table(folder, "rank_ic_decay").astype(types)


def has_table(folder: str | Path, name: str) -> bool:
    """Whether table ``name`` is in ``folder`` (``book_knobs`` only when the turnover-aware book ran,
    ``claim`` only when a changed set was paired, ``rank_ic_decay`` and ``cost_sweep`` since they were
    added)."""
    return table_path(folder, name).is_file()


def read_claim(folder: str | Path) -> pd.DataFrame:
    """``claim.csv``: the paired differences of the changed-latent sets (:mod:`finsae.trading.claim`)."""
    return read_table(folder, "claim")


def _record(path: Path, what: str) -> dict:
    raw = atomic.read_json(path, what, f"rerun `{MAKES}`")
    if not isinstance(raw, dict):
        raise FinsaeError(f"{path} ({what}) is not a JSON object; rerun `{MAKES}`")
    return raw


def read_canaries(folder: str | Path) -> dict[str, dict]:
    """``canaries.json``: per canary, its record."""
    path = Path(folder) / CANARIES_FILE
    raw = _record(path, "backtest canaries")
    bad = [k for k, v in raw.items() if not isinstance(v, dict)]
    if bad:
        raise FinsaeError(f"{path} (backtest canaries) holds {bad[0]!r}, which is not a record; "
                          f"rerun `{MAKES}`")
    return raw


def read_stocknet(folder: str | Path) -> StocknetBenchmark:
    """``benchmark_stocknet.json``."""
    path = Path(folder) / STOCKNET_FILE
    raw = _record(path, "StockNet benchmark")
    kinds = {f: list if f == "published" else dict for f in StocknetBenchmark._fields}
    bad = [f for f, kind in kinds.items() if not isinstance(raw.get(f), kind)]
    if bad or not all(isinstance(v, dict) for v in raw["sets"].values()):
        raise FinsaeError(f"{path} (StockNet benchmark) lacks or garbles {bad or ['sets']}; rerun `{MAKES}`")
    return StocknetBenchmark(**{f: raw[f] for f in StocknetBenchmark._fields})


def read_summary(folder: str | Path) -> BacktestSummary:
    """``summary.json`` of ``folder`` as a :class:`BacktestSummary`, its fields' types checked."""
    path = Path(folder) / SUMMARY_FILE
    if not path.is_file():
        raise DataMissingError("backtest summary", path, f"Make it with `{MAKES}`.")
    return BacktestSummary.read(path)
