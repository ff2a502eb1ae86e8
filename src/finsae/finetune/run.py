"""The fine-tune stage's steps, on typed settings: the checks before any work, the data, the frozen-base linear
probe ("plain BERT"), the classifier to fine-tune, and after training the metrics, the summary and the published
twin (``artifacts/models/{out_name}/``, one rename). The two training loops are Lightning's
(``finsae.glue.finetune_module``); ``finsae.glue.finetune_stage`` turns the config into these calls.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from finsae import __version__
from finsae.atomic import check_writable, locked, publish, staging_dir
from finsae.finetune import checkpoints
from finsae.finetune.config import CONFIG_FILE, FinetuneConfig
from finsae.finetune.datasets import FinetuneData, build_finetune_data, hash_subset
from finsae.finetune.length_grouping import num_grouped_batches
from finsae.finetune.metrics import classification_metrics
from finsae.finetune.probe import linear_probe, pooled_features
from finsae.finetune.summary import FinetuneMetrics, FinetuneSummary
from finsae.models import get_spec, load_model
from finsae.models.loading import model_config
from finsae.models.registry import copy_tokenizer_files
from finsae.paths import model_dir
from finsae.summary import is_published

log = logging.getLogger("finsae.finetune")

FINBERT_REPORTED_ACCURACY = 0.86
"""FinBERT's reported accuracy on PhraseBank (50% agreement), recorded beside the twin's."""


@dataclass(frozen=True)
class Settings:
    """What one fine-tune run reads, trains and writes."""

    artifacts: Path
    data_dir: Path
    run_dir: Path
    """The run's own output folder (Hydra's), which gets a copy of ``summary.json``."""
    model: tuple[str, str | None, int | None]
    """``model=``'s name, path and seed: the base encoder."""
    finetune: FinetuneConfig
    seed: int
    eval_start: str
    """No masked-LM text is dated on/after it."""
    resume: bool = False
    """Continue from the checkpoints of a stopped run of this twin (:mod:`finsae.finetune.checkpoints`)."""
    overwrite: bool = False
    """Start over, dropping a stopped run's checkpoints."""

    def spec(self):
        name, path, seed = self.model
        return get_spec(name, path=path, seed=seed)

    @property
    def out_dir(self) -> Path:
        return model_dir(self.artifacts, self.finetune.out_name)

    @property
    def ckpt_dir(self) -> Path:
        return checkpoints.checkpoint_dir(self.artifacts, self.finetune.out_name)

    def recipe(self) -> dict:
        """What decides the trained twin, recorded in its checkpoints and compared on resume."""
        ft = {k: v for k, v in dataclasses.asdict(self.finetune).items() if k != "skip_if_present"}
        return {**ft, "seed": self.seed, "base_model": list(self.model), "eval_start": self.eval_start}


def is_done(st: Settings) -> bool:
    """``skip_if_present`` and the twin is published."""
    return st.finetune.skip_if_present and is_published(st.out_dir)


def check_before_work(st: Settings) -> None:
    """No weights load: the base model's config.json is there, the artifacts folder takes new files, no run of
    this twin is in flight and none stopped would be clobbered."""
    model_config(st.spec(), st.artifacts)
    check_writable(st.artifacts, "artifacts folder")
    check_writable(st.ckpt_dir, "checkpoint folder", make=False)
    with checkpoints.run_lock(st.ckpt_dir):
        checkpoints.resume_point(st.ckpt_dir, st.resume, st.overwrite)


def resume_point(st: Settings) -> checkpoints.ResumePoint:
    """Where this run starts (call it holding the run lock): a stopped run's checkpoints with ``resume``
    (checked against this run's recipe), or none; ``overwrite`` drops them."""
    point = checkpoints.resume_point(st.ckpt_dir, st.resume, st.overwrite)
    if not st.resume and st.overwrite:
        checkpoints.start_over(st.ckpt_dir)
    for path in point:
        if path is not None:
            checkpoints.check_same_recipe(path, st.recipe())
    if st.resume and point == (None, None):
        print(f"finetune: resume=true but no checkpoint in {st.ckpt_dir}; training from the start")
    return point


