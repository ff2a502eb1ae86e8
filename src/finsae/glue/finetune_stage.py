"""`python train.py task=finetune`: make the finance twin of a base encoder and report it honestly.

Recipe (FinBERT's, scaled to 2 CPUs): optional masked-LM pass on financial text written before the
evaluation period, then the whole encoder fine-tuned as a 3-class classifier on the PhraseBank train
split (+ twitter-financial-news-sentiment train). Reported on the PhraseBank test split beside a
linear probe on the frozen base model (the "plain BERT" comparison). The control twin
(``+finetune=minilm_sst2``) runs the same recipe on general text and SST-2, for as many classifier steps.

Config into calls. The science is in :mod:`finsae.finetune` (the stage's steps in ``run``); this module runs
the two Lightning fits (:mod:`finsae.glue.finetune_module`) inside one W&B run and logs the tables and figures.
Each fit checkpoints every ``trainer.checkpoint_every`` steps and on SIGTERM/SIGINT (exit 143/130 in one
line); ``resume=true`` continues a stopped run from its checkpoints (:mod:`finsae.finetune.checkpoints`).
"""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L

from finsae.finetune import checkpoints, mlm_texts, masked_lm_from_encoder
from finsae.finetune import run as ft_run
from finsae.finetune.summary import FinetuneSummary
from finsae.glue.app import resolved_config
from finsae.glue.console import step_progress_bar
from finsae.glue.finetune_module import MaskedLMModule, SentimentModule, TextRun
from finsae.glue.interrupt import StopOnSignal
from finsae.glue.sae_trainer import fit
from finsae.glue.schemas import check_hardware
from finsae.glue.tracking import stage_run


def settings(cfg) -> ft_run.Settings:
    """The typed settings of one run, from the validated config."""
    m = cfg.model
    return ft_run.Settings(artifacts=Path(cfg.paths.artifacts), data_dir=Path(cfg.paths.data_dir),
                           run_dir=Path(cfg.paths.output_dir), model=(m.name, m.path, m.seed), finetune=cfg.finetune,
                           seed=cfg.seed, eval_start=cfg.data.eval_start, resume=cfg.resume,
                           overwrite=cfg.overwrite)


def _trainer(cfg, tracker, max_steps: int, desc: str, ckpt_dir: Path) -> tuple[L.Trainer, StopOnSignal]:
    """A fit of ``max_steps`` that checkpoints into ``ckpt_dir`` (``last.ckpt``) every
    ``trainer.checkpoint_every`` steps, and on a stop signal before it ends."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    stopper = StopOnSignal(str(ckpt_dir / checkpoints.LAST_CHECKPOINT))
    every = ModelCheckpoint(dirpath=str(ckpt_dir), every_n_train_steps=cfg.trainer.checkpoint_every,
                            save_last=True, save_top_k=0, enable_version_counter=False)
    bar = [step_progress_bar(max_steps, desc)] if cfg.trainer.progress_bar else []
    trainer = L.Trainer(
        accelerator=cfg.trainer.accelerator, devices=1, precision=cfg.trainer.precision, max_steps=max_steps,
        max_epochs=-1, logger=tracker.lightning_logger(), enable_progress_bar=cfg.trainer.progress_bar,
        enable_model_summary=False, log_every_n_steps=10, num_sanity_val_steps=0,
        callbacks=[every, stopper, *bar],
    )
    return trainer, stopper


def precheck(cfg) -> None:
    """What can be known before any work (no weights load: the base model's config.json only): the trainer
    fits this machine, the base model is there, the artifacts folder takes new files. ``run`` calls it first; a
    ``--multirun`` calls it for every job before the first one starts."""
    st = settings(cfg)
    if ft_run.is_done(st):
        return
    check_hardware(cfg.trainer)
    ft_run.check_before_work(st)


def run(cfg, raw) -> FinetuneSummary:
    st = settings(cfg)
    precheck(cfg)
    if ft_run.is_done(st):
        return ft_run.skip(st)
    t0 = time.time()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    with checkpoints.run_lock(st.ckpt_dir):
        start = ft_run.resume_point(st)  # again, now under the run lock
        with stage_run("finetune", resolved_config(raw), st.run_dir, cfg.logger, group=cfg.logger.group,
                       tags=list(cfg.logger.tags), name=f"finetune-{st.finetune.out_name}") as tracker:
            return _finetune(cfg, raw, st, tracker, t0, start)


def _domain_pass(cfg, st: ft_run.Settings, tracker, clf, tok, resume_from: str | None) -> float | None:
    """The masked-LM pass on ``finetune.mlm_corpus`` text, adapting ``clf``'s encoder in place (continued from
    ``resume_from``); its last loss (None without the pass). Its state at its end is kept as its checkpoint:
    a run stopped before the classifier's first checkpoint resumes after it."""
    ft = st.finetune
    if not (ft.mlm_phase and ft.mlm_steps > 0):
        return None
    texts = mlm_texts(st.data_dir, ft.mlm_steps * ft.mlm_batch_size, st.eval_start, st.seed, ft.mlm_corpus)
    module = MaskedLMModule(masked_lm_from_encoder(clf.bert), tok, ft.mlm_lr, ft.mlm_steps, seed=st.seed,
                            recipe=st.recipe())
    batches = TextRun(tok, texts, batch_size=ft.mlm_batch_size, max_length=ft.max_length, seed=st.seed,
                      group_by_length=ft.group_by_length, steps=ft.mlm_steps)
    trainer, stopper = _trainer(cfg, tracker, ft.mlm_steps, "finetune mlm", st.ckpt_dir / checkpoints.MLM)
    fit(trainer, stopper, module, batches, resume_from)
    trainer.save_checkpoint(stopper.checkpoint)
    return module.last_loss


