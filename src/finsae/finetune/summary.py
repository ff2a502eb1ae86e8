"""What making the finance twin reports: ``artifacts/models/{name}/summary.json`` (:class:`FinetuneSummary`)
and ``metrics.json`` beside it (:class:`FinetuneMetrics`: the same numbers and the confusion matrices behind
them), each with its writer and typed reader."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import ClassVar, NamedTuple
from pathlib import Path

from finsae.atomic import read_json, write_json
from finsae.errors import FinsaeError
from finsae.summary import StageSummary

METRICS_FILE = "metrics.json"
CONFUSION_SETS = ("phrasebank_test_", "phrasebank_test_allagree_", "probe_test_", "probe_test_allagree_")
"""The confusion matrices ``metrics.json`` holds (as ``{prefix}confusion``): the twin and the frozen probe on
the test split and on its AllAgree subset."""


@dataclass
class FinetuneSummary(StageSummary):
    """The twin against the frozen-base linear probe, on its task's test set (never trained on). The
    ``phrasebank_test_*`` fields hold that set's scores: PhraseBank's test split for ``task_data=phrasebank``, SST-2
    dev for the control twin (``sst2``, which has no AllAgree subset: those fields are null, their n 0)."""

    MAKES: ClassVar[str] = "python train.py task=finetune"

    base_model: str
    """Registry name of the encoder that was fine-tuned."""
    out_name: str
    """Artifact name under artifacts/models/."""
    phrasebank_test_accuracy: float
    """Twin accuracy, test split (50% agreement labels; SST-2 dev for the control twin)."""
    phrasebank_test_macro_f1: float
    """Twin macro-F1, test split."""
    phrasebank_test_n: int
    """Test sentences."""
    phrasebank_test_allagree_accuracy: float | None
    """Twin accuracy on the AllAgree subset of the test split."""
    phrasebank_test_allagree_macro_f1: float | None
    """Twin macro-F1 on the AllAgree subset."""
    phrasebank_test_allagree_n: int
    """AllAgree test sentences."""
    probe_test_accuracy: float
    """Frozen base + logistic-regression probe accuracy, test split."""
    probe_test_macro_f1: float
    """Probe macro-F1, test split."""
    probe_test_n: int
    """Test sentences (the same as the twin's)."""
    probe_test_allagree_accuracy: float | None
    """Probe accuracy on the AllAgree subset."""
    probe_test_allagree_macro_f1: float | None
    """Probe macro-F1 on the AllAgree subset."""
    probe_test_allagree_n: int
    """AllAgree test sentences."""
    train_examples: int
    """Classifier training examples (PhraseBank train + twitter sentiment train, or SST-2 train)."""
    train_steps: int
    """Classifier optimizer steps."""
    mlm_steps: int
    """Masked-LM domain-adaptation steps before the classifier (0: none)."""
    mlm_final_loss: float | None
    """Masked-LM loss at the end of that pass (None without one)."""
    probe_pooling: str
    """How the probe pools the frozen base's hidden states."""
    probe_train_examples: int
    """Train sentences of the task (PhraseBank's or SST-2's) the probe is fitted on."""
    seed: int
    """Seed of the run."""
    code_version: str
    """finsae version that made the twin."""
    seconds: float
    """Wall-clock seconds of the stage."""
    finbert_reported_accuracy_50agree: float
    """FinBERT's published PhraseBank accuracy (50% agreement), for comparison."""
    task_data: str = "phrasebank"
    """Classification set the twin was made on and tested on (``finetune.task_data``)."""
    mlm_corpus: str | None = "financial"
    """Text of the masked-LM pass (``finetune.mlm_corpus``; None without one)."""
    split_seed: int = 0
    """Seed of the PhraseBank test split and training subset (``finetune.split_seed``; ``seed`` is the fine-tune's
    own: shuffles, head, dropout, masks). Records written before it existed split with ``seed``, 0 for every twin
    made here."""

    @property
    def objective(self) -> float:
        return self.phrasebank_test_accuracy


@dataclass
class FinetuneMetrics:
    """``metrics.json``: the summary's numbers and the confusion matrices they come from."""

    summary: FinetuneSummary
    """The headline numbers (what ``summary.json`` holds)."""
    confusion: dict[str, list[list[int]]]
    """Per prefix of :data:`CONFUSION_SETS`: counts, rows true and columns predicted, in
    :data:`finsae.finetune.datasets.LABELS` order."""

    def to_dict(self) -> dict:
        """The file's flat record: the summary's fields and ``{prefix}confusion`` for each matrix."""
        return {**self.summary.to_dict(), **{f"{p}confusion": m for p, m in self.confusion.items()}}

    @classmethod
    def from_dict(cls, flat: dict, where: str = METRICS_FILE) -> FinetuneMetrics:
        """The record of :meth:`to_dict` (extra keys ignored); one line naming what is missing or
        malformed."""
        required = [f.name for f in fields(FinetuneSummary) if f.default is MISSING]  # the rest: newer fields
        names = required + [f"{p}confusion" for p in CONFUSION_SETS]
        missing = [n for n in names if n not in flat]
        if missing:
            raise FinsaeError(f"{where} is not a fine-tune's metrics (missing {missing}); "
                              f"rerun task=finetune")
        confusion = {p: flat[f"{p}confusion"] for p in CONFUSION_SETS}
        for p, m in confusion.items():
            square = isinstance(m, list) and all(isinstance(r, list) and len(r) == len(m) for r in m)
            if not square or not all(isinstance(c, int) and c >= 0 for r in m for c in r):
                raise FinsaeError(f"{where}: {p}confusion is not a square table of counts; "
                                  f"rerun task=finetune")
        summary = FinetuneSummary(**{f.name: flat[f.name] for f in fields(FinetuneSummary) if f.name in flat})
        return cls(summary, confusion)

    def write(self, folder: str | Path) -> Path:
        """Write ``metrics.json`` into ``folder`` (atomically); its path."""
        path = Path(folder) / METRICS_FILE
        write_json(path, self.to_dict())
        return path

    @classmethod
    def read(cls, folder: str | Path) -> FinetuneMetrics:
        """The ``metrics.json`` of a published twin's ``folder``; one clear error when missing or damaged."""
        path = Path(folder) / METRICS_FILE
        raw = read_json(path, "fine-tune metrics", "rerun task=finetune")
        if not isinstance(raw, dict):
            raise FinsaeError(f"{path} is not a fine-tune's metrics (not a JSON object); rerun task=finetune")
        return cls.from_dict(raw, str(path))


class HeadTask(NamedTuple):
    """The classification set a model's head was trained on, and the seed of that set's test split."""

    task_data: str
    split_seed: int


def head_task(artifacts: str | Path | None, spec) -> HeadTask:
    """What the head of the model ``spec`` (a ``ModelSpec``) was fine-tuned on: its fine-tune summary's set
    and split seed where finsae made it (``spec.path`` or ``artifacts/models/{name}`` holds a
    ``summary.json``), else PhraseBank at split seed 0 (FinBERT's set)."""
    from finsae.paths import model_dir
    from finsae.summary import SUMMARY_FILE

    folder = Path(spec.path) if spec.path else (model_dir(Path(artifacts), spec.name) if artifacts else None)
    if folder is None or not (folder / SUMMARY_FILE).is_file():
        return HeadTask("phrasebank", 0)
    s = FinetuneSummary.read(folder)
    return HeadTask(s.task_data, s.split_seed)
