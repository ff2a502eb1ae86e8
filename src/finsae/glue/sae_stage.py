"""`python train.py model=M layer=i ...`: one top-k SAE on one layer of one model.

Steps: validate shapes before any work; build (or reuse) the activation cache for all of the model's
layers in one forward pass (a layer sweep then reuses it); initialise the SAE from a training sample;
train with Lightning (checkpoints, resume, DDP); evaluate on the fixed held-out documents (FVU, NMSE,
L0, dead fraction, firing histogram) and downstream (loss recovered); save to
``artifacts/sae/{model}/layer_{i}/{tag}/`` with ``summary.json``, and log everything to W&B.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import lightning as L
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from finsae import __version__
from finsae.activations import ActivationBatches, ExtractConfig, build_activations, split_rows
from finsae.data.mix import mixed_corpus
from finsae.errors import ConfigError
from finsae.glue.activation_datamodule import ActivationDataModule
from finsae.glue.app import resolved_config
from finsae.glue.sae_module import SaeLitModule
from finsae.glue.tracking import start_run, write_summary
from finsae.models import check_layer, get_spec, load_model
from finsae.models.patching import downstream_score
from finsae.paths import activations_root, sae_dir
from finsae.sae import SaeConfig, default_lr, load, save

log = logging.getLogger("finsae.sae")
SAE_FILES = ("sae.safetensors", "cfg.json", "summary.json")


def sae_config(cfg, d_in: int) -> SaeConfig:
    s = cfg.sae
    num_latents = s.expansion_factor * d_in
    if s.k > num_latents:
        raise ConfigError(f"sae.k={s.k} exceeds num_latents={num_latents} (= {s.expansion_factor} x d_in {d_in})")
    dead_tokens = s.dead_tokens if s.dead_tokens is not None else int(min(10_000_000, max(s.tokens // 10, 1)))
    return SaeConfig(d_in=d_in, expansion_factor=s.expansion_factor, k=s.k, k_aux=s.k_aux, auxk_coef=s.auxk_coef,
                     dead_tokens=dead_tokens, encoder_dtype=s.encoder_dtype, seed=cfg.seed)


class _SkipBatches(torch.utils.data.IterableDataset):
    """This rank's training batches minus the first ``skip`` (the steps a resumed run already took)."""

    def __init__(self, batches: ActivationBatches, skip: int):
        self.batches, self.skip = batches, skip

    def __len__(self):
        # The full length: Lightning restores its in-epoch batch counter at ``skip`` and ends the pass at len.
        return len(self.batches)

    def __iter__(self):
        arr = self.batches.array
        for g, idx in enumerate(self.batches.batch_indices(0)):
            if g >= self.skip:
                yield torch.from_numpy(np.asarray(arr[idx], dtype=np.float32))


class ResumableActivationData(ActivationDataModule):
    """The activation datamodule, resuming mid-pass at the restored global step (exact resume)."""

    def train_dataloader(self):
        skip = int(self.trainer.global_step) if self.trainer is not None else 0
        self.skipped = skip
        return torch.utils.data.DataLoader(_SkipBatches(self.train_set, skip), batch_size=None)


