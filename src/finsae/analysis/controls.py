"""The controls an independent-SAE number is read against (definitions: :mod:`finsae.analysis.compare`): the
seed floor of the specialized count, on one latent set, and cross-reconstruction raw and with the input scale
and offset re-estimated (the seed ceilings and null dictionaries are overlaps: :mod:`finsae.analysis.overlaps`)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from finsae.analysis.doc_scores import Codes, row_chunks
from finsae.analysis.matching import Matching
from finsae.analysis.selectivity import LatentSelectivity, basic_ci, percentile_ci
from finsae.sae import TopKSAE, evaluate
from finsae.sae.evaluate import ReconstructionSums
from finsae.sae.warm_start import refit_input_stats, row_moments

if TYPE_CHECKING:
    from finsae.analysis.compare import LayerInputs


# -- cross-reconstruction ----------------------------------------------------------------------------------
def cross_fvu(sae: TopKSAE, acts, rows: np.ndarray) -> float:
    """FVU of ``sae`` on ``rows`` of ``acts`` (another model's activations: cross-reconstruction)."""
    return float(evaluate(sae, (x for _, x in row_chunks(acts, rows, 4096))).fvu)


def cross_fvu_refit(sae: TopKSAE, target_acts, source_acts, rows: np.ndarray) -> float:
    """FVU of ``sae`` on ``rows`` of ``target_acts`` after re-estimating its input scale and offset on them (no
    training): ``norm_scale`` set to the target's inverse RMS norm (what ``init_from_sample`` does), and
    ``b_dec`` moved by the difference of the normalised means of target and source (``source_acts``: what the SAE
    was trained on, same rows). A shift or rescaling of the activations then no longer counts as a change of
    features; what remains is what the dictionary cannot express."""

    fitted = copy.deepcopy(sae)
    with torch.no_grad():
        refit_input_stats(fitted, row_moments(target_acts, rows), row_moments(source_acts, rows).mean)
    return cross_fvu(fitted, target_acts, rows)


def own_fvu(sae: TopKSAE, codes: Codes, acts, rows: np.ndarray, chunk: int = 4096) -> float:
    """FVU of ``sae`` on ``rows`` of the activations it was encoded from, decoded from its stored ``codes``."""
    sums = ReconstructionSums(sae.d_in, sae.num_latents)
    r = torch.from_numpy(np.asarray(rows, np.int64))
    for lo in range(0, len(r), chunk):
        ids = r[lo:lo + chunk]
        x = torch.from_numpy(np.asarray(acts[ids.numpy()], np.float32))
        idx, a = codes.indices[ids], codes.acts[ids]
        sums.update(x, sae.decode(a, idx), idx, a)
    return float(sums.result().fvu)


class Reconstruction(NamedTuple):
    """Held-out FVU of each SAE on its own and on the other model's activations (``layers.parquet`` columns)."""

    fvu_base: float
    fvu_domain: float
    fvu_base_on_domain: float
    """Base SAE on domain activations, with its own input scale and ``b_dec`` (raw)."""
    fvu_domain_on_base: float
    cross_fvu_corrected_base_on_domain: float
    """The same after re-estimating the scale and offset on the target activations (:func:`cross_fvu_refit`)."""
    cross_fvu_corrected_domain_on_base: float


def reconstruction(inp: LayerInputs, codes: dict, rows: np.ndarray) -> Reconstruction:
    return Reconstruction(
        own_fvu(inp.base, codes["base"], inp.base_acts, rows), own_fvu(inp.domain, codes["domain"], inp.domain_acts,
                                                                        rows),
        cross_fvu(inp.base, inp.domain_acts, rows), cross_fvu(inp.domain, inp.base_acts, rows),
        cross_fvu_refit(inp.base, inp.domain_acts, inp.base_acts, rows),
        cross_fvu_refit(inp.domain, inp.base_acts, inp.domain_acts, rows))


# -- the seed floor ----------------------------------------------------------------------------------------
class SeedFloor(NamedTuple):
    """The specialized rule and its seed floor on ONE latent set, the financial latents of domain seed 1
    (``layers.parquet`` columns; NaN without seed repeats), each with a basic bootstrap interval."""

    n_specialized_seed1: float
    """Unmatched (best cosine < tau) in base seed 0: base vs domain under different initialisations."""
    n_specialized_seed1_lo: float
    n_specialized_seed1_hi: float
    n_specialized_seed_floor: float
    """Unmatched in domain seed 0: what seed-to-seed instability alone flags."""
    n_specialized_seed_floor_lo: float
    n_specialized_seed_floor_hi: float
    specialized_over_floor: float
    """Their ratio, with a percentile interval from the same resamples."""
    specialized_over_floor_lo: float
    specialized_over_floor_hi: float


NO_FLOOR = SeedFloor(*[np.nan] * len(SeedFloor._fields))


def seed_floor(sel_seed: LatentSelectivity | None, cross: Matching | None, seed_match: Matching | None,
               tau: float) -> SeedFloor:
    """:class:`SeedFloor` from domain seed 1's selectivity, its matching against base seed 0 (``cross``: base
    rows, domain-seed-1 columns) and against domain seed 0 (``seed_match``: domain-seed-1 rows)."""
    if sel_seed is None or cross is None or seed_match is None:
        return NO_FLOOR
    vs_base = cross.best_ba_cos < tau
    vs_domain = seed_match.best_ab_cos < tau
    fin, boot = sel_seed.financial, sel_seed.boot_financial
    pt = (int((fin & vs_base).sum()), int((fin & vs_domain).sum()))
    bs = ((boot & vs_base[None]).sum(1).astype(float), (boot & vs_domain[None]).sum(1).astype(float))
    (lo1, hi1), (lo2, hi2) = (map(float, basic_ci(b, p)) for b, p in zip(bs, pt, strict=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = bs[0] / bs[1]
    point = pt[0] / pt[1] if pt[1] else np.nan
    r_lo = r_hi = np.nan
    if np.isfinite(point) and np.isfinite(ratio).mean() >= 0.9:
        r_lo, r_hi = map(float, percentile_ci(ratio[np.isfinite(ratio)]))
    return SeedFloor(pt[0], lo1, hi1, pt[1], lo2, hi2, point, r_lo, r_hi)
