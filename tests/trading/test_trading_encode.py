"""The tweets through the models and SAEs: the two models' encodings made side by side in worker processes give
what one process gives, and the stage process then only reads them from the caches."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def tweets(data_dir, small_tickers):
    from finsae.data.stocknet_tweets import load_stocknet_tweets_raw
    from finsae.trading.text_features import tweet_corpus

    return tweet_corpus(load_stocknet_tweets_raw(data_dir, small_tickers))[0]


def _artifacts(root, tiny_sae):
    from finsae.paths import sae_dir
    from finsae.sae.io import save

    save(tiny_sae, sae_dir(root, "tiny", 1, "t"), extra={"layer": 1})
    return root


@pytest.mark.parametrize("jobs", [1, 2])
def test_side_by_side_encodings_match_one_process(tmp_path, tweets, tiny_model, tiny_sae, monkeypatch, jobs):
    from finsae.activations.config import ExtractConfig
    from finsae.trading import encode
    from finsae.trading.config import FeatureConfig

    roles = {"base": "tiny", "domain": "tiny"}
    fc = FeatureConfig(sets=["price_base_sae", "domain_sae", "domain_dense"], layers=[1], tag="t", encode_jobs=jobs)
    act = ExtractConfig(max_length=64, batch_size=4, dtype="fp32")
    ref_root = _artifacts(tmp_path / "ref", tiny_sae)
    ref = encode.encode_tweets(roles, FeatureConfig(**{**fc.__dict__, "encode_jobs": 1}), act, ref_root,
                               ref_root / "tweet_cache", "2015-08-01", tweets, progress=False)
    root = _artifacts(tmp_path / "run", tiny_sae)
    computed = []
    real = encode.encode_docs
    monkeypatch.setattr(encode, "encode_docs", lambda *a, **k: computed.append(1) or real(*a, **k))
    got = encode.encode_tweets(roles, fc, act, root, root / "tweet_cache", "2015-08-01", tweets, progress=False)
    # side by side, the workers computed everything (this process's patched encoder never ran); alone, it did
    assert (len(computed) == 0) if jobs == 2 else (len(computed) > 0)
    assert set(got.docs) == set(ref.docs) == {("base", 1), ("domain", 1)}
    for key, docs in ref.docs.items():
        a, b = got.docs[key], docs
        np.testing.assert_array_equal(a.sae_sum.toarray(), b.sae_sum.toarray())
        np.testing.assert_allclose(a.dense_sum, b.dense_sum, rtol=1e-6, atol=1e-6)
    assert got.n_tokens == ref.n_tokens > 0


def test_encode_jobs_below_one_is_refused():
    from finsae.errors import ConfigError
    from finsae.trading.config import FeatureConfig

    with pytest.raises(ConfigError, match="features.encode_jobs must be >= 1"):
        FeatureConfig(encode_jobs=0)


def test_encode_only_fills_the_caches_the_backtest_reads_and_publishes_nothing(project_root, data_dir, small_tickers,
                                                                               tiny_sae, tmp_path, monkeypatch):
    """``backtest.py encode_only=base`` (make demo's tweets job) encodes that model's tweets under the backtest's own
    config: the backtest's encoding of that model then computes nothing. No backtest folder appears."""
    from finsae.trading import encode

    from test_trading_stage import backtest, compose_backtest

    art = _artifacts(tmp_path / "art", tiny_sae)
    overrides = ["pair.base=tiny", "pair.domain=tiny", f"features.tickers=[{','.join(small_tickers)}]",
                 "features.layers=[1]", "features.tag=t", "features.sets=[price_base_sae]", "activations.max_length=64",
                 "activations.batch_size=4", "activations.dtype=fp32", "progress_bar=false"]
    r = backtest(project_root, [*overrides, "encode_only=base"],
                 env={"FINSAE_ARTIFACTS": str(art), "FINSAE_DATA_DIR": str(data_dir)}, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "encoded into the caches" in r.stdout
    assert [p.name for p in (art / "backtest").iterdir()] == ["cache"]  # no pair folder, no trial ledger

    cfg = compose_backtest(project_root, [f"paths.artifacts={art}", f"paths.data_dir={data_dir}", *overrides])
    computed = []
    real = encode.encode_docs
    monkeypatch.setattr(encode, "encode_docs", lambda *a, **k: computed.append(1) or real(*a, **k))
    from finsae.data.stocknet_tweets import load_stocknet_tweets_raw
    from finsae.paths import tweet_cache_dir
    from finsae.trading.text_features import tweet_corpus

    corpus = tweet_corpus(load_stocknet_tweets_raw(data_dir, sorted(small_tickers)))[0]
    got = encode.encode_tweets({"base": "tiny", "domain": "tiny"}, cfg.features, cfg.activations, art,
                               tweet_cache_dir(art), cfg.data.eval_start, corpus, progress=False)
    assert computed == [] and set(got.docs) == {("base", 1)} and got.n_tokens > 0


def test_encode_only_names_a_role():
    from finsae.errors import ConfigError
    from finsae.glue.backtest_schema import BacktestScriptSchema

    with pytest.raises(ConfigError, match="encode_only must be base, domain or null"):
        BacktestScriptSchema(encode_only="twin")
