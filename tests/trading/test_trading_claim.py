"""Issue 35 §3, the seed's claim tested: the changed / unchanged / random latent pools (same size, same SAE,
read from the analysis contract), the selection inside each training window, and the paired differences
with their paragraph on planted truth (a return signal in a changed latent is found; none planted, none
claimed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from finsae.errors import ConfigError, FinsaeError
from finsae.paths import analysis_dir
from finsae.trading import artifacts
from finsae.trading.blocks import pool_block, swap_block
from finsae.trading.claim import claim_pairs, claim_paragraph, claim_table
from finsae.trading.config import FeatureConfig, LgbmConfig, StrategyConfig, WalkForwardConfig
from finsae.trading.encode import Encoded
from finsae.trading.features import Block
from finsae.trading.latent_pools import Flags, draw_pools, latent_pools
from finsae.trading.pipeline import book_model, evaluate_backtests, walk_forward_predictions
from finsae.trading.sets import assemble_sets, text_blocks
from finsae.trading.text_features import DocFeatures

M, CHANGED = 30, [0, 1, 2, 3, 4]
SETS = ["changed_sae", "unchanged_sae", "random_sae", "sentiment"]
ROLES = {"base": "base_m", "domain": "dom_m"}
WF = WalkForwardConfig(refit_days=20, min_train_days=60, val_days=20, purge_days=2, embargo_days=0, jobs=1)
LGBM = LgbmConfig(num_leaves=[4], n_estimators=40, early_stopping=10, min_child_samples=20)


def _features_parquet(root, pair, specialized):
    folder = analysis_dir(root, pair)
    folder.mkdir(parents=True)
    n = M
    pd.DataFrame({"model": ["dom_m"] * n + ["base_m"] * n, "layer": 3,
                  "latent": np.r_[np.arange(n), np.arange(n)],
                  "financial": np.r_[np.isin(np.arange(n), CHANGED), np.zeros(n, bool)],
                  "specialized": np.r_[np.isin(np.arange(n), specialized), np.zeros(n, bool)],
                  "n_active_docs": np.r_[np.where(np.arange(n) == n - 1, 0, 5), np.full(n, 5)]}
                 ).to_parquet(folder / "features.parquet")


def test_the_draws_match_the_changed_size_come_from_the_same_sae_and_only_from_live_latents():
    latent = np.arange(100, 140)
    changed = np.isin(latent, [101, 105, 120])
    live = latent != 139
    pools = draw_pools(Flags(latent, changed, live), seed=0)
    assert pools.changed.tolist() == [101, 105, 120]
    assert len(pools.unchanged) == len(pools.random) == 3
    assert set(pools.unchanged) <= set(latent[live & ~changed])  # unchanged: never a changed latent
    assert set(pools.random) <= set(latent[live]) and 139 not in pools.random
    again = draw_pools(Flags(latent, changed, live), seed=0)
    assert again.unchanged.tolist() == pools.unchanged.tolist()  # a seeded draw
    other = [draw_pools(Flags(latent, changed, live), seed=s).unchanged.tolist() for s in range(1, 6)]
    assert any(o != pools.unchanged.tolist() for o in other)
    with pytest.raises(ConfigError, match="only 1 live unchanged"):
        draw_pools(Flags(latent[:4], np.array([1, 1, 0, 1], bool), np.ones(4, bool)), 0)


def test_pools_are_read_through_the_analysis_contract_and_a_kind_with_no_changed_latent_is_refused(tmp_path):
    fc = FeatureConfig(sets=["changed_sae", "unchanged_sae"], layers=[3], changed="specialized")
    with pytest.raises(FinsaeError) as e:
        latent_pools(tmp_path, "p", ROLES, fc)
    assert "features.parquet" in str(e.value) and "\n" not in str(e.value)
    _features_parquet(tmp_path, "p", specialized=[7, 9])
    pools = latent_pools(tmp_path, "p", ROLES, fc)
    assert list(pools) == [("dom_m", 3)]  # the domain model's SAE: the blocks read its latents
    assert pools["dom_m", 3].changed.tolist() == [7, 9] and len(pools["dom_m", 3].unchanged) == 2
    assert latent_pools(tmp_path, "p", ROLES, FeatureConfig(sets=["price_domain_sae"], layers=[3])) == {}
    _features_parquet(tmp_path / "none", "p", specialized=[])
    with pytest.raises(ConfigError) as e:
        latent_pools(tmp_path / "none", "p", ROLES, fc)
    msg = str(e.value)
    assert "features.changed=specialized" in msg and "dom_m layer 3" in msg and "\n" not in msg
    warm = FeatureConfig(sets=["changed_sae"], layers=[3], changed="warmstart", tag="demo")
    with pytest.raises(ConfigError, match="features.tag=demo_warm_domain"):
        latent_pools(tmp_path, "p", ROLES, warm)


def test_the_set_names_pair_through_the_block_grammar():
    assert swap_block("price_changed_sae", "changed_sae", "unchanged_sae") == "price_unchanged_sae"
    assert swap_block("price_domain_sae", "changed_sae", "unchanged_sae") is None
    assert pool_block("random") == "random_sae"
    pairs = claim_pairs(["price_changed_sae", "price_unchanged_sae", "price_sentiment", "changed_sae"])
    assert pairs == [("unchanged", "price_changed_sae", "price_unchanged_sae"),
                     ("sentiment", "price_changed_sae", "price_sentiment")]


# -- planted truth -------------------------------------------------------------------------------------------
def world(signal: float, n_days=180, n_tickers=20, seed=0):
    """Rows of ``n_tickers`` x ``n_days``; per row one "tweet" whose SAE latents are sparse non-negative
    noise, except that changed latent 0 tracks the row's idiosyncratic return with strength ``signal``; the
    twin's sentiment is noise."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2014-01-01", periods=n_days)
    dates = np.repeat(days.to_numpy(), n_tickers)
    n = len(dates)
    idio = rng.normal(0, 0.01, n)
    ret = np.repeat(rng.normal(0, 0.01, n_days), n_tickers) + idio
    x = rng.random((n, M)) * (rng.random((n, M)) < 0.4)
    x[:, 0] = np.log1p(np.exp(signal * idio / 0.01 + rng.normal(0, 1, n)))  # softplus: >= 0
    tickers = np.tile([f"T{i}" for i in range(n_tickers)], n_days)
    rows = pd.DataFrame({"date": pd.DatetimeIndex(dates), "ticker": tickers, "ret_exec": ret,
                         "up_exec": (ret > 0).astype(float)})
    enc = Encoded()
    xs = sp.csr_matrix(x.astype(np.float32))
    enc.docs[("domain", 3)] = DocFeatures(np.ones(n, np.int64), xs, xs, np.zeros((n, 2), np.float32))
    enc.sentiment = rng.dirichlet(np.ones(3), n).astype(np.float32)
    enc.labels = ["negative", "neutral", "positive"]
    return rows, enc


