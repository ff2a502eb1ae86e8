"""Warm-started SAEs: which latents did fine-tuning move, measured against a control run of the same length.

Both runs start from the trained base SAE (``python train.py sae.init_from=...``) and train the same tokens
with the same lr and schedule: the **domain run** on the finance twin's activations, the **control run** on the
base model's own activations (another data order). Latent i of all three SAEs is one latent by construction,
so no matching is involved. Per latent:

* ``drift_domain`` / ``drift_control``: ``1 - cos(d_start_i, d_end_i)`` of its decoder row in each run;
* ``changed``: ``drift_domain`` above the control's 99th percentile (the drift that continued training alone
  reaches for 1 latent in 100), over the **live** latents (firing in all three SAEs: a latent that never fires
  gets no reconstruction gradient, and its decoder wanders under AuxK in either run, which would set the
  threshold by noise);
* ``selectivity_change``: the latent's broad-contrast AUROC after the domain run minus after the control run
  (NaN when not computed); ``financial``: the domain run's latent passes the project's financial rule.

``n_changed`` carries a 95% percentile interval from ``analysis.warmstart.n_boot`` resamples of the latents of
both runs (the threshold is itself estimated from the control's latents, so it moves too); ``n_changed_control``
counts the control's latents above that same threshold (about 1% of them by construction: the false-positive
level). The quantile is ``analysis.warmstart.quantile`` (:class:`finsae.analysis.config.WarmstartConfig`).

Trained SAEs (``artifacts/sae/{model}/layer_{i}/``): the domain run ``{tag}`` + :data:`DOMAIN_SUFFIX` under the
finance twin, the control run ``{tag}`` + :data:`CONTROL_SUFFIX` under the base model, both started from the
base model's ``{tag}`` SAE and trained with the same seed (so the same tokens in the same order: the caches of
the two models are row-aligned). :func:`analyze_layer` is what the analysis stage runs per layer; there
"live" is measured on the held-out analysis tokens (the latent fires there in all three SAEs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from finsae.analysis.config import AnalysisConfig, WarmstartConfig
from finsae.analysis.doc_scores import doc_scores, encode_rows
from finsae.analysis.rows import RowFields
from finsae.analysis.selectivity import financial_selectivity
from finsae.sae import TopKSAE

DOMAIN_SUFFIX = "_warm_domain"
"""Tag suffix of the domain run: ``{tag}_warm_domain`` (the base SAE continued on the finance twin)."""
CONTROL_SUFFIX = "_warm_control"
"""Tag suffix of the control run: ``{tag}_warm_control`` (the base SAE continued on the base model)."""

QUANTILE = WarmstartConfig.quantile
"""``analysis.warmstart.quantile``'s default."""
N_BOOT = WarmstartConfig.n_boot
"""``analysis.warmstart.n_boot``'s default."""
WARMSTART_COLUMNS = ("layer", "latent", "drift_domain", "drift_control", "selectivity_change", "changed",
                     "financial", "live")
"""``warmstart.parquet``: layer, latent (int64); drift_domain, drift_control, selectivity_change (float64);
changed, financial, live (bool: the latent fires in all three SAEs; only live latents set the threshold and can
be changed)."""


def decoder_drift(start: TopKSAE | torch.Tensor | np.ndarray, end: TopKSAE | torch.Tensor | np.ndarray) -> np.ndarray:
    """``1 - cosine`` between the decoder rows of the same latents before and after a run."""
    a, b = (np.asarray(s.W_dec.detach() if isinstance(s, TopKSAE) else s, np.float64) for s in (start, end))
    if a.shape != b.shape:
        raise ValueError(f"a warm-started SAE keeps its shape: got decoders {a.shape} and {b.shape}")
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 - np.where(den > 0, (a * b).sum(1) / den, np.nan)


def drift_threshold(drift_control: np.ndarray, q: float = QUANTILE) -> float:
    """The control's ``q`` quantile of drift."""
    d = np.asarray(drift_control, np.float64)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        raise ValueError("no finite control drift to take a threshold from")
    return float(np.quantile(d, q))


class ChangedCount(NamedTuple):
    """Latents changed by fine-tuning at one layer (``layers.parquet`` columns)."""

    n_changed: int
    """Live latents whose domain drift exceeds the threshold."""
    n_changed_lo: float
    n_changed_hi: float
    """95% percentile interval over resamples of both runs' latents."""
    n_changed_control: int
    """The control's live latents above the same threshold."""
    drift_threshold: float
    """The control's quantile of drift."""
    n_live_warmstart: int


def changed_count(drift_domain: np.ndarray, drift_control: np.ndarray, q: float = QUANTILE, n_boot: int = N_BOOT,
                  seed: int = 0, live: np.ndarray | None = None) -> ChangedCount:
    """``n_changed`` (domain drifts above the control's ``q`` quantile) with a 95% interval over resamples of
    both runs' latents, ``n_changed_control`` and the threshold; over the ``live`` latents only when given."""
    dom, ctl = np.asarray(drift_domain, np.float64), np.asarray(drift_control, np.float64)
    if dom.shape != ctl.shape:
        raise ValueError(f"domain and control drifts must cover the same latents, got {dom.shape} and {ctl.shape}")
    if live is not None:
        live = np.asarray(live, bool)
        if live.shape != dom.shape:
            raise ValueError(f"live must have one entry per latent ({len(dom)}), got {live.shape}")
        dom, ctl = dom[live], ctl[live]
    thr = drift_threshold(ctl, q)
    rng = np.random.default_rng(seed)
    ctl_f, dom_f = ctl[np.isfinite(ctl)], np.nan_to_num(dom, nan=-np.inf)
    thr_b = np.quantile(ctl_f[rng.integers(0, len(ctl_f), (n_boot, len(ctl_f)))], q, axis=1)
    dom_b = dom_f[rng.integers(0, len(dom_f), (n_boot, len(dom_f)))]
    counts = (dom_b > thr_b[:, None]).sum(1)
    lo, hi = np.quantile(counts, [0.025, 0.975])
    return ChangedCount(int((dom_f > thr).sum()), float(lo), float(hi), int((ctl_f > thr).sum()), thr, len(dom))


