"""Scores: quantstats for the usual strategy metrics (always with the benchmark as a pandas Series), the
probabilistic and deflated Sharpe ratios (Bailey & Lopez de Prado 2012, 2014), day-block bootstrap intervals,
and classification accuracy / MCC.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

EULER_GAMMA = 0.5772156649015329
PERIODS = 252


def psr(sr: float, n_obs: int, skew: float, kurtosis: float, sr_benchmark: float = 0.0) -> float:
    """Probabilistic Sharpe ratio: P(true SR > ``sr_benchmark``) given a per-period ``sr`` over ``n_obs``
    returns with ``skew`` and (non-excess) ``kurtosis`` (Bailey & Lopez de Prado 2012, eq. 11)."""
    if n_obs < 2 or not np.isfinite(sr):
        return float("nan")
    var = 1 - skew * sr + (kurtosis - 1) / 4 * sr ** 2
    if var <= 0:
        return float("nan")
    return float(stats.norm.cdf((sr - sr_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(var)))


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """Expected maximum of ``n_trials`` per-period Sharpe ratios with variance ``sr_variance`` and true SR 0
    (Bailey & Lopez de Prado 2014, eq. 2); 0 for a single trial."""
    if n_trials <= 1:
        return 0.0
    z = ((1 - EULER_GAMMA) * stats.norm.ppf(1 - 1 / n_trials)
         + EULER_GAMMA * stats.norm.ppf(1 - 1 / (n_trials * math.e)))
    return float(math.sqrt(sr_variance) * z)


def dsr(sr: float, n_obs: int, skew: float, kurtosis: float, n_trials: int, sr_variance: float) -> float:
    """Deflated Sharpe ratio: the PSR against the expected maximum Sharpe of ``n_trials`` trials."""
    return psr(sr, n_obs, skew, kurtosis, expected_max_sharpe(n_trials, sr_variance))


def per_period_sharpe(r: pd.Series) -> float:
    r = pd.Series(r).dropna()
    sd = r.std(ddof=1)
    return float(r.mean() / sd) if len(r) > 1 and sd > 0 else float("nan")


def turnover_mean(turnover: pd.Series) -> float:
    """Mean daily turnover (sum |w_d - w_{d-1}|)."""
    return float(pd.Series(turnover).mean())


def block_bootstrap(n: int, block: int, draws: int, seed: int = 0):
    """Circular day-block bootstrap index sets: ``draws`` arrays of ``n`` indices made of runs of ``block``."""
    rng = np.random.default_rng(seed)
    k = int(math.ceil(n / block))
    for _ in range(draws):
        starts = rng.integers(0, n, size=k)
        yield (starts[:, None] + np.arange(block)[None, :]).reshape(-1)[:n] % n


def sharpe_ci(r: pd.Series, block: int, draws: int, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Day-block bootstrap interval of the annualised Sharpe."""
    x = pd.Series(r).dropna().to_numpy()
    if len(x) < 3:
        return float("nan"), float("nan")
    vals = []
    for idx in block_bootstrap(len(x), block, draws, seed):
        s = x[idx].std(ddof=1)
        vals.append(x[idx].mean() / s * math.sqrt(PERIODS) if s > 0 else np.nan)
    lo, hi = np.nanpercentile(vals, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(lo), float(hi)


def quantstats_metrics(returns: pd.Series, benchmark: pd.Series) -> dict[str, float]:
    """CAGR, Sharpe, Sortino, Calmar, max drawdown, win rate of ``returns`` by quantstats, and its correlation
    with ``benchmark``. Both must be pandas Series of returns: a ticker string would make quantstats download
    (and offline silently return zeros)."""
    import quantstats as qs

    if not isinstance(returns, pd.Series) or not isinstance(benchmark, pd.Series):
        raise TypeError("quantstats_metrics takes pandas Series of returns, never a ticker string")
    r = returns.dropna()
    with np.errstate(divide="ignore", invalid="ignore"):
        return _qs_metrics(qs, r, benchmark)


def _qs_metrics(qs, r: pd.Series, benchmark: pd.Series) -> dict[str, float]:
    out = {
        "cagr": float(qs.stats.cagr(r, periods=PERIODS)),
        "sharpe": float(qs.stats.sharpe(r, periods=PERIODS)),
        "sortino": float(qs.stats.sortino(r, periods=PERIODS)),
        "calmar": float(qs.stats.calmar(r, periods=PERIODS)),
        "max_drawdown": float(qs.stats.max_drawdown(r)),
        "win_rate": float(qs.stats.win_rate(r)),
        "total_return": float((1 + r).prod() - 1),
    }
    b = benchmark.reindex(r.index)
    out["benchmark_corr"] = float(r.corr(b)) if b.notna().sum() > 2 else float("nan")
    return out


def sharpe_stats(r: pd.Series, n_trials: int, sr_variance: float) -> dict[str, float]:
    """Per-period Sharpe, skew, kurtosis, PSR (vs 0) and DSR (vs the expected max of ``n_trials``)."""
    x = pd.Series(r).dropna()
    sr = per_period_sharpe(x)
    sk = float(stats.skew(x)) if len(x) > 2 else float("nan")
    ku = float(stats.kurtosis(x, fisher=False)) if len(x) > 3 else float("nan")
    return {"sr_daily": sr, "skew": sk, "kurtosis": ku, "n_obs": int(len(x)),
            "psr": psr(sr, len(x), sk, ku), "dsr": dsr(sr, len(x), sk, ku, n_trials, sr_variance)}


def mcc_from_counts(tp, fp, tn, fn):
    """Matthews correlation from confusion counts (arrays broadcast); 0 where undefined."""
    tp, fp, tn, fn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, tn, fn))
    den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return np.divide(tp * tn - fp * fn, den, out=np.zeros_like(den), where=den > 0)


