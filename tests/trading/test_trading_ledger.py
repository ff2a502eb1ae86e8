"""The trials ledger (issue 18.4, 21.3): headline trials only, keyed by the predictions so a rerun adds nothing,
appended in the step that publishes; a cut last line repaired with one warning, other damage refused in one line,
both before any work."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from finsae.errors import CacheCorruptError
from finsae.trading.config import StrategyConfig
from finsae.trading.ledger import check_ledger, read_trials, record_trials, trial_stats
from finsae.trading.pipeline import evaluate_backtests


def toy(seed=0, n_days=60, n_tickers=10):
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2015-06-01", periods=n_days + 1)
    rows = pd.DataFrame([(d, f"T{i}") for d in days[:-1] for i in range(n_tickers)], columns=["date", "ticker"])
    rows["ret_exec"] = rng.normal(0, 0.01, len(rows))
    preds = pd.concat([pd.DataFrame({"row": np.arange(len(rows)), "set": s, "pred_ret": rng.normal(size=len(rows))})
                       for s in ("a", "b")], ignore_index=True)
    entry = pd.Series(days[1:], index=days[:-1])
    bench = {"sp500": pd.Series(rng.normal(0, 0.01, n_days), index=days[1:])}
    return rows, preds, entry, bench


def run_once(path, rows, preds, entry, bench, published):
    strat = StrategyConfig(bootstrap=20)
    bt = evaluate_backtests(rows, preds, strat, bench, "2015-07-01", entry, read_trials(path), "run")
    added = record_trials(path, bt.trials, then=lambda: published.append(1))
    return bt, added


def test_a_rerun_of_the_same_predictions_adds_no_trial_and_only_headline_trials_count(tmp_path):
    path, published = tmp_path / "trials.jsonl", []
    rows, preds, entry, bench = toy()
    bt1, added1 = run_once(path, rows, preds, entry, bench, published)
    assert added1 == 4 and len(published) == 1  # 2 sets x 2 strategies, headline only
    assert {t["period"] for t in read_trials(path)} == {"headline"}
    bt2, added2 = run_once(path, rows, preds, entry, bench, published)
    assert added2 == 0 and len(read_trials(path)) == 4
    m1 = bt1.metrics[bt1.metrics["strategy"] != "benchmark"]
    m2 = bt2.metrics[bt2.metrics["strategy"] != "benchmark"]
    assert (m1["n_trials"] == 4).all() and (m2["n_trials"] == 4).all()
    np.testing.assert_allclose(m1["dsr"].to_numpy(), m2["dsr"].to_numpy(), rtol=1e-12)
    other = preds.assign(pred_ret=preds["pred_ret"] * -1)  # different predictions: new trials
    _, added3 = run_once(path, rows, other, entry, bench, published)
    assert added3 == 4 and trial_stats(read_trials(path))[0] == 8


def test_a_run_killed_before_it_publishes_is_not_counted_twice(tmp_path):
    path = tmp_path / "trials.jsonl"
    rows, preds, entry, bench = toy()

    def killed():
        raise KeyboardInterrupt

    bt = evaluate_backtests(rows, preds, StrategyConfig(bootstrap=20), bench, "2015-07-01", entry, [], "run")
    with pytest.raises(KeyboardInterrupt):
        record_trials(path, bt.trials, then=killed)
    _, added = run_once(path, rows, preds, entry, bench, [])
    assert added == 0 and len(read_trials(path)) == 4


def test_a_cut_last_line_is_dropped_with_one_warning_naming_the_file(tmp_path, caplog):
    path = tmp_path / "trials.jsonl"
    path.write_text('{"key": "a", "sr_daily": 0.1}\n{"key": "b", "sr_daily": 0.2}\n{"key": "c", "sr_da')
    with caplog.at_level(logging.WARNING, logger="finsae"):
        check_ledger(path)
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 1 and str(path) in msgs[0] and "cut last line" in msgs[0] and "\n" not in msgs[0]
    assert [t["key"] for t in read_trials(path)] == ["a", "b"]
    assert path.read_text().endswith("}\n")
    record_trials(path, [{"key": "d", "sr_daily": 0.3}])
    assert [t["key"] for t in read_trials(path)] == ["a", "b", "d"]


def test_a_ledger_damaged_before_its_last_line_is_refused_in_one_line(tmp_path):
    path = tmp_path / "trials.jsonl"
    path.write_text('{"key": "a", "sr_daily": 0.1}\nnot json\n{"key": "b", "sr_daily": 0.2}\n')
    before = path.read_bytes()
    with pytest.raises(CacheCorruptError) as err:
        check_ledger(path)
    assert str(path) in str(err.value) and "line 2" in str(err.value) and "\n" not in str(err.value)
    assert path.read_bytes() == before  # nothing rewritten


def test_the_stage_checks_the_ledger_before_any_work(project_root, data_dir, tmp_path):
    from hydra import compose, initialize_config_dir

    from finsae.glue.backtest_stage import check_prerequisites
    from finsae.glue.schemas import register_schemas, validate

    (tmp_path / "backtest").mkdir()
    ledger = tmp_path / "backtest" / "trials.jsonl"
    ledger.write_text('[1, 2]\n{"key": "a"}\n')
    register_schemas()
    with initialize_config_dir(config_dir=str(project_root / "conf"), version_base="1.3"):
        cfg = validate(compose("backtest", overrides=[f"paths.output_dir={tmp_path / 'run'}", "features.sets=[price]",
                                                      f"paths.artifacts={tmp_path}", f"paths.data_dir={data_dir}"]))
    with pytest.raises(CacheCorruptError, match="trials ledger"):
        check_prerequisites(cfg)


def test_full_period_rows_of_an_older_ledger_are_not_trials(tmp_path):
    path = tmp_path / "trials.jsonl"
    path.write_text('{"period": "full", "sr_daily": 0.5}\n{"period": "headline", "sr_daily": 0.1}\n'
                    '{"period": "headline", "sr_daily": 0.3}\n')
    n, var = trial_stats(read_trials(path))
    assert n == 2 and var == pytest.approx(np.var([0.1, 0.3], ddof=1), rel=1e-12)
