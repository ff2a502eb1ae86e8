"""`python train.py model=M layer=i ...`: one top-k SAE on one layer of one model (``task=crosscoder``: one
crosscoder on the row-aligned activations of the pair's two models; ``sae.init_from=DIR``: continue a trained
SAE of the same layer instead of a random init, another layer's only with ``sae.init_from_any_layer=true``;
``sae.dictionary=affine_null`` with it: the warm start's null). The kind of dictionary is an input spec
(:mod:`finsae.sae.inputs`), chosen from the config by :func:`finsae.sae.inputs.kind_name`; nothing here names
one.

Config into calls. The science is in :mod:`finsae.sae`: the stage's steps in ``run`` (checks before any work,
the activation cache for all of the model's layers in one forward pass, the evaluation on every ``sae_eval``
token and downstream, publishing ``artifacts/sae/{model}/layer_{i}/{tag}/`` in one rename so a crash never
leaves a folder that ``skip_if_done`` would take as finished), the artifact in ``artifact``, the run guards in
``run_guard``. This module builds the typed settings, the Lightning module and data module, and runs the fit
inside the W&B run (checkpoints, resume, DDP, a stop on SIGTERM: :mod:`finsae.glue.sae_trainer`).

A crosscoder is the same run on a :class:`~finsae.activations.PairedStore` (both models' rows concatenated,
each scaled to unit mean squared norm on the init sample), published under
``artifacts/sae/crosscoder_{base}_{domain}/layer_{i}/{tag}/`` with the block scales in ``cfg.json``'s
``extra.crosscoder``; it has no downstream (loss-recovered) score, which patches one model.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import lightning as L
import pandas as pd

from finsae.analysis.affine import fit_affine
from finsae.glue.activation_datamodule import ActivationDataModule
from finsae.finetune.config import twin_test_frac
from finsae.glue.app import resolved_config
from finsae.glue.sae_module import SaeLitModule
from finsae.glue.sae_trainer import fit, sae_trainer
from finsae.glue.schemas import check_hardware
from finsae.glue.tracking import is_rank_zero, stage_run
from finsae.sae import run as sae_run
from finsae.sae.inputs import KINDS
from finsae.sae.artifact import firing_histogram
from finsae.sae.run_guard import LAST_CHECKPOINT, check_no_work_lost, check_same_config, run_lock
from finsae.sae.summary import SaeSummary


def settings(cfg) -> sae_run.Settings:
    """The typed settings of one run, from the validated config."""
    d, t, m = cfg.data, cfg.trainer, cfg.model
    kind = cfg.dictionary()
    return sae_run.Settings(
        dictionary=kind, affine_fit=fit_affine,  # the SAE core sits below the analysis: its fit comes in here
        artifacts=Path(cfg.paths.artifacts), data_dir=Path(cfg.paths.data_dir), run_dir=Path(cfg.paths.output_dir),
        sae=cfg.sae, activations=cfg.activations, layer=cfg.layer, tag=cfg.tag, seed=cfg.seed,
        model=(m.name, m.path, m.seed),
        pair=(cfg.pair.base, cfg.pair.domain) if KINDS[kind].reads_pair else None,
        corpora=tuple(d.corpora), max_chars_per_corpus=d.max_chars_per_corpus, max_docs=d.max_docs,
        eval_start=d.eval_start, sae_eval_frac=d.sae_eval_frac, world_size=t.devices * t.num_nodes,
        downstream_docs=cfg.downstream_docs, twin_test_frac=twin_test_frac(Path(cfg.paths.artifacts), cfg.pair.domain),
        resume=cfg.resume,
        overwrite=cfg.overwrite, skip_if_done=cfg.skip_if_done, rescore=cfg.rescore,
        rebuild_cache=cfg.rebuild_cache, verify_cache=cfg.verify_cache, progress_bar=t.progress_bar)


def result_shaping_config(cfg) -> dict:
    """What, beside the SAE and training knobs, decides a run's result (logger and progress bar do not)."""
    out = {"model": dataclasses.asdict(cfg.model), "layer": cfg.layer, "seed": cfg.seed,
           "data": dataclasses.asdict(cfg.data), "activations": dataclasses.asdict(cfg.activations),
           "world_size": cfg.trainer.devices * cfg.trainer.num_nodes}
    if KINDS[cfg.dictionary()].reads_pair:  # its models are the pair's (model= is not read)
        out.update(task=cfg.task, pair=dataclasses.asdict(cfg.pair))
        del out["model"]
    return out