def _trainer(cfg, tracker, total_steps: int, ckpt_dir: Path, val_every: int):
    from lightning.pytorch.callbacks import ModelCheckpoint
    logger = tracker.lightning_logger()
    t = cfg.trainer
    ckpt = ModelCheckpoint(dirpath=str(ckpt_dir), every_n_train_steps=t.checkpoint_every, save_last=True,
                           save_top_k=0, enable_version_counter=False)
    return L.Trainer(
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy,
        precision=t.precision, max_steps=total_steps, max_epochs=-1, logger=logger, callbacks=[ckpt],
        enable_progress_bar=t.progress_bar, enable_model_summary=False, log_every_n_steps=max(1, min(20, total_steps // 20)),
        num_sanity_val_steps=0, val_check_interval=val_every, check_val_every_n_epoch=None,
        use_distributed_sampler=False, deterministic=False,
    )


@torch.no_grad()
def evaluate(sae, store, heldout_frac: float, batch_size: int = 4096) -> dict:
    """Exact held-out metrics over every held-out token row."""
    from finsae.glue.sae_metrics import FiringCounts, ReconstructionMetrics

    rec, fire = ReconstructionMetrics(sae.cfg.d_in), FiringCounts(sae.cfg.num_latents)
    batches = ActivationBatches(store, batch_size, split="heldout", heldout_frac=heldout_frac, drop_last=False)
    for idx in batches.batch_indices(0):
        x = torch.from_numpy(np.asarray(store.array[idx], dtype=np.float32))
        out = sae(x)
        rec.update(x, out.sae_out)
        fire.update(out.latent_indices, out.latent_acts)
    r, f = rec.compute(), fire.compute()
    return {"fvu": float(r["fvu"]), "nmse": float(r["nmse"]), "l0": float(f["l0"]),
            "heldout_tokens": int(rec.n), "heldout_never_fired_fraction": float(f["never_fired_fraction"]),
            "frequency": f["frequency"].numpy()}


def _firing_histogram(freq: np.ndarray, title: str):
    fig, ax = plt.subplots(figsize=(5, 3))
    pos = freq[freq > 0]
    if len(pos):
        ax.hist(np.log10(pos), bins=60, color="#3a6ea5")
    ax.set_xlabel("log10 firing frequency (held-out tokens)")
    ax.set_ylabel("latents")
    ax.set_title(f"{title}  ({(freq == 0).sum()} never fired)", fontsize=9)
    return fig


def task_kind(spec, artifacts: Path) -> str:
    """Which head the model's own config declares: ``classifier``, ``mlm``, or none (``encoder``)."""
    if spec.source == "random" and not spec.path:
        return "encoder"
    from transformers import AutoConfig

    from finsae.models.registry import model_source_dir

    archs = " ".join(AutoConfig.from_pretrained(model_source_dir(spec, artifacts)).architectures or [])
    if "SequenceClassification" in archs:
        return "classifier"
    if "MaskedLM" in archs or "ForPreTraining" in archs:
        return "mlm"
    return "encoder"


def _downstream(cfg, spec, layer: int, sae) -> dict:
    """Loss recovered on held-out PhraseBank text with the model's own task loss (see finsae.models.patching)."""
    if cfg.downstream_docs <= 0:
        return {}
    from finsae.finetune import build_finetune_data

    artifacts = Path(cfg.paths.artifacts)
    loaded = load_model(spec, artifacts, kind=task_kind(spec, artifacts))
    data = build_finetune_data(cfg.paths.data_dir, test_frac=cfg.finetune.test_frac, seed=0, use_twitter=False)
    test = data.test.iloc[: cfg.downstream_docs]
    labels = test["label"].tolist() if loaded.kind == "classifier" else None

    def reconstruct(rows):
        return sae(rows.float()).sae_out

    score = downstream_score(loaded, test["text"].tolist(), layer, reconstruct, labels=labels,
                             max_length=cfg.data.max_length)
    return {"loss_recovered": score.loss_recovered, "loss_recovered_all": score.loss_recovered_all,
            "downstream_task": score.task, "downstream_clean": score.clean, "downstream_sae": score.sae,
            "downstream_zero": score.zero, "downstream_sae_all": score.sae_all, "downstream_zero_all": score.zero_all,
            "downstream_docs": len(test)}


def rescore(cfg, spec, out_dir: Path) -> dict:
    """Recompute the downstream score of the finished SAE in ``out_dir`` and update its summary.json."""
    if not all((out_dir / f).exists() for f in SAE_FILES):
        raise ConfigError(f"rescore=true needs a finished SAE in {out_dir}; train it first (drop rescore=true)")
    summary = json.loads((out_dir / "summary.json").read_text())
    summary.update(_downstream(cfg, spec, cfg.layer, load(out_dir)))
    summary["rescored_code_version"] = __version__
    write_summary(summary, out_dir)
    print(f"sae: rescored {out_dir}: loss_recovered {summary.get('loss_recovered', float('nan')):.3f} "
          f"(all positions {summary.get('loss_recovered_all', float('nan')):.3f})")
    return summary


def training_corpus(cfg):
    d = cfg.data
    return mixed_corpus(list(d.corpora), cfg.paths.data_dir, "train", d.max_chars_per_corpus, d.max_docs,
                        d.eval_start)


def run(cfg, raw) -> dict:
    t0 = time.time()
    spec = get_spec(cfg.model.name, path=cfg.model.path, seed=cfg.model.seed)
    artifacts = Path(cfg.paths.artifacts)
    out_dir = sae_dir(artifacts, spec.name, cfg.layer, cfg.tag)
    if cfg.rescore:
        return rescore(cfg, spec, out_dir)
    if cfg.skip_if_done and all((out_dir / f).exists() for f in SAE_FILES):
        summary = json.loads((out_dir / "summary.json").read_text())
        print(f"sae: {out_dir} is complete (fvu {summary.get('fvu', float('nan')):.4f}); skipping")
        return summary
    loaded = load_model(spec, artifacts)
    check_layer(cfg.layer, loaded.num_layers)
    scfg = sae_config(cfg, loaded.d_model)
    s = cfg.sae
    world = cfg.trainer.devices * cfg.trainer.num_nodes
    if s.batch_size % world:
        raise ConfigError(f"sae.batch_size={s.batch_size} must divide evenly over {world} devices")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    run_dir = Path(cfg.paths.output_dir)

    corpus = training_corpus(cfg)
    layers = sorted(set(range(loaded.num_layers)) | {cfg.layer})
    ecfg = ExtractConfig(max_length=cfg.data.max_length, eval_start=cfg.data.eval_start)
    stores = build_activations(loaded, corpus, layers, activations_root(artifacts), ecfg,
                               rebuild=cfg.rebuild_cache, progress=cfg.trainer.progress_bar)
    store = stores[cfg.layer]

    total_steps = s.tokens // s.batch_size
    lr = s.lr if s.lr is not None else default_lr(scfg.num_latents, total_steps * s.batch_size)
    warmup = int(s.warmup_frac * total_steps)
    # Init from a fixed sample of training rows (the same for every rank and for a resumed run).
    train_rows = split_rows(store, "train", cfg.data.heldout_frac)
    init_rows = np.sort(np.random.default_rng(cfg.seed).choice(train_rows, min(s.geomedian_sample, len(train_rows)),
                                                                replace=False))
    sample = torch.from_numpy(np.asarray(store.array[init_rows], dtype=np.float32))
    module = SaeLitModule(scfg.to_dict(), lr, total_steps, warmup, s.batch_size)
    module.sae.init_from_sample(sample)

    tracker = start_run("train_sae", resolved_config(raw), run_dir, kind=cfg.logger.kind, mode=cfg.logger.mode,
                        project=cfg.logger.project, entity=cfg.logger.entity,
                        group=cfg.logger.group or f"sae-{cfg.tag}", tags=list(cfg.logger.tags) + [spec.name],
                        name=f"sae-{spec.name}-L{cfg.layer}-{cfg.tag}")
    data = ResumableActivationData(store, s.batch_size // world, heldout_frac=cfg.data.heldout_frac, seed=cfg.seed,
                                   max_tokens=total_steps * s.batch_size)
    ckpt_dir = out_dir / "checkpoints"
    ckpt_path = None
    if cfg.resume and (ckpt_dir / "last.ckpt").exists():
        ckpt_path = str(ckpt_dir / "last.ckpt")
        log.info("resuming from %s", ckpt_path)
    elif ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)  # a fresh run must not mix with an older run's checkpoints
    val_every = max(1, total_steps // 5)
    trainer = _trainer(cfg, tracker, total_steps, ckpt_dir, val_every)
    t_fit = time.time()
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    fit_seconds = time.time() - t_fit

    sae = module.sae.eval()
    sae.tokens_seen = int(trainer.global_step * s.batch_size)  # written to cfg.json by save()
    ev = evaluate(sae, store, cfg.data.heldout_frac)
    freq = ev.pop("frequency")
    dead_fraction = float(module.dead.dead_mask().float().mean())
    down = _downstream(cfg, spec, cfg.layer, sae)
    summary = {
        "model": spec.name, "layer": cfg.layer, "tag": cfg.tag, "d_in": scfg.d_in, "num_latents": scfg.num_latents,
        "k": scfg.k, "lr": lr, "tokens": int(trainer.global_step * s.batch_size), "steps": int(trainer.global_step),
        "batch_size": s.batch_size, "dead_fraction": dead_fraction, "dead_tokens": scfg.dead_tokens,
        **ev, **down, "corpus": corpus.name, "corpus_hash": corpus.content_hash()[:16],
        "activation_tokens": len(store), "code_version": __version__, "seed": cfg.seed,
        "seconds": round(time.time() - t0, 1), "fit_seconds": round(fit_seconds, 1),
        "tokens_per_second_train": round((trainer.global_step - getattr(data, "skipped", 0)) * s.batch_size / max(fit_seconds, 1e-9)),
    }
    summary["objective"] = summary["fvu"]
    save(sae, out_dir, extra={"tokens": summary["tokens"], "model": spec.name, "layer": cfg.layer,
                              "weights_hash": loaded.weights_hash, "corpus": corpus.name})
    np.save(out_dir / "heldout_frequency.npy", freq.astype(np.float32))
    fig = _firing_histogram(freq, f"{spec.name} layer {cfg.layer}")
    tracker.log_figure("firing_histogram", fig)
    tracker.log_table("sae_summary", pd.DataFrame([{k: v for k, v in summary.items() if not isinstance(v, dict)}]))
    tracker.log({f"final/{k}": v for k, v in summary.items() if isinstance(v, (int, float)) and v is not None})
    tracker.log_artifact(out_dir, f"sae-{spec.name}-layer{cfg.layer}-{cfg.tag}", "sae",
                         metadata={k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
    write_summary(summary, run_dir, out_dir)
    tracker.finish({k: v for k, v in summary.items() if isinstance(v, (int, float, str)) and v is not None})
    print(f"sae: {spec.name} layer {cfg.layer} [{cfg.tag}] fvu {summary['fvu']:.4f} l0 {summary['l0']:.1f} "
          f"dead {dead_fraction:.2%} loss_recovered {summary.get('loss_recovered', float('nan')):.3f} "
          f"-> {out_dir}")
    return summary