def mcc(y: np.ndarray, p: np.ndarray) -> float:
    y, p = np.asarray(y).astype(bool), np.asarray(p).astype(bool)
    return float(mcc_from_counts((y & p).sum(), (~y & p).sum(), (~y & ~p).sum(), (y & ~p).sum()))


def classification_ci(y: np.ndarray, pred: np.ndarray, days: np.ndarray, draws: int, seed: int = 0,
                      level: float = 0.95) -> dict[str, float]:
    """Accuracy and MCC of ``pred`` with a day-block bootstrap interval (whole days resampled, since the
    tickers of one day move together)."""
    y, pred = np.asarray(y).astype(bool), np.asarray(pred).astype(bool)
    _, inv = np.unique(days, return_inverse=True)
    n_days = inv.max() + 1
    per_day = np.stack([np.bincount(inv, weights=w, minlength=n_days)
                        for w in (y & pred, ~y & pred, ~y & ~pred, y & ~pred)], axis=1)  # tp fp tn fn
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n_days, size=(draws, n_days))
    counts = np.stack([np.bincount(p, minlength=n_days) for p in picks]) @ per_day  # [draws, 4]
    tp, fp, tn, fn = counts.T
    accs = (tp + tn) / counts.sum(axis=1)
    mccs = mcc_from_counts(tp, fp, tn, fn)
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    a_lo, a_hi = np.percentile(accs, q)
    m_lo, m_hi = np.percentile(mccs, q)
    return {"accuracy": float((y == pred).mean()), "mcc": mcc(y, pred), "accuracy_lo": float(a_lo),
            "accuracy_hi": float(a_hi), "mcc_lo": float(m_lo), "mcc_hi": float(m_hi), "n_test": int(len(y))}


def daily_rank_ic(score: np.ndarray, ret: np.ndarray, days: np.ndarray) -> pd.Series:
    """Per-day rank IC: the Spearman correlation of ``score`` with ``ret`` among the rows of each day (rows with
    a NaN dropped; days with fewer than 3 rows or a constant side left out), indexed by day."""
    df = pd.DataFrame({"s": score, "r": ret, "d": days}).dropna()
    out = {}
    for d, g in df.groupby("d", sort=True):
        if len(g) < 3 or g["s"].nunique() < 2 or g["r"].nunique() < 2:
            continue
        out[d] = float(stats.spearmanr(g["s"], g["r"]).statistic)
    return pd.Series(out, dtype=float)


def mean_ci(x, block: int, draws: int, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Day-block bootstrap interval of the mean of a daily series."""
    x = pd.Series(x).dropna().to_numpy()
    if len(x) < 3:
        return float("nan"), float("nan")
    vals = [x[idx].mean() for idx in block_bootstrap(len(x), block, draws, seed)]
    lo, hi = np.percentile(vals, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(lo), float(hi)


def paired_accuracy_diff(y: np.ndarray, pred: np.ndarray, base: np.ndarray, days: np.ndarray, draws: int,
                         seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """Accuracy of ``pred`` minus that of ``base`` (e.g. always-up) on the same rows, with a paired day
    bootstrap interval: whole days are resampled and both are scored on the same draw."""
    y = np.asarray(y).astype(bool)
    hit_p = (np.asarray(pred).astype(bool) == y).astype(np.float64)
    hit_b = (np.asarray(base).astype(bool) == y).astype(np.float64)
    _, inv = np.unique(days, return_inverse=True)
    n_days = inv.max() + 1
    per_day = np.stack([np.bincount(inv, weights=w, minlength=n_days) for w in (hit_p - hit_b, np.ones(len(y)))], 1)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n_days, size=(draws, n_days))
    sums = np.stack([np.bincount(p, minlength=n_days) for p in picks]) @ per_day
    diffs = sums[:, 0] / sums[:, 1]
    lo, hi = np.percentile(diffs, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return {"vs_always_up": float(hit_p.mean() - hit_b.mean()), "vs_always_up_lo": float(lo),
            "vs_always_up_hi": float(hi)}
