"""Knobs of the feature comparison (the ``analysis:`` group of ``python analyze.py``), each declared once: the
settings every method shares at the top, each diffing method's own in its nested block (``analysis.lens.*``,
``analysis.crosscoder.*``, ``analysis.warmstart.*``, ``analysis.independent.*``, ``analysis.causal.*``; the
seed bootstrap's ``analysis.seeds.*``; :mod:`finsae.analysis.methods`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from finsae.analysis.lens import LensConfig
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


CUTOFFS = ("minder", "strict")
"""The crosscoder's relative-norm definitions (``analysis.crosscoder.cutoffs``;
:func:`finsae.analysis.crosscoder.relative_norm` says what each reads)."""
NU_CALIBRATIONS = ("shared", "fixed")


@dataclass
class SeedsConfig:
    """The hierarchical bootstrap over (seed, source document) of every layer's seed estimates
    (``analysis.seeds.*``; its draws are seeded by ``analysis.seed``)."""

    n_boot: int = 1000
    """Bootstrap replicates."""
    ci: float = 0.95
    """Level of the percentile interval."""

    def __post_init__(self):
        _require(self.n_boot >= 2, f"analysis.seeds.n_boot must be >= 2, got {self.n_boot}")
        _require(0 < self.ci < 1, f"analysis.seeds.ci must be in (0, 1), got {self.ci}")


@dataclass
class CrosscoderConfig:
    """The crosscoder's latent classes by relative decoder norm ``delta`` (``analysis.crosscoder.*``; the
    classes and Latent Scaling of Minder et al. 2025, "Overcoming sparsity artifacts in crosscoders")."""

    cutoffs: str = "minder"
    """How ``delta`` is read from the two decoder norms: ``minder`` (Minder et al.'s
    ``(1 + (||d_domain|| - ||d_base||) / max) / 2``: domain-only at 0.9 means
    ``||d_base|| <= 0.2 ||d_domain||``) or ``strict`` (the first crosscoder analysis' share
    ``||d_domain|| / (||d_base|| + ||d_domain||)``: domain-only at 0.9 needs
    ``||d_base|| <= 0.11 ||d_domain||``); the cut-offs below apply to either."""
    base_only_max: float = 0.1
    """``delta <= base_only_max``: base-only."""
    domain_only_min: float = 0.9
    """``delta >= domain_only_min``: domain-only."""
    shared_min: float = 0.4
    """``shared_min <= delta <= shared_max``: shared; live latents in no class are re-weighted (both models
    have them, at other strengths)."""
    shared_max: float = 0.6
    artifact_nu: float = 0.5
    """A specific latent whose Latent Scaling ``nu_eps`` or ``nu_r`` exceeds this share of a shared latent's
    (:attr:`nu_calibration`) is a sparsity artifact."""
    nu_calibration: str = "shared"
    """What a latent present in both models scores: ``shared`` (the median ``nu`` of a random sample of the
    shared latents, as diffing-toolkit measures its shared baseline) or ``fixed`` (1)."""
    nu_calibration_latents: int = 256
    """Shared latents (a seeded random sample) the calibration reads; with fewer than 10 shared latents it
    falls back to ``fixed``."""
    shared_cosine_high: float = 0.7
    """Shared latents whose two decoder blocks have cosine >= this are counted as one direction in both."""
    shared_cosine_low: float = 0.3
    """... and below this as untrained leftovers or rotated features (their delta near 1/2 by chance)."""
    reweighted_examples: int = 5
    """Re-weighted latents named in ``layers.parquet``: the most re-weighted ones whose blocks point one way
    (cosine >= :attr:`shared_cosine_high`)."""
    shared_contexts: int = 32
    """Shared latents (a random sample) whose contexts are stored beside the domain-only ones."""
    sweep_max_fvu: float = 0.2
    """Dictionary-size sweep: a size whose crosscoder has FVU above this ..."""
    sweep_max_dead: float = 0.01
    """... or at least this share of dead latents misses the quality bar (its counts are flagged)."""

    def __post_init__(self):
        _require(self.cutoffs in CUTOFFS, f"analysis.crosscoder.cutoffs must be one of {CUTOFFS}, got "
                                          f"{self.cutoffs!r}")
        _require(0 <= self.base_only_max < self.shared_min <= self.shared_max < self.domain_only_min <= 1,
                 "analysis.crosscoder cut-offs must satisfy 0 <= base_only_max < shared_min <= shared_max < "
                 f"domain_only_min <= 1, got {self.base_only_max}, {self.shared_min}, {self.shared_max}, "
                 f"{self.domain_only_min}")
        _require(self.artifact_nu > 0, f"analysis.crosscoder.artifact_nu must be > 0, got {self.artifact_nu}")
        _require(self.nu_calibration in NU_CALIBRATIONS, f"analysis.crosscoder.nu_calibration must be one of "
                                                         f"{NU_CALIBRATIONS}, got {self.nu_calibration!r}")
        _require(0 <= self.shared_cosine_low < self.shared_cosine_high <= 1,
                 "analysis.crosscoder.shared_cosine_low < shared_cosine_high must lie in [0, 1], got "
                 f"{self.shared_cosine_low}, {self.shared_cosine_high}")
        _require(0 < self.sweep_max_fvu and 0 < self.sweep_max_dead <= 1,
                 f"analysis.crosscoder.sweep_max_fvu must be > 0 and sweep_max_dead in (0, 1], got "
                 f"{self.sweep_max_fvu}, {self.sweep_max_dead}")
        for name in ("nu_calibration_latents", "reweighted_examples", "shared_contexts"):
            _require(getattr(self, name) >= 0, f"analysis.crosscoder.{name} must be >= 0, got "
                                               f"{getattr(self, name)}")


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


CAUSAL_CONDITIONS = ("affine", "base", "identity")
"""Patches of the causal test: the base's affine image, the raw base states, the twin's own states."""
MIN_FIT_ROWS_PER_DIM = 2
"""Rows per parameter of an output (d + 1) an affine map of the causal test needs: with fewer the ridge, not
the data, decides it (a [CLS] map of 64 texts at d = 384 moves a twin's logits although the twin *is* the
base)."""


@dataclass
class CausalConfig:
    """The causal test (``analysis.causal.*``; :mod:`finsae.analysis.causal`): per layer, the twin with that
    layer's states replaced by the affine image of the base's (fitted on other held-out passages than the ones
    scored), and the warm start's changed latents ablated through its domain SAE (error term kept) against as
    many random live latents, scored on the twin's held-out task sentences (PhraseBank test split)."""

    enabled: bool = True
    """Run the causal test where the twin is a classifier (a bare encoder has no task to score)."""
    n_sentences: int = 200
    """Held-out task sentences scored per layer (a seeded draw; the cost grows linearly with it)."""
    fit_tokens: int = 50_000
    """Cached held-out token rows (of passages that are no task sentence) the token map is fitted on."""
    cls_fit_per_dim: float = 2.5
    """Held-out passages (no task sentence among them) whose [CLS] states the [CLS] map is fitted on, per
    parameter of an output (d + 1): 963 for MiniLM's 384 dimensions; at least MIN_FIT_ROWS_PER_DIM."""
    conditions: list[str] = field(default_factory=lambda: ["affine", "base"])
    """Patches to run (each one forward pass per layer; CAUSAL_CONDITIONS): ``affine`` is required,
    ``nonaffine_share`` needs ``base``, and ``identity`` only checks that the hook changes nothing."""
    n_boot: int = 1000
    """Bootstrap draws of the sentences (paired across layers, conditions and latent sets)."""
    ci: float = 0.95
    """Level of the percentile intervals."""
    seed: int = 0
    """Seeds the sentence draw, the bootstrap and the random latent sets (separate streams)."""
    ridge: float = 1e-4
    """Ridge of the affine fits, relative to the base's mean variance per dimension."""
    batch_size: int = 32
    """Texts per forward pass."""
    max_length: int = 128
    """Tokens per text (longer texts are truncated)."""
    n_random_draws: int = 3
    """Random latent sets the changed latents' ablation is compared with."""
    match_firing: bool = True
    """Draw each random latent among the live latents nearest in firing count to a target (else uniformly)."""
    ablate_all_positions: bool = False
    """Ablate at every non-[PAD] position; default only the real tokens the SAE was trained on."""

    def __post_init__(self):
        for name in ("batch_size", "n_random_draws"):
            value = getattr(self, name)
            _require(value >= 1, f"analysis.causal.{name} must be >= 1, got {value}")
        _require(self.n_sentences >= 2, f"analysis.causal.n_sentences must be >= 2, got {self.n_sentences}")
        _require(self.fit_tokens >= 2, f"analysis.causal.fit_tokens must be >= 2, got {self.fit_tokens}")
        per_dim = self.cls_fit_per_dim
        _require(per_dim >= MIN_FIT_ROWS_PER_DIM,
                 f"analysis.causal.cls_fit_per_dim must be >= {MIN_FIT_ROWS_PER_DIM}, got {per_dim}")
        _require(self.n_boot >= 2, f"analysis.causal.n_boot must be >= 2, got {self.n_boot}")
        _require(0 < self.ci < 1, f"analysis.causal.ci must be in (0, 1), got {self.ci}")
        _require(self.ridge >= 0, f"analysis.causal.ridge must be >= 0, got {self.ridge}")
        _require(self.max_length >= 2, f"analysis.causal.max_length must be >= 2, got {self.max_length}")
        self.conditions = list(self.conditions)
        _require("affine" in self.conditions and set(self.conditions) <= set(CAUSAL_CONDITIONS),
                 f"analysis.causal.conditions must include 'affine' and come from {list(CAUSAL_CONDITIONS)}, "
                 f"got {self.conditions}")


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
    genre_docs: int | None = None
    """Passages drawn per side of the genre-matched contrast (AG News Business vs World + Sports + Sci/Tech);
    None: every article of each side (1,900 and ~25,000), as the study runs. A cap makes the analysis of a
    small or test run take seconds instead of minutes."""
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

    lens: LensConfig = field(default_factory=LensConfig)
    """The activation lens (:class:`finsae.analysis.lens.LensConfig`, declared with the lens)."""
    seeds: SeedsConfig = field(default_factory=SeedsConfig)
    independent: IndependentConfig = field(default_factory=IndependentConfig)
    crosscoder: CrosscoderConfig = field(default_factory=CrosscoderConfig)
    warmstart: WarmstartConfig = field(default_factory=WarmstartConfig)
    causal: CausalConfig = field(default_factory=CausalConfig)

    def __post_init__(self):
        _require(0 < self.tau < 1, f"analysis.tau must be in (0, 1), got {self.tau}")
        _require(0 < self.fdr < 1, f"analysis.fdr must be in (0, 1), got {self.fdr}")
        _require(0.5 <= self.min_auroc < 1, f"analysis.min_auroc must be in [0.5, 1), got {self.min_auroc}")
        _require(self.score in ("max", "mean"), f"analysis.score must be max or mean, got {self.score!r}")
        _require(self.n_boot >= 10, f"analysis.n_boot must be >= 10 (a CI needs resamples), got {self.n_boot}")
        for name in ("docs_per_side", "docs_per_category", "agreement_tokens", "null_tokens", "candidates", "jobs"):
            _require(getattr(self, name) >= 1, f"analysis.{name} must be >= 1, got {getattr(self, name)}")
        _require(self.genre_docs is None or self.genre_docs >= 1,
                 f"analysis.genre_docs must be >= 1 or null (every article), got {self.genre_docs}")
        _require(self.max_chars >= 40, f"analysis.max_chars must be >= 40, got {self.max_chars}")
        _require(self.control_latents >= 0, f"analysis.control_latents must be >= 0, got {self.control_latents}")
