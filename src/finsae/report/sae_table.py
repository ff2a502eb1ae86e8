"""The SAE and fine-tune tables and plots of a study: markdown, CSV and PNG files beside the report page.

:func:`write_tables` (called by ``python -m finsae.report``) reads every SAE's and every finance twin's summary
through :class:`~finsae.report.study.Study` (each through its stage's summary type; a corrupt one fails naming its
file) and writes, into the report folder (``artifacts/report/``), ``sae_table.md``, ``sae_table.csv``,
``sae_layers.png``, ``sae_demo.md`` (README's per-layer table of the ``demo`` tag), ``finetune.md`` and, where a
learning-rate sweep exists (tags ``lr_*``), ``lr_sweep.md`` and ``lr_sweep.png``; it returns the markdown.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from finsae.errors import FinsaeError
from finsae.report.markdown import md_table
from finsae.report.study import Study

SAE_COLUMNS = ["model", "layer", "tag", "seed", "num_latents", "k", "tokens", "fvu", "nmse", "dead_fraction", "l0",
               "loss_recovered", "loss_recovered_all", "downstream_task", "lr", "batch_size", "tokens_per_second_train", "seconds"]
"""The SAE table's columns (``sae_table.md``/``.csv``, the report page and ``docs/results/sae.md``)."""
LR_TAG = "lr_"


def sae_summaries(artifacts: Path | Study) -> pd.DataFrame:
    """Every published SAE's summary, read through :class:`Study` (a corrupt one fails naming its file)."""
    study = artifacts if isinstance(artifacts, Study) else Study(Path(artifacts))
    saes = study.saes()
    if saes is None:
        return pd.DataFrame(columns=SAE_COLUMNS)
    return saes[SAE_COLUMNS].reset_index(drop=True)


def finetune_metrics(artifacts: Path | Study) -> pd.DataFrame:
    """Every finance twin's summary, read through :class:`Study` (a corrupt one fails naming its file)."""
    study = artifacts if isinstance(artifacts, Study) else Study(Path(artifacts))
    rows = []
    for name, m in study.finetunes():
        if isinstance(m, str):
            raise FinsaeError(m)
        rows.append({
            "model": name, "base": m.base_model, "accuracy": m.phrasebank_test_accuracy,
            "macro_f1": m.phrasebank_test_macro_f1, "allagree_accuracy": m.phrasebank_test_allagree_accuracy,
            "probe_accuracy": m.probe_test_accuracy, "probe_macro_f1": m.probe_test_macro_f1,
            "probe_allagree_accuracy": m.probe_test_allagree_accuracy, "test_n": m.phrasebank_test_n,
            "seconds": m.seconds,
        })
    return pd.DataFrame(rows)


def layer_figure(df: pd.DataFrame):
    """FVU, dead fraction and loss recovered against layer, one line per (model, tag), seed-0 runs: the figure
    saved as ``sae_layers.png`` and drawn inline in the report page."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from finsae.analysis.plotting import layer_ticks

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for (model, tag), g in df[df["seed"].fillna(0) == 0].groupby(["model", "tag"]):
        g = g.sort_values("layer")
        for ax, col in zip(axes, ("fvu", "dead_fraction", "loss_recovered"), strict=True):
            ax.plot(g["layer"], pd.to_numeric(g[col], errors="coerce"), marker="o", label=f"{model} [{tag}]")
    for ax, col in zip(axes, ("sae_eval FVU", "dead fraction", "loss recovered"), strict=True):
        layer_ticks(ax, df)  # whole layer numbers, as in the analysis plots
        ax.set_xlabel("layer")
        ax.set_title(col, fontsize=10)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def layer_plot(df: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = layer_figure(df)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def layer_png(df: pd.DataFrame) -> bytes:
    """:func:`layer_figure` as PNG bytes (for the report page, which carries its images inline)."""
    import io

    import matplotlib.pyplot as plt

    fig = layer_figure(df)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def demo_table(df: pd.DataFrame, tag: str = "demo", bar: float = 0.136) -> str:
    """The README's per-layer table for one tag: both models side by side, FVU checked against ``bar``."""
    rows = df[(df["tag"] == tag) & (df["seed"].fillna(0) == 0)].sort_values(["model", "layer"])
    if rows.empty:
        return ""

    def pct(v):  # dead fraction; bold where it misses the < 1% target
        return "" if pd.isna(v) else (f"**{100 * v:.2f}%**" if v >= 0.01 else f"{100 * float(v):.2f}%")

    def num(v, fmt="{:.3f}"):  # n/a: undefined (real-token score at a last layer read only through [CLS])
        return "n/a" if v is None or pd.isna(v) else fmt.format(float(v))

    out = [f"| model | layer | latents | sae_eval FVU | FVU ≤ {bar:.3f} | NMSE | dead | L0 | loss recovered (real "
           "tokens) | loss recovered (all positions) | task | tokens | train tok/s |", "|" + "---|" * 13]
    for r in rows.itertuples(index=False):
        out.append(" | ".join(["", str(r.model), str(r.layer), num(r.num_latents, "{:,.0f}"), num(r.fvu), "yes" if r.fvu <= bar else "**no**",
                               num(r.nmse), pct(r.dead_fraction), num(r.l0, "{:.0f}"), num(r.loss_recovered),
                               num(r.loss_recovered_all), str(r.downstream_task), num(r.tokens, "{:,.0f}"),
                               num(r.tokens_per_second_train, "{:,.0f}"), ""]).strip())
    return "\n".join(out)


