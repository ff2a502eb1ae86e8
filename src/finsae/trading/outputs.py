"""The stage's figures and reports: equity curves, quantstats tearsheets (offline), importance with labels."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from finsae.paths import labels_dir  # noqa: E402


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


def label_importance(imp: pd.DataFrame, artifacts: Path, pair: str) -> pd.DataFrame:
    """Join latent labels from the labeling stage when it has run."""
    path = labels_dir(artifacts, pair) / "labels.parquet"
    parts = imp["feature"].str.extract(r"^(?P<model>[^:]+):L(?P<layer>\d+):(?P<agg>mean|max):(?P<latent>\d+)$")
    out = pd.concat([imp.reset_index(drop=True), parts.reset_index(drop=True)], axis=1)
    if path.is_file():
        lab = pd.read_parquet(path)
        keep = [c for c in ("model", "layer", "latent", "label", "description") if c in lab.columns]
        lab = lab[keep].astype({"layer": str, "latent": str}).drop_duplicates(["model", "layer", "latent"])
        out = out.merge(lab, on=["model", "layer", "latent"], how="left")
    return out.sort_values(["set", "gain"], ascending=[True, False], ignore_index=True)
