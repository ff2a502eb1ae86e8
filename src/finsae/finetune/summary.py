"""What making the finance twin reports (``artifacts/models/{name}/summary.json``; the confusion matrices and
the rest are in ``metrics.json`` beside it)."""

from __future__ import annotations

from dataclasses import dataclass

from finsae.summary import StageSummary


@dataclass
class FinetuneSummary(StageSummary):
    """The twin against the frozen-base linear probe, on the PhraseBank test split (never trained on)."""

    base_model: str
    """Registry name of the encoder that was fine-tuned."""
    out_name: str
    """Artifact name under artifacts/models/."""
    phrasebank_test_accuracy: float
    """Twin accuracy, test split (50% agreement labels)."""
    phrasebank_test_macro_f1: float
    """Twin macro-F1, test split."""
    phrasebank_test_n: int
    """Test sentences."""
    phrasebank_test_allagree_accuracy: float
    """Twin accuracy on the AllAgree subset of the test split."""
    phrasebank_test_allagree_macro_f1: float
    """Twin macro-F1 on the AllAgree subset."""
    phrasebank_test_allagree_n: int
    """AllAgree test sentences."""
    probe_test_accuracy: float
    """Frozen base + logistic-regression probe accuracy, test split."""
    probe_test_macro_f1: float
    """Probe macro-F1, test split."""
    probe_test_n: int
    """Test sentences (the same as the twin's)."""
    probe_test_allagree_accuracy: float
    """Probe accuracy on the AllAgree subset."""
    probe_test_allagree_macro_f1: float
    """Probe macro-F1 on the AllAgree subset."""
    probe_test_allagree_n: int
    """AllAgree test sentences."""
    train_examples: int
    """Classifier training examples (PhraseBank train + twitter sentiment train)."""
    train_steps: int
    """Classifier optimizer steps."""
    mlm_steps: int
    """Masked-LM domain-adaptation steps before the classifier (0: none)."""
    mlm_final_loss: float | None
    """Masked-LM loss at the end of that pass (None without one)."""
    probe_pooling: str
    """How the probe pools the frozen base's hidden states."""
    probe_train_examples: int
    """PhraseBank train sentences the probe is fitted on."""
    seed: int
    """Seed of the run."""
    code_version: str
    """finsae version that made the twin."""
    seconds: float
    """Wall-clock seconds of the stage."""
    finbert_reported_accuracy_50agree: float
    """FinBERT's published PhraseBank accuracy (50% agreement), for comparison."""

    @property
    def objective(self) -> float:
        return self.phrasebank_test_accuracy
