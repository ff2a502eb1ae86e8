"""Masked-LM domain adaptation pieces (BERT recipe: 15% of real tokens; 80/10/10 mask/random/keep)."""

from __future__ import annotations

import torch


def mask_tokens(input_ids: torch.Tensor, attention_mask: torch.Tensor, mask_id: int, vocab_size: int,
                special_ids: list[int], prob: float = 0.15, generator: torch.Generator | None = None):
    """Return ``(masked_ids, labels)``; labels are -100 where no prediction is asked."""
    ids = input_ids.clone()
    labels = input_ids.clone()
    candidates = attention_mask.bool()
    for s in special_ids:
        candidates &= ids != s
    chosen = (torch.rand(ids.shape, generator=generator) < prob) & candidates
    labels[~chosen] = -100
    roll = torch.rand(ids.shape, generator=generator)
    ids[chosen & (roll < 0.8)] = mask_id
    rand_pos = chosen & (roll >= 0.8) & (roll < 0.9)
    ids[rand_pos] = torch.randint(vocab_size, (int(rand_pos.sum()),), generator=generator)
    return ids, labels


def masked_lm_from_encoder(encoder):
    """A ``BertForMaskedLM`` whose body IS ``encoder`` (shared modules: training it trains the encoder).
    The decoder is tied to the word embeddings and the head's transform starts as the identity, so the
    first predictions are embedding similarities rather than noise."""
    from transformers import BertForMaskedLM

    mlm = BertForMaskedLM(encoder.config)
    mlm.bert.embeddings = encoder.embeddings
    mlm.bert.encoder = encoder.encoder
    mlm.cls.predictions.decoder.weight = encoder.embeddings.word_embeddings.weight
    tr = mlm.cls.predictions.transform
    with torch.no_grad():
        tr.dense.weight.copy_(torch.eye(encoder.config.hidden_size))
        tr.dense.bias.zero_()
    return mlm
