"""The backtest's contract: the feature-block grammar (one table; set names and column names each a paired
format and parse), and the artifact files (one module names them; what its writer writes, its readers read
back)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finsae.errors import ConfigError, FinsaeError
from finsae.trading import artifacts, blocks

SRC = Path(__file__).resolve().parents[2] / "src" / "finsae"


@pytest.mark.parametrize("n", [1, 2, 3])
def test_every_set_name_round_trips(n):
    for combo in itertools.permutations(blocks.BLOCKS, n):
        name = blocks.set_name(combo)
        assert blocks.parse_set(name) == combo
        assert blocks.set_name(blocks.parse_set(name)) == name


@pytest.mark.parametrize("bad", ["price_foo", "price_price", "_price", "domain", "price_"])
def test_a_set_name_not_made_of_blocks_is_refused(bad):
    with pytest.raises(ConfigError, match="features.sets has"):
        blocks.parse_set(bad)


def test_a_set_takes_the_tweet_count_once_before_its_first_text_block():
    assert blocks.set_members("price") == ("price",)
    assert blocks.set_members("price_count") == ("price", "count")
    assert blocks.set_members("price_domain_sae") == ("price", "count", "domain_sae")
    assert blocks.set_members("sentiment_count_price") == ("count", "sentiment", "price")
    assert blocks.set_members("domain_dense_base_sae") == ("count", "domain_dense", "base_sae")


def test_what_each_block_needs_comes_from_the_table():
    assert blocks.needed(["price", "count"]) == {"base": set(), "domain": set()}
    assert blocks.needed(["base_sae", "domain_dense", "sentiment"]) == {"base": {"sae"},
                                                                        "domain": {"dense", "sentiment"}}
    assert blocks.uses_sae(["price", "domain_sae"]) and not blocks.uses_sae(["domain_dense", "sentiment"])
    assert [blocks.role_block(r, e) for r in blocks.ROLES for e in ("sae", "dense")] == [
        "base_sae", "base_dense", "domain_sae", "domain_dense"]


def test_every_layer_column_round_trips():
    for model, layer, agg, i in itertools.product(["minilm_fin", "bert-base.v2"], [0, 11],
                                                  ["mean", "max", "dense"], [0, 24575]):
        col = blocks.LayerColumn(model, layer, agg, i)
        assert blocks.parse_column(blocks.format_column(col)) == col
    for other in ("tweet_count", "ret_1", "sentiment:positive", "domain_dense_L3:pc0", "m:L3:mean:x",
                  "m:3:max:1"):
        assert blocks.parse_column(other) is None
    with pytest.raises(ValueError):
        blocks.format_column(blocks.LayerColumn("a:b", 1, "mean", 2))


def test_block_columns_parse_back_to_their_model_layer_and_latent():
    sae, dense = blocks.sae_columns("m", 3, 4), blocks.dense_columns("m", 3, 2)
    assert [blocks.parse_column(c) for c in sae] == [blocks.LayerColumn("m", 3, a, i) for a in blocks.AGGS
                                                     for i in range(4)]
    parts = blocks.latent_parts(pd.Series(sae + dense + ["tweet_count", *blocks.sentiment_columns(["up"])]))
    assert parts.columns.tolist() == ["model", "layer", "agg", "latent"]
    assert parts["latent"].iloc[:8].tolist() == [str(i) for i in range(4)] * 2
    assert parts.iloc[8:].isna().all().all()  # dense, count and sentiment columns are no latent


def _tables() -> artifacts.WalkForwardTables:
    rng = np.random.default_rng(0)
    d = pd.date_range("2015-01-02", periods=6, freq="B")
    preds = pd.DataFrame({"set": "price", "fold": 0, "pred_ret": rng.normal(size=6),
                          "pred_cs": rng.normal(size=6), "prob_up": rng.random(6), "ticker": "XOM", "date": d,
                          "ret_exec": rng.normal(size=6), "up_exec": 1.0})
    pos = pd.DataFrame({"date": d, "set": "price", "strategy": "long_short", "book": "daily", "ticker": "XOM",
                        "weight": 0.5})
    ret = pd.DataFrame({"date": d, "set": "price", "strategy": "long_short", "book": "daily",
                        "net": rng.normal(size=6) / 100, "gross": 0.01, "turnover": 0.3, "cost": 0.0003})
    metrics = pd.DataFrame({"set": ["price"], "strategy": ["long_short"], "book": ["turnover_aware"],
                            "period": ["full"], "start": ["2015-01-02"], "end": ["2015-01-09"], "n_days": [6],
                            "sharpe": [0.1 + 1e-15], "gross_sharpe": [0.3], "psr": [0.5], "dsr": [0.25],
                            "n_trials": [1], "cost_bps": [10.0], "turnover": [0.3], "cost_drag": [0.07],
                            "breakeven_bps": [33.3], "breakeven_lo": [-1.0], "breakeven_hi": [70.0]})
    acc = pd.DataFrame({"set": ["price"], "model": ["direction"], "period": ["full"], "accuracy": [0.5],
                        "mcc": [0.0]})
    ric = pd.DataFrame({"set": ["price"], "model": ["raw_return"], "period": ["full"], "rank_ic": [0.01],
                        "n_days": [6]})
    imp = pd.DataFrame({"set": ["price"], "feature": ["ret_1"], "gain": [1.0], "shap": [0.2]})
    bench = pd.DataFrame({"sp500": rng.normal(size=6)}, index=pd.DatetimeIndex(d, name="date"))
    decay = pd.DataFrame({"set": "price", "period": "full", "window": ["cumulative", "day"], "horizon": 5,
                          "ic": [0.02, 0.01], "lo": [0.01, -0.01], "hi": [0.03, 0.02], "n_days": 6,
                          "block_days": 10})
    knobs = pd.DataFrame({"set": ["price"], "strategy": ["long_short"], "fold": [0], "train_start": [d[0]],
                          "train_end": [d[1]], "test_start": [d[3]], "test_end": [d[-1]], "half_life": [5.0],
                          "band": [0.1], "train_sharpe": [0.7],
                          "n_train_days": [120]})
    sweep = pd.DataFrame({"set": "price", "strategy": "long_short", "book": "daily", "period": "full",
                          "cost_bps": [0.0, 5.0], "net_sharpe": [0.5, 0.1], "net_sharpe_lo": [-0.5, -0.9],
                          "net_sharpe_hi": [1.5, 1.1]})
    return artifacts.WalkForwardTables(preds, pos, ret, metrics, acc, ric, imp, bench,
                                       {"canary_oracle": {"x": 1}}, decay, knobs, sweep)


def test_what_the_writer_writes_the_readers_read_back(tmp_path):
    t = _tables()
    artifacts.write_walk_forward(tmp_path, t)
    for name in ("predictions", "positions", "returns"):
        pd.testing.assert_frame_equal(artifacts.read_table(tmp_path, name), getattr(t, name),
                                      check_exact=True)
    pd.testing.assert_frame_equal(artifacts.read_metrics(tmp_path), t.metrics, check_exact=True)  # all digits
    for name in ("accuracy", "rank_ic", "importance", "cost_sweep"):
        pd.testing.assert_frame_equal(artifacts.read_table(tmp_path, name), getattr(t, name))
    pd.testing.assert_frame_equal(artifacts.read_decay(tmp_path), t.rank_ic_decay)
    knobs = artifacts.read_table(tmp_path, "book_knobs")
    days = ("train_start", "train_end", "test_start", "test_end")
    pd.testing.assert_frame_equal(knobs, t.book_knobs.astype(dict.fromkeys(days, str)))
    assert artifacts.has_table(tmp_path, "book_knobs") and artifacts.has_table(tmp_path, "cost_sweep")
    (tmp_path / "daily_only").mkdir()
    artifacts.write_walk_forward(tmp_path / "daily_only", t._replace(book_knobs=pd.DataFrame()))
    assert not artifacts.has_table(tmp_path / "daily_only", "book_knobs")  # no turnover-aware book, no file
    assert artifacts.has_table(tmp_path / "daily_only", "cost_sweep")
    assert artifacts.read_canaries(tmp_path) == t.canaries
    bench = artifacts.StocknetBenchmark({"price": {"accuracy": 0.5}}, {}, {"train": 1}, {"train": 2},
                                        [{"m": 1}])
    artifacts.write_stocknet(tmp_path, bench)
    assert artifacts.read_stocknet(tmp_path) == bench
    artifacts.write_fit_windows(tmp_path, pd.DataFrame())
    assert not artifacts.table_path(tmp_path, "fit_windows").exists()  # nothing fitted, no file


def test_a_missing_table_names_the_command_that_makes_it(tmp_path):
    with pytest.raises(FinsaeError, match=r"metrics.csv.*python backtest.py"):
        artifacts.read_metrics(tmp_path)


FILE_NAME = re.compile(r"""["']([\w.{}-]+\.(?:csv|parquet|json|jsonl|html|png))["']""")


def test_no_backtest_file_name_is_spelled_outside_the_contract():
    """The files under artifacts/backtest/ are named in finsae/trading/artifacts.py only: the protocols, the
    glue and the report go through it."""
    owned = set(FILE_NAME.findall((SRC / "trading" / "artifacts.py").read_text()))
    assert {"metrics.csv", "canaries.json", "benchmark_stocknet.json", "trials.jsonl"} <= owned
    readers = [*(SRC / "trading").glob("*.py"), SRC / "glue" / "backtest_stage.py",
               *(SRC / "report").glob("*.py")]
    spelled = {(p.relative_to(SRC).as_posix(), n) for p in readers if p.name != "artifacts.py"
               for n in FILE_NAME.findall(p.read_text()) if n in owned or re.sub(r"\{.*?\}", "", n) in
               {re.sub(r"\{.*?\}", "", o) for o in owned}}
    assert spelled == set()
