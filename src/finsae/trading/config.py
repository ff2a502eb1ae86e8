"""The knobs of the backtest stage, one dataclass per concept (each is also the Hydra schema of its group)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple

from finsae.data.corpus import EVAL_START
from finsae.errors import ConfigError, require
from finsae.trading.blocks import BLOCKS, parse_set

LATENT_CHOICES = ("all", "top_ic", "top_ic_pooled", "financial")
CHANGED_KINDS = ("specialized", "financial", "warmstart", "crosscoder")
CS_TARGETS = ("rank", "demean")
EXECUTIONS = ("open", "close")
STRATEGIES = ("long_short", "long_only")
PROTOCOLS = ("walk_forward", "stocknet")


_check = require


def _date(value: str, name: str) -> None:
    try:
        date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a date (YYYY-MM-DD)") from None


@dataclass
class FeatureConfig:
    """What each row knows (``features:`` group)."""

    sets: list[str] = field(default_factory=lambda: [
        "price", "price_base_sae", "price_domain_sae", "domain_sae", "domain_dense", "sentiment"])
    """Feature sets run side by side, each a ``_``-joined list of blocks (see ``BLOCKS``)."""
    layers: list[int] = field(default_factory=lambda: [3])
    """Layers whose SAE latents / dense states are features (each layer its own columns)."""
    tag: str = "demo"
    """SAE tag to read: artifacts/sae/{model}/layer_{i}/{tag}/."""
    latents: str = "top_ic"
    """Which SAE latents: ``all``; ``top_ic`` (the top_n by |mean over days of the per-day rank IC| on each
    training window: what ranks tickers within a day, which is what the long-short book trades);
    ``top_ic_pooled`` (by |Pearson IC pooled over all rows|: also rewards market timing, the earlier rule);
    ``financial`` (the analysis stage's financial latents, chosen on pre-evaluation text)."""
    top_n: int = 256
    """Latent columns kept per SAE block and layer by ``top_ic``."""
    changed: str = "specialized"
    """Which latents the analysis calls changed by fine-tuning bound the ``changed_sae`` block (and size the
    ``unchanged_sae`` / ``random_sae`` draws): ``specialized`` (features.parquet: financial domain latents
    whose best base match is below tau), ``financial`` (features.parquet: the domain SAE's financial
    latents), or ``warmstart`` (warmstart.parquet ``changed``: latents of the warm-started SAE, so ``tag``
    must name it, ``{analysis tag}_warm_domain``), or ``crosscoder`` (crosscoder.parquet: domain-leaning
    latents, delta above the shared range, not Latent Scaling artifacts; the pooled blocks then read the
    tweets through the pair's crosscoder of ``tag``). The pooled blocks select by ``latents`` like every
    SAE block."""
    draw_seed: int = 0
    """Seed of the ``unchanged_sae`` / ``random_sae`` draws."""
    dense_pca: int | None = 32
    """PCA components of the dense embedding, fit inside each training window (None: the raw d columns)."""
    tickers: list[str] | None = None
    """A subset of the StockNet tickers (None: all 88)."""
    start: str = "2014-01-01"
    """First trading day of the walk-forward rows (the tweets start 2014-01-01)."""
    end: str = "2016-03-31"
    """Last trading day of the walk-forward rows (the raw-text tweets end 2016-03-31)."""
    encode_batch_tokens: int = 16384
    """Token rows per SAE encode batch (memory vs speed; the result does not depend on it)."""
    encode_jobs: int = 2
    """The models' tweet encodings run side by side in this many one-thread worker processes (base and domain,
    each filling its caches); 1: one after the other in this process. The result does not depend on it."""

    def __post_init__(self):
        _check(len(self.sets) > 0, "features.sets must name at least one feature set")
        for s in self.sets:
            parse_set(s)
        _check(len(set(self.sets)) == len(self.sets), f"features.sets repeats a set: {self.sets}")
        _check(len(self.layers) > 0, "features.layers must name at least one layer")
        _check(self.latents in LATENT_CHOICES, f"features.latents must be one of {LATENT_CHOICES}, got {self.latents!r}")
        _check(self.top_n >= 1, f"features.top_n must be >= 1, got {self.top_n}")
        _check(self.changed in CHANGED_KINDS,
               f"features.changed must be one of {CHANGED_KINDS}, got {self.changed!r}")
        _check(self.dense_pca is None or self.dense_pca >= 1, f"features.dense_pca must be >= 1 or null, got {self.dense_pca}")
        _check(self.encode_batch_tokens >= 1, "features.encode_batch_tokens must be >= 1")
        _check(self.encode_jobs >= 1, f"features.encode_jobs must be >= 1, got {self.encode_jobs}")
        _date(self.start, "features.start")
        _date(self.end, "features.end")
        _check(self.start < self.end, f"features.start={self.start} must be before features.end={self.end}")
        _check(self.tickers is None or len(self.tickers) >= 2, "features.tickers needs at least 2 tickers (or null: all)")

    @property
    def blocks(self) -> tuple[str, ...]:
        """Every block some set uses, in ``BLOCKS`` order."""
        used = {b for s in self.sets for b in parse_set(s)}
        return tuple(b for b in BLOCKS if b in used)


class Knobs(NamedTuple):
    """One configuration of the turnover-aware book (:mod:`finsae.trading.book`)."""

    half_life: float
    """Half-life of the score smoothing, in trading days (0: none)."""
    band: float
    """No-trade buffer beyond the quantile, as a fraction of the day's names (0: none)."""

    @property
    def label(self) -> str:
        return f"hl{self.half_life:g}_band{self.band:g}"


@dataclass
class TurnoverConfig:
    """The turnover-aware book (``strategy.turnover``): the grid searched inside each training window, and the
    cost sweep of both books (:mod:`finsae.trading.book`)."""

    enabled: bool = True
    """Run the turnover-aware book beside the daily one (rows in metrics.csv, trials in the ledger)."""
    half_lives: list[float] = field(default_factory=lambda: [0.0, 2.0, 5.0, 10.0])
    """Half-lives, in trading days, of the exponential average of each ticker's daily rank (0: none)."""
    bands: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3])
    """No-trade buffers, as a fraction of the day's names beyond ``strategy.quantile`` (0: the daily book)."""
    min_choice_days: int = 40
    """Scored training days needed to choose the knobs; a fold with fewer trades the daily book (0, 0)."""
    cost_sweep_bps: list[float] = field(default_factory=lambda: [0.0, 5.0, 10.0, 20.0])
    """Costs per side, in basis points, at which both books' net Sharpe is reported (cost_sweep.csv)."""

    def __post_init__(self):
        _check(len(self.half_lives) > 0 and all(h >= 0 for h in self.half_lives),
               f"turnover.half_lives must be a non-empty list of numbers >= 0, got {self.half_lives}")
        _check(len(self.bands) > 0 and all(0 <= b < 1 for b in self.bands),
               f"turnover.bands must be a non-empty list of numbers in [0, 1), got {self.bands}")
        _check(self.min_choice_days >= 2,
               f"turnover.min_choice_days must be >= 2, got {self.min_choice_days}")
        _check(len(self.cost_sweep_bps) > 0 and all(c >= 0 for c in self.cost_sweep_bps),
               f"turnover.cost_sweep_bps must be a non-empty list of costs >= 0, got {self.cost_sweep_bps}")

    @property
    def grid(self) -> list[Knobs]:
        """Every (half_life, band) pair, smallest first (on a tie the less smoothed, narrower book wins)."""
        return [Knobs(float(h), float(b)) for h in sorted(set(self.half_lives))
                for b in sorted(set(self.bands))]