def lr_sweep(df: pd.DataFrame, default_tag: str = "demo") -> pd.DataFrame:
    """Held-out FVU against lr wherever ``lr_*`` runs exist, with the same layer's ``default_tag`` run (the
    default lr) as one more point when it has the same setting (latents, k, tokens). Seed-0 runs only."""
    df = df[df["seed"].fillna(0) == 0]
    swept = df[df["tag"].astype(str).str.startswith(LR_TAG)]
    if swept.empty:
        return pd.DataFrame(columns=["model", "layer", "lr", "tag", "fvu", "dead_fraction", "tokens"])
    keys = swept[["model", "layer"]].drop_duplicates()
    rows = df.merge(keys, on=["model", "layer"])
    setting = ["num_latents", "k", "tokens"]
    same = rows.merge(swept[["model", "layer", *setting]].drop_duplicates(), on=["model", "layer", *setting])
    rows = same[same["tag"].astype(str).str.startswith(LR_TAG) | (same["tag"] == default_tag)]
    cols = ["model", "layer", "lr", "tag", "fvu", "dead_fraction", "tokens"]
    return rows[cols].sort_values(["model", "layer", "lr"]).reset_index(drop=True)


def lr_plot(sweep: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for (model, layer), g in sweep.groupby(["model", "layer"]):
        ax.plot(g["lr"], g["fvu"], marker="o", label=f"{model} layer {layer}")
        best = g.loc[g["fvu"].idxmin()]
        ax.annotate(f"{best['fvu']:.3f}", (best["lr"], best["fvu"]), textcoords="offset points", xytext=(4, 6),
                    fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel("sae_eval FVU")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_tables(study: Study, out: Path) -> str:
    """Write the tables and plots into ``out`` (see the module); returns them as markdown. A corrupt summary
    fails (:class:`FinsaeError`) before anything is written."""
    out = Path(out)
    sae = sae_summaries(study)
    ft = finetune_metrics(study)
    out.mkdir(parents=True, exist_ok=True)
    text = []
    if len(ft):
        t = md_table(ft)
        (out / "finetune.md").write_text(t + "\n")
        text += ["## Finance twin (PhraseBank test split)", t, ""]
    if len(sae):
        sae.to_csv(out / "sae_table.csv", index=False)
        t = md_table(sae)
        (out / "sae_table.md").write_text(t + "\n")
        layer_plot(sae, out / "sae_layers.png")
        demo = demo_table(sae)
        if demo:
            (out / "sae_demo.md").write_text(demo + "\n")
            text += ["## Demo SAEs (README table)", demo, ""]
        text += ["## SAEs", t, "", f"plot: {out / 'sae_layers.png'}"]
        sweep = lr_sweep(sae)
        if len(sweep):
            t = md_table(sweep)
            (out / "lr_sweep.md").write_text(t + "\n")
            lr_plot(sweep, out / "lr_sweep.png")
            text += ["", "## Learning-rate sweep", t, "", f"plot: {out / 'lr_sweep.png'}"]
    if not text:
        text = [f"no SAE or fine-tune summary under {study.artifacts} yet"]
    return "\n".join(text)
