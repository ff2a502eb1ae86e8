"""Classification metrics reported for the fine-tune and the probe."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score


def classification_metrics(y_true, y_pred, prefix: str = "", n_classes: int = 3) -> dict:
    """``{prefix}accuracy``, ``{prefix}macro_f1`` and ``{prefix}confusion`` (rows true, cols predicted)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return {
        f"{prefix}accuracy": float(accuracy_score(y_true, y_pred)),
        f"{prefix}macro_f1": float(f1_score(y_true, y_pred, average="macro", labels=list(range(n_classes)))),
        f"{prefix}confusion": confusion_matrix(y_true, y_pred, labels=list(range(n_classes))).tolist(),
        f"{prefix}n": len(y_true),
    }