def skip(st: Settings) -> FinetuneSummary:
    summary = FinetuneSummary.read(st.out_dir)
    print(f"finetune: {st.out_dir} exists (accuracy {summary.phrasebank_test_accuracy:.3f}); skipping")
    return summary


class Probe(NamedTuple):
    """The frozen-base linear probe, trained on the task's own train split (PhraseBank's, as in FinBERT's
    baselines, without the twitter rows; or SST-2 train), at most ``finetune.probe_max_examples`` of it."""

    pred: np.ndarray
    """Its predictions on the test set."""
    train_examples: int
    pooling: str
    """Mean pooling: MiniLM's native sentence readout."""


def finetune_data(st: Settings, task_data: str | None = None) -> FinetuneData:
    """The run's training and test sets (of ``task_data``, default the recipe's own)."""
    ft = st.finetune
    task_data = task_data or ft.task_data
    data = build_finetune_data(st.data_dir, ft.test_frac, ft.split_seed, ft.use_twitter, ft.max_train_examples,
                               task_data)
    log.info("finetune data (%s): %d train, %d test", task_data, len(data.train), len(data.test))
    return data


def frozen_probe(st: Settings, data: FinetuneData) -> tuple[Probe, Any]:
    """The probe on the frozen base model; returns it and the base model's tokenizer."""
    ft, pool = st.finetune, "mean"
    base = load_model(st.spec(), kind="encoder")
    tok = base.tokenizer
    pb_train = hash_subset(data.train[data.train["source"] == ft.task_data], ft.probe_max_examples, st.seed, "probe")
    tr_x = pooled_features(base.model, tok, pb_train["text"].tolist(), ft.max_length, pooling=pool)
    te_x = pooled_features(base.model, tok, data.test["text"].tolist(), ft.max_length, pooling=pool)
    pred = linear_probe(tr_x, pb_train["label"].to_numpy(), te_x, seed=st.seed)
    return Probe(pred, len(pb_train), pool), tok


def classifier(st: Settings, classes: tuple[str, ...]):
    """The base encoder with a fresh head over ``classes`` (labels named), in training mode."""
    clf = load_model(st.spec(), kind="classifier", num_labels=len(classes)).model
    clf.config.id2label = dict(enumerate(classes))
    clf.config.label2id = {v: k for k, v in enumerate(classes)}
    clf.train()
    return clf


