"""Configuration of a top-k sparse autoencoder: what it is, and how it is trained.

Every knob is declared once, here, with its default and its doc:

* :class:`SaeArchitecture` — the knobs a trained SAE and its training run share (``expansion_factor``, ``k``,
  ``k_aux``, ``encoder_dtype``, ``normalize_input``);
* :class:`SaeConfig` — one SAE's full shape (adds ``d_in``, the resolved ``num_latents``, the init ``seed``),
  saved as ``cfg.json`` beside its weights;
* :class:`SaeTrainConfig` — the ``sae:`` config group of ``python train.py`` (the Hydra schema *is* this class)
  and the input of :func:`finsae.sae.fit`: the architecture knobs plus loss weights, optimiser, schedule,
  budget and init sample.

Both validate themselves on construction and raise :class:`finsae.errors.ConfigError` with one line naming
the bad field (``sae.k`` in a Hydra run, ``SaeConfig.k`` when built in code).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from finsae.errors import ConfigError, require

ENCODER_DTYPES = ("fp32", "bf16")
SCHEDULES = ("linear", "cosine", "constant")
MAX_DEAD_TOKENS = 10_000_000


_require = require


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass
class SaeArchitecture:
    """Knobs shared by a trained SAE (:class:`SaeConfig`) and its training run (:class:`SaeTrainConfig`)."""

    expansion_factor: int = 32
    """Latents per input dimension: num_latents = expansion_factor * d_in."""

    k: int = 32
    """Latents kept active per token (the top-k)."""

    k_aux: int | None = None
    """Dead latents in the AuxK reconstruction per token (None: d_in // 2, Gao et al.)."""

    encoder_dtype: str = "fp32"
    """Precision of the encoder matmul, the only dense product: fp32 or bf16 (params and Adam stay fp32)."""

    normalize_input: bool = True
    """Scale inputs to unit mean squared norm with a constant estimated once from the init sample."""

    def _name(self, key: str) -> str:
        return f"{type(self).__name__}.{key}"

    def __post_init__(self) -> None:
        n = self._name
        _require(_is_int(self.expansion_factor) and self.expansion_factor > 0,
                 f"{n('expansion_factor')} must be a positive int, got {self.expansion_factor!r}")
        _require(_is_int(self.k) and self.k > 0, f"{n('k')} must be a positive int, got {self.k!r}")
        _require(self.k_aux is None or (_is_int(self.k_aux) and self.k_aux > 0),
                 f"{n('k_aux')} must be a positive int or None, got {self.k_aux!r}")
        _require(self.encoder_dtype in ENCODER_DTYPES,
                 f"{n('encoder_dtype')} must be one of {ENCODER_DTYPES}, got {self.encoder_dtype!r}")
        _require(isinstance(self.normalize_input, bool), f"{n('normalize_input')} must be a bool")


@dataclass
class SaeConfig(SaeArchitecture):
    """Shape of one :class:`~finsae.sae.TopKSAE`; derived defaults are resolved on construction, so a saved
    config always holds concrete numbers."""

    d_in: int = field(default=0, kw_only=True)
    """Width of the activations the SAE reads (the hidden size of the encoder layer); required."""

    num_latents: int = field(default=0, kw_only=True)
    """Dictionary size m. 0 means ``expansion_factor * d_in`` (resolved on construction)."""

    seed: int = field(default=0, kw_only=True)
    """Seed of the weight initialisation (a private generator; global RNG untouched)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(_is_int(self.d_in) and self.d_in > 0, f"SaeConfig.d_in must be a positive int, got {self.d_in!r}")
        _require(_is_int(self.num_latents) and self.num_latents >= 0,
                 f"SaeConfig.num_latents must be an int >= 0 (0 = expansion_factor * d_in), got {self.num_latents!r}")
        if self.num_latents == 0:
            self.num_latents = self.expansion_factor * self.d_in
        m = self.num_latents
        _require(self.k <= m, f"SaeConfig.k must be an int in [1, num_latents={m}], got {self.k!r}")
        if self.k_aux is None:
            self.k_aux = max(1, self.d_in // 2)
        _require(self.k_aux <= m, f"SaeConfig.k_aux must be an int in [1, num_latents={m}], got {self.k_aux!r}")
        _require(_is_int(self.seed), f"SaeConfig.seed must be an int, got {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field (derived defaults already resolved)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SaeConfig:
        """Build from a dict, ignoring keys that are not fields (e.g. extra cfg.json entries)."""
        names = {f.name for f in fields(cls)}
        if "d_in" not in d:
            raise ConfigError("SaeConfig needs d_in")
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class SaeTrainConfig(SaeArchitecture):
    """How one SAE is trained: the ``sae:`` config group of ``python train.py`` and the input of ``fit``."""

    auxk_coef: float = 1 / 32
    """Weight of the AuxK dead-latent loss in ``fvu + auxk_coef * auxk_loss``."""

    dead_tokens: int | None = None
    """Training tokens without firing before a latent counts as dead (None: min(10M, tokens / 10))."""

    lr: float | None = None
    """Peak learning rate (None: finsae.sae.default_lr(num_latents, tokens))."""

    warmup_frac: float = 0.05
    """Fraction of the steps spent in linear warm-up (capped at max_warmup_steps)."""

    max_warmup_steps: int = 1000
    """Upper bound on warm-up steps, so long runs do not warm up for ages."""

    schedule: str = "linear"
    """Decay after warm-up: linear or cosine down to final_lr_frac * lr, or constant."""

    final_lr_frac: float = 0.0
    """Learning rate at the last step as a fraction of the peak."""

    adam_eps: float = 6.25e-10
    """Adam epsilon; small (Gao et al. 2024) because gradients of rarely firing latents are tiny."""

    batch_size: int = 4096
    """Tokens per optimizer step (global, across ranks)."""

    tokens: int = 1_048_576
    """Training token budget (passes over the cache repeat as needed); steps = tokens // batch_size."""

    init_sample: int = 32768
    """Training tokens, drawn uniformly over the whole training mix, that set b_dec (geometric median) and
    the input scale."""

    init_from: str | None = None
    """Warm start: folder of a trained SAE of the same shape whose weights (and input scale) start this run
    instead of a random init (finsae.sae.warm_start); None: a fresh SAE."""

    init_from_any_layer: bool = False
    """Allow ``init_from`` to be the SAE of another layer than the one this run trains (refused by default:
    its latents read another layer's activations, so "latent i continues latent i" would not hold)."""

    init_refit: bool = True
    """Warm start: before training, set ``norm_scale`` to this run's activations' inverse RMS norm and move
    ``b_dec`` by the shift of their normalised mean from the activations the start SAE was trained on (same
    rows: the run's init sample; :func:`finsae.sae.warm_start.refit_input_stats`), so a re-centring or a
    global rescaling of the twin is not learnt as feature drift; false keeps the start SAE's (the behaviour
    of runs before this knob)."""

    dictionary: str | None = None
    """The kind of dictionary (:data:`finsae.sae.inputs.KINDS`): None picks it from the run (``crosscoder``
    for task=crosscoder, ``warm_start`` when ``init_from`` is set, else ``sae``); ``affine_null`` continues
    ``init_from`` on the affine image of its model's activations fitted to ``model=``'s (the warm start's
    null)."""

    affine_fit_tokens: int = 131_072
    """affine_null: training tokens (a uniform sample of the training documents) the map is fitted on."""

    def _name(self, key: str) -> str:
        return f"sae.{key}"  # as the user writes it: python train.py sae.k=...

    def __post_init__(self) -> None:
        super().__post_init__()
        n = self._name
        _require(isinstance(self.auxk_coef, (int, float)) and math.isfinite(self.auxk_coef) and self.auxk_coef >= 0,
                 f"{n('auxk_coef')} must be a finite number >= 0, got {self.auxk_coef!r}")
        _require(self.dead_tokens is None or (_is_int(self.dead_tokens) and self.dead_tokens > 0),
                 f"{n('dead_tokens')} must be a positive int or None, got {self.dead_tokens!r}")
        _require(self.lr is None or (self.lr > 0 and math.isfinite(self.lr)), f"{n('lr')} must be > 0, got {self.lr!r}")
        _require(0 <= self.warmup_frac < 1, f"{n('warmup_frac')} must be in [0, 1), got {self.warmup_frac!r}")
        _require(_is_int(self.max_warmup_steps) and self.max_warmup_steps >= 0,
                 f"{n('max_warmup_steps')} must be an int >= 0, got {self.max_warmup_steps!r}")
        _require(self.schedule in SCHEDULES, f"{n('schedule')} must be one of {SCHEDULES}, got {self.schedule!r}")
        _require(0 <= self.final_lr_frac <= 1, f"{n('final_lr_frac')} must be in [0, 1], got {self.final_lr_frac!r}")
        _require(self.adam_eps > 0, f"{n('adam_eps')} must be > 0, got {self.adam_eps!r}")
        _require(_is_int(self.batch_size) and self.batch_size > 0, f"{n('batch_size')} must be a positive int, got {self.batch_size!r}")
        _require(_is_int(self.tokens) and self.tokens >= self.batch_size,
                 f"{n('tokens')} must be an int >= batch_size={self.batch_size}, got {self.tokens!r}")
        _require(_is_int(self.init_sample) and self.init_sample > 0,
                 f"{n('init_sample')} must be a positive int, got {self.init_sample!r}")
        _require(self.init_from is None or (isinstance(self.init_from, str) and self.init_from.strip() != ""),
                 f"{n('init_from')} must be the folder of a trained SAE or None, got {self.init_from!r}")
        _require(isinstance(self.init_from_any_layer, bool),
                 f"{n('init_from_any_layer')} must be true or false, got {self.init_from_any_layer!r}")
        _require(isinstance(self.init_refit, bool),
                 f"{n('init_refit')} must be true or false, got {self.init_refit!r}")
        _require(self.dictionary is None or (isinstance(self.dictionary, str) and self.dictionary.strip()),
                 f"{n('dictionary')} must name a kind of dictionary or be null, got {self.dictionary!r}")
        _require(_is_int(self.affine_fit_tokens) and self.affine_fit_tokens >= 2,
                 f"{n('affine_fit_tokens')} must be an int >= 2, got {self.affine_fit_tokens!r}")

    # -- what the knobs resolve to (one place each) ---------------------------------------------------
    @property
    def total_steps(self) -> int:
        """Optimizer steps of the run: ``tokens // batch_size``."""
        return self.tokens // self.batch_size

    @property
    def warmup_steps(self) -> int:
        """Linear warm-up steps: ``min(max_warmup_steps, warmup_frac * total_steps)``."""
        return min(self.max_warmup_steps, int(self.warmup_frac * self.total_steps))

    @property
    def dead_token_threshold(self) -> int:
        """``dead_tokens``, or its default min(10M, tokens / 10)."""
        if self.dead_tokens is not None:
            return self.dead_tokens
        return int(min(MAX_DEAD_TOKENS, max(self.tokens // 10, 1)))

    def peak_lr(self, num_latents: int) -> float:
        """``lr``, or :func:`finsae.sae.default_lr` for this width and the tokens actually trained on."""
        from finsae.sae.lr import default_lr

        return self.lr if self.lr is not None else default_lr(num_latents, self.total_steps * self.batch_size)

    def sae_config(self, d_in: int, seed: int = 0) -> SaeConfig:
        """The :class:`SaeConfig` of the SAE this run trains on ``d_in``-wide activations."""
        arch = {f.name: getattr(self, f.name) for f in fields(SaeArchitecture)}
        m = self.expansion_factor * d_in
        _require(self.k <= m, f"sae.k={self.k} exceeds num_latents={m} (= {self.expansion_factor} x d_in {d_in})")
        return SaeConfig(**arch, d_in=d_in, seed=seed)

    def crosscoder_config(self, d_model: int, seed: int = 0) -> SaeConfig:
        """The :class:`SaeConfig` of a crosscoder over two ``d_model``-wide models: input ``[x_base, x_domain]``
        (``d_in = 2 * d_model``), one decoder block per model, and as many latents as one model's SAE
        (``expansion_factor * d_model``); ``k_aux`` defaults to ``d_model // 2`` as for one model."""
        arch = {f.name: getattr(self, f.name) for f in fields(SaeArchitecture)}
        m = self.expansion_factor * d_model
        _require(self.k <= m, f"sae.k={self.k} exceeds num_latents={m} (= {self.expansion_factor} x d_model {d_model})")
        if arch["k_aux"] is None:
            arch["k_aux"] = max(1, d_model // 2)
        return SaeConfig(**arch, d_in=2 * d_model, num_latents=m, seed=seed)
