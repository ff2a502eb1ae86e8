"""Is a change *financial*? The finance pair's activation lens against the control pair's and the fine-tune
seed spread (issue 33 §1).

Three analysis folders (``analysis.lens.finance_pair``, ``.control_pair``, ``.seed_pair``): the base vs the
finance twin, the same base vs a twin of the same recipe on general text (the control), and the base vs the
finance recipe at another fine-tune seed. Per (layer, text type, position, measure) of
``activation_lens.parquet``:

* effect = finance − control, its interval from both pairs' bootstrap intervals combined in quadrature (the
  pairs' bootstraps are separate draws; on shared held-out documents the two estimates are positively
  correlated, which makes this interval wider than a paired one: conservative);
* seed spread = |finance − seed| (the same measure with only the fine-tune seed changed);
* **financial** only where the whole effect interval lies beyond ± the seed spread.

A seed folder of the two twins against each other (its base is the finance twin) measures how far the seeds'
activations lie apart, not how much a measure of the base-vs-twin pair moves with the seed: it is shown, never
used as the spread, and the comparison says which analysis is missing. Pure core: the stage calls
:func:`refresh_comparison` as each of the three pairs' analyses ends, so the last one writes the complete
``comparison.md`` (and ``comparison.parquet``) into the finance pair's folder, whatever their order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from finsae.analysis import artifacts
from finsae.analysis.lens import LensConfig
from finsae.atomic import locked, write_table, write_text
from finsae.errors import FinsaeError
from finsae.paths import analysis_dir

COMPARISON_MD, COMPARISON_TABLE = "comparison.md", "comparison.parquet"
LENS_TABLE = "activation_lens"
"""The lens method's table name (:data:`finsae.analysis.methods.lens.TABLE`)."""
KEY = ["layer", "text_type", "position", "measure"]
COLUMNS: dict[str, str] = {
    **{k: "the lens table's key" for k in KEY},
    **{f"{role}{end}": f"float: the {role} pair's estimate{end and ' interval end'}"
       for role in ("finance", "control") for end in ("", "_lo", "_hi")},
    "effect": "float: finance − control", "effect_lo": "float: lower end (quadrature of both intervals)",
    "effect_hi": "float: upper end",
    "seed": "float: the seed pair's estimate (NaN when it has none at this key)",
    "seed_spread": "float: |finance − seed| when the seed pair is like for like, else NaN",
    "verdict": "str: financial, within seed spread, no seed spread, or no control",
}
"""Columns of ``comparison.parquet``."""
SHOWN = (("relative_change", "all", "tokens"), ("relative_change", "financial", "tokens"),
         ("relative_change", "general", "tokens"), ("relative_change", "difference", "tokens"),
         ("cka", "all", "tokens"), ("affine_r2", "all", "tokens"), ("relative_change", "all", "cls"))
"""(measure, text type, position) the markdown table shows; the parquet holds every key."""


@dataclass(frozen=True)
class PairLens:
    """One pair's lens, read from its analysis folder."""

    name: str
    """Analysis folder (pair) name."""
    base: str
    domain: str
    table: pd.DataFrame
    """Its ``activation_lens.parquet``."""


@dataclass(frozen=True)
class Comparison:
    """Finance vs control vs seed pair, and what is missing."""

    table: pd.DataFrame
    """:data:`COLUMNS`, one row per key the finance and control pairs share."""
    notes: tuple[str, ...]
    """Plain sentences: which pairs were read, which are missing and why."""
    seed_like_for_like: bool
    """The seed pair holds the finance pair's base vs another seed of its twin."""


def read_pair_lens(folder: Path, name: str, models: tuple[str, str] | None = None) -> PairLens | str:
    """The pair's lens, or a sentence saying what is missing; ``models`` (base, twin) where the pair is the
    one being analysed now, whose summary is written after its tables."""
    if not artifacts.table_path(folder, LENS_TABLE).is_file():
        return (f"`{name}`: no activation_lens.parquet under {folder.name}/ (run `python analyze.py "
                f"pair={name}`, which runs the lens at every analysed layer)")
    try:
        if models is None:
            summary = artifacts.read_summary(folder)
            models = (summary.base, summary.domain)
        table = artifacts.read_table(folder, LENS_TABLE)
    except FinsaeError as e:
        return f"`{name}`: unreadable ({e})"
    return PairLens(name, *models, table)


