"""The stage's figures and reports: equity curves, quantstats tearsheets (offline), importance with labels."""

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
    r = returns[returns["strategy"] == kind]
    for name, g in r.groupby("set", sort=False):
        s = g.set_index("date")["net"]
        ax.plot(s.index, (1 + s).cumprod(), lw=1.2, label=name)
    idx = pd.DatetimeIndex(sorted(r["date"].unique()))
    for bname, b in benchmarks.items():
        s = b.reindex(idx).fillna(0.0)
        ax.plot(s.index, (1 + s).cumprod(), lw=1.6, ls="--", color="k" if bname == "sp500" else "grey", label=bname)
    ax.axvline(pd.Timestamp(eval_start), color="r", lw=0.8, ls=":")
    ax.set_title(f"{kind}: net of costs (out of sample); headline period from {eval_start}", fontsize=9)
    ax.set_ylabel("equity")
    ax.legend(fontsize=7, ncol=2)
    fig.autofmt_xdate()
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
