"""Warm-started SAEs: which latents did fine-tuning move, measured against control runs of the same length and
against an affine-map null that holds the twin's global change.

Every run starts from the trained base SAE (``python train.py sae.init_from=...``) and trains the same number
of tokens with the same lr and schedule:

* the **domain run** on the finance twin's activations (its ``norm_scale`` and ``b_dec`` refitted to them
  first, ``sae.init_refit``: a re-centring or rescaling is no feature change);
* the **affine-map null** on ``A·h_base + c``, the twin's affine image of the base fitted per layer
  (``sae.dictionary=affine_null``), same seed as the domain run: it sees the same tokens and moves its latents
  by what one global linear change of the space explains;
* **control A** on the base model's own activations, same seed as the domain run: the drift continued training
  alone causes; **control B** the same with another seed: the out-of-sample check of control A's threshold.

Latent i of every run is latent i of the start by construction, so no matching is involved. Per latent
(``warmstart.parquet``):

* ``drift_*``: ``1 - cos(d_start_i, d_end_i)`` of its decoder row in each run; ``encoder_drift_*`` the same of
  its encoder row; ``drift_beyond_affine``: ``1 - cos`` between the domain run's and the affine null's decoder
  row of latent i (how far fine-tuning took it from where the global change puts it);
  ``drift_control_b_from_a`` the same between control B and control A (control B's analogue: the base's affine
  image of itself is the identity, and its null run is control A);
* ``act_corr_*``: Pearson correlation, on the same held-out token rows, of start latent i (on the base's rows)
  with latent i of the run (domain: on the twin's rows; control: on the base's); ``firing_*``: share of
  held-out rows where it fires;
* ``live``: fires on the held-out tokens in the start SAE, the domain run and control A (a latent that never
  fires gets no reconstruction gradient, and its decoder wanders under AuxK, which would set the threshold by
  noise); ``died``: fires in the start SAE and control A but in no row under the domain run: counted, never
  dropped; ``born``: silent in the start SAE and control A, fires under the domain run (a dead latent the
  twin's new inputs revive); ``*_control_b``: the same with control B in the domain run's place;
* ``changed_vs_control``: ``drift_domain`` above control A's ``quantile`` of drift (the drift continued
  training alone reaches for 1 latent in 100): for a live latent the quantile over the live latents, for a
  born one over the ``silent`` latents (silent in the start and control A: the wander of a row with no
  reconstruction gradient under AuxK); ``changed``: that and ``drift_beyond_affine`` above the same threshold
  (the affine null absorbs the global change; without a null run ``changed`` = ``changed_vs_control``);
* ``selectivity_change``: broad-contrast AUROC after the domain run minus after control A; ``financial``: the
  domain run's latent passes the project's financial rule.

Per layer (``layers.parquet``): ``n_changed`` with a 95% percentile interval from
``analysis.warmstart.n_boot`` resamples of the latents of both runs (the threshold is estimated from control
A's latents, so it moves too); ``n_changed_control`` (control A above its own threshold: ~1% by construction,
kept for reference) and the false-positive rate out of sample, ``fp_rate_control_b``: the share of control B's
live or born latents that the same rule flags with control B in the domain run's place (control A's threshold,
``drift_control_b_from_a`` for the null), with a Wilson interval, against the nominal ``1 - quantile``; died
and born latents of the domain run beside control B's. Each layer is judged against its own controls and null
(the demo's last layer trains at another k and lr), and ``drift_ratio*`` give each layer's effect in units of
its own control's median drift, comparable across layers.

Trained SAEs (``artifacts/sae/{model}/layer_{i}/``), all continued from the base model's ``{tag}`` SAE: the
domain run ``{tag}`` + :data:`DOMAIN_SUFFIX` and the affine null ``{tag}`` +
``analysis.warmstart.affine_suffix`` under the finance twin, the controls ``{tag}`` +
:data:`CONTROL_SUFFIX` and ``{tag}`` + ``analysis.warmstart.control_b_suffix`` under the base model.
:func:`analyze_layer` is what the analysis stage runs per layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from finsae.analysis.config import AnalysisConfig, WarmstartConfig
from finsae.analysis.doc_scores import doc_scores
from finsae.analysis.rows import RowFields
from finsae.analysis.selectivity import financial_selectivity
from finsae.analysis.warmstart_activity import ActivityRuns, Firing, HeldoutActivity, heldout_activity
from finsae.analysis.warmstart_rule import (N_BOOT, QUANTILE, ChangedCount, NullChecks, Thresholds,
                                            changed_count, flagged, null_checks, thresholds)
from finsae.sae import TopKSAE

DOMAIN_SUFFIX = "_warm_domain"
"""Tag suffix of the domain run: ``{tag}_warm_domain`` (the base SAE continued on the finance twin)."""
CONTROL_SUFFIX = "_warm_control"
"""Tag suffix of control A: ``{tag}_warm_control`` (the base SAE continued on the base model, the domain run's
seed)."""
AFFINE_SUFFIX = WarmstartConfig.affine_suffix
"""``analysis.warmstart.affine_suffix``'s default."""
CONTROL_B_SUFFIX = WarmstartConfig.control_b_suffix
"""``analysis.warmstart.control_b_suffix``'s default."""
WARMSTART_COLUMNS = ("layer", "latent", "drift_domain", "drift_control", "drift_control_b", "drift_affine",
                     "drift_beyond_affine", "drift_control_b_from_a", "encoder_drift_domain",
                     "encoder_drift_control", "act_corr_domain", "act_corr_control", "firing_start",
                     "firing_domain", "firing_control", "selectivity_change", "changed", "changed_vs_control",
                     "financial", "live", "died", "born", "silent", "live_control_b", "died_control_b",
                     "born_control_b")