def _estimates(p: PairLens, role: str) -> pd.DataFrame:
    return p.table[[*KEY, "value", "lo", "hi"]].rename(
        columns={"value": role, "lo": f"{role}_lo", "hi": f"{role}_hi"})


def compare_lens(finance: PairLens, control: PairLens | str, seed: PairLens | str) -> Comparison:
    """The comparison table (:data:`COLUMNS`) and its notes; ``control``/``seed`` a sentence when missing."""
    notes = [f"Finance pair `{finance.name}`: {finance.base} vs {finance.domain}."]
    if isinstance(control, str):
        notes.append(f"Control pair missing: {control}.")
        empty = pd.DataFrame(columns=list(COLUMNS))
        return Comparison(empty, tuple(notes), False)
    if control.base != finance.base:
        notes.append(f"Control pair `{control.name}` has base {control.base}, not {finance.base}: its "
                     "changes are from another starting point; compared anyway, read with care.")
    notes.append(f"Control pair `{control.name}`: {control.base} vs {control.domain}.")
    t = _estimates(finance, "finance").merge(_estimates(control, "control"), on=KEY, how="inner")
    t["effect"] = t["finance"] - t["control"]
    t["effect_lo"] = t["effect"] - np.hypot(t["finance"] - t["finance_lo"], t["control_hi"] - t["control"])
    t["effect_hi"] = t["effect"] + np.hypot(t["finance_hi"] - t["finance"], t["control"] - t["control_lo"])
    like = False
    if isinstance(seed, str):
        notes.append(f"Seed pair missing: {seed}.")
        t["seed"] = np.nan
    else:
        like = seed.base == finance.base and seed.domain != finance.domain
        t = t.merge(_estimates(seed, "seed")[[*KEY, "seed"]], on=KEY, how="left")
        if like:
            notes.append(f"Seed pair `{seed.name}`: {seed.base} vs {seed.domain}, the finance recipe at "
                         "another fine-tune seed: seed spread = |finance − seed|.")
        else:
            notes.append(
                f"Seed pair `{seed.name}` holds {seed.base} vs {seed.domain}, not {finance.base} vs another "
                "seed of the finance twin: it shows how far the two seeds lie apart (column `seed`), not "
                "how much a measure of the base-vs-twin pair moves with the seed. Missing for a verdict: the "
                f"lens of {finance.base} vs the second-seed twin (`python analyze.py "
                f"pair.base={finance.base} pair.domain=<second-seed twin>` at the compared layers, named in "
                "analysis.lens.seed_pair).")
    t["seed_spread"] = (t["finance"] - t["seed"]).abs() if like else np.nan
    bounds = t[["effect_lo", "effect_hi", "seed_spread"]].itertuples(index=False)
    t["verdict"] = [_verdict(*r) for r in bounds]
    missing = sorted(set(finance.table["layer"]) - set(t["layer"]))
    if missing:
        notes.append(f"Layer{'s' * (len(missing) > 1)} {', '.join(map(str, missing))}: analysed for the "
                     "finance pair only (no control).")
    return Comparison(t[list(COLUMNS)].sort_values(KEY, ignore_index=True), tuple(notes), like)


def _verdict(lo: float, hi: float, spread: float) -> str:
    if not math.isfinite(spread):
        return "no seed spread"
    return "financial" if lo > spread or hi < -spread else "within seed spread"


def _fmt(x: float, spec: str = "{:.3f}") -> str:
    return spec.format(x) if isinstance(x, (int, float)) and math.isfinite(x) else "n/a"


