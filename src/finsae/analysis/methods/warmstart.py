"""Warm-started SAEs: the base SAE continued on the twin (domain run), on the twin's affine image of the
base (affine-map null) and twice on the base model itself (controls A and B); a latent is changed by
fine-tuning when its decoder drifts more than control A allows and also away from where the affine null put
it (:mod:`finsae.analysis.warmstart`). Its inputs: ``{domain}/layer_{i}/{tag}_warm_domain`` and
``{base}/layer_{i}/{tag}_warm_control``, both continued from ``{base}/layer_{i}/{tag}`` (``python train.py
sae.init_from=...``), else the method reads "not run" (a run started elsewhere is logged); optional, found
by ``analysis.warmstart.affine_suffix`` / ``control_b_suffix``: ``{domain}/layer_{i}/{tag}_warm_affine``
(``python train.py sae.dictionary=affine_null``) and ``{base}/layer_{i}/{tag}_warm_control_b`` (another
seed)."""

from __future__ import annotations

import logging
import math
from pathlib import Path
import pandas as pd

from finsae.analysis import warmstart as science
from finsae.analysis.config import WarmstartConfig
from finsae.analysis.artifacts import TableSpec
from finsae.analysis.findings import ci_text, fmt
from finsae.analysis.method_plots import plot_warmstart_drift
from finsae.analysis.methods.base import DiffingMethod, LayerData, MethodResult, Say, number
from finsae.analysis.plotting import column
from finsae.analysis.saes import PairSaes
from finsae.sae import load, read_meta
from finsae.sae.io import is_sae_dir

log = logging.getLogger("finsae")
NAME = "warmstart"
"""Method and table (``warmstart.parquet``) name."""


class WarmStart(DiffingMethod):
    name = NAME
    tables = (TableSpec(NAME, "warmstart.parquet", science.WARMSTART_COLUMNS, "warm-start table",
                        " with the warm-started SAEs trained (python train.py sae.init_from=...)", exact=True),)
    findings_header = "warm start: changed beyond the affine null and control"
    signal_label = "warm start (changed above control B's false positives)"
    # the control-A rule's counts: the repeats (base seeds 1, 2) have no affine null or control B of their own
    seed_statistics = ("n_changed_vs_control", "n_changed_control", "n_died")
    report_columns = ("n_changed", "n_changed_vs_control", "fp_rate_control_b", "n_died",
                      "n_changed_financial")

    def inputs(self, data: LayerData) -> science.WarmRuns | None:
        runs = warm_runs(data.saes, data.layer, data.analysis.warmstart)
        return None if runs is None else science.WarmRuns(*(None if d is None else load(d) for d in runs))

    def analyze(self, inputs: science.WarmRuns, data: LayerData, earlier: dict[str, MethodResult],
                say: Say) -> MethodResult:
        s = data.saes
        missing = [what for what, run in (("affine-map null", inputs.affine), ("control B", inputs.control_b))
                   if run is None]
        if missing:
            consequence = ("changed is measured against control A alone" if inputs.affine is None
                           else "no out-of-sample false-positive rate")
            say(f"warm start without its {' and '.join(missing)}: {consequence}")
        ws = science.analyze_layer(data.layer, inputs, data.acts(s.base), data.acts(s.domain), data.held,
                                   data.doc_of_row, data.analysis)
        return MethodResult(ws.row, {NAME: ws.table})

    def sae_folders(self, saes: PairSaes, cfg) -> list[tuple[str, str]]:
        """The runs' folders: domain run and control A from the base SAE and from each seed repeat, the affine
        null and control B under ``cfg``'s suffixes."""
        domain, base, tag, w = saes.domain, saes.base, saes.tag, cfg.warmstart
        starts = (tag, *saes.seed_tags)
        return [*((m, start + suffix) for start in starts for m, suffix in
                  ((domain, science.DOMAIN_SUFFIX), (base, science.CONTROL_SUFFIX))),
                (domain, tag + w.affine_suffix), (base, tag + w.control_b_suffix)]

    def figures(self, frames: dict[str, pd.DataFrame], cfg, pair: str) -> dict:
        table = frames.get(NAME)
        if table is None or not len(table):
            return {}
        return {"warmstart_drift": plot_warmstart_drift(table, f"{pair}: warm-start drift, domain vs control",
                                                        cfg.warmstart.quantile)}

    def findings_cell(self, row: pd.Series) -> str | None:
        """Changed latents (beyond the affine null and control A, with their interval), the control-only count
        beside them, control B's false-positive rate against the nominal one, and the latents that died."""
        if not math.isfinite(number(row, "n_changed")):
            return None
        n = fmt(number(row, "n_changed_vs_control"), "{:.0f}")
        null = (f" beyond the affine null ({n} beyond control A alone)" if number(row, "affine_null") == 1
                else " (no affine null)")
        text = ci_text(row, "n_changed", "{:.0f}") + null
        if math.isfinite(number(row, "fp_rate_control_b")):
            text += (f"; false positives {ci_text(row, 'fp_rate_control_b', '{:.1%}')} (control B, nominal "
                     f"{fmt(number(row, 'fp_nominal'), '{:.0%}')})")
        else:
            text += f"; control A {fmt(number(row, 'n_changed_control'), '{:.0f}')} in sample (no control B)"
        if math.isfinite(number(row, "n_died")):
            text += (f"; {fmt(number(row, 'n_died'), '{:.0f}')} died vs "
                     f"{fmt(number(row, 'n_died_control_b'), '{:.0f}')} in control B")
        return text

    def signal(self, layers: pd.DataFrame) -> pd.Series:
        """Changed latents over what the control lets through: control B's out-of-sample false positives where
        it ran, else control A's in-sample count."""
        false_pos = column(layers, "n_changed_control_b").fillna(column(layers, "n_changed_control"))
        return column(layers, "n_changed") - false_pos

    def describe(self, r: dict) -> str:
        return (f"warm start {r['n_changed']} changed latents ({r['n_changed_vs_control']} beyond control A "
                f"alone), {r['n_died']} died; control B false-positive rate {r['fp_rate_control_b']:.3f}")


