"""The backtest stage's typed summary (``artifacts/backtest/{pair}/summary.json``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from finsae.summary import StageSummary


@dataclass
class BacktestSummary(StageSummary):
    pair: str
    """Names the output folder."""
    protocols: list[str]
    """What ran: ``walk_forward`` and/or ``stocknet``."""
    sets: list[str]
    """Feature sets, side by side."""
    eval_start: str
    """First day of the headline (clean) period."""
    cost_bps: float
    """Per side, on turnover."""
    strategies: list[dict] = field(default_factory=list)
    """One record per (set, strategy, period): ``sharpe``, ``sortino``, ``max_drawdown``, ``cagr``, ``psr``, ``dsr``,
    ``n_trials``, ``cost_bps``, ``turnover``, ``sharpe_lo``/``sharpe_hi``, ... (also in metrics.csv)."""
    accuracy: list[dict] = field(default_factory=list)
    """Walk-forward direction accuracy / MCC per set and period."""
    stocknet: dict = field(default_factory=dict)
    """Per set: ``accuracy``, ``mcc``, CI bounds, ``n_test`` (also benchmark_stocknet.json)."""
    stocknet_counts: dict = field(default_factory=dict)
    """Our train / dev / test sample counts (the paper: 20,339 / 2,555 / 3,720)."""
    canaries: dict = field(default_factory=dict)
    """The leakage canaries' accuracy, Sharpe and DSR."""
    n_rows: int = 0
    """Walk-forward rows (ticker x day)."""
    n_folds: int = 0
    """Monthly refits."""
    n_trials: int = 0
    """Trials in the ledger when the DSR was computed."""
    encode_seconds: float = 0.0
    """Tweet encoding and per-tweet feature reduction (0 when cached)."""
    model_seconds: float = 0.0
    """Walk-forward, StockNet fits and canaries."""
    seconds: float = 0.0
    """The whole stage."""
