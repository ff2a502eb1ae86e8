"""The other stages' tables, used when present: financial latents from the analysis stage, labels from the
labeling stage; and the trials ledger that every run appends to."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finsae.errors import DataMissingError
from finsae.labeling.artifacts import read_labels
from finsae.trading.features import Block, fit_block
from finsae.trading.config import LgbmConfig
from finsae.trading.ledger import append_trials, read_trials, trial_stats
from finsae.trading.outputs import label_importance
from finsae.trading.sets import financial_latents


def test_financial_latents_come_from_the_analysis_table_and_bound_the_selection(tmp_path):
    with pytest.raises(DataMissingError, match="python analyze.py"):
        financial_latents(tmp_path, "p", "financial", "minilm_fin", 3)
    (tmp_path / "analysis" / "p").mkdir(parents=True)
    pd.DataFrame({"model": ["minilm_fin"] * 3 + ["minilm"], "layer": [3, 3, 3, 3], "latent": [5, 2, 7, 1],
                  "financial": [True, True, False, True], "specialized": [True, False, False, True]}).to_parquet(
        tmp_path / "analysis" / "p" / "features.parquet")
    allowed = financial_latents(tmp_path, "p", "financial", "minilm_fin", 3)
    assert allowed.tolist() == [2, 5]
    assert financial_latents(tmp_path, "p", "top_ic", "minilm_fin", 3) is None
    m = 8
    x = np.random.default_rng(0).random((50, 2 * m)).astype(np.float32)
    fitted = fit_block(Block("b", "sae", x, [str(i) for i in range(2 * m)], allowed), np.arange(50),
                       np.random.default_rng(1).normal(size=50), "financial", 100, None)
    assert fitted.columns.tolist() == [2, 5, 2 + m, 5 + m]


def test_importance_is_mapped_to_latent_labels_when_the_labeling_stage_ran(tmp_path):
    imp = pd.DataFrame({"set": ["s", "s", "s"], "feature": ["minilm_fin:L3:mean:7", "minilm_fin:L3:max:2", "ret_1"],
                        "gain": [3.0, 2.0, 1.0], "shap": [0.1, 0.2, 0.3]})
    plain = label_importance(imp, read_labels(tmp_path / "labels" / "p", missing_ok=True))
    assert "label" not in plain and plain["latent"].tolist()[:2] == ["7", "2"]
    (tmp_path / "labels" / "p").mkdir(parents=True)
    pd.DataFrame({"model": ["minilm_fin"], "layer": [3], "latent": [7], "label": ["earnings beat"],
                  "description": ["quarterly results above expectations"]}).to_parquet(
        tmp_path / "labels" / "p" / "labels.parquet")
    out = label_importance(imp, read_labels(tmp_path / "labels" / "p"))
    row = out.loc[out["feature"] == "minilm_fin:L3:mean:7"].iloc[0]
    assert row["label"] == "earnings beat" and row["label_description"] == "quarterly results above expectations"
    assert out.loc[out["feature"] == "ret_1", "label"].isna().all()


def test_trials_ledger_counts_every_run(tmp_path):
    path = tmp_path / "trials.jsonl"
    append_trials(path, [{"sr_daily": 0.01}, {"sr_daily": 0.03}])
    append_trials(path, [{"sr_daily": -0.02}, {"sr_daily": None}])
    n, var = trial_stats(read_trials(path))
    assert n == 4 and var == pytest.approx(np.var([0.01, 0.03, -0.02], ddof=1))


@pytest.mark.filterwarnings("ignore:Overriding the parameters from Reference Dataset")
def test_one_binning_per_fold_fits_each_task_as_its_own_dataset_would():
    """Both tasks and every num_leaves reuse one fold's bins; each task must still fit its own labels."""
    import lightgbm as lgb
    import scipy.sparse as sp

    from finsae.trading.walk_forward import bin_rows, fit_lgbm, lgbm_params

    rng = np.random.default_rng(0)
    x = sp.random(1500, 40, density=0.3, random_state=0, format="csr") + sp.csr_matrix(rng.normal(size=(1500, 40)))
    x = sp.csr_matrix(x)
    y_ret = x[:, 0].toarray().ravel() - x[:, 1].toarray().ravel() + rng.normal(size=1500) * 0.5
    y_up = (x[:, 2].toarray().ravel() > 0).astype(float)  # another feature than the return's: a stale label shows
    cfg = LgbmConfig(num_leaves=[4, 8], n_estimators=60, early_stopping=10)
    binned = bin_rows(x[:1000], x[1000:1200])
    shared = {task: fit_lgbm(task, binned, y[:1000], y[1000:1200], cfg)
              for task, y in (("return", y_ret), ("direction", y_up))}
    for task, y in (("return", y_ret), ("direction", y_up)):
        fit = shared[task]
        train = lgb.Dataset(x[:1000], label=y[:1000], params={"verbosity": -1, "max_bin": 63})
        val = lgb.Dataset(x[1000:1200], label=y[1000:1200], reference=train)
        own = lgb.train(lgbm_params(task, fit.num_leaves, cfg), train, num_boost_round=cfg.n_estimators,
                        valid_sets=[val], callbacks=[lgb.early_stopping(cfg.early_stopping, verbose=False)])
        np.testing.assert_array_equal(fit.booster.predict(x[1200:], num_iteration=fit.best_iteration),
                                      own.predict(x[1200:], num_iteration=own.best_iteration))
    up_prob = shared["direction"].booster.predict(x[1200:])
    assert np.mean((up_prob > 0.5) == (y_up[1200:] > 0)) > 0.8  # learned the direction label, not the return
