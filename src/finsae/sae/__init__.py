"""Top-k sparse autoencoders with sparse CPU-friendly training kernels.

Public API::

    cfg = SaeConfig(d_in=384, k=32)                 # num_latents = 32 * 384
    sae = TopKSAE(cfg)
    history = fit(sae, batches, TrainConfig(), total_tokens=1_000_000)
    save(sae, "artifacts/sae/minilm/layer3", extra={"layer": 3})
    sae = load("artifacts/sae/minilm/layer3", expected_d_in=384)

Pieces for a custom loop (e.g. a Lightning module): :func:`make_optimizer`,
:func:`sae_loss`, :func:`remove_parallel_decoder_grad`, :func:`renorm_decoder`,
:class:`DeadLatentTracker`, :func:`default_lr`, :func:`lr_schedule`, or all at once
:func:`train_step`. :func:`keep_freed_memory` is an opt-in, process-wide malloc setting
that saves page faults in long CPU training loops. Imports only torch and safetensors.
"""

from finsae.sae.alloc import keep_freed_memory
from finsae.sae.config import SaeConfig, TrainConfig
from finsae.sae.dead import DeadLatentTracker
from finsae.sae.geometric_median import geometric_median
from finsae.sae.io import load, read_meta, save
from finsae.sae.kernels import TopKSaeFn, bf16_matmul_is_native, encoder_matmul_mode
from finsae.sae.lr import default_lr, lr_schedule, published_lr
from finsae.sae.sparse_coder import EncoderOutput, ForwardOutput, TopKSAE, dense_reference_forward
from finsae.sae.train import (
    StepMetrics,
    fit,
    make_optimizer,
    remove_parallel_decoder_grad,
    renorm_decoder,
    sae_loss,
    set_lr,
    train_step,
)

__all__ = [
    "DeadLatentTracker",
    "EncoderOutput",
    "ForwardOutput",
    "SaeConfig",
    "StepMetrics",
    "TopKSAE",
    "TopKSaeFn",
    "TrainConfig",
    "bf16_matmul_is_native",
    "default_lr",
    "dense_reference_forward",
    "encoder_matmul_mode",
    "fit",
    "geometric_median",
    "keep_freed_memory",
    "load",
    "lr_schedule",
    "make_optimizer",
    "published_lr",
    "read_meta",
    "remove_parallel_decoder_grad",
    "renorm_decoder",
    "sae_loss",
    "save",
    "set_lr",
    "train_step",
]
