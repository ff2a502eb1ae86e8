"""What the warm-started SAEs do on the held-out analysis tokens, per latent: which latents fire, how often,
and how well latent i of a continued run tracks latent i of the SAE it started from on the same token rows.

The start SAE and the control runs read the base model's rows, the domain run reads the twin's (the caches are
row-aligned, so row r is one token in both). :func:`heldout_activity` encodes each run once; the warm start's
table (:mod:`finsae.analysis.warmstart`) takes the result.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from finsae.analysis.doc_scores import Codes, encode_rows, pair_correlation
from finsae.sae import TopKSAE


class Firing(NamedTuple):
    """One run's firing on the held-out rows."""

    fired: np.ndarray
    """[m] bool: the latent fires (activation > 0) on some row."""
    rate: np.ndarray
    """[m] float64: the share of rows where it fires."""


def firing(codes: Codes) -> Firing:
    """Which latents of ``codes`` fire on its rows and on what share of them."""
    n = len(codes.indices)
    on = codes.acts > 0
    counts = np.bincount(codes.indices[on].numpy(), minlength=codes.num_latents).astype(np.float64)
    return Firing(counts > 0, counts / max(n, 1))


class HeldoutActivity(NamedTuple):
    """Per latent, on the held-out rows: firing of the start SAE and of each run, and the activation
    correlation of each run's latent with the start SAE's same latent (NaN where either never fires on the
    sampled rows)."""

    start: Firing
    domain: Firing
    control: Firing
    control_b: Firing | None
    """None: no second control run."""
    act_corr_domain: np.ndarray
    """[m] Pearson correlation of start latent i on the base's rows with domain latent i on the twin's."""
    act_corr_control: np.ndarray
    """[m] the same for control A's latent i on the base's rows."""


class ActivityRuns(NamedTuple):
    """The SAEs :func:`heldout_activity` reads."""

    start: TopKSAE
    domain: TopKSAE
    control: TopKSAE
    control_b: TopKSAE | None = None


def heldout_activity(runs: ActivityRuns, base_rows, domain_rows, corr_rows: np.ndarray,
                     ) -> tuple[HeldoutActivity, dict[str, Codes]]:
    """:class:`HeldoutActivity` of ``runs`` on the row-aligned held-out activations (``base_rows`` of the base
    model, ``domain_rows`` of the twin), correlations over ``corr_rows`` (sorted row ids: a fixed sample).
    Returns the codes of the domain run and control A too (the selectivity reads their document scores); the
    start's and control B's are dropped as soon as they are read (four codes of every held-out row at once
    would double the layer's memory)."""
    m = runs.start.num_latents
    for name, sae in runs._asdict().items():
        if sae is not None and sae.num_latents != m:
            raise ValueError(f"the {name} run has {sae.num_latents} latents, the start SAE {m}: a warm start "
                             f"keeps its shape")
    corr_rows, every = np.asarray(corr_rows, np.int64), np.arange(m)
    start = encode_rows(runs.start, base_rows)
    codes = {"domain": encode_rows(runs.domain, domain_rows), "control": encode_rows(runs.control, base_rows)}
    corr = {name: pair_correlation(start, c, every, every, corr_rows) for name, c in codes.items()}
    fire_b = None if runs.control_b is None else firing(encode_rows(runs.control_b, base_rows))
    return HeldoutActivity(firing(start), firing(codes["domain"]), firing(codes["control"]), fire_b,
                           corr["domain"], corr["control"]), codes
