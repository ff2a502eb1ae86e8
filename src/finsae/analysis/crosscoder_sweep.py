"""The crosscoder's dictionary-size sweep: does a dictionary with room find model-only latents that the demo's
(768 latents for 2 x 384 inputs) cannot hold?

At a layer, the pair's crosscoder of the analysis tag is the first size; crosscoders of the same pair tagged
:func:`sweep_tag` (``{tag}_sweep{num_latents}``, trained by ``python -m finsae.demo --profile full``,
:mod:`finsae.demo.full`) are the others. Each is read like the first
(:func:`finsae.analysis.crosscoder.crosscoder_table`: relative norm, classes, Latent Scaling calibrated on its
own shared latents) and counted; its training summary says whether it meets the quality bar (FVU <=
``sweep_max_fvu``, dead < ``sweep_max_dead``): a size that misses it (e.g. trained on fewer tokens) is
flagged, its counts not read as "none there".

One row per (layer, size) of ``crosscoder_sweep.parquet`` (:data:`SWEEP_COLUMNS`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from finsae.analysis.config import CrosscoderConfig
from finsae.analysis.crosscoder import calibrate_nu, crosscoder_table, latent_scaling, row_batches
from finsae.analysis.crosscoder_summary import layer_summary
from finsae.paths import sae_root
from finsae.sae import TopKSAE, read_meta
from finsae.sae.summary import SaeSummary
from finsae.summary import SUMMARY_FILE

SWEEP = "crosscoder_sweep"
"""Table name (``crosscoder_sweep.parquet``) and figure prefix."""
SWEEP_COLUMNS = ("layer", "tag", "num_latents", "k", "tokens", "fvu", "dead_fraction", "meets_bar", "n_live",
                 "n_shared", "n_base_only", "n_domain_only", "n_base_only_artifact", "n_domain_only_artifact",
                 "n_reweighted", "delta_median", "nu_eps_shared")
"""``crosscoder_sweep.parquet``: layer, num_latents, k, tokens (int64; tokens trained on); tag (str); fvu,
dead_fraction (float64, the training summary's; NaN without one); meets_bar (bool); n_* (int64: live latents,
shared, model-only without Latent Scaling artifacts, the artifacts, re-weighted); delta_median, nu_eps_shared
(float64: the median relative norm, the Latent Scaling reference)."""
_INFIX = "_sweep"


def sweep_tag(tag: str, num_latents: int) -> str:
    """The tag of the sweep crosscoder of ``num_latents`` latents beside the crosscoder tagged ``tag``."""
    return f"{tag}{_INFIX}{int(num_latents)}"


def sweep_tags(artifacts: str | Path, model: str, tag: str, layer: int | None = None) -> list[str]:
    """The sweep tags of ``tag`` with a folder under ``artifacts/sae/{model}/`` (at ``layer`` or any), by
    size."""
    pattern = re.compile(re.escape(tag + _INFIX) + r"(\d+)")
    where = f"layer_{int(layer)}" if layer is not None else "layer_*"
    found = {p.name: int(m.group(1)) for p in (sae_root(artifacts) / model).glob(f"{where}/{tag}{_INFIX}*")
             if (m := pattern.fullmatch(p.name))}
    return sorted(found, key=found.get)


class SweepPoint(NamedTuple):
    """One size of the sweep at one layer."""

    tag: str
    sae: TopKSAE
    rows: object
    """The held-out tokens as its input (``PairedArray`` with its block scales)."""
    folder: Path
    """Its SAE folder (cfg.json; summary.json when trained by the SAE stage)."""


def training_record(folder: Path, cuts: CrosscoderConfig) -> dict:
    """Size, k, tokens, FVU, dead share of the crosscoder in ``folder``; whether it meets the quality bar."""
    meta = read_meta(folder)
    tokens = int((meta.get("extra") or {}).get("tokens", meta.get("tokens_seen", 0)) or 0)
    fvu = dead = math.nan
    if (folder / SUMMARY_FILE).is_file():
        summary = SaeSummary.read(folder)
        fvu, dead, tokens = float(summary.fvu), float(summary.dead_fraction), int(summary.tokens)
    return {"num_latents": int(meta["num_latents"]), "k": int(meta["k"]), "tokens": tokens, "fvu": fvu,
            "dead_fraction": dead,
            "meets_bar": bool(fvu <= cuts.sweep_max_fvu and dead < cuts.sweep_max_dead)}


def sweep_row(layer: int, tag: str, table: pd.DataFrame, folder: Path, cuts: CrosscoderConfig,
              nu_eps_shared: float) -> dict:
    """One row of :data:`SWEEP_COLUMNS` from a crosscoder's ``crosscoder.parquet`` rows, its folder and the
    Latent Scaling reference its artifacts were read against."""
    row = layer_summary(table, cuts=cuts)
    art = {c: int(((table["class"] == c) & table["artifact"]).sum()) for c in ("base_only", "domain_only")}
    return {"layer": int(layer), "tag": tag, **training_record(folder, cuts), "n_live": row.n_live_crosscoder,
            "n_shared": row.n_shared, "n_base_only": row.n_base_only, "n_domain_only": row.n_domain_only,
            "n_base_only_artifact": art["base_only"], "n_domain_only_artifact": art["domain_only"],
            "n_reweighted": row.n_reweighted, "delta_median": row.delta_median,
            "nu_eps_shared": float(nu_eps_shared)}


def sweep_table(layer: int, first: tuple[str, pd.DataFrame, Path], points: list[SweepPoint],
                cuts: CrosscoderConfig, nu_eps_shared: float = math.nan) -> pd.DataFrame:
    """The sweep rows of one layer: ``first`` = (tag, crosscoder.parquet rows, folder) of the analysis'
    crosscoder (its reference ``nu_eps_shared``), then each of ``points`` read the same way; by size."""
    tag, table, folder = first
    rows = [sweep_row(layer, tag, table, folder, cuts, nu_eps_shared)]
    for p in points:
        scaling = latent_scaling(p.sae, row_batches(p.rows))
        calibration = calibrate_nu(p.sae, scaling, cuts, seed=layer)
        t = crosscoder_table(layer, p.sae, scaling, cuts=cuts, calibration=calibration)
        rows.append(sweep_row(layer, p.tag, t, p.folder, cuts, calibration.nu_eps_shared))
    frame = pd.DataFrame(rows).sort_values(["num_latents", "tag"], kind="stable").reset_index(drop=True)
    for c in SWEEP_COLUMNS:
        if c.startswith("n_") or c in ("layer", "num_latents", "k", "tokens"):
            frame[c] = frame[c].astype(np.int64)
    return frame[list(SWEEP_COLUMNS)]
