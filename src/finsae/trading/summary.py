"""The backtest stage's typed summary (``artifacts/backtest/{pair}/summary.json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from finsae.summary import StageSummary

@dataclass
class BacktestSummary(StageSummary):
    MAKES: ClassVar[str] = "python backtest.py"

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
    """One record per (set, strategy, book, period): ``book`` (``daily`` or ``turnover_aware``), ``model``
    (what the book trades: ``cross_section_rank`` / ``cross_section_demean`` for long-short, ``raw_return`` for
    long-only), ``sharpe``, ``sortino``, ``max_drawdown``, ``cagr``, ``psr``, ``dsr``, ``n_trials``, ``dsr_eff``,
    ``n_trials_eff``, ``cost_bps``, ``turnover``, ``cost_drag``, ``breakeven_bps`` / ``_lo`` / ``_hi``,
    ``sharpe_lo``/``sharpe_hi``, ... (also in metrics.csv)."""
    accuracy: list[dict] = field(default_factory=list)
    """Walk-forward direction accuracy / MCC per set and period, first ``always_up``; each set's difference from
    it with a paired day CI (``vs_always_up``)."""
    rank_ic: list[dict] = field(default_factory=list)
    """Mean per-day rank IC of every set's predictions (cross-sectional and raw-return models) per period, with a
    day-block bootstrap interval (also rank_ic.csv)."""
    books: dict = field(default_factory=dict)
    """Per book (``daily``, ``turnover_aware``): its headline over every (set, strategy)
    (:class:`finsae.trading.page_text.BookHeadline`: the best net Sharpe with its set, gross Sharpe and DSR;
    the medians of net Sharpe, turnover, cost drag and breakeven cost; how many break even above the
    cost)."""
    decay: list[dict] = field(default_factory=list)
    """The signal-decay rows of the headline period (rank_ic_decay.csv has both periods)."""
    claim: list[dict] = field(default_factory=list)
    """The seed's claim tested: paired daily differences of rank IC and net return, changed latents minus
    unchanged / random latents / the twin's sentiment, with day-block intervals (also claim.csv)."""
    stocknet: dict = field(default_factory=dict)
    """Per set (first ``always_up``; ``price_no_index`` and ``price_acl18`` beside the configured sets):
    ``accuracy``, ``mcc``, CI bounds, the difference from always-up with a paired day CI (``vs_always_up``,
    ``_lo``, ``_hi``), ``n_test`` (also benchmark_stocknet.json)."""
    stocknet_seeds: dict = field(default_factory=dict)
    """Per price-only set (``price``, ``price_no_index``, ``price_acl18``): test accuracy over the LightGBM seeds
    (``accuracy_min``/``max``/``mean``, ``mcc_mean``, ``seeds``)."""
    stocknet_counts: dict = field(default_factory=dict)
    """Our train / dev / test sample counts (the paper: 20,339 / 2,555 / 3,720)."""
    canaries: dict = field(default_factory=dict)
    """The leakage canaries' accuracy, Sharpe and DSR."""
    n_rows: int = 0
    """Walk-forward rows (ticker x day)."""
    n_folds: int = 0
    """Monthly refits."""
    n_trials: int = 0
    """Headline trials in the ledger (with this run's) when the DSR was computed."""
    n_trials_eff: int = 0
    """Their effective number of independent trials (return series clustered by correlation)."""
    encode_seconds: float = 0.0
    """Tweet encoding and per-tweet feature reduction (0 when cached)."""
    model_seconds: float = 0.0
    """Walk-forward, StockNet fits and canaries."""
    seconds: float = 0.0
    """The whole stage."""
