"""Issue 21 §3: the effective number of independent trials, the sign-only canary by hand, and the fit windows
checked on the rows each fit was actually given."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finsae.trading.canaries import Masks, sign_block, sign_values
from finsae.trading.config import LgbmConfig
from finsae.trading.features import Block
from finsae.trading.guards import LeakageError, check_fit_windows
from finsae.trading.ledger import effective_trials
from finsae.trading.walk_forward import Fold, run_fold

DAYS = [str(d.date()) for d in pd.bdate_range("2015-08-03", periods=170)]


def trial(x, **kw):
    return {"period": "headline", "sr_daily": float(np.mean(x) / np.std(x)),
            "returns": dict(zip(DAYS, map(float, x), strict=True)), **kw}


def test_identical_trials_are_one_and_independent_ones_count_each():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.01, len(DAYS))
    assert effective_trials([trial(x, key=str(i)) for i in range(6)]) == 1
    independent = [trial(rng.normal(0, 0.01, len(DAYS))) for _ in range(20)]
    assert 18 <= effective_trials(independent) <= 20
    f1, f2 = rng.normal(0, 0.01, len(DAYS)), rng.normal(0, 0.01, len(DAYS))
    two_families = [trial(f + rng.normal(0, 0.002, len(DAYS))) for f in (f1, f2) for _ in range(5)]
    assert effective_trials(two_families) == 2
    # a trial of an older ledger has no series: it is its own cluster; full-period rows are not trials
    assert effective_trials(two_families + [{"period": "headline", "sr_daily": 0.1},
                                            {"period": "full", "sr_daily": 0.1}]) == 3


def test_the_sign_only_canary_by_hand():
    ret = np.array([0.02, -0.01, 0.03, -0.04, 0.0, np.nan])
    m = Masks(flip=np.array([True, False, False, True, False, False]),
              up=np.array([False, True, False, False, False, False]))
    # signs: + - + - (0 is down) ; flipped rows 0 and 3 ; row 1 forced up ; NaN -> 0
    np.testing.assert_array_equal(sign_values(ret, m), [-1.0, 1.0, 1.0, 1.0, -1.0, 0.0])
    b = sign_block(ret, m)
    assert b.kind == "plain" and b.matrix.shape == (6, 1) and b.columns == ["realized_sign_32pct_flipped_10pct_up"]
    # as a direction call on the five rows with a return: right on rows 2 and 4 only (row 1 forced up, it fell)
    up = (ret[:5] > 0).astype(float)
    assert ((sign_values(ret, m)[:5] > 0) == up).mean() == pytest.approx(2 / 5, abs=1e-12)
    # with no flips and nothing forced, it is the label itself
    none = Masks(np.zeros(6, bool), np.zeros(6, bool))
    np.testing.assert_array_equal(sign_values(ret, none)[:5] > 0, up.astype(bool))


def fold_world(n_days=120, n_tickers=10, seed=0):
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2015-01-01", periods=n_days).to_numpy()
    dates = np.repeat(days, n_tickers)
    x = rng.normal(size=(len(dates), 3)).astype(np.float32)
    ret = 0.01 * x[:, 0] + rng.normal(0, 0.01, len(dates))
    return days, dates, [Block("price", "plain", x, ["a", "b", "c"]),
                         Block("s_sae", "sae", np.abs(x[:, [0, 1, 0, 1]]), ["m0", "m1", "x0", "x1"])], ret


LGBM = LgbmConfig(num_leaves=[4], n_estimators=10, early_stopping=5, min_child_samples=20)


def test_recorded_fit_rows_are_the_rows_actually_fitted(monkeypatch):
    import finsae.trading.walk_forward as wfm

    days, dates, blocks, ret = fold_world()
    given = {"select": [], "trees": []}
    real_fit_block, real_bin_rows = wfm.fit_block, wfm.bin_rows

    def spy_fit_block(b, rows, *a, **k):
        given["select"].append(dates[rows])
        return real_fit_block(b, rows, *a, **k)

    def spy_bin_rows(x_fit, x_val):
        given["trees"].append((x_fit.shape[0], x_val.shape[0]))
        return real_bin_rows(x_fit, x_val)

    monkeypatch.setattr(wfm, "fit_block", spy_fit_block)
    monkeypatch.setattr(wfm, "bin_rows", spy_bin_rows)
    fold = Fold(0, days[:60], days[65:85], days[90:110])
    res = run_fold(fold, blocks, dates, ret, (ret > 0).astype(float), LGBM, "top_ic", 1, None, shap_rows=0,
                   y_cs=ret - ret.mean())
    w = pd.DataFrame(res.fit_windows)
    sel = w[w["what"] == "top_ic:s_sae"].iloc[0]
    assert sel["rows_end"] == given["select"][1].max() and sel["rows_start"] == given["select"][1].min()
    assert sel["n_rows"] == len(given["select"][1])
    trees = w[w["what"].str.startswith("lgbm_")]
    assert set(trees["what"]) == {"lgbm_return", "lgbm_direction", "lgbm_cross_section"}
    assert (trees["n_rows"] == given["trees"][0][0]).all()
    assert (trees["rows_end"] == days[59]).all() and (trees["val_rows_end"] == days[84]).all()
    check_fit_windows(w, days, gap=5)


def test_a_fit_given_a_later_row_fails_the_check_even_when_the_fold_bounds_look_clean():
    days, dates, blocks, ret = fold_world()
    # a fold whose fit days hold one test-window day out of order: its bounds (first, last) look clean
    leaky = Fold(0, np.r_[days[95:96], days[:60]], days[65:85], days[90:110])
    res = run_fold(leaky, blocks, dates, ret, (ret > 0).astype(float), LGBM, "top_ic", 1, None, shap_rows=0)
    w = pd.DataFrame(res.fit_windows)
    assert (w["fit_end"] == days[59]).all()  # what the bounds say
    with pytest.raises(LeakageError, match="were given rows within 5 trading days"):
        check_fit_windows(w, days, gap=5)
    # on the fold's bounds alone (what was checked before) the same fits pass: the check must read the rows
    check_fit_windows(w.drop(columns=["rows_end", "val_rows_end"]), days, gap=5)
