"""Knobs of the feature comparison (the ``analysis:`` group of ``python analyze.py``), each declared once: the
settings every method shares at the top, each diffing method's own in its nested block (``analysis.crosscoder.*``,
``analysis.warmstart.*``, ``analysis.independent.*``; :mod:`finsae.analysis.methods`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from finsae.errors import require

_require = require


@dataclass
class IndependentConfig:
    """The independent-SAE comparison (``analysis.independent.*``)."""

    overlap_n_boot: int = 1000
    """Resamples of the base latents for the overlap's interval."""

    def __post_init__(self):
        _require(self.overlap_n_boot >= 10, f"analysis.independent.overlap_n_boot must be >= 10, got "
                                            f"{self.overlap_n_boot}")


@dataclass
class CrosscoderConfig:
    """The crosscoder's latent classes by relative decoder norm ``delta`` (``analysis.crosscoder.*``; cut-offs of
    Lindsey et al. 2024 / Minder et al. 2025)."""

    base_only_max: float = 0.1
    """``delta <= base_only_max``: base-only (the domain block holds at most this share of the decoder norm)."""
    domain_only_min: float = 0.9
    """``delta >= domain_only_min``: domain-only."""
    shared_min: float = 0.4
    """``shared_min <= delta <= shared_max``: shared."""
    shared_max: float = 0.6
    artifact_nu: float = 0.5
    """A specific latent whose Latent Scaling ``nu_eps`` or ``nu_r`` exceeds this is a sparsity artifact."""
    shared_contexts: int = 32
    """Shared latents (a random sample) whose contexts are stored beside the domain-only ones."""

    def __post_init__(self):
        _require(0 <= self.base_only_max < self.shared_min <= self.shared_max < self.domain_only_min <= 1,
                 "analysis.crosscoder cut-offs must satisfy 0 <= base_only_max < shared_min <= shared_max < "
                 f"domain_only_min <= 1, got {self.base_only_max}, {self.shared_min}, {self.shared_max}, "
                 f"{self.domain_only_min}")
        _require(self.artifact_nu > 0, f"analysis.crosscoder.artifact_nu must be > 0, got {self.artifact_nu}")
        _require(self.shared_contexts >= 0, f"analysis.crosscoder.shared_contexts must be >= 0, got "
                                            f"{self.shared_contexts}")


@dataclass
class WarmstartConfig:
    """The warm-started SAEs (``analysis.warmstart.*``)."""

    quantile: float = 0.99
    """A latent changed by fine-tuning drifts more than this quantile of the control run's drifts (control A:
    ``{tag}_warm_control``), also away from where the affine-map null put it."""
    n_boot: int = 1000
    """Resamples of both runs' latents for the interval of ``n_changed``."""
    affine_suffix: str = "_warm_affine"
    """Tag suffix of the affine-map null run under the twin (``{tag}{affine_suffix}``: ``python train.py
    sae.dictionary=affine_null``); without it ``changed`` is measured against the control alone."""
    control_b_suffix: str = "_warm_control_b"
    """Tag suffix of the second control run under the base model (another seed): its latents above control
    A's threshold are the out-of-sample false-positive rate."""

    def __post_init__(self):
        _require(0 < self.quantile < 1, f"analysis.warmstart.quantile must be in (0, 1), got {self.quantile}")
        _require(self.n_boot >= 10, f"analysis.warmstart.n_boot must be >= 10, got {self.n_boot}")
        for name in ("affine_suffix", "control_b_suffix"):
            value = getattr(self, name)
            _require(isinstance(value, str) and value.startswith("_") and "/" not in value,
                     f"analysis.warmstart.{name} must be a tag suffix starting with _ (no /), got {value!r}")


@dataclass
class AnalysisConfig:
    """How two SAEs of a pair are matched and how their latents' financial selectivity is measured."""

    tau: float = 0.7
    """Decoder cosine at which a one-to-one match counts as the same feature (overlap, specialized)."""
    fdr: float = 0.05
    """Benjamini-Hochberg false-discovery rate across latents, per contrast."""
    min_auroc: float = 0.6
    """Effect floor of a financial latent, in both contrasts (finsae.analysis.selectivity explains 0.6)."""
    score: str = "max"
    """Per-document score of a latent that the financial rule uses: max or mean activation over the tokens
    (both are reported)."""
    n_boot: int = 100
    """Bootstrap resamples of the source documents, within each side of a contrast (per-latent AUROC CIs, count
    CIs, improvement CIs). Counts of latents over a threshold get the basic (reverse-percentile) interval, which
    does not pin the point estimate to an edge."""
    docs_per_side: int = 3000
    """Held-out passages drawn for each side of the broad contrast (financial, general)."""
    docs_per_category: int = 300
    """Held-out passages drawn per Reuters topic / PhraseBank label (category profiles)."""
    match_length: bool = True
    """Draw the financial side of the broad contrast length-matched to the general side (finsae.analysis.heldout)."""
    max_chars: int = 400
    """Longer held-out documents are cut into passages of whole sentences of at most this many characters."""
    agreement_tokens: int = 100_000
    """Held-out token rows (a fixed random sample) for activation correlation and cross-reconstruction."""
    null_tokens: int = 20_000
    """Held-out token rows (a fixed random sample) whose covariance the anisotropy-matched null dictionary is
    drawn from."""
    control_latents: int = 64
    """Random non-financial latents per (model, layer) whose contexts are stored too (labeling control);
    at least as many as the financial ones."""
    candidates: int = 16
    """Top candidates per latent (both ways) in the sparse one-to-one matching of large dictionaries."""
    seed: int = 0
    jobs: int = 2
    """Layers compared at a time, each in its own one-thread worker process (execution only: the results do
    not depend on it, and two one-thread jobs beat one two-thread job on a small machine)."""

    independent: IndependentConfig = field(default_factory=IndependentConfig)
    crosscoder: CrosscoderConfig = field(default_factory=CrosscoderConfig)
    warmstart: WarmstartConfig = field(default_factory=WarmstartConfig)

    def __post_init__(self):
        _require(0 < self.tau < 1, f"analysis.tau must be in (0, 1), got {self.tau}")
        _require(0 < self.fdr < 1, f"analysis.fdr must be in (0, 1), got {self.fdr}")
        _require(0.5 <= self.min_auroc < 1, f"analysis.min_auroc must be in [0.5, 1), got {self.min_auroc}")
        _require(self.score in ("max", "mean"), f"analysis.score must be max or mean, got {self.score!r}")
        _require(self.n_boot >= 10, f"analysis.n_boot must be >= 10 (a CI needs resamples), got {self.n_boot}")
        for name in ("docs_per_side", "docs_per_category", "agreement_tokens", "null_tokens", "candidates", "jobs"):
            _require(getattr(self, name) >= 1, f"analysis.{name} must be >= 1, got {getattr(self, name)}")
        _require(self.max_chars >= 40, f"analysis.max_chars must be >= 40, got {self.max_chars}")
        _require(self.control_latents >= 0, f"analysis.control_latents must be >= 0, got {self.control_latents}")
