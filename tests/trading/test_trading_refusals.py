"""Issue 37's backtest cases, each refused in one line before any work (or, for a reader, named): a headline
period left empty by ``data.eval_start``, ``features.latents=financial`` with no financial latent, a damaged
``metrics.csv`` (and the stage's other records) read by the report, and a summary field of the wrong type."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from finsae.errors import FinsaeError
from test_trading_stage import FAST, TICKERS, backtest, compose_backtest


def _one_line(err) -> str:
    text = str(err.value) if hasattr(err, "value") else str(err)
    assert "\n" not in text and "Traceback" not in text, text
    return text


def test_an_eval_start_after_the_data_is_refused_before_any_work(project_root, data_dir, tmp_path):
    r = backtest(project_root, [f"features.tickers={TICKERS}", "features.sets=[price_count]",
                                "data.eval_start=2017-01-02", "logger=none", *FAST],
                 env={"FINSAE_ARTIFACTS": str(tmp_path), "FINSAE_DATA_DIR": str(data_dir)}, timeout=300)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-2000:]
    assert lines[0].startswith("finsae: error: data.eval_start=2017-01-02 leaves 0 walk-forward test day(s)")
    assert "no headline period" in lines[0]
    assert not (tmp_path / "backtest" / "minilm_fin").exists() and "walk-forward" not in r.stdout


def test_an_eval_start_inside_the_last_test_days_is_refused_and_one_before_them_is_not(data_dir):
    from finsae.trading.config import FeatureConfig, WalkForwardConfig
    from finsae.trading.inputs import check_headline_period, load_market

    fc = FeatureConfig(sets=["price"], tickers=["XOM", "JPM"], start="2014-01-01", end="2014-12-31")
    rows = load_market(data_dir, fc, "open").panel.rows
    wf = WalkForwardConfig(refit_days=21, min_train_days=80, val_days=20)
    last = rows["date"].max()
    with pytest.raises(FinsaeError) as err:
        check_headline_period(rows, str((last - pd.Timedelta(days=2)).date()), wf)
    assert "no headline period" in _one_line(err)
    check_headline_period(rows, "2014-10-01", wf)  # months of test days after it: fine


def _features_table(art, financial: bool):
    folder = art / "analysis" / "tiny_tiny"
    folder.mkdir(parents=True)
    pd.DataFrame({"model": ["tiny"] * 4, "layer": [1, 1, 0, 0], "latent": [0, 1, 2, 3],
                  "financial": [financial, False, True, True]}).to_parquet(folder / "features.parquet")


def _tiny_store(art, tiny_sae):
    from finsae.paths import sae_dir
    from finsae.sae.io import save

    save(tiny_sae, sae_dir(art, "tiny", 1, "t"), extra={"layer": 1})


TINY = ["pair.base=tiny", "pair.domain=tiny", "features.layers=[1]", "features.tag=t",
        "features.sets=[price_domain_sae]", "features.latents=financial"]


def test_financial_latents_with_none_financial_are_refused_before_any_work(project_root, data_dir, tmp_path,
                                                                          tiny_sae):
    from finsae.glue.backtest_stage import check_prerequisites

    _tiny_store(tmp_path, tiny_sae)
    _features_table(tmp_path, financial=False)  # layer 0 has financial latents; layer 1, the one used, none
    cfg = compose_backtest(project_root, [f"paths.artifacts={tmp_path}", f"paths.data_dir={data_dir}", *TINY])
    with pytest.raises(FinsaeError) as err:
        check_prerequisites(cfg)
    text = _one_line(err)
    assert "features.latents=financial" in text and "tiny layer 1" in text
    assert "features.latents=top_ic" in text


def test_financial_latents_with_one_financial_pass_the_checks(project_root, data_dir, tmp_path, tiny_sae):
    from finsae.glue.backtest_stage import check_prerequisites
    from finsae.trading.sets import financial_latents

    _tiny_store(tmp_path, tiny_sae)
    _features_table(tmp_path, financial=True)
    cfg = compose_backtest(project_root, [f"paths.artifacts={tmp_path}", f"paths.data_dir={data_dir}", *TINY])
    check_prerequisites(cfg)
    assert financial_latents(tmp_path, "tiny_tiny", "financial", "tiny", 1).tolist() == [0]


def _published(art, metrics: bytes | None = None, **summary) -> object:
    """A backtest folder as the stage publishes it, with ``metrics.csv`` holding ``metrics``."""
    from finsae.trading.summary import BacktestSummary

    folder = art / "backtest" / "p"
    BacktestSummary(**{"pair": "p", "protocols": ["walk_forward"], "sets": ["price"],
                       "eval_start": "2015-08-01", "cost_bps": 10.0, **summary}).write(folder)
    if metrics is not None:
        (folder / "metrics.csv").write_bytes(metrics)
    return folder


GOOD = (b"set,strategy,book,period,start,end,n_days,sharpe,gross_sharpe,psr,dsr,n_trials,cost_bps,turnover,"
        b"cost_drag,breakeven_bps,breakeven_lo,breakeven_hi\n"
        b"price,long_short,daily,headline,2015-08-03,2016-03-29,160,0.5,1.1,0.7,0.2,2,10,1.3,0.33,12.1,3.3,20.5\n")
DAMAGED = {"empty": b"", "binary": b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe" * 8 + b"\n",
           "cut": GOOD[:-9], "other columns": b"a,b\n1,2\n"}


@pytest.mark.parametrize("kind", list(DAMAGED))
def test_the_report_names_a_damaged_metrics_csv_in_one_line(tmp_path, kind):
    from finsae.report import build, results
    from finsae.report.study import Study

    folder = _published(tmp_path, DAMAGED[kind])
    for section in (build.backtest, results.backtest_page):
        text = section(Study(tmp_path))
        line = next(ln for ln in text.splitlines() if "metrics.csv" in ln)
        assert str(folder / "metrics.csv") in line and "python backtest.py" in line, (kind, line)


def test_the_report_shows_a_sound_metrics_csv(tmp_path):
    from finsae.report import build, results
    from finsae.report.study import Study

    _published(tmp_path, GOOD)
    assert "long_short" in build.backtest(Study(tmp_path))
    assert "long_short" in results.backtest_page(Study(tmp_path))


@pytest.mark.parametrize("name, text", [("canaries.json", '{"canary_oracle": 3}'), ("canaries.json", "[1]"),
                                        ("benchmark_stocknet.json", '{"sets": "x"}'),
                                        ("benchmark_stocknet.json", "{not json")])
def test_the_report_names_a_damaged_canary_or_stocknet_record(tmp_path, name, text):
    from finsae.report import build
    from finsae.report.study import Study

    folder = _published(tmp_path)
    (folder / name).write_text(text)
    section = build.canaries if name == "canaries.json" else build.stocknet
    line = next(ln for ln in section(Study(tmp_path)).splitlines() if name in ln)
    assert str(folder / name) in line


@pytest.mark.parametrize("field, value", [("sets", "price_count"), ("protocols", None), ("cost_bps", "ten"),
                                          ("n_trials", 2.5), ("strategies", [1, 2]), ("stocknet", [])])
def test_a_summary_field_of_the_wrong_type_is_named_on_read(tmp_path, field, value):
    from finsae.report import build
    from finsae.report.study import Study
    from finsae.trading.summary import BacktestSummary

    folder = _published(tmp_path)
    raw = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps({**raw, field: value}))
    with pytest.raises(FinsaeError) as err:
        BacktestSummary.read(folder)
    text = _one_line(err)
    assert str(folder / "summary.json") in text and repr(field) in text and "python backtest.py" in text
    assert str(folder / "summary.json") in build.backtest(Study(tmp_path))  # the report shows the line
