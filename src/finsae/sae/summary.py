"""What one trained SAE's run reports (``artifacts/sae/{model}/layer_{i}/{tag}/summary.json``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from finsae.summary import StageSummary

NAN = float("nan")


@dataclass
class SaeSummary(StageSummary):
    """Headline numbers of one SAE: what was trained, on what, and how well it reconstructs."""

    MAKES: ClassVar[str] = "python train.py"

    model: str
    """Registry name of the encoder."""
    layer: int
    """-1 = embeddings, i = output of block i."""
    tag: str
    """Names the run under artifacts/sae/{model}/layer_{i}/."""
    seed: int
    """Init, init-sample and batch-order seed."""
    d_in: int
    """Width of the layer."""
    num_latents: int
    """Dictionary size."""
    k: int
    """Active latents per token."""
    lr: float
    """Peak learning rate used."""
    batch_size: int
    """Global tokens per step."""
    steps: int
    """Optimizer steps taken (from the trained state)."""
    tokens: int
    """Training tokens consumed (from the trained state)."""
    dead_fraction: float
    """Fraction of latents dead at the end of training (no firing for dead_tokens tokens)."""
    dead_tokens: int
    """The dead-latent threshold in tokens."""
    fvu: float
    """Fraction of variance unexplained on every sae_eval token."""
    nmse: float
    """Normalised MSE on the sae_eval tokens."""
    l0: float
    """Mean latents firing per sae_eval token."""
    sae_eval_tokens: int
    """Token rows of the sae_eval split (documents set aside from training by data.sae_eval_frac)."""
    sae_eval_never_fired_fraction: float
    """Fraction of latents that fired on no sae_eval token."""
    corpus: str
    """Name of the training mix."""
    corpus_hash: str
    """Content hash of the training mix (first 16 hex digits)."""
    activation_tokens: int
    """Token rows in the activation cache (train + sae_eval)."""
    code_version: str
    """finsae version that trained it."""
    seconds: float = NAN
    """Wall-clock seconds of the whole stage."""
    fit_seconds: float = NAN
    """Seconds inside trainer.fit."""
    tokens_per_second_train: float = NAN
    """Training tokens per second of this run's fit (a resumed run counts only its own steps)."""
    loss_recovered: float = NAN
    """Downstream: (L_zero - L_sae) / (L_zero - L_clean), real tokens replaced (NaN when undefined)."""
    loss_recovered_all: float = NAN
    """Downstream: loss recovered with every non-[PAD] position replaced."""
    downstream_task: str = ""
    """Which task loss: sentiment_ce, mlm_ce or cls_kl ("" when not scored)."""
    downstream_clean: float = NAN
    """Task loss of the untouched model."""
    downstream_sae: float = NAN
    """Task loss with the SAE's reconstruction of the real tokens."""
    downstream_zero: float = NAN
    """Task loss with the real tokens zeroed."""
    downstream_sae_all: float = NAN
    """Task loss with every position reconstructed."""
    downstream_zero_all: float = NAN
    """Task loss with every position zeroed."""
    downstream_docs: int = 0
    """PhraseBank test sentences scored."""
    rescored_code_version: str = ""
    """finsae version of the last rescore=true, if any."""
    activation_dtype: str = ""
    """Compute dtype of the model forward that made the training activations (``fp32``/``bf16``/``fp16``;
    "" in summaries written before it was recorded)."""

    init_from: str = ""
    """Warm starts: the folder of the SAE this run continued ("" for a fresh SAE)."""
    init_refit: bool | None = None
    """Warm starts: whether ``norm_scale`` and ``b_dec`` were refitted to this run's activations first."""
    died: int | None = None
    """Warm starts: latents that fired on the ``sae_eval`` tokens in the start SAE and fire on none after this
    run (counted, not dropped; per latent: both runs' ``sae_eval_frequency.npy``)."""
    affine_r2: float = NAN
    """affine_null: R² of the twin's activations from the affine map of the base's on held-out documents."""
    affine_fit_rows: int = 0
    """affine_null: training tokens the affine map was fitted on."""
    affine_fit_docs: int = 0
    """affine_null: training documents those tokens come from."""
    affine_eval_docs: int = 0
    """affine_null: ``sae_eval`` documents the R² is scored on."""

    @property
    def objective(self) -> float:
        return self.fvu


def downstream_fields(score, docs: int) -> dict:
    """The ``downstream_*`` and ``loss_recovered*`` fields of :class:`SaeSummary` from a
    :class:`~finsae.models.patching.DownstreamScore` over ``docs`` sentences."""
    return {"loss_recovered": score.loss_recovered, "loss_recovered_all": score.loss_recovered_all,
            "downstream_task": score.task, "downstream_clean": score.clean, "downstream_sae": score.sae,
            "downstream_zero": score.zero, "downstream_sae_all": score.sae_all, "downstream_zero_all": score.zero_all,
            "downstream_docs": docs}