def warm_runs(saes: PairSaes, layer: int,
              cfg: WarmstartConfig | None = None) -> tuple[Path | None, ...] | None:
    """``(start, domain run, control A, affine null, control B)`` folders when the domain run and control A
    exist and continue the base SAE (None otherwise); the affine null and control B are None where absent
    (a folder that exists but continued another SAE, or a control B of control A's seed, is logged and left
    out)."""
    cfg = cfg or WarmstartConfig()
    start = saes.path(saes.base, layer)
    runs = (saes.path(saes.domain, layer, saes.tag + science.DOMAIN_SUFFIX),
            saes.path(saes.base, layer, saes.tag + science.CONTROL_SUFFIX))
    if not all(is_sae_dir(d) and _started_from(d, start) for d in runs):
        return None
    affine, control_b = (d if is_sae_dir(d) and _started_from(d, start) else None for d in (
        saes.path(saes.domain, layer, saes.tag + cfg.affine_suffix),
        saes.path(saes.base, layer, saes.tag + cfg.control_b_suffix)))
    if control_b is not None and read_meta(control_b).get("seed") == read_meta(runs[1]).get("seed"):
        log.warning("%s has control A's seed (the same tokens in the same order): it is no out-of-sample "
                    "control; train it with another seed (e.g. seed=2)", control_b)
        control_b = None
    return start, *runs, affine, control_b


def _started_from(run: Path, start: Path) -> bool:
    """The warm-started SAE in ``run`` was continued from the SAE in ``start`` (its cfg.json init_from)."""
    init = (read_meta(run).get("extra") or {}).get("init_from")
    ok = init is not None and Path(init).parts[-3:] == start.parts[-3:]
    if not ok:
        log.warning("%s was not warm-started from %s (cfg.json extra.init_from=%s): no warm-start analysis",
                    run, start, init)
    return ok
