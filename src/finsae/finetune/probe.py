"""The "plain BERT" comparison: a linear probe on a frozen encoder's pooled features."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


@torch.inference_mode()
def pooled_features(encoder, tokenizer, texts: list[str], max_length: int = 64, batch_size: int = 64,
                    pooling: str = "mean") -> np.ndarray:
    """[n, d] final-layer features: mean over real tokens (``mean``) or the [CLS] vector (``cls``)."""
    encoder.eval()
    order = np.argsort([len(t) for t in texts])
    out = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
    for s in range(0, len(texts), batch_size):
        idx = order[s : s + batch_size]
        b = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt")
        h = encoder(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
        if pooling == "cls":
            f = h[:, 0]
        else:
            m = b["attention_mask"].unsqueeze(-1).to(h.dtype)
            f = (h * m).sum(1) / m.sum(1)
        out[idx] = f.float().numpy()
    return out


def linear_probe(train_x: np.ndarray, train_y, test_x: np.ndarray, seed: int = 0, C: float = 1.0) -> np.ndarray:
    """Multinomial logistic regression on standardised features; returns test predictions."""
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000, random_state=seed))
    clf.fit(train_x, np.asarray(train_y))
    return clf.predict(test_x)
