"""The backtest stage's science core: dataset rows, the StockNet protocol, walk-forward LightGBM, the backtest,
its metrics and leakage canaries. Pure numpy/pandas/scipy/lightgbm/quantstats; no Hydra, Lightning or W&B.

One row per (ticker, trading day d): features known at the 16:00 New York close of d
(:mod:`finsae.trading.prices`, :mod:`finsae.trading.text_features`), targets that start after it
(:mod:`finsae.trading.targets`). :mod:`finsae.trading.walk_forward` predicts out of sample,
:mod:`finsae.trading.backtest` turns predictions into positions and returns after costs,
:mod:`finsae.trading.metrics` scores them (quantstats, PSR/DSR), :mod:`finsae.trading.stocknet` runs the published
ACL18 protocol.

The stage's contract: :mod:`finsae.trading.inputs` loads what it reads, :mod:`finsae.trading.blocks` is the
grammar of feature sets and their column names, :mod:`finsae.trading.run` runs the two protocols over a
typed :class:`~finsae.trading.config.BacktestConfig`, and :mod:`finsae.trading.artifacts` names, writes and
reads back every file under ``artifacts/backtest/``.
"""