def _finetune(cfg, raw, st: ft_run.Settings, tracker, t0: float, start) -> FinetuneSummary:
    ft = st.finetune
    data = ft_run.finetune_data(st)
    probe, tok = ft_run.frozen_probe(st, data)
    clf = ft_run.classifier(st, data.classes)
    # a classifier checkpoint holds the encoder the masked-LM pass left, and that pass's loss
    mlm_loss = None if start.classifier else _domain_pass(cfg, st, tracker, clf, tok, start.mlm)
    batches = TextRun(tok, data.train["text"].tolist(), data.train["label"].tolist(),
                      batch_size=ft.batch_size, max_length=ft.max_length, seed=st.seed, group_by_length=ft.group_by_length)
    total = batches.steps = ft_run.classifier_steps(st, data)
    module = SentimentModule(clf, ft.lr, total, ft.warmup_frac, ft.weight_decay, recipe=st.recipe(),
                             mlm_final_loss=mlm_loss)
    trainer, stopper = _trainer(cfg, tracker, total, "finetune", st.ckpt_dir / checkpoints.CLASSIFIER)
    fit(trainer, stopper, module, batches, start.classifier)
    pred = module.predict_texts(tok, data.test["text"].tolist(), ft.max_length)

    m = ft_run.metrics(st, data, pred, probe, total, module.mlm_final_loss, t0)
    summary = m.summary
    ft_run.publish_twin(st, clf, tok, m, resolved_config(raw).get("finetune", {}))
    base_name = st.spec().name
    tracker.log({k: v for k, v in summary.scalars().items() if not isinstance(v, str)})
    tracker.log_table("finetune_vs_probe", ft_run.comparison_table(summary, ft.out_name, base_name))
    tracker.log_figure("confusion_finetuned", ft_run.confusion_figure(
        m.confusion["phrasebank_test_"], f"{ft.out_name}: {ft.task_data} test set", data.classes))
    tracker.log_figure("confusion_probe", ft_run.confusion_figure(m.confusion["probe_test_"],
                                                                  f"{base_name} frozen probe", data.classes))
    summary.write(st.run_dir)
    tracker.finish(summary.scalars())
    print(ft_run.describe(st, summary))
    return summary