def warmstart_table(layer: int, start: TopKSAE, domain: TopKSAE, control: TopKSAE,
                    auroc_domain: np.ndarray | None = None, auroc_control: np.ndarray | None = None,
                    financial: np.ndarray | None = None, live: np.ndarray | None = None,
                    q: float = QUANTILE) -> pd.DataFrame:
    """The ``warmstart.parquet`` rows of one layer: ``start`` the base SAE both runs began from; ``auroc_*``
    the broad-contrast AUROC of each run's latents (``finsae.analysis.selectivity.financial_selectivity``);
    ``financial`` the rule on the domain run's latents; ``live`` the latents that fire in all three SAEs
    (e.g. ``sae_eval_frequency.npy > 0`` of each; default: all)."""
    dd, dc = decoder_drift(start, domain), decoder_drift(start, control)
    m = len(dd)
    if len(dc) != m:
        raise ValueError(f"the control run has {len(dc)} latents, the domain run {m}")
    change = (np.full(m, np.nan) if auroc_domain is None or auroc_control is None
              else np.asarray(auroc_domain, np.float64) - np.asarray(auroc_control, np.float64))
    fin = np.zeros(m, bool) if financial is None else np.asarray(financial, bool)
    live = np.ones(m, bool) if live is None else np.asarray(live, bool)
    if len(change) != m or len(fin) != m or len(live) != m:
        raise ValueError(f"selectivity and live arrays must have one entry per latent ({m})")
    thr = drift_threshold(dc[live], q)
    return pd.DataFrame({
        "layer": np.full(m, layer, np.int64), "latent": np.arange(m, dtype=np.int64), "drift_domain": dd,
        "drift_control": dc, "selectivity_change": change,
        "changed": live & (np.nan_to_num(dd, nan=-np.inf) > thr), "financial": fin, "live": live,
    })[list(WARMSTART_COLUMNS)]


@dataclass
class WarmstartRow(RowFields):
    """The warm start's ``layers.parquet`` fields of one layer."""

    changed: ChangedCount
    n_changed_financial: int
    """Changed latents that are financial in the domain run."""
    selectivity_change_changed: float
    """Mean selectivity change of the changed latents."""


def layer_summary(table: pd.DataFrame, q: float = QUANTILE, n_boot: int = N_BOOT, seed: int = 0) -> WarmstartRow:
    """The :class:`WarmstartRow` of one layer: :func:`changed_count` plus the changed latents that are
    financial and the mean selectivity change of the changed latents."""
    count = changed_count(table["drift_domain"].to_numpy(), table["drift_control"].to_numpy(), q, n_boot, seed,
                          table["live"].to_numpy(bool))
    changed = table["changed"].to_numpy(bool)
    sc = table.loc[changed, "selectivity_change"].to_numpy(np.float64)
    return WarmstartRow(count, int((changed & table["financial"].to_numpy(bool)).sum()),
                        float(np.nanmean(sc)) if np.isfinite(sc).any() else float("nan"))


class WarmstartLayer(NamedTuple):
    """What the analysis stage takes from one layer's warm-started runs."""

    table: pd.DataFrame
    """``warmstart.parquet`` rows of the layer."""
    row: WarmstartRow
    """Its ``layers.parquet`` fields (:func:`layer_summary`)."""


def analyze_layer(layer: int, start: TopKSAE, domain: TopKSAE, control: TopKSAE, base_rows, domain_rows,
                  held, doc_of_row: np.ndarray, cfg: AnalysisConfig,
                  start_fired: np.ndarray | None = None) -> WarmstartLayer:
    """Drift, selectivity change and changed latents of one layer on the held-out analysis tokens:
    ``base_rows`` / ``domain_rows`` the row-aligned activations of the two models (row i of document
    ``doc_of_row[i]`` of ``held``). The domain run is read on the domain model, the start and the control run
    on the base model; live = fires on these tokens in all three. ``start_fired`` ([m] bool), when given, is
    which latents of ``start`` fire on ``base_rows`` (the independent comparison has encoded them already)."""
    n_docs = len(held.corpus.frame)
    q, n_boot = cfg.warmstart.quantile, cfg.warmstart.n_boot
    sel, live = {}, np.ones(start.num_latents, bool)
    if start_fired is not None:
        if len(start_fired) != start.num_latents:
            raise ValueError(f"start_fired needs one entry per latent ({start.num_latents}), got {len(start_fired)}")
        live &= np.asarray(start_fired, bool)
    for name, sae, rows in (("start", start, base_rows), ("domain", domain, domain_rows),
                            ("control", control, base_rows)):
        if name == "start" and start_fired is not None:
            continue
        codes = encode_rows(sae, rows)
        fired = np.zeros(sae.num_latents, bool)
        fired[np.unique(codes.indices[codes.acts > 0].numpy())] = True
        live &= fired
        if name != "start":
            sel[name] = financial_selectivity(doc_scores(codes, doc_of_row, n_docs), held, cfg.score, cfg.fdr,
                                              cfg.min_auroc)
    table = warmstart_table(layer, start, domain, control, sel["domain"].broad.auroc, sel["control"].broad.auroc,
                            sel["domain"].financial, live, q)
    return WarmstartLayer(table, layer_summary(table, q, n_boot, cfg.seed))
