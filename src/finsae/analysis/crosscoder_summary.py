"""A layer's crosscoder in ``layers.parquet`` fields (:class:`CrosscoderRow`), read from its
``crosscoder.parquet`` rows (:func:`finsae.analysis.crosscoder.crosscoder_table`).

Counts of shared, base-only and domain-only latents (specific ones without Latent Scaling artifacts) with
95% Wilson intervals over the live latents, and seed 1's counts beside them (the intervals hold the
dictionary fixed; the seed-1 counts show what a reseed moves); the **re-weighted** latents, neither shared
nor model-specific (delta between the classes: features both models have, at other strengths), by the side
they lean to, with a few named examples; the median delta; the shared latents' block cosine (how many point
one way in both models, how many are untrained leftovers or rotated features whose delta is near 1/2 by
chance); the Latent Scaling references the artifacts were read against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from finsae.analysis.config import AnalysisConfig, CrosscoderConfig
from finsae.analysis.rows import RowFields

if TYPE_CHECKING:
    from finsae.analysis.crosscoder import NuCalibration

NAN = float("nan")


def wilson_count(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a count ``k`` of ``n``, as counts (``n * [lo, hi]`` of the share)."""
    if n <= 0:
        return NAN, NAN
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return float(n * max(0.0, mid - half)), float(n * min(1.0, mid + half))


def class_stability(w0: Tensor | np.ndarray, cls0: np.ndarray, w1: Tensor | np.ndarray, cls1: np.ndarray,
                    cls: str = "domain_only", tau: float = AnalysisConfig.tau) -> float:
    """Share of seed 0's ``cls`` latents whose most similar ``cls`` latent of seed 1 has decoder cosine >= tau
    (full decoder rows, both blocks); NaN when seed 0 has none."""
    a = np.flatnonzero(np.asarray(cls0, object) == cls)
    b = np.flatnonzero(np.asarray(cls1, object) == cls)
    if len(a) == 0:
        return float("nan")
    if len(b) == 0:
        return 0.0
    ua = torch.nn.functional.normalize(torch.as_tensor(np.asarray(w0, np.float32)[a]), dim=1)
    ub = torch.nn.functional.normalize(torch.as_tensor(np.asarray(w1, np.float32)[b]), dim=1)
    # chunks of rows: at paper width every latent may be specific in both seeds (a [m, m] table of 2.4 GB)
    best = torch.cat([(rows @ ub.t()).max(1).values for rows in torch.split(ua, 2048)])
    return float((best >= tau).float().mean())


@dataclass
class CrosscoderRow(RowFields):
    """The crosscoder's ``layers.parquet`` fields of one layer (NaN where seed 1 is missing)."""

    n_live_crosscoder: int
    n_shared: int
    n_shared_lo: float
    n_shared_hi: float
    n_shared_seed1: float = NAN
    n_base_only: int = 0
    n_base_only_lo: float = NAN
    n_base_only_hi: float = NAN
    n_base_only_artifact: int = 0
    n_base_only_seed1: float = NAN
    n_domain_only: int = 0
    n_domain_only_lo: float = NAN
    n_domain_only_hi: float = NAN
    n_domain_only_artifact: int = 0
    n_domain_only_seed1: float = NAN
    n_domain_only_financial: int = 0
    crosscoder_seed_stability: float = NAN
    n_reweighted: int = 0
    """Live latents between the classes (re-weighted features), either side."""
    n_reweighted_base: int = 0
    """... leaning to the base model (delta between base-only and shared): weaker in the twin."""
    n_reweighted_domain: int = 0
    """... leaning to the twin: stronger in the twin."""
    n_reweighted_seed1: float = NAN
    reweighted_examples: str = ""
    """The most re-weighted latents whose blocks point one way: ``latent (delta, cosine)``, ``; ``-joined."""
    delta_median: float = NAN
    """Median delta of the live latents (1/2: the models weigh the dictionary alike)."""
    n_shared_cos_high: int = 0
    """Shared latents whose blocks have cosine >= ``shared_cosine_high`` (one direction in both models)."""
    n_shared_cos_low: int = 0
    """Shared latents whose blocks have cosine < ``shared_cosine_low``."""
    nu_eps_shared: float = 1.0
    """The Latent Scaling references the artifacts were read against (:class:`~finsae.analysis.crosscoder.
    NuCalibration`; 1, 1, 0 when not calibrated)."""
    nu_r_shared: float = 1.0
    n_nu_calibration: int = 0
    crosscoder_cutoffs: str = "minder"
    """The relative-norm definition of the classes (``analysis.crosscoder.cutoffs``)."""


