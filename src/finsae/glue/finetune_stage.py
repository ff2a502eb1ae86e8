"""`python train.py task=finetune`: make the finance twin of a base encoder and report it honestly.

Recipe (FinBERT's, scaled to 2 CPUs): optional masked-LM pass on financial text written before the
evaluation period, then the whole encoder fine-tuned as a 3-class classifier on the PhraseBank train
split (+ twitter-financial-news-sentiment train). Reported on the PhraseBank test split beside a
linear probe on the frozen base model (the "plain BERT" comparison).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import lightning as L
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from finsae import __version__
from finsae.finetune import (
    LABELS,
    build_finetune_data,
    classification_metrics,
    mlm_texts,
    linear_probe,
    masked_lm_from_encoder,
    pooled_features,
)
from finsae.glue.app import resolved_config
from finsae.glue.console import step_progress_bar
from finsae.atomic import check_writable, locked, publish, staging_dir
from finsae.finetune.summary import FinetuneSummary
from finsae.glue.finetune_module import MaskedLMModule, SentimentModule, text_loader
from finsae.glue.schemas import check_hardware
from finsae.glue.tracking import stage_run
from finsae.models import get_spec, load_model
from finsae.models.loading import model_config
from finsae.models.registry import copy_tokenizer_files
from finsae.paths import model_dir

log = logging.getLogger("finsae.finetune")


def confusion_figure(conf, title):
    fig, ax = plt.subplots(figsize=(3.6, 3.2))
    conf = np.asarray(conf)
    ax.imshow(conf, cmap="Blues")
    for i in range(conf.shape[0]):
        for j in range(conf.shape[1]):
            ax.text(j, i, str(conf[i, j]), ha="center", va="center", fontsize=9)
    ax.set_xticks(range(3), LABELS, rotation=30)
    ax.set_yticks(range(3), LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    return fig


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
    artifacts = Path(cfg.paths.artifacts)
    if cfg.finetune.skip_if_present and (model_dir(artifacts, cfg.finetune.out_name) / "summary.json").exists():
        return
    check_hardware(cfg.trainer)
    model_config(get_spec(cfg.model.name, path=cfg.model.path, seed=cfg.model.seed), artifacts)
    check_writable(artifacts, "artifacts folder")


def run(cfg, raw) -> FinetuneSummary:
    ft = cfg.finetune
    out_dir = model_dir(Path(cfg.paths.artifacts), ft.out_name)
    precheck(cfg)
    if ft.skip_if_present and (out_dir / "summary.json").exists():
        summary = FinetuneSummary.read(out_dir)
        print(f"finetune: {out_dir} exists (accuracy {summary.phrasebank_test_accuracy:.3f}); skipping")
        return summary
    t0 = time.time()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    run_dir = Path(cfg.paths.output_dir)
    spec = get_spec(cfg.model.name, path=cfg.model.path, seed=cfg.model.seed)
    with stage_run("finetune", resolved_config(raw), run_dir, cfg.logger, group=cfg.logger.group,
                   tags=list(cfg.logger.tags), name=f"finetune-{spec.name}") as tracker:
        return _finetune(cfg, raw, spec, tracker, out_dir, run_dir, t0)


def _finetune(cfg, raw, spec, tracker, out_dir: Path, run_dir: Path, t0: float) -> FinetuneSummary:
    ft = cfg.finetune
    data = build_finetune_data(cfg.paths.data_dir, ft.test_frac, cfg.seed, ft.use_twitter, ft.max_train_examples)
    log.info("finetune data: %d train, %d PhraseBank test", len(data.train), len(data.test))
    test_texts, test_y = data.test["text"].tolist(), data.test["label"].to_numpy()
    allagree = data.test["all_agree"].to_numpy()

    # The frozen-base linear probe ("plain BERT"), trained on the PhraseBank train split as in
    # FinBERT's baselines; mean pooling is MiniLM's native sentence readout.
    base = load_model(spec, kind="encoder")
    tok = base.tokenizer
    pool = "mean"
    pb_train = data.train[data.train["source"] == "phrasebank"]
    tr_x = pooled_features(base.model, tok, pb_train["text"].tolist(), ft.max_length, pooling=pool)
    te_x = pooled_features(base.model, tok, test_texts, ft.max_length, pooling=pool)
    probe_pred = linear_probe(tr_x, pb_train["label"].to_numpy(), te_x, seed=cfg.seed)
    del base

    clf = load_model(spec, kind="classifier").model
    clf.config.id2label = dict(enumerate(LABELS))
    clf.config.label2id = {v: k for k, v in enumerate(LABELS)}
    clf.train()
    mlm_loss = None
    if ft.mlm_phase and ft.mlm_steps > 0:
        texts = mlm_texts(cfg.paths.data_dir, ft.mlm_steps * ft.mlm_batch_size, cfg.data.eval_start, cfg.seed)
        mlm = masked_lm_from_encoder(clf.bert)
        module = MaskedLMModule(mlm, tok, ft.mlm_lr, ft.mlm_steps, seed=cfg.seed)
        _trainer(cfg, tracker, ft.mlm_steps, "finetune mlm").fit(
            module, text_loader(tok, texts, batch_size=ft.mlm_batch_size, max_length=ft.max_length,
                                shuffle=True, seed=cfg.seed, group_by_length=ft.group_by_length))
        mlm_loss = float(module.trainer.callback_metrics.get("mlm/loss", float("nan")))
        del mlm, module
    loader = text_loader(tok, data.train["text"].tolist(), data.train["label"].tolist(), ft.batch_size,
                         ft.max_length, shuffle=True, seed=cfg.seed, group_by_length=ft.group_by_length)
    steps_per_epoch = len(loader)
    total = steps_per_epoch * ft.epochs if ft.max_steps is None else min(ft.max_steps, steps_per_epoch * ft.epochs)
    module = SentimentModule(clf, ft.lr, total, ft.warmup_frac, ft.weight_decay)
    _trainer(cfg, tracker, total, "finetune", -(-total // steps_per_epoch)).fit(module, loader)
    pred = module.predict_texts(tok, test_texts, ft.max_length)

    m = {}
    m.update(classification_metrics(test_y, pred, "phrasebank_test_"))
    m.update(classification_metrics(test_y[allagree], pred[allagree], "phrasebank_test_allagree_"))
    m.update(classification_metrics(test_y, probe_pred, "probe_test_"))
    m.update(classification_metrics(test_y[allagree], probe_pred[allagree], "probe_test_allagree_"))
    m.update({
        "base_model": spec.name, "out_name": ft.out_name, "train_examples": len(data.train),
        "train_steps": int(total), "mlm_steps": int(ft.mlm_steps if ft.mlm_phase else 0),
        "mlm_final_loss": mlm_loss, "probe_pooling": pool, "probe_train_examples": len(pb_train), "seed": cfg.seed,
        "code_version": __version__,
        "seconds": round(time.time() - t0, 1), "finbert_reported_accuracy_50agree": 0.86,
    })

    summary = FinetuneSummary(**{k: v for k, v in m.items() if not k.endswith("confusion")})
    with locked([out_dir]):  # published in one rename: metrics.json is never beside half-written weights
        tmp = staging_dir(out_dir)
        clf.save_pretrained(str(tmp))
        copy_tokenizer_files(spec, tok, tmp)
        (tmp / "finetune_config.json").write_text(json.dumps(resolved_config(raw).get("finetune", {}), indent=2))
        summary.write(tmp)
        (tmp / "metrics.json").write_text(json.dumps(m, indent=2) + "\n")
        publish(tmp, out_dir)

    tracker.log({k: v for k, v in summary.scalars().items() if not isinstance(v, str)})
    tracker.log_table("finetune_vs_probe", pd.DataFrame([
        {"model": f"{ft.out_name} (fine-tuned)", "subset": s, "accuracy": m[f"phrasebank_test_{p}accuracy"],
         "macro_f1": m[f"phrasebank_test_{p}macro_f1"], "n": m[f"phrasebank_test_{p}n"]}
        for s, p in (("50Agree", ""), ("AllAgree", "allagree_"))
    ] + [
        {"model": f"{spec.name} frozen + linear probe", "subset": s, "accuracy": m[f"probe_test_{p}accuracy"],
         "macro_f1": m[f"probe_test_{p}macro_f1"], "n": m[f"probe_test_{p}n"]}
        for s, p in (("50Agree", ""), ("AllAgree", "allagree_"))
    ]))
    tracker.log_figure("confusion_finetuned", confusion_figure(m["phrasebank_test_confusion"],
                                                               f"{ft.out_name}: PhraseBank test split"))
    tracker.log_figure("confusion_probe", confusion_figure(m["probe_test_confusion"],
                                                           f"{spec.name} frozen probe"))
    summary.write(run_dir)
    tracker.finish(summary.scalars())
    print(f"finetune: saved {out_dir}  accuracy {m['phrasebank_test_accuracy']:.3f} "
          f"macro-F1 {m['phrasebank_test_macro_f1']:.3f} | frozen probe accuracy {m['probe_test_accuracy']:.3f} "
          f"| {m['seconds']:.0f}s")
    return summary
