"""`python train.py model=M layer=i ...`: one top-k SAE on one layer of one model (``task=crosscoder``: one
crosscoder on the row-aligned activations of the pair's two models; ``sae.init_from=DIR``: continue a trained
SAE instead of a random init).

Steps: validate shapes before any work; build (or reuse) the activation cache for all of the model's layers in
one forward pass (a layer sweep then reuses it); initialise the SAE from a uniform sample of the training rows;
train with Lightning (checkpoints under ``artifacts/checkpoints/``, resume, DDP); then, on rank zero only,
evaluate on every ``sae_eval`` token and downstream (loss recovered), and publish
``artifacts/sae/{model}/layer_{i}/{tag}/`` in one rename (weights, ``cfg.json``, ``summary.json``, firing
frequencies), so a crash never leaves a folder that ``skip_if_done`` would take as finished.

A crosscoder is the same run on a :class:`~finsae.activations.PairedStore` (both models' rows concatenated,
each scaled to unit mean squared norm on the init sample), published under
``artifacts/sae/crosscoder_{base}_{domain}/layer_{i}/{tag}/`` with the block scales in ``cfg.json``'s
``extra.crosscoder``; it has no downstream (loss-recovered) score, which patches one model.
"""

from __future__ import annotations

import dataclasses
import shutil
import signal
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException
import numpy as np
import pandas as pd
import torch

from finsae import __version__
from finsae.activations import ActivationBatches, PairedStore, block_scales, build_activations, split_rows
from finsae.atomic import SPACE_RESERVE_GB, check_writable
from finsae.data.mix import mixed_corpus
from finsae.errors import ConfigError
from finsae.glue.activation_datamodule import ActivationDataModule
from finsae.glue.app import resolved_config
from finsae.glue.console import step_progress_bar
from finsae.glue.interrupt import Interrupted, StopOnSignal
from finsae.glue.schemas import check_hardware
from finsae.glue.sae_module import SaeLitModule
from finsae.glue.tracking import is_rank_zero, stage_run
from finsae.models import check_layer, get_spec, load_model
from finsae.models.loading import model_config
from finsae.models.patching import sae_downstream_score
from finsae.paths import activations_root, crosscoder_name, sae_checkpoint_dir, sae_dir
from finsae.sae import evaluate, load, uniform_sample_rows, warm_start
from finsae.sae.artifact import firing_histogram, is_published, publish_sae
from finsae.sae.run_guard import LAST_CHECKPOINT, check_no_work_lost, check_same_config, run_lock
from finsae.sae.summary import SaeSummary, downstream_fields
from finsae.sae.warm_start import check_warm_start_source