def pooled_sets(rows, enc):
    """The four sets from the rows' text blocks, each "tweet" a row of its own, pools drawn with seed 1."""
    flags = Flags(np.arange(M), np.isin(np.arange(M), CHANGED), np.ones(M, bool))
    pools = {("dom_m", 3): draw_pools(flags, seed=1)}
    pairs = pd.DataFrame({"row": np.arange(len(rows)), "doc": np.arange(len(rows))})
    text = text_blocks(ROLES, enc, pairs, len(rows), lambda model, layer: None,
                       lambda model, layer: pools.get((model, layer)))
    price = Block("price", "plain", np.zeros((len(rows), 1), np.float32), ["p"])  # no set uses it
    return assemble_sets(SETS, price, text), pools


def run_claim(signal: float, seed: int = 0):
    rows, enc = world(signal, seed=seed)
    sets, pools = pooled_sets(rows, enc)
    fc = FeatureConfig(sets=SETS, layers=[3], top_n=3)
    wf = walk_forward_predictions(rows, sets, WF, LGBM, fc)
    cal = pd.DatetimeIndex(sorted(rows["date"].unique()))
    entry = pd.Series(cal[1:].append(pd.DatetimeIndex([cal[-1] + pd.Timedelta(days=1)])), index=cal)
    bench = {"sp500": pd.Series(0.0, index=entry.to_numpy())}
    sc = StrategyConfig(bootstrap=200, block_days=5)
    bt = evaluate_backtests(rows, wf.predictions, sc, bench, "2014-06-01", entry, [], "r")
    table = claim_table(rows, wf.predictions, bt.returns, sc.kinds, lambda k, p: book_model(k, p, sc)[0],
                        "2014-06-01", sc.block_days, sc.bootstrap, "specialized")
    return wf, bt, table, pools


