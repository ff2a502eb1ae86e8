"""The LightningModule around the pure-torch top-k SAE.

The module owns the loop's framework side (optimizer, schedule, logging, checkpoints, DDP); every
piece of SAE science is a call into ``finsae.sae``. Exactness under DDP:

* the reconstruction loss is the global-batch FVU: each rank's squared error is divided by the
  variance of the *whole* global batch (an all-reduce of three small sums), times the world size, so
  DDP's gradient averaging yields exactly the single-process gradient;
* the AuxK term is zero unless latents are dead (and the dead mask itself is all-reduced);
* decoder renormalisation runs on identical parameters on every rank, and the dead-latent counters
  are updated with the all-reduced fired mask, so every rank holds the same state.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.distributed as dist

from finsae.glue.sae_metrics import FiringCounts, ReconstructionMetrics
from finsae.sae import (
    DeadLatentTracker,
    SaeConfig,
    TopKSAE,
    lr_schedule,
    remove_parallel_decoder_grad,
    renorm_decoder,
)


def _all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


class SaeLitModule(L.LightningModule):
    """Trains one ``TopKSAE``; ``batch`` is a ``[tokens, d_in]`` float tensor of this rank's share."""

    def __init__(self, sae_cfg: dict, lr: float, total_steps: int, warmup_steps: int, global_batch: int,
                 schedule: str = "linear"):
        super().__init__()
        self.save_hyperparameters()
        self.sae = TopKSAE(SaeConfig.from_dict(sae_cfg))
        cfg = self.sae.cfg
        self.dead = DeadLatentTracker(cfg.num_latents, cfg.dead_tokens, reduce_fn=_all_reduce_sum)
        self.val_recon = ReconstructionMetrics(cfg.d_in)
        self.val_firing = FiringCounts(cfg.num_latents)
        self._last_indices: torch.Tensor | None = None
        self._last_tokens = 0

    # -- training -------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        self.dead.tokens_since_fired = self.dead.tokens_since_fired.to(self.device)

    def _global_total_variance(self, x: torch.Tensor) -> torch.Tensor:
        xd = x.double()
        stats = torch.cat([xd.sum(0), xd.pow(2).sum().view(1), torch.tensor([x.shape[0]], dtype=torch.float64,
                                                                            device=x.device)])
        stats = _all_reduce_sum(stats)
        d = x.shape[1]
        n = stats[d + 1]
        return (stats[d] - stats[:d].pow(2).sum() / n).to(x.dtype)

    def training_step(self, x: torch.Tensor, batch_idx: int):
        dead_mask = self.dead.dead_mask()
        out = self.sae(x, dead_mask=dead_mask if bool(dead_mask.any()) else None)
        world = self.trainer.world_size if self._trainer is not None else 1
        sse = (out.sae_out - x).pow(2).sum()
        fvu_global_share = sse * world / self._global_total_variance(x)
        loss = fvu_global_share + self.sae.cfg.auxk_coef * out.auxk_loss
        self._last_indices = out.latent_indices.detach()
        self._last_acts = out.latent_acts.detach()
        self._last_tokens = x.shape[0] * world
        l0 = (out.latent_acts > 0).sum(-1).float().mean()
        self.log_dict({"train/loss": loss.detach(), "train/fvu": out.fvu.detach(), "train/auxk": out.auxk_loss.detach(),
                       "train/l0": l0, "train/dead_fraction": dead_mask.float().mean(),
                       "train/lr": torch.tensor(self.optimizers().param_groups[0]["lr"])},
                      on_step=True, prog_bar=False, sync_dist=False)
        return loss

    def on_before_optimizer_step(self, optimizer) -> None:
        remove_parallel_decoder_grad(self.sae)

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        # Here, not in on_train_batch_end: checkpoint callbacks run before the module's batch-end hook,
        # and a checkpoint must hold the renormalised decoder and this step's dead counters.
        renorm_decoder(self.sae)
        if self._last_indices is not None:
            # num_tokens is this rank's share; the tracker's reduce sums shares and fired masks over ranks.
            self.dead.update(self._last_indices, self._last_tokens // max(1, self.trainer.world_size),
                             self._last_acts)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["dead_latents"] = self.dead.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.dead.load_state_dict(checkpoint["dead_latents"])

    # -- evaluation -----------------------------------------------------------------------------
    def validation_step(self, x: torch.Tensor, batch_idx: int):
        out = self.sae(x)
        self.val_recon.update(x, out.sae_out)
        self.val_firing.update(out.latent_indices, out.latent_acts)

    def on_validation_epoch_end(self) -> None:
        rec, fire = self.val_recon.compute(), self.val_firing.compute()
        self.log_dict({"val/fvu": rec["fvu"], "val/nmse": rec["nmse"], "val/l0": fire["l0"],
                       "val/dead_fraction": self.dead.dead_mask().float().mean()},
                      sync_dist=True)  # identical on every rank already (torchmetrics reduced them)
        self.val_recon.reset()
        self.val_firing.reset()

    # -- optimisation ---------------------------------------------------------------------------
    def configure_optimizers(self):
        try:
            opt = torch.optim.Adam(self.sae.parameters(), lr=self.hparams.lr, eps=6.25e-10, fused=True)
        except (RuntimeError, TypeError):
            opt = torch.optim.Adam(self.sae.parameters(), lr=self.hparams.lr, eps=6.25e-10)
        total, warm, schedule = self.hparams.total_steps, self.hparams.warmup_steps, self.hparams.schedule
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_schedule(s, total, 1.0, warm, schedule))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

