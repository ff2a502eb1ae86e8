"""The LightningModule trains with the core's step: same batches in, same weights and counters out."""

import lightning as L
import torch
from torch.utils.data import DataLoader

from finsae.glue.sae_module import SaeLitModule
from finsae.sae import DeadLatentTracker, SaeTrainConfig, TopKSAE, build_optimizer, lr_schedule, train_step


def _batches(n_steps, batch, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(24, d, generator=g)
    codes = torch.rand(n_steps * batch, 24, generator=g) * (torch.rand(n_steps * batch, 24, generator=g) < 0.1)
    return list((codes @ basis + 0.5).split(batch))


def test_lightning_module_steps_exactly_like_train_step(tmp_path):
    d, steps, batch = 16, 12, 64
    cfg = SaeTrainConfig(expansion_factor=4, k=3, tokens=steps * batch, batch_size=batch, dead_tokens=2 * batch,
                         warmup_frac=0.25, lr=5e-3)  # dead latents appear within the run: AuxK is exercised
    data = _batches(steps, batch, d)
    sae_cfg = cfg.sae_config(d, seed=3)

    module = SaeLitModule(sae_cfg.to_dict(), {k: getattr(cfg, k) for k in cfg.__dataclass_fields__})
    module.sae.init_from_sample(torch.cat(data))
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps, max_epochs=-1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=str(tmp_path))
    trainer.fit(module, DataLoader(data, batch_size=None))

    ref = TopKSAE(sae_cfg)
    ref.init_from_sample(torch.cat(data))
    opt = build_optimizer(ref, cfg, cfg.peak_lr(ref.num_latents))
    tracker = DeadLatentTracker(ref.num_latents, cfg.dead_token_threshold)
    for step, x in enumerate(data):
        lr = lr_schedule(step, cfg.total_steps, cfg.peak_lr(ref.num_latents), cfg.warmup_steps, cfg.schedule)
        train_step(ref, opt, x, tracker, cfg, lr)

    assert int(tracker.dead_mask().sum()) > 0
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        torch.testing.assert_close(getattr(module.sae, name), getattr(ref, name), rtol=1e-5, atol=1e-6)
    assert torch.equal(module.dead.tokens_since_fired, tracker.tokens_since_fired)
    assert int(module.dead.updates) == steps and int(module.dead.tokens) == steps * batch == ref.tokens_seen
    assert module.sae.tokens_seen == steps * batch
    # The counters are state: they travel in the module's state_dict (checkpoints, ddp_spawn hand-back).
    sd = module.state_dict()
    assert int(sd["dead.updates"]) == steps and torch.equal(sd["dead.tokens_since_fired"], tracker.tokens_since_fired)
