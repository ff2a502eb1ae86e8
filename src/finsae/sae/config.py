"""Configuration of one top-k sparse autoencoder and of a plain training loop.

Both dataclasses validate themselves on construction and raise
:class:`finsae.errors.ConfigError` with one line naming the bad field.
``SaeConfig`` resolves its derived defaults (``num_latents=0``, ``k_aux=None``) when
it is built, so a saved config always holds concrete numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from finsae.errors import ConfigError

EncoderDtype = Literal["fp32", "bf16"]
ENCODER_DTYPES = ("fp32", "bf16")
SCHEDULES = ("linear", "cosine", "constant")


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass
class SaeConfig:
    """Shape and training hyper-parameters of a :class:`~finsae.sae.TopKSAE`."""

    d_in: int
    """Width of the activations the SAE reads (the hidden size of the encoder layer)."""

    expansion_factor: int = 32
    """Latents per input dimension; used only when ``num_latents`` is 0."""

    k: int = 32
    """Number of latents kept active per token (the top-k)."""

    num_latents: int = 0
    """Dictionary size m. 0 means ``expansion_factor * d_in`` (resolved on construction)."""

    k_aux: int | None = None
    """Dead latents used by the AuxK loss per token. None means ``d_in // 2`` (Gao et al.)."""

    auxk_coef: float = 1 / 32
    """Weight of the AuxK loss in the training loss ``fvu + auxk_coef * auxk_loss``."""

    dead_tokens: int = 10_000_000
    """A latent that has not fired for this many training tokens counts as dead."""

    encoder_dtype: EncoderDtype = "fp32"
    """Precision of the encoder matmul, the only dense product: "fp32" or "bf16".
    Parameters, gradients and optimizer state stay fp32 either way."""

    normalize_input: bool = True
    """Scale inputs to unit mean squared norm with a constant estimated once from a sample."""

    seed: int = 0
    """Seed of the weight initialisation (a private generator; global RNG untouched)."""

    def __post_init__(self) -> None:
        _require(_is_int(self.d_in) and self.d_in > 0, f"SaeConfig.d_in must be a positive int, got {self.d_in!r}")
        _require(
            _is_int(self.expansion_factor) and self.expansion_factor > 0,
            f"SaeConfig.expansion_factor must be a positive int, got {self.expansion_factor!r}",
        )
        _require(
            _is_int(self.num_latents) and self.num_latents >= 0,
            f"SaeConfig.num_latents must be an int >= 0 (0 = expansion_factor * d_in), got {self.num_latents!r}",
        )
        if self.num_latents == 0:
            self.num_latents = self.expansion_factor * self.d_in
        m = self.num_latents
        _require(_is_int(self.k) and 0 < self.k <= m, f"SaeConfig.k must be an int in [1, num_latents={m}], got {self.k!r}")
        if self.k_aux is None:
            self.k_aux = max(1, self.d_in // 2)
        _require(
            _is_int(self.k_aux) and 0 < self.k_aux <= m,
            f"SaeConfig.k_aux must be an int in [1, num_latents={m}], got {self.k_aux!r}",
        )
        _require(
            isinstance(self.auxk_coef, (int, float)) and math.isfinite(self.auxk_coef) and self.auxk_coef >= 0,
            f"SaeConfig.auxk_coef must be a finite number >= 0, got {self.auxk_coef!r}",
        )
        _require(
            _is_int(self.dead_tokens) and self.dead_tokens > 0,
            f"SaeConfig.dead_tokens must be a positive int, got {self.dead_tokens!r}",
        )
        _require(
            self.encoder_dtype in ENCODER_DTYPES,
            f"SaeConfig.encoder_dtype must be one of {ENCODER_DTYPES}, got {self.encoder_dtype!r}",
        )
        _require(isinstance(self.normalize_input, bool), "SaeConfig.normalize_input must be a bool")
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
class TrainConfig:
    """Optimiser and schedule of :func:`~finsae.sae.fit` (the Lightning module may reuse it)."""

    lr: float | None = None
    """Peak learning rate. None: :func:`~finsae.sae.default_lr` from width and token budget."""

    warmup_frac: float = 0.05
    """Fraction of the steps spent in linear warm-up (capped by ``max_warmup_steps``)."""

    max_warmup_steps: int = 1000
    """Upper bound on warm-up steps, so long runs do not warm up for ages."""

    schedule: str = "linear"
    """Decay after warm-up: "linear" or "cosine" down to ``final_lr_frac * lr``, or "constant"."""

    final_lr_frac: float = 0.0
    """Learning rate at the last step as a fraction of the peak."""

    betas: tuple[float, float] = (0.9, 0.999)
    """Adam betas."""

    eps: float = 6.25e-10
    """Adam epsilon. Small (Gao et al. 2024) because gradients of rarely firing latents are tiny."""

    init_tokens: int = 16_384
    """Tokens from the first batches used to estimate the input scale and the geometric median."""

    def __post_init__(self) -> None:
        _require(self.lr is None or (self.lr > 0 and math.isfinite(self.lr)), f"TrainConfig.lr must be > 0, got {self.lr!r}")
        _require(0 <= self.warmup_frac < 1, f"TrainConfig.warmup_frac must be in [0, 1), got {self.warmup_frac!r}")
        _require(
            _is_int(self.max_warmup_steps) and self.max_warmup_steps >= 0,
            f"TrainConfig.max_warmup_steps must be an int >= 0, got {self.max_warmup_steps!r}",
        )
        _require(self.schedule in SCHEDULES, f"TrainConfig.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        _require(0 <= self.final_lr_frac <= 1, f"TrainConfig.final_lr_frac must be in [0, 1], got {self.final_lr_frac!r}")
        _require(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            f"TrainConfig.betas must be two numbers in [0, 1), got {self.betas!r}",
        )
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        _require(self.eps > 0, f"TrainConfig.eps must be > 0, got {self.eps!r}")
        _require(_is_int(self.init_tokens) and self.init_tokens > 0, f"TrainConfig.init_tokens must be a positive int, got {self.init_tokens!r}")