"""``warmstart.parquet`` (module doc): layer, latent (int64); drifts, correlations, firing shares and
selectivity_change (float64; NaN where a run is absent or a latent never fires); changed,
changed_vs_control, financial, live, died, born, silent, live_control_b, died_control_b, born_control_b
(bool). ``changed`` is the set later stages read."""


class WarmRuns(NamedTuple):
    """The SAEs of one layer's warm start (each latent i the start's latent i)."""

    start: TopKSAE
    """The base SAE every run continued."""
    domain: TopKSAE
    control: TopKSAE
    """Control A."""
    affine: TopKSAE | None = None
    """The affine-map null (None: not trained)."""
    control_b: TopKSAE | None = None
    """Control B (None: not trained)."""


def row_drift(start, end) -> np.ndarray:
    """``1 - cosine`` between row i of two ``[m, d]`` matrices (NaN where a row is zero)."""
    a, b = (np.asarray(s.detach() if hasattr(s, "detach") else s, np.float64) for s in (start, end))
    if a.shape != b.shape:
        raise ValueError(f"a warm-started SAE keeps its shape: got matrices {a.shape} and {b.shape}")
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 - np.where(den > 0, (a * b).sum(1) / den, np.nan)


def decoder_drift(start: TopKSAE | np.ndarray, end: TopKSAE | np.ndarray) -> np.ndarray:
    """``1 - cosine`` between the decoder rows of the same latents before and after a run."""
    return row_drift(*(s.W_dec if isinstance(s, TopKSAE) else s for s in (start, end)))


def encoder_drift(start: TopKSAE, end: TopKSAE) -> np.ndarray:
    """``1 - cosine`` between the encoder rows (``W_enc [m, d]``) of the same latents before and after a
    run."""
    return row_drift(start.W_enc, end.W_enc)


def _everything_fires(m: int, control_b: bool) -> HeldoutActivity:
    """The activity assumed without held-out tokens: every latent of every run fires (rates unknown)."""
    fire = Firing(np.ones(m, bool), np.full(m, np.nan))
    unknown = np.full(m, np.nan)
    return HeldoutActivity(fire, fire, fire, fire if control_b else None, unknown, unknown)


def warmstart_table(layer: int, runs: WarmRuns, activity: HeldoutActivity | None = None,
                    auroc_domain: np.ndarray | None = None, auroc_control: np.ndarray | None = None,
                    financial: np.ndarray | None = None, q: float = QUANTILE) -> pd.DataFrame:
    """The ``warmstart.parquet`` rows of one layer (columns: module doc): ``activity`` what the runs do on the
    held-out tokens (:func:`finsae.analysis.warmstart_activity.heldout_activity`; default: every latent fires,
    rates and correlations unknown); ``auroc_*`` the broad-contrast AUROC of the domain run's and control A's
    latents; ``financial`` the rule on the domain run's latents."""
    start, m = runs.start, runs.start.num_latents
    nan = np.full(m, np.nan)
    dd, dc = decoder_drift(start, runs.domain), decoder_drift(start, runs.control)
    da = nan if runs.affine is None else decoder_drift(start, runs.affine)
    beyond = nan if runs.affine is None else decoder_drift(runs.affine, runs.domain)
    db = nan if runs.control_b is None else decoder_drift(start, runs.control_b)
    db_a = nan if runs.control_b is None else decoder_drift(runs.control, runs.control_b)
    act = activity or _everything_fires(m, runs.control_b is not None)
    change = (nan if auroc_domain is None or auroc_control is None
              else np.asarray(auroc_domain, np.float64) - np.asarray(auroc_control, np.float64))
    fin = np.zeros(m, bool) if financial is None else np.asarray(financial, bool)
    per_latent = [change, fin, act.act_corr_domain, act.act_corr_control,
                  *(f.fired for f in (act.start, act.domain, act.control, act.control_b) if f is not None)]
    if any(len(a) != m for a in per_latent):
        raise ValueError(f"selectivity, financial and activity arrays must have one entry per latent ({m})")
    kept = act.start.fired & act.control.fired  # fires before and after continued training on the base
    silent = ~act.start.fired & ~act.control.fired
    live, died, born = kept & act.domain.fired, kept & ~act.domain.fired, silent & act.domain.fired
    has_b = act.control_b is not None
    fired_b = act.control_b.fired if has_b else np.zeros(m, bool)
    live_b, died_b, born_b = kept & fired_b, kept & ~fired_b & has_b, silent & fired_b
    thr = thresholds(dc, live, silent, q).per_latent(live, born)
    changed_vs_control = flagged(dd, None, thr)
    changed = flagged(dd, None if runs.affine is None else beyond, thr)
    return pd.DataFrame({
        "layer": np.full(m, layer, np.int64), "latent": np.arange(m, dtype=np.int64), "drift_domain": dd,
        "drift_control": dc, "drift_control_b": db, "drift_affine": da, "drift_beyond_affine": beyond,
        "drift_control_b_from_a": db_a,
        "encoder_drift_domain": encoder_drift(start, runs.domain),
        "encoder_drift_control": encoder_drift(start, runs.control),
        "act_corr_domain": np.asarray(act.act_corr_domain, np.float64),
        "act_corr_control": np.asarray(act.act_corr_control, np.float64),
        "firing_start": act.start.rate, "firing_domain": act.domain.rate, "firing_control": act.control.rate,
        "selectivity_change": change, "changed": changed, "changed_vs_control": changed_vs_control,
        "financial": fin, "live": live, "died": died, "born": born, "silent": silent,
        "live_control_b": live_b, "died_control_b": died_b, "born_control_b": born_b,
    })[list(WARMSTART_COLUMNS)]