@dataclass
class StrategyConfig:
    """How predictions become positions, and what trading costs (``strategy:`` group)."""

    kinds: list[str] = field(default_factory=lambda: list(STRATEGIES))
    """``long_short``: top vs bottom quantile of predicted return, equal weight, dollar-neutral (gross 1);
    ``long_only``: the top quantile, equal weight (gross 1)."""
    quantile: float = 0.2
    """Fraction of the day's tickers in the top (and bottom) bucket."""
    cost_bps: float = 10.0
    """Commission + slippage, in basis points per side, charged on turnover."""
    execution: str = "open"
    """``open``: enter at the open of d+1, exit at the open of d+2; ``close``: close of d+1 to close of d+2.
    Never the close of d (the features' own time)."""
    cross_section: str = "rank"
    """Target of the long-short book's model: the executed return ranked within its day (``rank``, scaled to
    [-0.5, 0.5]) or minus the day's mean (``demean``). The long-only book and the direction rows keep the model
    of the raw return (and its sign)."""
    bootstrap: int = 1000
    """Day-block bootstrap draws for the Sharpe and rank-IC confidence intervals."""
    block_days: int = 10
    """Block length, in trading days, of the Sharpe bootstrap."""
    decay_horizons: list[int] = field(default_factory=lambda: [1, 2, 5, 10, 20])
    """Horizons, in trading days, of the signal-decay table (:mod:`finsae.trading.decay`)."""
    turnover: TurnoverConfig = field(default_factory=TurnoverConfig)
    """The turnover-aware book beside the daily one."""

    def __post_init__(self):
        _check(len(self.kinds) > 0 and set(self.kinds) <= set(STRATEGIES),
               f"strategy.kinds must be a non-empty subset of {STRATEGIES}, got {self.kinds}")
        _check(0 < self.quantile <= 0.5, f"strategy.quantile must be in (0, 0.5], got {self.quantile}")
        _check(self.cost_bps >= 0, f"strategy.cost_bps must be >= 0, got {self.cost_bps}")
        _check(self.execution in EXECUTIONS, f"strategy.execution must be one of {EXECUTIONS}, got {self.execution!r}")
        _check(self.cross_section in CS_TARGETS,
               f"strategy.cross_section must be one of {CS_TARGETS}, got {self.cross_section!r}")
        _check(self.bootstrap >= 10, f"strategy.bootstrap must be >= 10, got {self.bootstrap}")
        _check(self.block_days >= 1, f"strategy.block_days must be >= 1, got {self.block_days}")
        _check(len(self.decay_horizons) > 0 and all(int(h) == h >= 1 for h in self.decay_horizons),
               f"strategy.decay_horizons must be whole trading days >= 1, got {self.decay_horizons}")