@pytest.fixture(scope="module")
def planted():
    return run_claim(signal=1.0)


def test_the_backtest_page_carries_the_paragraph_and_names_a_damaged_claim_table(planted, tmp_path):
    from finsae.report import build, results
    from finsae.report.study import Study
    from finsae.trading.summary import BacktestSummary

    folder = tmp_path / "backtest" / "p"
    BacktestSummary(pair="p", protocols=["walk_forward"], sets=SETS, eval_start="2014-06-01",
                    cost_bps=10.0).write(folder)
    artifacts.write_claim(folder, planted[2])
    paragraph = claim_paragraph(planted[2])
    assert paragraph in results.backtest_page(Study(tmp_path))
    assert "? Yes:" in build.backtest(Study(tmp_path))
    artifacts.table_path(folder, "claim").write_text("a,b\n1,2\n")
    line = next(ln for ln in results.backtest_page(Study(tmp_path)).splitlines() if "claim.csv" in ln)
    assert str(artifacts.table_path(folder, "claim")) in line and "python backtest.py" in line


def test_a_return_signal_planted_in_a_changed_latent_is_found_against_unchanged_and_sentiment(planted,
                                                                                              tmp_path):
    wf, bt, table, pools = planted
    t = table[(table["metric"] == "rank_ic") & (table["strategy"] == "long_short")
              & (table["period"] == "headline")].set_index("comparison")
    assert set(t.index) == {"unchanged", "random", "sentiment"}
    assert t.loc["unchanged", "diff_lo"] > 0 and t.loc["sentiment", "diff_lo"] > 0
    assert t.loc["unchanged", "set"] == "changed_sae" and t.loc["unchanged", "baseline"] == "unchanged_sae"
    net = table[(table["metric"] == "net_return") & (table["strategy"] == "long_short")
                & (table["period"] == "headline")].set_index("comparison")
    assert net.loc["unchanged", "diff"] > 0
    text = claim_paragraph(table)
    assert "? Yes:" in text and "headline period" in text and "\n" not in text
    assert f"{t.loc['unchanged', 'diff']:+.4f}" in text  # worded from the table's numbers
    # the new sets are trials like every set: each (set, book) enters the ledger
    assert {(r["set"], r["strategy"]) for r in bt.trials} >= {(s, "long_short") for s in SETS}
    # the selection stays inside each pool (the changed latents' columns only in changed_sae)
    imp = wf.importance
    chosen = imp[imp["set"] == "unchanged_sae"]["feature"].str.rsplit(":", n=1).str[-1].astype(int)
    assert set(chosen) <= set(pools["dom_m", 3].unchanged)
    artifacts.write_claim(tmp_path, table)
    back = artifacts.read_claim(tmp_path)
    np.testing.assert_allclose(back["diff"], table["diff"], rtol=1e-12)


