"""Walk-forward LightGBM: expanding train windows, monthly refits, purge and embargo (scikit-learn's
``TimeSeriesSplit`` over trading days, ``gap`` = purge + embargo), the hyperparameter and the number of rounds
chosen on the last days of each training window only, and every fitted object's window recorded.

``folds(days, cfg)`` gives the windows; ``run_fold`` fits one feature set on one window and predicts its test
days: a regressor for the executed return (its prediction ranks the positions) and a classifier for its sign.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.model_selection import TimeSeriesSplit

from finsae.trading.features import Block, apply_block, fit_block, stack


class Fold(NamedTuple):
    """One refit: which trading days train, validate and test (purged and embargoed)."""

    index: int
    fit_days: np.ndarray
    """Days whose rows fit the transforms and trees."""
    val_days: np.ndarray
    """Last days of the training window: early stopping and the num_leaves choice."""
    test_days: np.ndarray
    """Days predicted out of sample."""


def folds(days, cfg) -> list[Fold]:
    """Expanding-window folds over sorted unique ``days``; ``cfg``: a ``WalkForwardConfig``.

    Between fit and validation days, and between the training window and the test days, ``cfg.gap`` days are
    left out (a row's target ends two trading days after it)."""
    days = np.asarray(days)
    n_splits = (len(days) - cfg.min_train_days - cfg.gap) // cfg.refit_days
    if n_splits < 1:
        from finsae.errors import ConfigError

        raise ConfigError(f"{len(days)} trading days leave no test window after walk_forward.min_train_days="
                          f"{cfg.min_train_days} and a gap of {cfg.gap}; use more days or a shorter first window")
    out = []
    for i, (train, test) in enumerate(TimeSeriesSplit(n_splits=n_splits, test_size=cfg.refit_days,
                                                      gap=cfg.gap).split(days)):
        inner, val = _split_validation(train, cfg.val_days, cfg.gap)
        out.append(Fold(i, days[inner], days[val], days[test]))
    return out


def _split_validation(train: np.ndarray, val_days: int, gap: int) -> tuple[np.ndarray, np.ndarray]:
    inner, val = list(TimeSeriesSplit(n_splits=2, test_size=val_days, gap=gap).split(train))[-1]
    return train[inner], train[val]


def lgbm_params(task: str, num_leaves: int, cfg) -> dict:
    return {
        "objective": "binary" if task == "direction" else "regression",
        "metric": "binary_logloss" if task == "direction" else "l2",
        "learning_rate": cfg.learning_rate, "num_leaves": int(num_leaves), "min_data_in_leaf": cfg.min_child_samples,
        "feature_fraction": cfg.colsample, "feature_fraction_seed": cfg.seed, "bagging_seed": cfg.seed,
        "seed": cfg.seed, "num_threads": cfg.num_threads, "deterministic": True, "force_col_wise": True,
        "verbosity": -1,
    }


class Fit(NamedTuple):
    """A tree model chosen on the validation days."""

    booster: lgb.Booster
    num_leaves: int
    best_iteration: int
    val_loss: float


class Binned(NamedTuple):
    """A fold's fit and validation rows binned once (LightGBM ``Dataset``), shared by every tree fit of the fold:
    the bins depend on the features only, so both tasks and every ``num_leaves`` reuse them (labels are set per
    task)."""

    fit: lgb.Dataset
    val: lgb.Dataset


def bin_rows(x_fit, x_val) -> Binned:
    """Bin a fold's fit rows (their bin edges also bin the validation rows), before any label is known."""
    names = [f"f{i}" for i in range(x_fit.shape[1])]  # LightGBM rejects some characters in our feature names
    fit = lgb.Dataset(x_fit, label=np.zeros(x_fit.shape[0]), feature_name=names, free_raw_data=False,
                      params={"verbosity": -1, "max_bin": 63})
    val = lgb.Dataset(x_val, label=np.zeros(x_val.shape[0]), reference=fit, free_raw_data=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit.construct()
        val.construct()
    return Binned(fit, val)


def fit_lgbm(task: str, binned: Binned, y_fit, y_val, cfg) -> Fit:
    """Fit one tree model per ``cfg.num_leaves`` with early stopping on the validation rows; the best wins."""
    binned.fit.set_label(y_fit)
    binned.val.set_label(y_val)
    best = None
    for leaves in cfg.num_leaves:
        params = lgbm_params(task, leaves, cfg)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            booster = lgb.train(params, binned.fit, num_boost_round=cfg.n_estimators, valid_sets=[binned.val],
                                callbacks=[lgb.early_stopping(cfg.early_stopping, verbose=False)])
        loss = float(booster.best_score["valid_0"][params["metric"]])
        if best is None or loss < best.val_loss:
            best = Fit(booster, int(leaves), int(booster.best_iteration or cfg.n_estimators), loss)
    return best


class FoldResult(NamedTuple):
    predictions: pd.DataFrame
    """``row``, ``pred_ret`` (raw-return model), ``pred_cs`` (cross-sectional model), ``prob_up`` for the test
    rows."""
    fit_windows: list[dict]
    """One record per fitted object: ``what``, the fold's bounds, and the days of the rows it was given."""
    importance: pd.DataFrame
    """``feature``, ``gain``, ``shap`` (mean |pred_contrib| on the test rows) of the cross-sectional model (the
    raw-return model when there is none)."""


def run_fold(fold: Fold, blocks: list[Block], dates: np.ndarray, y_ret: np.ndarray, y_up: np.ndarray, lgbm_cfg,
             latents: str, top_n: int, dense_pca: int | None, shap_rows: int = 400,
             y_cs: np.ndarray | None = None) -> FoldResult:
    """Fit ``blocks`` (one feature set) on ``fold``'s fit days and predict its test days.

    ``dates``: each dataset row's trading day; ``y_ret``/``y_up``: targets (NaN rows never fit); ``y_cs``: the
    cross-sectional target of the long-short book's model (None: no such model, ``pred_cs`` is NaN). Each fitted
    object's record carries the first and last day of the rows it was actually given (``rows_start``,
    ``rows_end``; ``val_rows_end`` for the trees' early-stopping rows), which ``check_fit_windows`` checks."""
    ok = np.isfinite(y_ret)
    fit_rows = np.flatnonzero(np.isin(dates, fold.fit_days) & ok)
    val_rows = np.flatnonzero(np.isin(dates, fold.val_days) & ok)
    test_rows = np.flatnonzero(np.isin(dates, fold.test_days))
    window = {"fit_start": fold.fit_days[0], "fit_end": fold.fit_days[-1], "val_start": fold.val_days[0],
              "val_end": fold.val_days[-1], "test_start": fold.test_days[0], "test_end": fold.test_days[-1],
              "fold": fold.index}

    def seen(rows):
        d = dates[rows]
        return {"rows_start": d.min(), "rows_end": d.max(), "n_rows": int(len(rows))}

    records, parts = [], {"fit": [], "val": [], "test": []}
    names: list[str] = []
    for b in blocks:
        f = fit_block(b, fit_rows, y_ret[fit_rows], latents, top_n, dense_pca, days=dates[fit_rows])
        if f.what != "identity":
            records.append({**window, "what": f"{f.what}:{b.name}", **seen(fit_rows)})
        for key, rows in (("fit", fit_rows), ("val", val_rows), ("test", test_rows)):
            parts[key].append(apply_block(b, f, rows))
        names += f.names
    x = {k: stack(v) for k, v in parts.items()}
    binned = bin_rows(x["fit"], x["val"])
    fits = {"lgbm_return": fit_lgbm("return", binned, y_ret[fit_rows], y_ret[val_rows], lgbm_cfg),
            "lgbm_direction": fit_lgbm("direction", binned, y_up[fit_rows], y_up[val_rows], lgbm_cfg)}
    if y_cs is not None:
        fits["lgbm_cross_section"] = fit_lgbm("return", binned, y_cs[fit_rows], y_cs[val_rows], lgbm_cfg)
    for what, fit in fits.items():
        records.append({**window, "what": what, **seen(fit_rows), "val_rows_end": dates[val_rows].max(),
                        "num_leaves": fit.num_leaves, "best_iteration": fit.best_iteration})
    pred = lambda f: f.booster.predict(x["test"], num_iteration=f.best_iteration)  # noqa: E731
    reg, cs = fits["lgbm_return"], fits.get("lgbm_cross_section")
    pred_df = pd.DataFrame({"row": test_rows, "pred_ret": pred(reg),
                            "pred_cs": pred(cs) if cs is not None else np.full(len(test_rows), np.nan),
                            "prob_up": pred(fits["lgbm_direction"])})
    main = cs if cs is not None else reg  # importance of the model the long-short book trades
    gain = main.booster.feature_importance("gain", iteration=main.best_iteration)
    n_shap = min(shap_rows, x["test"].shape[0])
    shap = np.zeros(len(names))
    if n_shap > 0:
        contrib = main.booster.predict(x["test"][:n_shap], num_iteration=main.best_iteration, pred_contrib=True)
        contrib = contrib.toarray() if hasattr(contrib, "toarray") else np.asarray(contrib)
        shap = np.abs(contrib[:, :-1]).mean(axis=0)
    imp = pd.DataFrame({"feature": names, "gain": gain, "shap": shap})
    return FoldResult(pred_df, records, imp[(imp["gain"] > 0) | (imp["shap"] > 0)])
