"""The stage's figures and reports: equity curves, signal decay, the cost sweep, quantstats tearsheets
(offline), importance with labels."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from finsae.labeling.artifacts import join_labels  # noqa: E402
from finsae.trading.blocks import latent_parts  # noqa: E402


def equity_figure(returns: pd.DataFrame, benchmarks: dict[str, pd.Series], kind: str, eval_start: str):
    fig, ax = plt.subplots(figsize=(8, 4))
    r = returns[(returns["strategy"] == kind) & (returns["book"] == "daily" if "book" in returns else True)]
    for name, g in r.groupby("set", sort=False):
        s = g.set_index("date")["net"]
        ax.plot(s.index, (1 + s).cumprod(), lw=1.2, label=name)
    idx = pd.DatetimeIndex(sorted(r["date"].unique()))
    for bname, b in benchmarks.items():
        s = b.reindex(idx).fillna(0.0)
        ax.plot(s.index, (1 + s).cumprod(), lw=1.6, ls="--", color="k" if bname == "sp500" else "grey", label=bname)
    ax.axvline(pd.Timestamp(eval_start), color="r", lw=0.8, ls=":")
    ax.set_title(f"{kind}, daily book: net of costs (out of sample); headline period from {eval_start}",
                 fontsize=9)
    ax.set_ylabel("equity")
    ax.legend(fontsize=7, ncol=2)
    fig.autofmt_xdate()
    return fig


def _period(table: pd.DataFrame) -> str:
    return "headline" if (table["period"] == "headline").any() else "full"


def decay_figure(decay: pd.DataFrame):
    """The decay table (:func:`finsae.trading.decay.rank_ic_decay`) of the headline period (else the full
    one): per window, each set's mean daily rank IC against the horizon, with its day-block interval."""
    period = _period(decay)
    d = decay[decay["period"] == period]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, (window, what) in zip(axes, (("day", "one-day return h-1 days later"),
                                         ("cumulative", "return over the next h days")), strict=True):
        for name, g in d[d["window"] == window].groupby("set", sort=False):
            g = g.sort_values("horizon")
            line = ax.plot(g["horizon"], g["ic"], marker="o", lw=1.2, label=name)[0]
            ax.fill_between(g["horizon"], g["lo"], g["hi"], color=line.get_color(), alpha=0.12)
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_xticks(sorted(d["horizon"].unique()), [str(h) for h in sorted(d["horizon"].unique())])
        ax.set_xlabel("horizon h (trading days)")
        ax.set_title(f"rank IC with the {what} ({period})", fontsize=9)
    axes[0].set_ylabel("mean daily rank IC (95% day-block interval)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def cost_sweep_figure(sweep: pd.DataFrame):
    """Net Sharpe against the cost per side of every (set, book) in one figure, one panel per strategy: the
    daily book solid, the turnover-aware one dashed, one colour per set (headline period, else the full
    one)."""
    period = _period(sweep)
    s = sweep[sweep["period"] == period]
    kinds = list(dict.fromkeys(s["strategy"]))
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 4), squeeze=False, sharey=True)
    colours = {name: f"C{i % 10}" for i, name in enumerate(dict.fromkeys(s["set"]))}
    for ax, kind in zip(axes[0], kinds, strict=True):
        for (name, book), g in s[s["strategy"] == kind].groupby(["set", "book"], sort=False):
            g = g.sort_values("cost_bps")
            ax.plot(g["cost_bps"], g["net_sharpe"], marker="o", lw=1.2, color=colours[name],
                    ls="-" if book == "daily" else "--", label=f"{name} ({book})")
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xlabel("cost per side (bps)")
        ax.set_title(f"{kind}: net Sharpe against cost ({period}; dashed: turnover-aware)", fontsize=9)
    axes[0][0].set_ylabel("net Sharpe (annualised)")
    axes[0][-1].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


def tearsheet(net: pd.Series, bench: pd.Series, path: Path, title: str) -> None:
    """Offline quantstats HTML (benchmark passed as a Series, never a ticker string)."""
    import warnings

    import quantstats as qs

    if not isinstance(bench, pd.Series):
        raise TypeError("the tearsheet benchmark must be a pandas Series")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qs.reports.html(net.rename("strategy"), benchmark=bench.reindex(net.index).fillna(0.0).rename("sp500"),
                        output=str(path), title=title, download_filename=str(path))
    plt.close("all")


def label_importance(imp: pd.DataFrame, labels: pd.DataFrame | None) -> pd.DataFrame:
    """The importance table with each latent feature's model, layer, aggregation and latent, and its label
    (``label``, ``label_description``, ``label_status``, ``label_role``) from ``labels`` (the labeling stage's
    table; None when it has not run)."""
    parts = latent_parts(imp["feature"])
    out = pd.concat([imp.reset_index(drop=True), parts.reset_index(drop=True)], axis=1)
    out = join_labels(out, labels, scores=False)
    return out.sort_values(["set", "gain"], ascending=[True, False], ignore_index=True)