def test_with_no_planted_signal_the_intervals_hold_zero_and_the_paragraph_claims_nothing():
    # seed 2: a typical null draw (seed 0's changed set happens to sit 3 standard errors above 0 by chance)
    _, _, table, _ = run_claim(signal=0.0, seed=2)
    t = table[(table["metric"] == "rank_ic") & (table["strategy"] == "long_short")
              & (table["period"] == "headline")].set_index("comparison")
    assert t.loc["unchanged", "diff_lo"] < 0 < t.loc["unchanged", "diff_hi"]
    text = claim_paragraph(table)
    assert "? No evidence:" in text and "holds 0" in text


def test_the_paragraph_says_no_when_the_changed_latents_do_worse_and_says_when_nothing_was_paired():
    row = {"comparison": "unchanged", "set": "changed_sae", "baseline": "unchanged_sae", "metric": "rank_ic",
           "strategy": "long_short", "period": "full", "diff": -0.05, "diff_lo": -0.08, "diff_hi": -0.02,
           "mean_set": 0.0, "mean_baseline": 0.05, "n_days": 40, "changed": "warmstart"}
    text = claim_paragraph(pd.DataFrame([row]))
    assert "(warmstart)" in text and "? No:" in text and "-0.0500 [-0.0800, -0.0200]" in text
    assert "not tested" in claim_paragraph(pd.DataFrame(columns=list(row)))
    above = {**row, "diff": 0.05, "diff_lo": 0.02, "diff_hi": 0.08}
    text = claim_paragraph(pd.DataFrame([above]))  # beats the unchanged latents, but no sentiment ran
    assert "? No evidence:" in text and "exceeds the unchanged latents" in text
    assert "no sentiment set ran" in text


def test_the_pooled_selection_happens_inside_the_training_window(monkeypatch):
    """Changing the test period's returns changes no selected latent; changing the fit period's does (the
    check can fail)."""
    import finsae.trading.walk_forward as wfm
    from finsae.trading.walk_forward import folds, run_fold

    rows, enc = world(signal=0.5)
    sets, pools = pooled_sets(rows, enc)
    dates = rows["date"].to_numpy()
    fold = folds(np.unique(dates), WF)[1]
    chosen = []
    real = wfm.fit_block

    def spy(b, *a, **k):
        f = real(b, *a, **k)
        chosen.append((b.name, None if f.columns is None else tuple(f.columns)))
        return f

    monkeypatch.setattr(wfm, "fit_block", spy)

    def selected(ret):
        chosen.clear()
        for name in ("changed_sae", "unchanged_sae", "random_sae"):
            run_fold(fold, sets[name], dates, ret, (ret > 0).astype(float), LGBM, "top_ic", 3, None,
                     shap_rows=0, y_cs=ret)
        return dict(chosen)

    ret = rows["ret_exec"].to_numpy()
    base = selected(ret)
    m = enc.docs["domain", 3].sae_sum.shape[1]
    for pool in ("changed", "unchanged", "random"):
        latents = np.asarray(base[f"{pool}_sae_L3"])[:3]
        assert set(latents) <= set(getattr(pools["dom_m", 3], pool)) and len(latents) == 3
        assert base[f"{pool}_sae_L3"][3:] == tuple(latents + m)  # each latent's mean and max
    rng = np.random.default_rng(5)
    future = ret.copy()
    test = np.isin(dates, fold.test_days) | (dates > fold.test_days[-1])
    future[test] = rng.permutation(future[test]) * 10
    assert selected(future) == base
    past = ret.copy()
    fit = np.isin(dates, fold.fit_days)
    past[fit] = rng.permutation(past[fit])
    assert selected(past) != base


