"""Model diffing with a crosscoder: which latents are shared, base-only, domain-only or re-weighted, and which
of the "specific" ones are sparsity artifacts.

Per latent j of a crosscoder (``finsae.sae.crosscoder``) with decoder blocks ``d_base_j``, ``d_domain_j``:

* **relative norm** ``delta`` (0 base-only, 1/2 shared, 1 domain-only), by default Minder et al. 2025's
  ``(1 + (||d_domain|| - ||d_base||) / max(||d_base||, ||d_domain||)) / 2`` (diffing-toolkit's ``dec_norm_diff``,
  read the other way round); ``analysis.crosscoder.cutoffs=strict`` reads the share
  ``||d_domain|| / (||d_base|| + ||d_domain||)`` instead, which at the same cut-offs asks the other block to be
  half as long (domain-only: ``||d_base|| <= 0.11 ||d_domain||`` instead of ``0.2``);
* **decoder cosine** of the two blocks (NaN where one is zero): low for a shared latent rotated between the models
  or an untrained leftover whose delta is 1/2 by chance;
* **class** by ``delta`` with Minder et al.'s cut-offs (:class:`finsae.analysis.config.CrosscoderConfig`):
  ``base_only`` if ``delta <= 0.1``, ``domain_only`` if ``delta >= 0.9``, ``shared`` if ``0.4 <= delta <= 0.6``,
  else ``other``: a feature both models have at other strengths (**re-weighted**); ``dead`` if it never fires on
  the analysis tokens.
* **Latent Scaling** (Minder et al. 2025, "Overcoming sparsity artifacts in crosscoders"): with
  ``u = d_own_j`` (own = the model its norm favours) and ``f_j`` its activation, fit per model M the scalar
  ``beta = sum f <u, y> / (||u||^2 sum f^2)`` that best explains a target ``y`` by ``beta f_j u``; targets (all
  in the crosscoder's normalised units, decoder bias left out of reconstructions):

  - error ``eps_M = h_M - hat_M + f_j d_M_j``: what the *other* latents leave unexplained in M;
  - reconstruction: own model ``hat_own - b_dec`` (the latents' reconstruction, latent j included); other
    model ``hat_other - b_dec - f_j d_other_j`` (what the other latents reconstruct there).

  ``nu_eps = beta_eps_other / beta_eps_own`` and ``nu_r = beta_r_other / beta_r_own``. A truly specific latent
  has both near 0. **Complete shrinkage**: the other model does carry the direction, but its decoder block was
  pushed to zero, so the other model's error holds it (``nu_eps`` high). **Latent decoupling**: the other model
  carries it too, through other latents that fire with j (``nu_r`` high). A model-specific latent with
  ``nu`` above ``artifact_nu`` (0.5) of what a shared latent scores (the median ``nu`` of a random sample of
  the shared latents, :func:`calibrate_nu`; diffing-toolkit's shared baseline) is flagged ``artifact`` and
  not counted as specific: the other model explains at least half as much of it as of a feature both have.
* **Seed stability**: the share of seed 0's domain-only latents whose best domain-only latent of seed 1 has
  decoder cosine >= tau (the crosscoder's own ceiling).

The rows of ``crosscoder.parquet`` (:data:`CROSSCODER_COLUMNS`, one per (layer, latent)) are made here, the
per-layer fields in :mod:`finsae.analysis.crosscoder_summary`, the dictionary-size sweep in
:mod:`finsae.analysis.crosscoder_sweep`; :mod:`finsae.analysis.methods.crosscoder` finds the crosscoders.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from finsae.analysis.config import CUTOFFS, AnalysisConfig, CrosscoderConfig
from finsae.analysis.contexts import build_contexts
from finsae.analysis.crosscoder_summary import CrosscoderRow, class_stability, layer_summary
from finsae.analysis.doc_scores import Codes, DocScores, doc_scores, encode_rows
from finsae.analysis.feature_table import corpus_of_docs
from finsae.analysis.heldout import HeldoutSet
from finsae.analysis.selectivity import LatentSelectivity, financial_selectivity
from finsae.errors import ConfigError
from finsae.sae import TopKSAE, decoder_blocks, load, read_meta
from finsae.sae.kernels import latent_sums

CLASSES = ("base_only", "shared", "domain_only", "other", "dead")
CROSSCODER_COLUMNS = ("layer", "latent", "delta", "decoder_cosine", "class", "artifact", "beta_eps_own",
                      "beta_eps_other", "beta_r_own", "beta_r_other", "nu_eps", "nu_r", "n_active", "auroc_broad",
                      "auroc_genre", "financial")
"""``crosscoder.parquet``: layer, latent (int64); delta, decoder_cosine (float64); class (str, one of
:data:`CLASSES`); artifact (bool: model-specific by delta but flagged by Latent Scaling); beta_* (the four Latent
Scaling fits), nu_eps, nu_r (their ratios; NaN for dead latents); n_active (analysis tokens it fires on);
auroc_broad, auroc_genre (financial selectivity, NaN when not computed), financial (the project's rule)."""
CHUNK_ROWS = 2048
COACT_MAX_LATENTS = 2048
"""Latent Scaling sums the latents' co-activations in an ``[m, m]`` float64 table up to this many latents (32 MB;
the demo's 768: 4.7 MB); wider crosscoders rebuild each token's reconstruction instead (no ``[m, m]`` object)."""


# -- decoder geometry ------------------------------------------------------------------------------------
def relative_norm(base: Tensor | np.ndarray, domain: Tensor | np.ndarray, cutoffs: str = "minder") -> np.ndarray:
    """``delta`` per row of two ``[m, d]`` blocks (NaN for an all-zero row): ``minder`` (default)
    ``(1 + (||d_domain|| - ||d_base||) / max(||d_base||, ||d_domain||)) / 2``, ``strict``
    ``||d_domain|| / (||d_base|| + ||d_domain||)`` (``analysis.crosscoder.cutoffs``)."""
    nb = np.linalg.norm(np.asarray(base, np.float64), axis=1)
    nd = np.linalg.norm(np.asarray(domain, np.float64), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if cutoffs == "minder":
            return (1 + (nd - nb) / np.maximum(nb, nd)) / 2
        if cutoffs == "strict":
            return nd / (nb + nd)
    raise ValueError(f"cutoffs must be one of {CUTOFFS}, got {cutoffs!r}")


def decoder_cosine(base: Tensor | np.ndarray, domain: Tensor | np.ndarray) -> np.ndarray:
    """Cosine between each latent's two decoder blocks (NaN where a block is zero)."""
    b, d = np.asarray(base, np.float64), np.asarray(domain, np.float64)
    den = np.linalg.norm(b, axis=1) * np.linalg.norm(d, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (b * d).sum(1) / den, np.nan)


def classify(delta: np.ndarray, n_active: np.ndarray | None = None,
             cuts: CrosscoderConfig | None = None) -> np.ndarray:
    """Class of each latent from its relative norm (``cuts``: default ``analysis.crosscoder``); ``dead`` where
    ``n_active == 0``."""
    cuts = cuts or CrosscoderConfig()
    delta = np.asarray(delta, np.float64)
    out = np.full(delta.shape, "other", dtype=object)
    out[delta <= cuts.base_only_max] = "base_only"
    out[delta >= cuts.domain_only_min] = "domain_only"
    out[(delta >= cuts.shared_min) & (delta <= cuts.shared_max)] = "shared"
    if n_active is not None:
        out[np.asarray(n_active) == 0] = "dead"
    return out


# -- Latent Scaling ----------------------------------------------------------------------------------------
class LatentScaling(NamedTuple):
    """Latent Scaling fits per latent (arrays over latents; NaN where the latent never fired)."""

    beta_eps_own: np.ndarray
    """Fit of ``f_j u`` to the own model's error left by the other latents (about 1 for a working latent)."""
    beta_eps_other: np.ndarray
    """The same on the other model: high when its decoder block shrank away though the direction is there."""
    beta_r_own: np.ndarray
    """Fit to the own model's reconstruction (latent j included)."""
    beta_r_other: np.ndarray
    """Fit to the other model's reconstruction by the other latents: high when they carry the direction."""
    n_active: np.ndarray
    """Tokens the latent fired on."""

    @property
    def nu_eps(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.beta_eps_other / self.beta_eps_own

    @property
    def nu_r(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.beta_r_other / self.beta_r_own


@torch.no_grad()
def latent_scaling(sae: TopKSAE, batches: Iterable[Tensor], own_is_domain: np.ndarray | None = None,
                   codes: Codes | None = None) -> LatentScaling:
    """Latent Scaling of every latent of crosscoder ``sae`` over ``batches`` of its input rows ``[n, 2d]``
    (the paired, block-scaled activations it was trained on). ``own_is_domain [m]``: which block is the
    latent's own (default: ``delta >= 0.5``). ``codes``: ``sae``'s codes of those rows in order
    (:func:`~finsae.analysis.doc_scores.encode_rows`), read instead of encoding them again."""
    blocks = decoder_blocks(sae)
    db, dd = blocks.base.double(), blocks.domain.double()
    m, d = db.shape
    if own_is_domain is None:
        own_is_domain = relative_norm(db, dd) >= 0.5
    own_dom = torch.from_numpy(np.asarray(own_is_domain, bool))
    if own_dom.shape != (m,):
        raise ValueError(f"own_is_domain must have {m} entries, got {tuple(own_dom.shape)}")
    u = torch.where(own_dom.unsqueeze(1), dd, db)  # [m, d]
    c = {"base": (db * u).sum(1), "domain": (dd * u).sum(1)}  # d_M_j . u_j
    # G_M[i, j] = d_M_i . u_j. A token's reconstruction dotted with u_j is sum_s f_s G_M[idx_s, j], so the
    # reconstruction part of the sums is sum_i G_M[i, j] C[i, j] with C = F^T F, the latents' co-activations (one
    # scatter of k^2 products per token, both blocks at once); the input part comes from F^T x (the codes'
    # transpose, at k/m of the dense work); the error is their difference (err = x - recon - b_dec). Wider
    # crosscoders, whose [m, m] tables would not fit, take the reconstruction's part from F^T recon as well
    table = m <= COACT_MAX_LATENTS
    coact = torch.zeros(m * m, dtype=torch.float64) if table else None
    w_cat = None if table else torch.cat([db, dd], 1)  # [m, 2d]
    b_dec = sae.b_dec.detach().double()
    bu = {"base": u @ b_dec[:d], "domain": u @ b_dec[d:]}  # b_dec_M . u_j
    xu = {k: torch.zeros(m, dtype=torch.float64) for k in c}  # sum_i f_ij (x_i . u_j)
    rec = {k: torch.zeros(m, dtype=torch.float64) for k in c}  # sum_i f_ij (recon_i . u_j)
    ff, fsum = torch.zeros(m, dtype=torch.float64), torch.zeros(m, dtype=torch.float64)  # sum f^2, sum f
    n_active = torch.zeros(m, dtype=torch.long)
    seen = 0
    for x in batches:
        for xs in torch.split(x.reshape(-1, sae.d_in), CHUNK_ROWS):
            if codes is None:
                code = sae.encode(xs)
                idx, acts = code.latent_indices.long(), code.latent_acts.double()
            else:
                idx, acts = codes.indices[seen:seen + len(xs)].long(), codes.acts[seen:seen + len(xs)].double()
                if len(idx) != len(xs):
                    raise ValueError(f"latent_scaling: codes hold {len(codes.indices)} rows, the batches more")
            flat, fa = idx.reshape(-1), acts.reshape(-1)
            ff.index_add_(0, flat, fa.pow(2))
            fsum.index_add_(0, flat, fa)
            n_active.index_add_(0, flat, (fa > 0).long())
            xn = xs.double() * float(sae.norm_scale)
            if table:
                fx = latent_sums(idx, acts, xn, m)  # [m, 2d]: sum_i f_ij x_i
                pair = (idx.unsqueeze(2) * m + idx.unsqueeze(1)).reshape(-1)  # (idx_s, idx_a) as one index
                coact += torch.bincount(pair, (acts.unsqueeze(2) * acts.unsqueeze(1)).reshape(-1), m * m)
            else:
                recon = F.embedding_bag(idx, w_cat, per_sample_weights=acts, mode="sum")  # [n, 2d]
                fx, fr = latent_sums(idx, acts, torch.cat([xn, recon], 1), m).split(2 * d, 1)
            for k, sl in (("base", slice(0, d)), ("domain", slice(d, 2 * d))):
                xu[k] += (fx[:, sl] * u).sum(1)
                if not table:
                    rec[k] += (fr[:, sl] * u).sum(1)
            seen += xs.shape[0]
    if seen == 0:
        raise ValueError("latent_scaling got no rows")
    if codes is not None and seen != len(codes.indices):
        raise ValueError(f"latent_scaling: codes hold {len(codes.indices)} rows, the batches {seen}")
    if table:
        rec = {k: ((blk @ u.t()) * coact.reshape(m, m)).sum(0) for k, blk in (("base", db), ("domain", dd))}
    # the error's part, plus the f_j d_M_j . u_j part of each error
    eps = {k: xu[k] - rec[k] - bu[k] * fsum + c[k] * ff for k in c}
    uu = u.pow(2).sum(1)
    den = uu * ff
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = {name: (v / den).numpy() for name, v in
                [("eps_b", eps["base"]), ("eps_d", eps["domain"]), ("r_b", rec["base"]), ("r_d", rec["domain"])]}
        own_self = (c["domain"] / uu).numpy(), (c["base"] / uu).numpy()  # f_j d_M_j's own share of the M fit
    od = own_dom.numpy()
    nan = np.where(n_active.numpy() == 0, np.nan, 0.0)  # dead latents
    return LatentScaling(
        beta_eps_own=np.where(od, beta["eps_d"], beta["eps_b"]) + nan,
        beta_eps_other=np.where(od, beta["eps_b"], beta["eps_d"]) + nan,
        beta_r_own=np.where(od, beta["r_d"], beta["r_b"]) + nan,
        beta_r_other=np.where(od, beta["r_b"] - own_self[1], beta["r_d"] - own_self[0]) + nan,
        n_active=n_active.numpy().astype(np.int64),
    )


class NuCalibration(NamedTuple):
    """What a latent present in both models scores under Latent Scaling: the references ``nu`` is read against
    (1, 1 and no latents when not calibrated)."""

    nu_eps_shared: float
    """Median ``nu_eps`` of the sampled shared latents."""
    nu_r_shared: float
    """Median ``nu_r`` of the sampled shared latents, their own block counted in the other model's
    reconstruction (diffing-toolkit's reconstruction target: about 1 for a feature both models have)."""
    n_calibration: int
    """Shared latents sampled (0: ``fixed``, or too few shared latents)."""


FIXED_NU = NuCalibration(1.0, 1.0, 0)
NU_CALIBRATION_MIN = 10
"""Fewer shared live latents than this leave ``nu`` uncalibrated (a median of a handful says little)."""


def calibrate_nu(sae: TopKSAE, scaling: LatentScaling, cuts: CrosscoderConfig | None = None,
                 seed: int = 0) -> NuCalibration:
    """The Latent Scaling references of crosscoder ``sae``: the median ``nu`` of a seeded random sample of its
    shared live latents (``cuts.nu_calibration_latents`` of them; ``cuts.nu_calibration=fixed``: 1)."""
    cuts = cuts or CrosscoderConfig()
    if cuts.nu_calibration == "fixed":
        return FIXED_NU
    blocks = decoder_blocks(sae)
    db, dd = blocks.base.double().numpy(), blocks.domain.double().numpy()
    cls = classify(relative_norm(db, dd, cuts.cutoffs), scaling.n_active, cuts)
    nu_eps, nu_r = scaling.nu_eps, scaling.nu_r
    shared = np.flatnonzero((cls == "shared") & np.isfinite(nu_eps) & np.isfinite(nu_r))
    if len(shared) < NU_CALIBRATION_MIN or cuts.nu_calibration_latents < NU_CALIBRATION_MIN:
        return FIXED_NU
    pick = np.sort(np.random.default_rng(seed).choice(shared, min(len(shared), cuts.nu_calibration_latents),
                                                      replace=False))
    own_dom = relative_norm(db, dd)[pick] >= 0.5
    u = np.where(own_dom[:, None], dd[pick], db[pick])
    other = np.where(own_dom[:, None], db[pick], dd[pick])
    self_other = (other * u).sum(1) / (u * u).sum(1)  # f_j d_other_j's share of the other model's fit
    ref_eps = float(np.median(nu_eps[pick]))
    ref_r = float(np.median((scaling.beta_r_other[pick] + self_other) / scaling.beta_r_own[pick]))
    if not (ref_eps > 0 and ref_r > 0):  # no latent is present in both: nothing to calibrate on
        return FIXED_NU
    return NuCalibration(ref_eps, ref_r, len(pick))


def is_artifact(cls: np.ndarray, scaling: LatentScaling, cut: float = CrosscoderConfig.artifact_nu,
                calibration: NuCalibration = FIXED_NU) -> np.ndarray:
    """Model-specific latents (by delta) whose specificity Latent Scaling calls a sparsity artifact: ``nu_eps``
    or ``nu_r`` above ``cut`` times what a shared latent scores (``calibration``)."""
    specific = np.isin(np.asarray(cls, object), ["base_only", "domain_only"])
    eps = np.nan_to_num(scaling.nu_eps, nan=0.0) > cut * calibration.nu_eps_shared
    return specific & (eps | (np.nan_to_num(scaling.nu_r, nan=0.0) > cut * calibration.nu_r_shared))


# -- contexts ----------------------------------------------------------------------------------------------
def crosscoder_contexts(latents: np.ndarray, codes: Codes, scores: DocScores, held: HeldoutSet,
                        doc_of_row: np.ndarray, char_start: np.ndarray, seed: int = 0) -> pd.DataFrame:
    """Contexts (``finsae.analysis.contexts`` format) of ``latents`` (stored under the method's model name)."""
    frame = held.corpus.frame
    corpus_of_doc = corpus_of_docs(held)
    order = np.argsort(doc_of_row, kind="stable")
    bounds = np.searchsorted(np.asarray(doc_of_row)[order], np.arange(len(frame) + 1))
    return build_contexts(np.asarray(latents, np.int64), scores.max, codes.latent,
                          lambda doc: order[bounds[doc]:bounds[doc + 1]], frame["text"].tolist(), char_start,
                          frame["doc_id"].tolist(), corpus_of_doc, seed=seed)


# -- one layer -------------------------------------------------------------------------------------------
def load_crosscoder(path: str | Path) -> tuple[TopKSAE, tuple[float, float]]:
    """A trained crosscoder and the per-model block scales its input was built with (its cfg.json)."""
    meta = read_meta(path)
    info = (meta.get("extra") or {}).get("crosscoder")
    if not info:
        raise ConfigError(f"{path} holds an SAE, not a crosscoder (no extra.crosscoder in cfg.json); train one "
                          f"with `python train.py task=crosscoder`")
    scales = tuple(float(s) for s in info["block_scales"])
    return load(path), (scales[0], scales[1])


def crosscoder_table(layer: int, sae: TopKSAE, scaling: LatentScaling, selectivity: LatentSelectivity | None = None,
                     cuts: CrosscoderConfig | None = None, calibration: NuCalibration | None = None) -> pd.DataFrame:
    """The ``crosscoder.parquet`` rows of one layer (:data:`CROSSCODER_COLUMNS`); ``calibration``: default
    :func:`calibrate_nu` (seed ``layer``)."""
    cuts = cuts or CrosscoderConfig()
    if calibration is None:
        calibration = calibrate_nu(sae, scaling, cuts, seed=layer)
    blocks = decoder_blocks(sae)
    delta = relative_norm(blocks.base, blocks.domain, cuts.cutoffs)
    cls = classify(delta, scaling.n_active, cuts)
    m = len(delta)
    if selectivity is None:
        auroc_broad, auroc_genre, financial = np.full(m, np.nan), np.full(m, np.nan), np.zeros(m, bool)
    else:
        auroc_broad, auroc_genre, financial = selectivity.broad.auroc, selectivity.genre.auroc, selectivity.financial
    if len(financial) != m:
        raise ValueError(f"selectivity has {len(financial)} rows, the crosscoder {m} latents")
    frame = pd.DataFrame({
        "layer": np.full(m, layer, np.int64), "latent": np.arange(m, dtype=np.int64), "delta": delta,
        "decoder_cosine": decoder_cosine(blocks.base, blocks.domain), "class": cls.astype(str),
        "artifact": is_artifact(cls, scaling, cuts.artifact_nu, calibration), "beta_eps_own": scaling.beta_eps_own,
        "beta_eps_other": scaling.beta_eps_other, "beta_r_own": scaling.beta_r_own,
        "beta_r_other": scaling.beta_r_other, "nu_eps": scaling.nu_eps, "nu_r": scaling.nu_r,
        "n_active": scaling.n_active, "auroc_broad": np.asarray(auroc_broad, np.float64),
        "auroc_genre": np.asarray(auroc_genre, np.float64), "financial": np.asarray(financial, bool),
    })
    return frame[list(CROSSCODER_COLUMNS)]


@dataclass
class CrosscoderLayer:
    """What the analysis stage takes from one layer's crosscoder."""

    table: pd.DataFrame
    """``crosscoder.parquet`` rows of the layer."""
    row: CrosscoderRow
    """Its ``layers.parquet`` fields."""
    contexts: pd.DataFrame | None = field(default=None)
    """Contexts of the domain-only (non-artifact) and a few shared latents."""


def row_batches(rows) -> Iterable[Tensor]:
    """``rows`` (an array or ``PairedArray``) as float32 tensors of :data:`CHUNK_ROWS` rows."""
    for lo in range(0, len(rows), CHUNK_ROWS):
        yield torch.from_numpy(np.asarray(rows[lo:lo + CHUNK_ROWS], np.float32))


def analyze_layer(layer: int, sae: TopKSAE, paired_rows, held: HeldoutSet, doc_of_row: np.ndarray,
                  char_start: np.ndarray, cfg: AnalysisConfig, *, sae_seed1: TopKSAE | None = None,
                  paired_rows_seed1=None) -> CrosscoderLayer:
    """Everything above for one layer. ``paired_rows``: the analysis tokens as crosscoder input
    (``finsae.activations.PairedArray`` over the held-out stores with the crosscoder's block scales), row i =
    ``doc_of_row[i]``; ``paired_rows_seed1``: the same rows with seed 1's block scales."""
    cuts = cfg.crosscoder
    codes = encode_rows(sae, paired_rows)
    scores = doc_scores(codes, doc_of_row, len(held.corpus.frame))
    scaling = latent_scaling(sae, row_batches(paired_rows), codes=codes)
    calibration = calibrate_nu(sae, scaling, cuts, seed=cfg.seed + layer)
    table = crosscoder_table(layer, sae, scaling, financial_selectivity(scores, held, cfg.score, cfg.fdr,
                                                                        cfg.min_auroc), cuts, calibration)
    seed1, stability = None, None
    if sae_seed1 is not None:
        seed1 = crosscoder_table(layer, sae_seed1, latent_scaling(sae_seed1, row_batches(paired_rows_seed1)),
                                 cuts=cuts)
        stability = class_stability(sae.W_dec.detach(), _specific(table), sae_seed1.W_dec.detach(), _specific(seed1),
                                    "domain_only", cfg.tau)
    dom = table.loc[(table["class"] == "domain_only") & ~table["artifact"], "latent"].to_numpy()
    shared = table.loc[table["class"] == "shared", "latent"].to_numpy()
    n_shared = min(cuts.shared_contexts, len(shared))
    shared = np.random.default_rng(cfg.seed + layer).choice(shared, n_shared, replace=False)
    contexts = crosscoder_contexts(np.union1d(dom, shared), codes, scores, held, doc_of_row, char_start,
                                   cfg.seed)
    return CrosscoderLayer(table, layer_summary(table, seed1, stability, cuts, calibration), contexts)


def _specific(table: pd.DataFrame) -> np.ndarray:
    """Classes with Latent Scaling artifacts relabelled ``other`` (what counts as specific)."""
    cls = table["class"].to_numpy(object).copy()
    cls[table["artifact"].to_numpy(bool)] = "other"
    return cls