@dataclass
class BenchmarkConfig:
    """Which evaluations run, and the published StockNet protocol (``benchmark:`` group)."""

    protocols: list[str] = field(default_factory=lambda: list(PROTOCOLS))
    """``walk_forward`` (monthly refits, then the backtest) and/or ``stocknet`` (the ACL18 splits)."""
    train_start: str = "2014-01-01"
    """StockNet train split start (ACL18)."""
    dev_start: str = "2015-08-01"
    """StockNet dev split start: early stopping and selection only."""
    test_start: str = "2015-10-01"
    """StockNet test split start: touched once."""
    test_end: str = "2016-01-01"
    """StockNet test split end (exclusive)."""
    drop_low: float = -0.005
    """Moves in [drop_low, drop_high) are dropped (ACL18)."""
    drop_high: float = 0.0055
    """Upper end of the dropped band."""
    lag_days: int = 5
    """Calendar days of tweets and prices before the target day (ACL18's 5-day lag window)."""
    exact_counts: bool = False
    """Also apply the two rules of the original preprocessed price files, which reproduce the paper's counts
    exactly (20,339 / 2,555 / 3,720): a ticker's first price row is unusable (those files normalise each row by
    the previous close), and the move is rounded to 6 decimals before the drop band. False: 20,344 train
    samples (5 more: BABA 2014-09-24/25/26, AGFS 2014-11-25, CHL 2014-04-11)."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    """LightGBM seeds over which the price-only sets are refit, to report the spread of their test accuracy."""
    bootstrap: int = 1000
    """Day-block bootstrap draws for the accuracy / MCC confidence intervals."""

    def __post_init__(self):
        _check(len(self.protocols) > 0 and set(self.protocols) <= set(PROTOCOLS),
               f"benchmark.protocols must be a non-empty subset of {PROTOCOLS}, got {self.protocols}")
        for name in ("train_start", "dev_start", "test_start", "test_end"):
            _date(getattr(self, name), f"benchmark.{name}")
        _check(self.train_start < self.dev_start < self.test_start < self.test_end,
               "benchmark dates must satisfy train_start < dev_start < test_start < test_end")
        _check(self.drop_low <= self.drop_high, "benchmark.drop_low must be <= benchmark.drop_high")
        _check(self.lag_days >= 1, f"benchmark.lag_days must be >= 1, got {self.lag_days}")
        _check(self.bootstrap >= 10, f"benchmark.bootstrap must be >= 10, got {self.bootstrap}")
        _check(len(self.seeds) >= 1, "benchmark.seeds must name at least one seed")


@dataclass
class WalkForwardConfig:
    """Expanding-window refits with purge and embargo (``walk_forward:`` of backtest.yaml)."""

    refit_days: int = 21
    """Trading days per test window (about a month): one refit each."""
    min_train_days: int = 126
    """Trading days in the first training window."""
    purge_days: int = 2
    """Trading days dropped between train and test because a row's target spans d+1..d+2."""
    embargo_days: int = 3
    """Further trading days dropped after the purge (serial correlation of features)."""
    val_days: int = 42
    """Last trading days of each training window held out for early stopping and the hyperparameter choice."""
    jobs: int = 2
    """(set, fold) fits run side by side in this many worker processes, each single-threaded (results do not
    depend on it)."""

    def __post_init__(self):
        for name in ("refit_days", "min_train_days", "val_days", "jobs"):
            _check(getattr(self, name) >= 1, f"walk_forward.{name} must be >= 1, got {getattr(self, name)}")
        _check(self.purge_days >= 2, f"walk_forward.purge_days must be >= 2 (a target spans d+1..d+2), got {self.purge_days}")
        _check(self.embargo_days >= 0, f"walk_forward.embargo_days must be >= 0, got {self.embargo_days}")
        _check(self.val_days < self.min_train_days, "walk_forward.val_days must be < walk_forward.min_train_days")

    @property
    def gap(self) -> int:
        return self.purge_days + self.embargo_days