def test_the_stage_refuses_changed_sets_without_a_changed_latent_before_any_work(project_root, data_dir,
                                                                                  tmp_path, tiny_sae):
    from finsae.glue.backtest_stage import check_prerequisites
    from finsae.paths import sae_dir
    from finsae.sae.io import save
    from test_trading_stage import compose_backtest

    save(tiny_sae, sae_dir(tmp_path, "tiny", 1, "t"), extra={"layer": 1})
    folder = analysis_dir(tmp_path, "tiny_tiny")
    folder.mkdir(parents=True)
    table = pd.DataFrame({"model": "tiny", "layer": [1, 1, 0, 0], "latent": [0, 1, 2, 3],
                          "financial": [True, False, True, True], "specialized": [False, False, True, True],
                          "n_active_docs": 3})
    table.to_parquet(folder / "features.parquet")
    args = [f"paths.artifacts={tmp_path}", f"paths.data_dir={data_dir}", "pair.base=tiny", "pair.domain=tiny",
            "features.layers=[1]", "features.tag=t", "features.sets=[changed_sae,unchanged_sae]"]
    with pytest.raises(FinsaeError) as err:  # layer 0 has specialized latents; layer 1, the one used, none
        check_prerequisites(compose_backtest(project_root, args))
    text = str(err.value)
    assert "features.changed=specialized" in text and "tiny layer 1" in text and "\n" not in text
    cfg = compose_backtest(project_root, [*args, "features.changed=financial"])
    check_prerequisites(cfg)  # one financial latent at layer 1, and one unchanged live latent to draw


def test_the_claim_features_config_pairs_every_baseline(project_root):
    from test_trading_stage import compose_backtest

    cfg = compose_backtest(project_root, ["features=claim"])
    assert [c for c, _, _ in claim_pairs(cfg.features.sets)] == ["unchanged", "random", "sentiment"]
    assert cfg.features.changed == "specialized"


# -- the crosscoder's domain-leaning latents -----------------------------------------------------------------
def test_crosscoder_pools_take_domain_leaning_live_latents_that_are_no_artifacts(tmp_path):
    folder = analysis_dir(tmp_path, "p")
    folder.mkdir(parents=True)
    from finsae.analysis.crosscoder import CROSSCODER_COLUMNS

    delta = np.array([0.95, 0.7, 0.95, 0.5, 0.1, 0.97, 0.3, 0.45])
    cls = np.array(["domain_only", "other", "domain_only", "shared", "base_only", "dead", "other", "shared"])
    t = pd.DataFrame({c: np.nan for c in CROSSCODER_COLUMNS}, index=range(8)).assign(
        layer=3, latent=np.arange(8), delta=delta, **{"class": cls},
        artifact=[False, False, True, False, False, False, False, False], financial=False)
    t.to_parquet(folder / "crosscoder.parquet")
    fc = FeatureConfig(sets=["changed_sae", "unchanged_sae"], layers=[3], changed="crosscoder")
    pools = latent_pools(tmp_path, "p", ROLES, fc)["dom_m", 3]
    assert pools.changed.tolist() == [0, 1]  # 2: a sparsity artifact; 5: dead
    assert set(pools.unchanged) <= {2, 3, 4, 6, 7} and len(pools.unchanged) == 2


