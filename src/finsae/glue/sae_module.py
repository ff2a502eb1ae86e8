"""The LightningModule around the pure-torch top-k SAE.

The module owns the loop's framework side (schedule, logging, checkpoints, DDP); the step itself is the core's
(``finsae.sae.train``): ``forward_loss`` in ``training_step``, ``before_optimizer_step`` before Lightning's
optimizer step, ``after_optimizer_step`` after it, and ``build_optimizer`` for Adam. Exactness under DDP:

* the loss is the global-batch FVU share (``forward_loss`` with an all-reduce), so DDP's gradient averaging
  yields exactly the single-process gradient;
* the AuxK term is zero unless latents are dead, and the dead mask is the same on every rank;
* decoder renormalisation runs on identical parameters on every rank, and the dead-latent counters are updated
  with the all-reduced fired mask, so every rank holds the same state.

The dead-latent tracker is a submodule, so its counters and the run's step/token totals are buffers: they ride
in every checkpoint and in the weights a ``ddp_spawn`` run hands back to the main process.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.distributed as dist

from finsae.sae import (
    DeadLatentTracker,
    ReconstructionSums,
    SaeConfig,
    SaeTrainConfig,
    TopKSAE,
    after_optimizer_step,
    before_optimizer_step,
    build_optimizer,
    forward_loss,
    lr_schedule,
)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Elementwise sum over ranks (identity in one process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


class SaeLitModule(L.LightningModule):
    """Trains one ``TopKSAE``; ``batch`` is a ``[tokens, d_in]`` float tensor of this rank's share."""

    def __init__(self, sae_cfg: dict, train_cfg: dict, run: dict | None = None):
        """``run``: the rest of what shapes the result (model, layer, seed, data, extraction), kept in every
        checkpoint's hyper-parameters so a resume can refuse a changed config."""
        super().__init__()
        self.save_hyperparameters()
        self.sae = TopKSAE(SaeConfig.from_dict(sae_cfg))
        self.train_cfg = SaeTrainConfig(**train_cfg)
        cfg = self.sae.cfg
        self.dead = DeadLatentTracker(cfg.num_latents, self.train_cfg.dead_token_threshold, reduce_fn=all_reduce_sum)
        self.val_sums: ReconstructionSums | None = None
        self._last_out = None
        self._last_tokens = 0
        self.register_buffer("fit_start_step", torch.zeros((), dtype=torch.long))
        """Steps already taken when this fit started (non-zero after a resume): the run's own speed excludes them."""

    def on_train_start(self) -> None:  # after a resumed checkpoint is restored
        self.fit_start_step.fill_(int(self.dead.updates))

    @property
    def world(self) -> int:
        return self.trainer.world_size if self._trainer is not None else 1

    # -- training -------------------------------------------------------------------------------
    def training_step(self, x: torch.Tensor, batch_idx: int):
        loss, out = forward_loss(self.sae, x, self.dead, self.train_cfg, all_reduce_sum, self.world)
        self._last_out, self._last_tokens = out, x.shape[0]
        l0 = (out.latent_acts > 0).sum(-1).float().mean()
        self.log_dict({"train/loss": loss.detach(), "train/fvu": out.fvu.detach(), "train/auxk": out.auxk_loss.detach(),
                       "train/l0": l0, "train/dead_fraction": self.dead.dead_mask().float().mean(),
                       "train/lr": torch.tensor(self.optimizers().param_groups[0]["lr"])},
                      on_step=True, prog_bar=False, sync_dist=False)
        return loss

    def on_before_optimizer_step(self, optimizer) -> None:
        before_optimizer_step(self.sae)

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        # Here, not in on_train_batch_end: checkpoint callbacks run before the module's batch-end hook,
        # and a checkpoint must hold the renormalised decoder and this step's dead counters.
        after_optimizer_step(self.sae, self.dead, self._last_out, self._last_tokens)
        self._last_out = None

    # -- evaluation -----------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self.val_sums = ReconstructionSums(self.sae.d_in, self.sae.num_latents, device=self.device)

    def validation_step(self, x: torch.Tensor, batch_idx: int):
        out = self.sae(x)
        self.val_sums.update(x, out.sae_out, out.latent_indices, out.latent_acts)

    def on_validation_epoch_end(self) -> None:
        self.val_sums.reduce(all_reduce_sum)  # exact over the whole sae_eval split, every rank's share summed
        r = self.val_sums.result()
        self.log_dict({"val/fvu": r.fvu, "val/nmse": r.nmse, "val/l0": r.l0,
                       "val/dead_fraction": self.dead.dead_fraction()})  # identical on every rank already
        self.val_sums = None

    # -- optimisation ---------------------------------------------------------------------------
    def configure_optimizers(self):
        c = self.train_cfg
        opt = build_optimizer(self.sae, c, c.peak_lr(self.sae.num_latents))
        total, warm = c.total_steps, c.warmup_steps
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: lr_schedule(s, total, 1.0, warm, c.schedule, c.final_lr_frac))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
