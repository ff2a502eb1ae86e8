"""`python train.py task=finetune`: make the finance twin of a base encoder and report it honestly.

Recipe (FinBERT's, scaled to 2 CPUs): optional masked-LM pass on financial text written before the
evaluation period, then the whole encoder fine-tuned as a 3-class classifier on the PhraseBank train
split (+ twitter-financial-news-sentiment train). Reported on the PhraseBank test split beside a
linear probe on the frozen base model (the "plain BERT" comparison).

Config into calls. The science is in :mod:`finsae.finetune` (the stage's steps in ``run``); this module runs
the two Lightning fits (:mod:`finsae.glue.finetune_module`) inside one W&B run and logs the tables and figures.
"""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L

from finsae.finetune import mlm_texts, masked_lm_from_encoder
from finsae.finetune import run as ft_run
from finsae.finetune.summary import FinetuneSummary
from finsae.glue.app import resolved_config
from finsae.glue.console import step_progress_bar
from finsae.glue.finetune_module import MaskedLMModule, SentimentModule, text_loader
from finsae.glue.schemas import check_hardware
from finsae.glue.tracking import stage_run


def settings(cfg) -> ft_run.Settings:
    """The typed settings of one run, from the validated config."""
    m = cfg.model
    return ft_run.Settings(artifacts=Path(cfg.paths.artifacts), data_dir=Path(cfg.paths.data_dir),
                           run_dir=Path(cfg.paths.output_dir), model=(m.name, m.path, m.seed), finetune=cfg.finetune,
                           seed=cfg.seed, eval_start=cfg.data.eval_start)


def _trainer(cfg, tracker, max_steps: int, desc: str, epochs: int | None = None):
    logger = tracker.lightning_logger()
    bar = [step_progress_bar(max_steps, desc, epochs)] if cfg.trainer.progress_bar else []
    return L.Trainer(
        accelerator=cfg.trainer.accelerator, devices=1, precision=cfg.trainer.precision, max_steps=max_steps,
        max_epochs=-1, logger=logger, enable_checkpointing=False, enable_progress_bar=cfg.trainer.progress_bar,
        enable_model_summary=False, log_every_n_steps=10, num_sanity_val_steps=0, callbacks=bar,
    )


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
    with stage_run("finetune", resolved_config(raw), st.run_dir, cfg.logger, group=cfg.logger.group,
                   tags=list(cfg.logger.tags), name=f"finetune-{st.spec().name}") as tracker:
        return _finetune(cfg, raw, st, tracker, t0)


def _finetune(cfg, raw, st: ft_run.Settings, tracker, t0: float) -> FinetuneSummary:
    ft = st.finetune
    data = ft_run.finetune_data(st)
    probe, tok = ft_run.frozen_probe(st, data)
    clf = ft_run.classifier(st)
    mlm_loss = None
    if ft.mlm_phase and ft.mlm_steps > 0:
        texts = mlm_texts(st.data_dir, ft.mlm_steps * ft.mlm_batch_size, st.eval_start, st.seed)
        mlm = masked_lm_from_encoder(clf.bert)
        module = MaskedLMModule(mlm, tok, ft.mlm_lr, ft.mlm_steps, seed=st.seed)
        _trainer(cfg, tracker, ft.mlm_steps, "finetune mlm").fit(
            module, text_loader(tok, texts, batch_size=ft.mlm_batch_size, max_length=ft.max_length,
                                shuffle=True, seed=st.seed, group_by_length=ft.group_by_length))
        mlm_loss = float(module.trainer.callback_metrics.get("mlm/loss", float("nan")))
        del mlm, module
    loader = text_loader(tok, data.train["text"].tolist(), data.train["label"].tolist(), ft.batch_size,
                         ft.max_length, shuffle=True, seed=st.seed, group_by_length=ft.group_by_length)
    total = ft_run.total_steps(ft, len(loader))
    module = SentimentModule(clf, ft.lr, total, ft.warmup_frac, ft.weight_decay)
    _trainer(cfg, tracker, total, "finetune", -(-total // len(loader))).fit(module, loader)
    pred = module.predict_texts(tok, data.test["text"].tolist(), ft.max_length)

    m = ft_run.metrics(st, data, pred, probe, total, mlm_loss, t0)
    summary = ft_run.summary_of(m)
    ft_run.publish_twin(st, clf, tok, summary, m, resolved_config(raw).get("finetune", {}))
    base_name = st.spec().name
    tracker.log({k: v for k, v in summary.scalars().items() if not isinstance(v, str)})
    tracker.log_table("finetune_vs_probe", ft_run.comparison_table(m, ft.out_name, base_name))
    tracker.log_figure("confusion_finetuned", ft_run.confusion_figure(m["phrasebank_test_confusion"],
                                                                      f"{ft.out_name}: PhraseBank test split"))
    tracker.log_figure("confusion_probe", ft_run.confusion_figure(m["probe_test_confusion"],
                                                                  f"{base_name} frozen probe"))
    summary.write(st.run_dir)
    tracker.finish(summary.scalars())
    print(ft_run.describe(st, m))
    return summary