def batches_per_epoch(n: int, batch_size: int, group_by_length: bool) -> int:
    """Batches one pass over ``n`` training texts makes (length-grouped or plain)."""
    return num_grouped_batches(n, batch_size) if group_by_length else -(-n // batch_size)


def total_steps(ft: FinetuneConfig, steps_per_epoch: int) -> int:
    """Classifier optimizer steps: ``epochs`` passes, capped by ``max_steps``."""
    total = steps_per_epoch * ft.epochs
    return total if ft.max_steps is None else min(ft.max_steps, total)


def classifier_steps(st: Settings, data: FinetuneData) -> int:
    """The run's classifier optimizer steps: :func:`total_steps` over its own training set, or, with
    ``steps_like``, over that task's training set built with the same knobs (the finance twin's count for a
    control twin; its own set is then cycled or cut to that length)."""
    ft = st.finetune
    train = data.train if ft.steps_like in (None, ft.task_data) else finetune_data(st, ft.steps_like).train
    return total_steps(ft, batches_per_epoch(len(train), ft.batch_size, ft.group_by_length))


def metrics(st: Settings, data: FinetuneData, pred: np.ndarray, probe: Probe, train_steps: int,
            mlm_loss: float | None, t0: float) -> FinetuneMetrics:
    """Everything ``metrics.json`` records: the twin and the probe on the test set and its AllAgree subset
    (confusion matrices included; a set without agreement reports that subset empty: n 0, no scores), and how the
    twin was made."""
    ft = st.finetune
    n_classes = len(data.classes)
    test_y, allagree = data.test["label"].to_numpy(), data.test["all_agree"].to_numpy()
    m = {}
    for prefix, p in (("phrasebank_test_", pred), ("probe_test_", probe.pred)):
        m.update(classification_metrics(test_y, p, prefix, n_classes))
        if data.has_agreement:
            m.update(classification_metrics(test_y[allagree], p[allagree], f"{prefix}allagree_", n_classes))
        else:
            m.update({f"{prefix}allagree_accuracy": None, f"{prefix}allagree_macro_f1": None,
                      f"{prefix}allagree_confusion": [[0] * n_classes for _ in range(n_classes)],
                      f"{prefix}allagree_n": 0})
    m.update({"task_data": ft.task_data, "mlm_corpus": ft.mlm_corpus if ft.mlm_phase else None,
              "split_seed": ft.split_seed,
        "base_model": st.spec().name, "out_name": ft.out_name, "train_examples": len(data.train),
        "train_steps": int(train_steps), "mlm_steps": int(ft.mlm_steps if ft.mlm_phase else 0),
        "mlm_final_loss": mlm_loss, "probe_pooling": probe.pooling, "probe_train_examples": probe.train_examples,
        "seed": st.seed, "code_version": __version__,
        "seconds": round(time.time() - t0, 1), "finbert_reported_accuracy_50agree": FINBERT_REPORTED_ACCURACY,
    })
    return FinetuneMetrics.from_dict(m)


def publish_twin(st: Settings, clf, tok, m: FinetuneMetrics, finetune_config: dict) -> Path:
    """Publish the twin (weights, tokenizer, ``finetune_config.json``, ``summary.json``, ``metrics.json``) in one
    rename, so ``metrics.json`` is never beside half-written weights."""
    out_dir = st.out_dir
    with locked([out_dir]):
        tmp = staging_dir(out_dir)
        clf.save_pretrained(str(tmp))
        copy_tokenizer_files(st.spec(), tok, tmp)
        (tmp / CONFIG_FILE).write_text(json.dumps(finetune_config, indent=2))
        m.summary.write(tmp)
        m.write(tmp)
        publish(tmp, out_dir)
    checkpoints.start_over(st.ckpt_dir)  # the twin is whole: its run state (~3x the weights) is of no more use
    return out_dir


TEST_SET_NAMES = {"phrasebank": "50Agree", "sst2": "SST-2 dev"}
"""How the comparison table names each task's whole test set."""


def comparison_table(m: FinetuneSummary, out_name: str, base_name: str) -> pd.DataFrame:
    """The twin beside the frozen probe, on the test set and its AllAgree subset (where it has one)."""
    subsets = (TEST_SET_NAMES[m.task_data], ""), ("AllAgree", "allagree_")
    m = m.to_dict()
    subsets = [(s, p) for s, p in subsets if m[f"phrasebank_test_{p}n"] > 0]
    return pd.DataFrame([
        {"model": f"{out_name} (fine-tuned)", "subset": s, "accuracy": m[f"phrasebank_test_{p}accuracy"],
         "macro_f1": m[f"phrasebank_test_{p}macro_f1"], "n": m[f"phrasebank_test_{p}n"]} for s, p in subsets
    ] + [
        {"model": f"{base_name} frozen + linear probe", "subset": s, "accuracy": m[f"probe_test_{p}accuracy"],
         "macro_f1": m[f"probe_test_{p}macro_f1"], "n": m[f"probe_test_{p}n"]} for s, p in subsets
    ])


def confusion_figure(conf, title, classes: tuple[str, ...]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.6, 3.2))
    conf = np.asarray(conf)
    ax.imshow(conf, cmap="Blues")
    for i in range(conf.shape[0]):
        for j in range(conf.shape[1]):
            ax.text(j, i, str(conf[i, j]), ha="center", va="center", fontsize=9)
    ax.set_xticks(range(len(classes)), classes, rotation=30)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    return fig


def describe(st: Settings, s: FinetuneSummary) -> str:
    """The run's last console line."""
    return (f"finetune: saved {st.out_dir}  {s.task_data} test accuracy {s.phrasebank_test_accuracy:.3f} "
            f"macro-F1 {s.phrasebank_test_macro_f1:.3f} | frozen probe accuracy {s.probe_test_accuracy:.3f} "
            f"| {s.seconds:.0f}s")