def _trainer(cfg, tracker, ckpt_dir: Path, val_every: int, stopper: StopOnSignal):
    from lightning.pytorch.callbacks import ModelCheckpoint

    t = cfg.trainer
    total = cfg.sae.total_steps
    ckpt = ModelCheckpoint(dirpath=str(ckpt_dir), every_n_train_steps=t.checkpoint_every, save_last=True,
                           save_top_k=0, enable_version_counter=False)
    return L.Trainer(
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy,
        precision=t.precision, max_steps=total, max_epochs=-1, logger=tracker.lightning_logger(),
        callbacks=[ckpt, stopper, *([step_progress_bar(total, f"sae {run_name(cfg)} L{cfg.layer}")]
                                     if t.progress_bar else [])],
        enable_progress_bar=t.progress_bar, enable_model_summary=False, log_every_n_steps=max(1, min(20, total // 20)),
        num_sanity_val_steps=0, val_check_interval=val_every, check_val_every_n_epoch=None,
        use_distributed_sampler=False, deterministic=False,
    )


def _downstream(cfg, spec, sae) -> dict:
    """The downstream fields of the summary (none when ``downstream_docs=0``)."""
    if cfg.downstream_docs <= 0:
        return {}
    score = sae_downstream_score(spec, Path(cfg.paths.artifacts), cfg.paths.data_dir, cfg.layer, sae,
                                 cfg.downstream_docs, cfg.finetune.test_frac, cfg.activations.max_length)
    return downstream_fields(score, cfg.downstream_docs)


def rescore(cfg, spec, out_dir: Path) -> SaeSummary:
    """Recompute the downstream score of the finished SAE in ``out_dir`` (``precheck`` saw it) and update its
    summary.json."""
    summary = dataclasses.replace(SaeSummary.read(out_dir), **_downstream(cfg, spec, load(out_dir)),
                                  rescored_code_version=__version__)
    summary.write(out_dir)
    print(f"sae: rescored {out_dir}: loss_recovered {summary.loss_recovered:.3f} "
          f"(all positions {summary.loss_recovered_all:.3f})")
    return summary


def result_shaping_config(cfg) -> dict:
    """What, beside the SAE and training knobs, decides a run's result (logger and progress bar do not)."""
    out = {"model": dataclasses.asdict(cfg.model), "layer": cfg.layer, "seed": cfg.seed,
           "data": dataclasses.asdict(cfg.data), "activations": dataclasses.asdict(cfg.activations),
           "world_size": cfg.trainer.devices * cfg.trainer.num_nodes}
    if cfg.task == "crosscoder":  # its models are the pair's (model= is not read)
        out.update(task=cfg.task, pair=dataclasses.asdict(cfg.pair))
        del out["model"]
    return out


def training_corpus(cfg):
    d = cfg.data
    return mixed_corpus(list(d.corpora), cfg.paths.data_dir, "train", d.max_chars_per_corpus, d.max_docs,
                        d.eval_start)


def specs(cfg) -> list:
    """The model(s) a run reads: ``model``, or the pair's base and domain for task=crosscoder."""
    if cfg.task == "crosscoder":
        return [get_spec(cfg.pair.base), get_spec(cfg.pair.domain)]
    return [get_spec(cfg.model.name, path=cfg.model.path, seed=cfg.model.seed)]


def run_name(cfg) -> str:
    """The name a run publishes under (``artifacts/sae/{name}/``): the model, or ``crosscoder_{base}_{domain}``."""
    if cfg.task == "crosscoder":
        return crosscoder_name(cfg.pair.base, cfg.pair.domain)
    return specs(cfg)[0].name


def sae_config(cfg, d_model: int):
    """The SaeConfig of this run on ``d_model``-wide activations (one model, or a crosscoder over two)."""
    if cfg.task == "crosscoder":
        return cfg.sae.crosscoder_config(d_model, cfg.seed)
    return cfg.sae.sae_config(d_model, cfg.seed)


def precheck(cfg) -> None:
    """Everything that can be known before any work, without loading weights (the model's config.json only):
    the trainer fits this machine, the layer exists, k fits the latents, the batch divides over the devices,
    nothing finished or resumable would be clobbered, the artifacts folder takes new files. ``run`` calls it
    first; a ``--multirun`` calls it for every job before the first one starts."""
    artifacts = Path(cfg.paths.artifacts)
    name = run_name(cfg)
    out_dir = sae_dir(artifacts, name, cfg.layer, cfg.tag)
    if cfg.rescore:
        if cfg.task == "crosscoder":
            raise ConfigError("rescore=true scores one model's SAE; a crosscoder has no downstream score")
        if not is_published(out_dir):
            raise ConfigError(f"rescore=true needs a finished SAE in {out_dir}; train it first (drop rescore=true)")
        return
    if cfg.skip_if_done and is_published(out_dir):
        return
    check_hardware(cfg.trainer)
    shapes = [model_config(spec, artifacts) for spec in specs(cfg)]
    if len({(s.hidden_size, s.num_hidden_layers) for s in shapes}) > 1:
        raise ConfigError(f"task=crosscoder needs two models of one shape, got pair.base {cfg.pair.base} "
                          f"({shapes[0].num_hidden_layers} x {shapes[0].hidden_size}) and pair.domain {cfg.pair.domain} "
                          f"({shapes[1].num_hidden_layers} x {shapes[1].hidden_size})")
    shape = shapes[0]
    check_layer(cfg.layer, shape.num_hidden_layers)
    scfg = sae_config(cfg, shape.hidden_size)
    if cfg.sae.init_from:
        check_warm_start_source(cfg.sae.init_from, scfg)
    world = cfg.trainer.devices * cfg.trainer.num_nodes
    if cfg.sae.batch_size % world:
        raise ConfigError(f"sae.batch_size={cfg.sae.batch_size} must divide evenly over {world} devices")
    check_writable(artifacts, "artifacts folder")
    ckpt_dir = sae_checkpoint_dir(artifacts, name, cfg.layer, cfg.tag)
    # every folder the run writes (nothing made here: a sweep's checks leave no empty folders)
    check_writable(out_dir, "SAE folder", make=False)
    check_writable(ckpt_dir, "checkpoint folder", make=False)
    check_writable(activations_root(artifacts), "activation cache", make=False, reserve_gb=SPACE_RESERVE_GB)
    with run_lock(ckpt_dir, is_rank_zero()):  # a run of this tag in flight says so (not that its checkpoint exists)
        check_no_work_lost(out_dir, ckpt_dir, cfg.resume, cfg.overwrite)


def run(cfg, raw) -> SaeSummary | None:
    t0 = time.time()
    precheck(cfg)
    spec = specs(cfg)[0]
    artifacts = Path(cfg.paths.artifacts)
    name = run_name(cfg)
    out_dir = sae_dir(artifacts, name, cfg.layer, cfg.tag)
    if cfg.rescore:
        return rescore(cfg, spec, out_dir)
    if cfg.skip_if_done and is_published(out_dir):
        summary = SaeSummary.read(out_dir)
        print(f"sae: {out_dir} is complete (fvu {summary.fvu:.4f}); skipping")
        return summary
    with run_lock(sae_checkpoint_dir(artifacts, name, cfg.layer, cfg.tag), is_rank_zero()):
        return _train(cfg, raw, artifacts, out_dir, t0)


def _layer_store(cfg, spec, artifacts: Path, corpus):
    """One model's activation store at ``cfg.layer`` (the cache is built for all its layers in one pass)."""
    loaded = load_model(spec, artifacts)
    check_layer(cfg.layer, loaded.num_layers)
    layers = sorted(set(range(loaded.num_layers)) | {cfg.layer})
    stores = build_activations(loaded, corpus, layers, activations_root(artifacts), cfg.activations,
                               rebuild=cfg.rebuild_cache, progress=cfg.trainer.progress_bar,
                               eval_start=cfg.data.eval_start, verify=cfg.verify_cache)
    return loaded, stores[cfg.layer]


def _train(cfg, raw, artifacts: Path, out_dir: Path, t0: float) -> SaeSummary | None:
    s = cfg.sae
    name = run_name(cfg)
    ckpt_dir = sae_checkpoint_dir(artifacts, name, cfg.layer, cfg.tag)
    ckpt_path = check_no_work_lost(out_dir, ckpt_dir, cfg.resume, cfg.overwrite)  # again, now under the run lock
    if cfg.resume and ckpt_path is None:
        print(f"sae: resume=true but no checkpoint at {ckpt_dir / LAST_CHECKPOINT}; training from the start")
    world = cfg.trainer.devices * cfg.trainer.num_nodes
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    run_dir = Path(cfg.paths.output_dir)
    frac = cfg.data.sae_eval_frac

    corpus = training_corpus(cfg)
    pairs = [_layer_store(cfg, spec, artifacts, corpus) for spec in specs(cfg)]
    loaded, store = pairs[0]
    scfg = sae_config(cfg, loaded.d_model)
    # Init from a uniform sample of the training rows (the same for every rank and for a resumed run).
    init_rows = uniform_sample_rows(split_rows(store, "train", frac), s.init_sample, cfg.seed)
    extra = {"weights_hash": loaded.weights_hash}
    if cfg.task == "crosscoder":
        (_, base), (dom_loaded, dom) = pairs
        scales = block_scales(base, dom, init_rows)
        store = PairedStore(base, dom, scales)
        extra = {"weights_hash": f"{loaded.weights_hash}+{dom_loaded.weights_hash}",
                 "crosscoder": {"base": cfg.pair.base, "domain": cfg.pair.domain, "d_model": loaded.d_model,
                                "block_scales": list(scales)}}
    module = SaeLitModule(scfg.to_dict(), dataclasses.asdict(s), result_shaping_config(cfg))
    if ckpt_path:
        check_same_config(ckpt_path, module.hparams)
    if s.init_from:
        warm_start(module.sae, load(s.init_from, expected_d_in=scfg.d_in))
        print(f"sae: warm start from {s.init_from}")
    else:
        module.sae.init_from_sample(torch.from_numpy(np.asarray(store.array[init_rows], dtype=np.float32)))

    if ckpt_path:
        print(f"sae: resuming from {ckpt_path}")
    elif cfg.overwrite and ckpt_dir.exists() and is_rank_zero():
        shutil.rmtree(ckpt_dir)  # asked for; a fresh run must not mix with an older run's checkpoints
    data = ActivationDataModule(store, s.batch_size // world, sae_eval_frac=frac, seed=cfg.seed,
                                max_tokens=s.total_steps * s.batch_size)
    with stage_run("train_sae", resolved_config(raw), run_dir, cfg.logger, group=cfg.logger.group or f"sae-{cfg.tag}",
                   tags=list(cfg.logger.tags) + [name], name=f"sae-{name}-L{cfg.layer}-{cfg.tag}") as tracker:
        stopper = StopOnSignal(str(ckpt_dir / LAST_CHECKPOINT))
        trainer = _trainer(cfg, tracker, ckpt_dir, max(1, s.total_steps // 5), stopper)
        t_fit = time.time()
        try:
            trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
        except SIGTERMException:
            if stopper.signum is None:  # Lightning saw SIGTERM before our handler was installed
                stopper.signum = signal.SIGTERM
        fit_seconds = time.time() - t_fit
        if stopper.signum is not None:
            if not stopper.saved:
                stopper.save(trainer)
            raise Interrupted(stopper.signum, f"stopped by {signal.Signals(stopper.signum).name} at step "
                                              f"{trainer.global_step}; checkpoint {stopper.checkpoint}; rerun with "
                                              f"resume=true to continue")
        if trainer.global_rank != 0:
            return None  # post-fit work is rank zero's (under ddp/submitit every rank runs this function)

        sae = module.sae.eval()
        dead = module.dead  # the trained state (restored into this process under ddp_spawn too)
        steps, tokens = int(dead.updates), int(dead.tokens)
        sae.tokens_seen = tokens
        ev = evaluate(sae, ActivationBatches(store, 4096, split="sae_eval", sae_eval_frac=frac))
        summary = SaeSummary(
            model=name, layer=cfg.layer, tag=cfg.tag, seed=cfg.seed, d_in=scfg.d_in,
            num_latents=scfg.num_latents, k=scfg.k, lr=s.peak_lr(scfg.num_latents), batch_size=s.batch_size,
            steps=steps, tokens=tokens, dead_fraction=dead.dead_fraction(), dead_tokens=dead.dead_tokens,
            fvu=ev.fvu, nmse=ev.nmse, l0=ev.l0, sae_eval_tokens=ev.tokens,
            sae_eval_never_fired_fraction=ev.never_fired_fraction, corpus=corpus.name,
            corpus_hash=corpus.content_hash()[:16], activation_tokens=len(store), code_version=__version__,
            fit_seconds=round(fit_seconds, 1), activation_dtype=str(store.manifest.get("compute_dtype", "")),
            tokens_per_second_train=round((steps - int(module.fit_start_step)) * s.batch_size / max(fit_seconds, 1e-9)),
            **({} if cfg.task == "crosscoder" else _downstream(cfg, specs(cfg)[0], sae)),
        )
        summary.seconds = round(time.time() - t0, 1)
        freq = ev.frequency.numpy()
        publish_sae(out_dir, sae, summary, freq, extra={
            "tokens": tokens, "model": name, "layer": cfg.layer, "corpus": corpus.name,
            **({"init_from": str(s.init_from)} if s.init_from else {}), **extra})
        summary.write(run_dir)
        tracker.log_figure("firing_histogram", firing_histogram(freq, f"{name} layer {cfg.layer}"))
        tracker.log_table("sae_summary", pd.DataFrame([summary.to_dict()]))
        tracker.log({f"final/{k}": v for k, v in summary.scalars().items() if not isinstance(v, str)})
        tracker.log_artifact(out_dir, f"sae-{name}-layer{cfg.layer}-{cfg.tag}", "sae", metadata=summary.scalars())
        tracker.finish(summary.scalars())
    print(f"sae: {name} layer {cfg.layer} [{cfg.tag}] fvu {summary.fvu:.4f} l0 {summary.l0:.1f} "
          f"dead {summary.dead_fraction:.2%} loss_recovered {summary.loss_recovered:.3f} -> {out_dir}")
    return summary

