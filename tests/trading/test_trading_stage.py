"""`python backtest.py` end to end on real prices of a few tickers (price and tweet-count sets): the outputs, the
typed summary, the canaries the pipeline runs on itself, the recorded fit windows, and bad inputs refused in one
line with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from finsae.trading.config import TurnoverConfig
from finsae.trading.summary import BacktestSummary

TICKERS = "[XOM,JPM,WFC,GE,T,PFE,KO,MRK]"
FAST = ["lgbm.n_estimators=40", "lgbm.num_leaves=[7]", "walk_forward.refit_days=42", "strategy.bootstrap=100", "benchmark.bootstrap=100",
        "benchmark.seeds=[0,1]",
        "progress_bar=false"]


def backtest(project_root, args, env=None, timeout=600):
    e = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, str(project_root / "backtest.py"), *args], cwd=project_root, env=e,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def stage_out(project_root, data_dir, tmp_path_factory):
    art = tmp_path_factory.mktemp("artifacts")
    r = backtest(project_root, [f"features.tickers={TICKERS}", "features.sets=[price_count]", *FAST],
                 env={"FINSAE_ARTIFACTS": str(art), "FINSAE_DATA_DIR": str(data_dir)})
    assert r.returncode == 0, r.stderr[-3000:]
    return art / "backtest" / "minilm_fin", r


def test_stage_writes_every_output_and_a_typed_summary(stage_out):
    out, r = stage_out
    for f in ("predictions.parquet", "positions.parquet", "returns.parquet", "metrics.csv", "accuracy.csv", "rank_ic.csv",
              "benchmark_stocknet.json", "fit_windows.parquet", "canaries.json", "importance.csv",
              "tearsheet_price_count_long_short.html", "plots/equity_long_short.png",
              "plots/equity_long_only.png", "rank_ic_decay.csv", "book_knobs.csv", "cost_sweep.csv",
              "plots/rank_ic_decay.png", "plots/cost_sweep.png"):
        assert (out / f).is_file(), f
    s = BacktestSummary.read(out)
    assert s.sets == ["price_count"] and s.cost_bps == 10.0 and s.n_folds >= 8
    rows = {(x["set"], x["strategy"], x["period"]): x for x in s.strategies if x["book"] == "daily"}
    for key in (("price_count", "long_short", "headline"), ("price_count", "long_only", "full")):
        for field in ("sharpe", "sortino", "max_drawdown", "cagr", "psr", "dsr", "n_trials", "cost_bps"):
            assert field in rows[key], (key, field)
    assert rows[("price_count", "long_short", "headline")]["model"] == "cross_section_rank"
    assert rows[("price_count", "long_only", "headline")]["model"] == "raw_return"
    # headline trials only: one set x two strategies x every configuration of the turnover-aware grid (its
    # daily configuration is the daily book)
    assert 1 <= s.n_trials_eff <= s.n_trials == 2 * len(TurnoverConfig().grid)
    assert {x["book"] for x in s.strategies} == {"daily", "turnover_aware", "benchmark"}
    assert set(s.books) == {"daily", "turnover_aware"} and s.books["daily"]["period"] == "headline"
    assert {r["period"] for r in s.decay} == {"headline"}
    assert {r["horizon"] for r in s.decay} == {1, 2, 5, 10, 20}
    assert {r["model"] for r in s.rank_ic} == {"cross_section", "raw_return"}
    assert rows[("price_count", "long_short", "headline")]["start"] >= s.eval_start
    bench = json.loads((out / "benchmark_stocknet.json").read_text())
    assert {"accuracy", "mcc", "accuracy_lo", "accuracy_hi", "n_test"} <= set(bench["sets"]["price_count"])
    assert bench["sets"]["always_up"]["mcc"] == 0.0
    assert {"price_no_index", "price_acl18"} <= set(bench["sets"]) and "vs_always_up_lo" in bench["sets"]["price_count"]
    assert set(bench["seed_spread"]) == {"price", "price_no_index", "price_acl18"}
    acc = pd.read_csv(out / "accuracy.csv")
    assert acc.loc[acc["set"] == "always_up", "mcc"].eq(0).all() and "vs_always_up" in acc
    pos = pd.read_parquet(out / "positions.parquet")
    pred = pd.read_parquet(out / "predictions.parquet")
    assert pos["date"].min() >= pred["date"].min()  # positions only where there are out-of-sample predictions
    assert "stocknet: samples train/dev/test" in r.stdout


def test_skip_if_done_returns_the_stored_summary(project_root, stage_out, data_dir):
    out, _ = stage_out
    before = (out / "summary.json").read_text()
    r = backtest(project_root, ["skip_if_done=true"], env={"FINSAE_ARTIFACTS": str(out.parents[1]),
                                                           "FINSAE_DATA_DIR": str(data_dir)}, timeout=120)
    assert r.returncode == 0 and "is complete" in r.stdout, r.stderr[-2000:]
    assert (out / "summary.json").read_text() == before


def test_a_second_backtest_of_the_pair_publishes_beside_the_first(project_root, stage_out, data_dir):
    import shutil

    out, _ = stage_out
    twin = out.parent / "minilm_fin_claim"
    shutil.copytree(out, twin)
    summary = (out / "summary.json").read_text()
    (twin / "summary.json").write_text(summary.replace('"price_count"', '"marked"'))
    r = backtest(project_root, ["skip_if_done=true", "folder_name=minilm_fin_claim"],
                 env={"FINSAE_ARTIFACTS": str(out.parents[1]), "FINSAE_DATA_DIR": str(data_dir)}, timeout=120)
    assert r.returncode == 0 and f"{twin} is complete" in r.stdout, r.stderr[-2000:]
    assert BacktestSummary.read(twin).sets == ["marked"]  # the named folder's summary, not the pair's
    shutil.rmtree(twin)


def test_canaries_run_by_the_pipeline(stage_out):
    c = json.loads((stage_out[0] / "canaries.json").read_text())
    assert c["canary_oracle"]["accuracy"] > 0.95  # the pipeline sees signal when there is some
    assert c["canary_flip32"]["gross_sharpe_long_short"] > 3.0  # a leak looks like this
    assert c["canary_sign_flip32"]["gross_sharpe_long_short"] > 1.5 and "sign" in c["canary_sign_flip32"]["what"]
    # the magnitude is a stronger leak than the sign alone
    assert c["canary_flip32"]["gross_sharpe_long_short"] > c["canary_sign_flip32"]["gross_sharpe_long_short"]
    assert c["canary_flip32"]["sharpe_long_short"] > c["canary_shuffled"]["sharpe_long_short"] + 1.5
    assert 0.44 < c["canary_shuffled"]["accuracy"] < 0.56  # chance
    assert c["canary_shuffled"]["dsr_long_short"] < 0.95  # not significant


def test_recorded_fit_windows_end_before_their_test_days(stage_out):
    w = pd.read_parquet(stage_out[0] / "fit_windows.parquet")
    assert {"lgbm_return", "lgbm_direction", "book_knobs:long_short", "book_knobs:long_only"} <= set(
        w["what"])
    knobs = w["what"].str.startswith("book_knobs:")  # the knob choice reads its whole training window
    assert w.loc[knobs, "val_start"].isna().all()
    assert (w.loc[knobs, "rows_end"] < w.loc[knobs, "test_start"]).all()
    w = w[~knobs]
    assert (w["fit_end"] < w["val_start"]).all() and (w["val_end"] < w["test_start"]).all()
    assert set(w["protocol"]) == {"walk_forward", "stocknet", "canary"}
    wf = w[w["protocol"] != "stocknet"]
    # purge + embargo (2 + 3): more than 5 trading days between the last validation day and the first test day,
    # and between the last fit day and the first validation day (weekdays; holidays only add to the count)
    gap = lambda a, b: np.busday_count(a.to_numpy().astype("datetime64[D]"), b.to_numpy().astype("datetime64[D]"))  # noqa: E731
    assert gap(wf["val_end"], wf["test_start"]).min() >= 6  # np.busday_count excludes the end day
    assert gap(wf["fit_end"], wf["val_start"]).min() >= 6
    assert (wf["test_start"] >= pd.Timestamp("2014-07-01")).all()
    sn = w[w["protocol"] == "stocknet"]  # ACL18: train < 2015-08-01 <= dev < 2015-10-01 <= test
    assert (sn["fit_end"] < pd.Timestamp("2015-08-01")).all() and (sn["val_end"] < pd.Timestamp("2015-10-01")).all()
    assert (sn["test_start"] >= pd.Timestamp("2015-10-01")).all()


CONFIG_ROWS = [
    ("strategy.cost_bps=-1", "strategy.cost_bps must be >= 0"),
    ("strategy.execution=close_of_d", "strategy.execution must be one of"),
    ("strategy.quantile=0.9", "strategy.quantile must be in (0, 0.5]"),
    ("features.sets=[price_foo]", "features.sets has 'price_foo'"),
    ("features.latents=best", "features.latents must be one of"),
    ("features.start=2016-13-01", "features.start='2016-13-01' is not a date"),
    ("walk_forward.purge_days=1", "walk_forward.purge_days must be >= 2"),
    ("benchmark.protocols=[backtest]", "benchmark.protocols must be a non-empty subset"),
    ("lgbm.num_leaves=[1]", "lgbm.num_leaves must be a list of ints >= 2"),
    ("strategy.turnover.bands=[1.5]", "turnover.bands must be a non-empty list of numbers in [0, 1)"),
    ("strategy.turnover.cost_sweep_bps=[-5]", "turnover.cost_sweep_bps must be a non-empty list of costs"),
    ("strategy.decay_horizons=[0,5]", "strategy.decay_horizons must be whole trading days >= 1"),
    ("+features.kk=1", "unknown config key(s) ['features.kk']"),
    ("folder_name=a/b", "folder_name"),
]


def compose_backtest(project_root, overrides):
    from hydra import compose, initialize_config_dir

    from finsae.glue.schemas import register_schemas, validate

    register_schemas()
    with initialize_config_dir(config_dir=str(project_root / "conf"), version_base="1.3"):
        return validate(compose("backtest", overrides=["paths.output_dir=/tmp/finsae-test", *overrides]))


@pytest.mark.parametrize("override, message", CONFIG_ROWS, ids=[r[0] for r in CONFIG_ROWS])
def test_bad_config_is_one_line(project_root, override, message):
    from finsae.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        compose_backtest(project_root, [override])
    assert message in str(err.value) and "\n" not in str(err.value)


MISSING_ROWS = [
    (["features.tag=nope"], "artifacts", "`python train.py experiment=demo model=minilm layer=3 tag=nope`"),
    (["features.layers=[9]"], "artifacts", "layer=9 is outside the model"),
    (["features.sets=[price]"], "data", "StockNet"),
]


@pytest.mark.parametrize("overrides, empty, message", MISSING_ROWS, ids=[r[0][0] for r in MISSING_ROWS])
def test_missing_prerequisites_are_named_before_any_work(project_root, data_dir, tmp_path, overrides, empty, message):
    from finsae.errors import FinsaeError
    from finsae.glue.backtest_stage import check_prerequisites

    where = {"artifacts": [f"paths.artifacts={tmp_path}", f"paths.data_dir={data_dir}"],
             "data": [f"paths.data_dir={tmp_path}"]}[empty]
    cfg = compose_backtest(project_root, [*where, *overrides])
    with pytest.raises(FinsaeError) as err:
        check_prerequisites(cfg)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_bad_command_exits_2_with_one_line(project_root, tmp_path):
    r = backtest(project_root, ["features.tag=nope"], env={"FINSAE_ARTIFACTS": str(tmp_path)}, timeout=120)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("finsae: error: SAE of minilm layer 3")
    assert not (tmp_path / "backtest" / "minilm_fin").exists()