def precheck(cfg) -> None:
    """Everything that can be known before any work, without loading weights (the model's config.json only):
    the trainer fits this machine, the layer exists, k fits the latents, the batch divides over the devices,
    nothing finished or resumable would be clobbered, the artifacts folder takes new files. ``run`` calls it
    first; a ``--multirun`` calls it for every job before the first one starts."""
    st = settings(cfg)
    if sae_run.nothing_to_train(st):
        return
    check_hardware(cfg.trainer)
    sae_run.check_before_work(st, is_rank_zero())


def run(cfg, raw) -> SaeSummary | None:
    t0 = time.time()
    precheck(cfg)
    st = settings(cfg)
    if st.rescore:
        return sae_run.rescore(st)
    if sae_run.nothing_to_train(st):
        return sae_run.skip(st)
    with run_lock(st.ckpt_dir, is_rank_zero()):
        return _train(cfg, raw, st, t0)


def _train(cfg, raw, st: sae_run.Settings, t0: float) -> SaeSummary | None:
    s, name, ckpt_dir = st.sae, st.name, st.ckpt_dir
    ckpt_path = check_no_work_lost(st.out_dir, ckpt_dir, st.resume, st.overwrite)  # again, now under the run lock
    if st.resume and ckpt_path is None:
        print(f"sae: resume=true but no checkpoint at {ckpt_dir / LAST_CHECKPOINT}; training from the start")
    L.seed_everything(st.seed, workers=True, verbose=False)
    data = sae_run.training_data(st)
    module = SaeLitModule(data.config.to_dict(), dataclasses.asdict(s), result_shaping_config(cfg))
    if ckpt_path:
        check_same_config(ckpt_path, module.hparams)
    sae_run.init_sae(st, module.sae, data)
    if ckpt_path:
        print(f"sae: resuming from {ckpt_path}")
    elif st.overwrite and ckpt_dir.exists() and is_rank_zero():
        shutil.rmtree(ckpt_dir)  # asked for; a fresh run must not mix with an older run's checkpoints
    batches = ActivationDataModule(data.store, s.batch_size // st.world_size, sae_eval_frac=st.sae_eval_frac,
                                   seed=st.seed, max_tokens=s.total_steps * s.batch_size)
    with stage_run("train_sae", resolved_config(raw), st.run_dir, cfg.logger, group=cfg.logger.group or f"sae-{st.tag}",
                   tags=list(cfg.logger.tags) + [name], name=f"sae-{name}-L{st.layer}-{st.tag}") as tracker:
        trainer, stopper = sae_trainer(cfg.trainer, s.total_steps, tracker.lightning_logger(), ckpt_dir,
                                       f"sae {name} L{st.layer}")
        fit_seconds = fit(trainer, stopper, module, batches, ckpt_path)
        if trainer.global_rank != 0:
            return None  # post-fit work is rank zero's (under ddp/submitit every rank runs this function)
        # the trained state (restored into this process under ddp_spawn too)
        summary, freq = sae_run.finish(st, module.sae.eval(), module.dead, data, fit_seconds,
                                       int(module.fit_start_step), t0)
        tracker.log_figure("firing_histogram", firing_histogram(freq, f"{name} layer {st.layer}"))
        tracker.log_table("sae_summary", pd.DataFrame([summary.to_dict()]))
        tracker.log({f"final/{k}": v for k, v in summary.scalars().items() if not isinstance(v, str)})
        tracker.log_artifact(st.out_dir, f"sae-{name}-layer{st.layer}-{st.tag}", "sae", metadata=summary.scalars())
        tracker.finish(summary.scalars())
    print(f"{sae_run.describe(st, summary)} (run {summary.run_dir})")  # the run that reproduces it
    return summary