@dataclass
class WarmstartRow(RowFields):
    """The warm start's ``layers.parquet`` fields of one layer."""

    changed: ChangedCount
    nulls: NullChecks
    n_changed_financial: int
    """Changed latents that are financial in the domain run."""
    selectivity_change_changed: float
    """Mean selectivity change of the changed latents."""


def layer_summary(table: pd.DataFrame, q: float = QUANTILE, n_boot: int = N_BOOT,
                  seed: int = 0) -> WarmstartRow:
    """The :class:`WarmstartRow` of one layer: :func:`changed_count` (beyond the affine null where it ran),
    :func:`null_checks`, the changed latents that are financial and their mean selectivity change."""
    has_null = np.isfinite(table["drift_affine"].to_numpy(np.float64)).any()
    beyond = table["drift_beyond_affine"].to_numpy(np.float64) if has_null else None
    live, born, silent = (table[c].to_numpy(bool) for c in ("live", "born", "silent"))
    count = changed_count(table["drift_domain"].to_numpy(), table["drift_control"].to_numpy(), q, n_boot,
                          seed, live, beyond, born, silent)
    changed = table["changed"].to_numpy(bool)
    sc = table.loc[changed, "selectivity_change"].to_numpy(np.float64)
    thr = Thresholds(count.drift_threshold, count.drift_threshold_silent)
    return WarmstartRow(count, null_checks(table, thr, q),
                        int((changed & table["financial"].to_numpy(bool)).sum()),
                        float(np.nanmean(sc)) if np.isfinite(sc).any() else float("nan"))


class WarmstartLayer(NamedTuple):
    """What the analysis stage takes from one layer's warm-started runs."""

    table: pd.DataFrame
    """``warmstart.parquet`` rows of the layer."""
    row: WarmstartRow
    """Its ``layers.parquet`` fields (:func:`layer_summary`)."""


def analyze_layer(layer: int, runs: WarmRuns, base_rows, domain_rows, held, doc_of_row: np.ndarray,
                  cfg: AnalysisConfig) -> WarmstartLayer:
    """Drift, activity, selectivity change and changed latents of one layer on the held-out analysis tokens:
    ``base_rows`` / ``domain_rows`` the row-aligned activations of the two models (row i of document
    ``doc_of_row[i]`` of ``held``). The domain run is read on the twin's rows, the start and the controls on
    the base's; activation correlations over a fixed sample of ``analysis.agreement_tokens`` rows."""
    n_rows, n_docs = len(doc_of_row), len(held.corpus.frame)
    rng = np.random.default_rng(cfg.seed)
    corr_rows = np.sort(rng.choice(n_rows, size=min(cfg.agreement_tokens, n_rows), replace=False))
    act, codes = heldout_activity(ActivityRuns(runs.start, runs.domain, runs.control, runs.control_b),
                                  base_rows, domain_rows, corr_rows)
    sel = {name: financial_selectivity(doc_scores(c, doc_of_row, n_docs), held, cfg.score, cfg.fdr,
                                       cfg.min_auroc) for name, c in codes.items()}
    q = cfg.warmstart.quantile
    table = warmstart_table(layer, runs, act, sel["domain"].broad.auroc, sel["control"].broad.auroc,
                            sel["domain"].financial, q)
    return WarmstartLayer(table, layer_summary(table, q, cfg.warmstart.n_boot, cfg.seed))