def comparison_lines(cmp: Comparison) -> list[str]:
    """The comparison as markdown lines (a findings section, or ``comparison.md`` under a title)."""
    lines = [" ".join(cmp.notes), "",
             "Effect = finance − control (interval: both pairs' bootstrap intervals in quadrature). A change "
             "is called **financial** only where that whole interval lies beyond ± the fine-tune seed spread "
             "|finance − seed pair|; \"no seed spread\": the like-for-like seed pair is missing, so nothing "
             "is called financial. Each pair's lens is measured on its own held-out set (each twin's "
             "fine-tune texts are left out of its own).", ""]
    if not len(cmp.table):
        return lines + ["No layer has both the finance and the control pair's lens: nothing to compare."]
    shown = cmp.table.set_index(["measure", "text_type", "position"]).loc[
        lambda f: f.index.isin(SHOWN)].reset_index()
    lines += ["| layer | measure | text | position | finance | control | finance − control | seed pair | "
              "seed spread | verdict |", "|---|---|---|---|---|---|---|---|---|---|"]
    order = shown.sort_values(["layer", "position", "measure", "text_type"],
                              ascending=[True, False, False, True])
    for _, r in order.iterrows():
        lines.append(
            f"| {int(r['layer'])} | {r['measure']} | {r['text_type']} | {r['position']} | "
            f"{_fmt(r['finance'])} [{_fmt(r['finance_lo'])}, {_fmt(r['finance_hi'])}] | "
            f"{_fmt(r['control'])} [{_fmt(r['control_lo'])}, {_fmt(r['control_hi'])}] | "
            f"{_fmt(r['effect'], '{:+.3f}')} [{_fmt(r['effect_lo'], '{:+.3f}')}, "
            f"{_fmt(r['effect_hi'], '{:+.3f}')}] | "
            f"{_fmt(r['seed'])} | {_fmt(r['seed_spread'])} | {r['verdict']} |")
    financial = cmp.table[cmp.table["verdict"] == "financial"]
    lines += ["", "Called financial (every measure, text type and position of comparison.parquet): "
              + ("; ".join(f"L{int(r['layer'])} {r['measure']} ({r['text_type']}, {r['position']}) "
                           f"{_fmt(r['effect'], '{:+.3f}')}" for _, r in financial.iterrows())
                 or "none") + "."]
    return lines


def pair_comparison(artifacts_root: Path, cfg: LensConfig,
                    current: tuple[str, str, str] | None = None) -> Comparison | None:
    """The comparison of the three pairs ``cfg`` names; None when the finance pair has no lens yet.
    ``current``: (pair, base, twin) of the analysis writing its tables now (its summary comes after)."""
    root = Path(artifacts_root)

    def lens(name: str) -> PairLens | str:
        models = current[1:] if current is not None and current[0] == name else None
        return read_pair_lens(analysis_dir(root, name), name, models)

    finance = lens(cfg.finance_pair)
    if isinstance(finance, str):
        return None
    return compare_lens(finance, lens(cfg.control_pair), lens(cfg.seed_pair))


def refresh_comparison(artifacts_root: Path, pair: str, cfg: LensConfig,
                       models: tuple[str, str] | None = None) -> list[str] | None:
    """After an analysis of ``pair`` (``models``: its base and twin, read from its summary when None) has
    written its tables, before its summary: when ``pair`` is one of the three ``cfg`` names,
    rewrite the finance pair's ``comparison.md`` and ``comparison.parquet`` (under the folder's comparison
    lock, so the last of concurrent analyses writes last); the lines for ``pair``'s findings when it is the
    finance pair, else None."""
    if pair not in (cfg.finance_pair, cfg.control_pair, cfg.seed_pair):
        return None
    folder = analysis_dir(Path(artifacts_root), cfg.finance_pair)
    if not folder.is_dir():
        return None
    with locked([folder / "comparison"]):
        cmp = pair_comparison(artifacts_root, cfg, None if models is None else (pair, *models))
        if cmp is None:
            return None
        lines = comparison_lines(cmp)
        write_table(cmp.table, folder / COMPARISON_TABLE, list(COLUMNS), "lens comparison table")
        title = "# Finance vs control vs fine-tune seed: the activation lens"
        write_text(folder / COMPARISON_MD, "\n".join([title, "", *lines]) + "\n")
    return lines if pair == cfg.finance_pair else None