@dataclass
class LgbmConfig:
    """LightGBM (``lgbm:`` of backtest.yaml); the grid is searched on each window's validation days only."""

    num_leaves: list[int] = field(default_factory=lambda: [7, 31])
    """Grid of tree sizes; the best on the validation days wins."""
    learning_rate: float = 0.05
    """Shrinkage."""
    n_estimators: int = 300
    """Most boosting rounds (early stopping on the validation days picks fewer)."""
    early_stopping: int = 30
    """Rounds without validation improvement before stopping."""
    min_child_samples: int = 100
    """Rows per leaf at least."""
    colsample: float = 0.8
    """Feature fraction per tree."""
    num_threads: int = 1
    """LightGBM threads (1: bit-identical reruns; the 2-core machine is shared)."""
    seed: int = 0
    """LightGBM seed."""

    def __post_init__(self):
        _check(len(self.num_leaves) > 0 and all(n >= 2 for n in self.num_leaves), "lgbm.num_leaves must be a list of ints >= 2")
        _check(self.learning_rate > 0, "lgbm.learning_rate must be > 0")
        _check(self.n_estimators >= 1 and self.early_stopping >= 1, "lgbm.n_estimators and lgbm.early_stopping must be >= 1")
        _check(0 < self.colsample <= 1, "lgbm.colsample must be in (0, 1]")
        _check(self.num_threads >= 1, "lgbm.num_threads must be >= 1")


@dataclass
class BacktestConfig:
    """What the stage's protocols (:mod:`finsae.trading.run`) read: the science groups of
    `python backtest.py` and the first day of the headline period."""

    features: FeatureConfig = field(default_factory=FeatureConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    walk_forward: WalkForwardConfig = field(default_factory=WalkForwardConfig)
    lgbm: LgbmConfig = field(default_factory=LgbmConfig)
    eval_start: str = EVAL_START
    """First day of the headline period (``data.eval_start``: no text on or after it trained an SAE)."""
    canaries: bool = True
    """Run the leakage canaries through the same pipeline."""
    progress_bar: bool = False

    def __post_init__(self):
        _date(self.eval_start, "data.eval_start")

