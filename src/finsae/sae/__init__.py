"""Top-k sparse autoencoders with sparse CPU-friendly training kernels.

Public API::

    train_cfg = SaeTrainConfig(k=32, tokens=1_000_000)   # the `sae:` config group of train.py
    sae = TopKSAE(train_cfg.sae_config(d_in=384))        # num_latents = 32 * 384
    history = fit(sae, batches, train_cfg)
    save(sae, "artifacts/sae/minilm/layer3", extra={"layer": 3})
    sae = load("artifacts/sae/minilm/layer3", expected_d_in=384)

The step in the pieces a framework loop needs (the Lightning module calls them): :func:`build_optimizer`,
:func:`forward_loss`, :func:`before_optimizer_step`, :func:`after_optimizer_step`, with
:class:`DeadLatentTracker`, :func:`lr_schedule`; all at once :func:`train_step`. :func:`evaluate` gives exact
metrics over a whole split. :func:`keep_freed_memory` is an opt-in, process-wide malloc setting
that saves page faults in long CPU training loops. A crosscoder is a ``TopKSAE`` on two models' concatenated
activations (:meth:`SaeTrainConfig.crosscoder_config`, :func:`decoder_blocks`); :func:`warm_start` continues a
trained SAE (:func:`refit_input_stats` moves its input scale and offset to other activations). The kinds of
dictionary a training run can make (one model, crosscoder, warm start, affine null) are
:mod:`finsae.sae.inputs`, which ``finsae.sae.run`` uses; this package's own API imports only torch and
safetensors.
"""

from finsae.sae.alloc import keep_freed_memory
from finsae.sae.config import SaeArchitecture, SaeConfig, SaeTrainConfig
from finsae.sae.crosscoder import DecoderBlocks, decoder_blocks, paired_input
from finsae.sae.dead import DeadLatentTracker
from finsae.sae.evaluate import EvalResult, ReconstructionSums, evaluate
from finsae.sae.geometric_median import geometric_median
from finsae.sae.io import load, read_meta, save
from finsae.sae.kernels import TopKSaeFn, bf16_matmul_is_native, encoder_matmul_mode
from finsae.sae.lr import default_lr, lr_schedule, published_lr
from finsae.sae.sparse_coder import EncoderOutput, ForwardOutput, TopKSAE, dense_reference_forward
from finsae.sae.train import (
    StepMetrics,
    after_optimizer_step,
    before_optimizer_step,
    build_optimizer,
    fit,
    forward_loss,
    global_total_variance,
    remove_parallel_decoder_grad,
    renorm_decoder,
    set_lr,
    train_step,
    uniform_sample_rows,
)
from finsae.sae.warm_start import RowMoments, refit_input_stats, row_moments, warm_start

__all__ = [
    "DecoderBlocks", "DeadLatentTracker", "EncoderOutput", "EvalResult", "ForwardOutput", "ReconstructionSums", "SaeArchitecture",
    "SaeConfig", "SaeTrainConfig", "StepMetrics", "TopKSAE", "TopKSaeFn", "after_optimizer_step",
    "before_optimizer_step", "bf16_matmul_is_native", "build_optimizer", "default_lr", "dense_reference_forward",
    "encoder_matmul_mode", "evaluate", "fit", "forward_loss", "geometric_median", "global_total_variance",
    "keep_freed_memory", "load", "lr_schedule", "published_lr", "read_meta", "remove_parallel_decoder_grad",
    "paired_input", "renorm_decoder", "save", "set_lr", "train_step", "uniform_sample_rows", "warm_start",
    "decoder_blocks", "RowMoments", "refit_input_stats", "row_moments",
]