def test_the_pooled_blocks_read_the_tweets_through_the_pairs_crosscoder(tmp_path, tiny_model, tiny_sae):
    """Both models' token rows, each block scaled as the crosscoder was trained, through the crosscoder: the
    pooled blocks' columns are its latents; a missing crosscoder is named before any encoding."""
    import torch

    from finsae.activations.config import ExtractConfig
    from finsae.errors import DataMissingError
    from finsae.sae import SaeTrainConfig, TopKSAE
    from finsae.sae.io import save
    from finsae.trading import encode
    from finsae.trading.latent_pools import crosscoder_dir
    from finsae.trading.text_features import tweet_corpus
    from finsae.paths import sae_dir

    roles = {"base": "tiny", "domain": "tiny"}
    fc = FeatureConfig(sets=["changed_sae", "random_sae"], layers=[1], tag="t", changed="crosscoder",
                       encode_jobs=1)
    save(tiny_sae, sae_dir(tmp_path, "tiny", 1, "t"), extra={"layer": 1})
    with pytest.raises(DataMissingError, match="task=crosscoder layer=1"):
        encode.check_encoders(roles, fc, tmp_path)
    torch.manual_seed(1)
    xc = TopKSAE(SaeTrainConfig(expansion_factor=2, k=3).crosscoder_config(tiny_model.d_model, 0))
    save(xc, crosscoder_dir(tmp_path, roles, 1, "t"),
         extra={"layer": 1, "crosscoder": {"block_scales": [0.5, 2.0]}})
    encode.check_encoders(roles, fc, tmp_path)
    frame = pd.DataFrame({"ticker": ["A", "B", "A"], "created_at": pd.to_datetime(
        ["2014-03-03 15:00", "2014-03-03 15:30", "2014-03-04 15:00"], utc=True),
        "text": ["$A beats estimates", "$B cuts guidance", "$A shares fall after the call"]})
    corpus, doc_of = tweet_corpus(frame)
    enc = encode.encode_tweets(roles, fc, ExtractConfig(max_length=32, batch_size=2, dtype="fp32"), tmp_path,
                               tmp_path / "cache", "2015-08-01", corpus, progress=False)
    docs = enc.crosscoder[1]
    assert docs.sae_sum.shape == (3, xc.cfg.num_latents)
    from finsae.activations import build_activations
    from finsae.paths import activations_root

    store = build_activations(tiny_model, corpus, [1], activations_root(tmp_path),
                              ExtractConfig(max_length=32, batch_size=2, dtype="fp32"), progress=False,
                              inference_only=True)[1]  # from the cache the encoding filled
    doc = np.asarray(store.table.column("doc"))
    for i in range(3):  # each tweet's latents by hand: [0.5 h, 2.0 h] (both models are one here)
        h = torch.from_numpy(np.asarray(store.array[np.flatnonzero(doc == i)], np.float32))
        out = xc.encode(torch.cat([0.5 * h, 2.0 * h], dim=-1))
        want = np.zeros(xc.cfg.num_latents)
        np.add.at(want, out.latent_indices.numpy().ravel(), out.latent_acts.detach().numpy().ravel())
        np.testing.assert_allclose(docs.sae_sum[i].toarray().ravel(), want, rtol=1e-5, atol=1e-6)
    one = enc.crosscoder_name
    pools = {("tiny", 1): draw_pools(Flags(np.arange(xc.cfg.num_latents), np.arange(xc.cfg.num_latents) < 4,
                                           np.ones(xc.cfg.num_latents, bool)), 0)}
    pairs = pd.DataFrame({"row": [0, 1, 2], "doc": doc_of})
    text = text_blocks(roles, enc, pairs, 3, lambda m, l_: None, lambda m, l_: pools.get((m, l_)))
    block = text["changed_sae"][0]
    assert block.columns[0] == f"{one}:L1:mean:0" and one.startswith("crosscoder_")
    np.testing.assert_array_equal(block.latents, pools["tiny", 1].changed)
    assert block.matrix.shape[1] == 2 * xc.cfg.num_latents


def test_latent_ids_of_another_sae_tag_and_an_unknown_kind_are_refused(tmp_path):
    from finsae.analysis.summary import AnalysisSummary

    _features_parquet(tmp_path, "p", specialized=[7, 9])
    AnalysisSummary(pair="p", base="base_m", domain="dom_m", tag="demo", seed_tag="demo_s1").write(
        analysis_dir(tmp_path, "p"))
    fc = FeatureConfig(sets=["changed_sae", "unchanged_sae"], layers=[3], tag="other")
    with pytest.raises(ConfigError, match="features.tag=demo$"):
        latent_pools(tmp_path, "p", ROLES, fc)
    assert latent_pools(tmp_path, "p", ROLES, FeatureConfig(sets=fc.sets, layers=[3], tag="demo"))
    with pytest.raises(ConfigError, match="features.changed must be one of"):
        FeatureConfig(changed="drifted")
