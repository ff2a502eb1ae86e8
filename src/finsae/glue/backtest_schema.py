"""Typed Hydra schema of `python backtest.py` (its root config and its own config groups).

The science groups *are* the core dataclasses (``features`` = :class:`finsae.trading.config.FeatureConfig`,
``strategy`` = ``StrategyConfig``, ``benchmark`` = ``BenchmarkConfig``; ``walk_forward`` and ``lgbm`` are plain
keys of the root), so each knob is declared once with its default and doc.
``register(cs)`` is called by :func:`finsae.glue.schemas.register_schemas`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from finsae.activations.config import ExtractConfig
from finsae.errors import ConfigError
from finsae.glue.base_schema import DataSchema, PairStageSchema
from finsae.paths import plain_name
from finsae.trading.config import (
    BacktestConfig, BenchmarkConfig, FeatureConfig, LgbmConfig, StrategyConfig, WalkForwardConfig,
)


@dataclass
class BacktestScriptSchema(PairStageSchema):
    """`python backtest.py`: walk-forward LightGBM on price + text features, the StockNet benchmark, and a
    backtest after costs."""

    data: DataSchema = field(default_factory=DataSchema)
    activations: ExtractConfig = field(default_factory=ExtractConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    walk_forward: WalkForwardConfig = field(default_factory=WalkForwardConfig)
    lgbm: LgbmConfig = field(default_factory=LgbmConfig)
    canaries: bool = True
    """Run the leakage canaries (oracle; realized return with 32% of signs flipped; its sign only, as a leaked
    label; shuffled target) through the same pipeline (finsae.trading.canaries)."""
    skip_if_done: bool = False
    """Return the stored summary when artifacts/backtest/{pair}/ is complete (make demo). A rerun without it
    recomputes everything; its trials enter the ledger only if its predictions differ (keyed by their hash)."""
    encode_only: str | None = None
    """``base`` or ``domain``: encode that model's tweets into the activation and tweet-encoding caches and stop,
    publishing nothing. ``make demo`` runs both beside the SAE stage, one core each; the backtest then reads them."""
    folder_name: str | None = None
    """Names artifacts/backtest/{folder_name}/ (None: the pair's folder). A second backtest of the same pair
    publishes beside the first (``features=claim folder_name=minilm_fin_claim``), reading the same analysis,
    labels and tweet caches."""
    name: str = "backtest"

    def stage_module(self) -> str:
        """The module whose ``precheck``/``run`` backtest.py runs."""
        return "finsae.glue.backtest_stage"

    def __post_init__(self):
        if self.encode_only not in (None, "base", "domain"):
            raise ConfigError(f"encode_only must be base, domain or null, got {self.encode_only!r}")
        if self.pair_name is not None:
            plain_name(self.pair_name, "pair_name")
        plain_name(self.features.tag, "features.tag")
        if self.folder_name is not None:
            plain_name(self.folder_name, "folder_name")

    def backtest_config(self) -> BacktestConfig:
        """The protocols' typed config (:class:`finsae.trading.config.BacktestConfig`)."""
        return BacktestConfig(self.features, self.strategy, self.benchmark, self.walk_forward, self.lgbm,
                              self.data.eval_start, self.canaries, self.progress_bar)


def register(cs: ConfigStore) -> None:
    cs.store(name="backtest_schema", node=BacktestScriptSchema)
    cs.store(group="features", name="_schema", node=FeatureConfig)
    cs.store(group="strategy", name="_schema", node=StrategyConfig)
    cs.store(group="benchmark", name="_schema", node=BenchmarkConfig)