def _specific_counts(table: pd.DataFrame, cls: str) -> tuple[int, int]:
    """``(kept, artifacts)`` of class ``cls``."""
    is_cls = (table["class"] == cls).to_numpy()
    art = table["artifact"].to_numpy(bool)
    return int((is_cls & ~art).sum()), int((is_cls & art).sum())


def reweighted_sides(table: pd.DataFrame, cuts: CrosscoderConfig) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the re-weighted latents (class ``other``) leaning to the base model and to the twin."""
    other = (table["class"] == "other").to_numpy()
    delta = pd.to_numeric(table["delta"]).to_numpy(np.float64)
    return other & (delta < cuts.shared_min), other & (delta > cuts.shared_max)


def reweighted_examples(table: pd.DataFrame, cuts: CrosscoderConfig) -> pd.DataFrame:
    """Up to ``cuts.reweighted_examples`` re-weighted latents whose blocks point one way (cosine >=
    ``shared_cosine_high``), the farthest from 1/2 first: features both models have, at clearly other
    strengths."""
    base, domain = reweighted_sides(table, cuts)
    cos = pd.to_numeric(table["decoder_cosine"]).to_numpy(np.float64)
    pick = table[(base | domain) & (np.nan_to_num(cos, nan=-1.0) >= cuts.shared_cosine_high)]
    far = (pd.to_numeric(pick["delta"]) - 0.5).abs().round(9)  # ties (0.2 and 0.8) go by latent, not rounding
    return pick.assign(_far=far).sort_values(["_far", "latent"], ascending=[False, True]).head(
        cuts.reweighted_examples).drop(columns="_far")


def layer_summary(table: pd.DataFrame, seed1: pd.DataFrame | None = None, stability: float | None = None,
                  cuts: CrosscoderConfig | None = None,
                  calibration: NuCalibration | None = None) -> CrosscoderRow:
    """The :class:`CrosscoderRow` of one layer from its ``crosscoder.parquet`` rows (seed 0) and, when given,
    seed 1's rows, the seed stability and the Latent Scaling references the artifacts were read against."""
    cuts = cuts or CrosscoderConfig()
    live = (table["class"] != "dead").to_numpy()
    n_live = int(live.sum())
    out: dict = {"n_live_crosscoder": n_live}
    for cls in ("shared", "base_only", "domain_only"):
        k, art = _specific_counts(table, cls)
        lo, hi = wilson_count(k, n_live)
        out.update({f"n_{cls}": k, f"n_{cls}_lo": lo, f"n_{cls}_hi": hi})
        if cls != "shared":
            out[f"n_{cls}_artifact"] = art
        if seed1 is not None:
            out[f"n_{cls}_seed1"] = _specific_counts(seed1, cls)[0]
    dom = (table["class"] == "domain_only").to_numpy() & ~table["artifact"].to_numpy(bool)
    out["n_domain_only_financial"] = int((dom & table["financial"].to_numpy(bool)).sum())
    out["crosscoder_seed_stability"] = NAN if stability is None else float(stability)
    base, domain = reweighted_sides(table, cuts)
    out.update(n_reweighted=int((base | domain).sum()), n_reweighted_base=int(base.sum()),
               n_reweighted_domain=int(domain.sum()))
    if seed1 is not None:
        out["n_reweighted_seed1"] = int((seed1["class"] == "other").sum())
    out["reweighted_examples"] = "; ".join(
        f"{int(r.latent)} (delta {r.delta:.2f}, cos {r.decoder_cosine:.2f})"
        for r in reweighted_examples(table, cuts).itertuples())
    delta = pd.to_numeric(table["delta"]).to_numpy(np.float64)[live]
    out["delta_median"] = float(np.nanmedian(delta)) if np.isfinite(delta).any() else NAN
    shared_cos = pd.to_numeric(table.loc[table["class"] == "shared", "decoder_cosine"]).to_numpy(np.float64)
    out["n_shared_cos_high"] = int((shared_cos >= cuts.shared_cosine_high).sum())
    out["n_shared_cos_low"] = int((shared_cos < cuts.shared_cosine_low).sum())
    if calibration is not None:
        out.update(nu_eps_shared=calibration.nu_eps_shared, nu_r_shared=calibration.nu_r_shared,
                   n_nu_calibration=calibration.n_calibration)
    out["crosscoder_cutoffs"] = cuts.cutoffs
    return CrosscoderRow(**out)
