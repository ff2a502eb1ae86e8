"""Splice a function into a layer's output and measure what the model's own task loses.

Used for the SAE "loss recovered" score: replace the layer's hidden state at every real (non-[PAD])
position with its reconstruction, and compare the task loss to the clean model and to zero-ablating those
same positions:

    loss_recovered = (L_zero - L_sae) / (L_zero - L_clean)

Task loss by model kind: a sequence classifier uses its 3-class cross-entropy on labelled sentences; a
model with an MLM head uses masked-token cross-entropy (15% of real tokens, fixed seed); a bare encoder
(the packaged MiniLM has no head) uses the KL divergence between softmax(final-layer [CLS]) of the clean
and the patched run, so L_clean = 0 by construction.

[CLS] and [SEP] are replaced too, although the SAE is trained without them: a classifier reads only the
final [CLS], so leaving it untouched would make the last layer's score undefined (patching other tokens
there cannot change the output). The score is therefore conservative where [CLS] matters.
"""

from __future__ import annotations

from contextlib import contextmanager
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

from finsae.models.loading import LoadedModel, base_encoder


def layer_module(model: torch.nn.Module, layer: int) -> torch.nn.Module:
    enc = base_encoder(model)
    return enc.embeddings if layer == -1 else enc.encoder.layer[layer]


@contextmanager
def patched_layer(model: torch.nn.Module, layer: int, fn: Callable[[torch.Tensor], torch.Tensor],
                  positions: torch.Tensor):
    """Within the block, ``layer``'s output at ``positions`` ([batch, seq] bool) becomes ``fn(rows)``."""

    def hook(_mod, _inp, out):
        hs = out[0] if isinstance(out, tuple) else out
        new = hs.clone()
        rows = hs[positions]
        new[positions] = fn(rows).to(hs.dtype)
        return (new, *out[1:]) if isinstance(out, tuple) else new

    handle = layer_module(model, layer).register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


class DownstreamScore(NamedTuple):
    """The model's task loss with the layer clean, replaced by the SAE, and zero-ablated."""

    clean: float
    """Task loss of the untouched model."""
    sae: float
    """Task loss with the SAE reconstruction spliced in."""
    zero: float
    """Task loss with the same positions zeroed."""
    loss_recovered: float
    """(zero - sae) / (zero - clean); 1 = the SAE loses nothing, 0 = as bad as zeroing."""
    task: str
    """Which loss: sentiment_ce, mlm_ce or cls_kl."""


def _real_positions(input_ids, attention_mask, special_ids) -> torch.Tensor:
    pos = attention_mask.bool()
    for s in special_ids:
        pos &= input_ids != s
    return pos


def _task_loss(task: str, out, target, clean_cls) -> float:
    """Summed task loss of one batch (see the module docstring for each task)."""
    if task == "sentiment_ce":
        return F.cross_entropy(out.logits.float(), target, reduction="sum").item()
    if task == "mlm_ce":
        return F.cross_entropy(out.logits.float().transpose(1, 2), target, reduction="sum", ignore_index=-100).item()
    cls = out.last_hidden_state[:, 0].float()
    return F.kl_div(F.log_softmax(cls, -1), F.log_softmax(clean_cls, -1), log_target=True, reduction="sum").item()


@torch.inference_mode()
def downstream_score(loaded: LoadedModel, texts: list[str], layer: int, reconstruct: Callable,
                     labels: list[int] | None = None, max_length: int = 128, batch_size: int = 32,
                     seed: int = 0) -> DownstreamScore:
    """Loss recovered for ``reconstruct`` (rows -> rows) spliced into ``layer`` of ``loaded.model``."""
    model, tok = loaded.model, loaded.tokenizer
    model.eval()
    if loaded.kind == "classifier":
        if labels is None:
            raise ValueError("a classifier's downstream score needs labels")
        task = "sentiment_ce"
    elif loaded.kind == "mlm":
        task = "mlm_ce"
    else:
        task = "cls_kl"
    special = list(tok.all_special_ids)
    gen = torch.Generator().manual_seed(seed)
    totals = {"clean": 0.0, "sae": 0.0, "zero": 0.0}
    count = 0
    for s in range(0, len(texts), batch_size):
        b = tok(texts[s:s + batch_size], padding=True, truncation=True, max_length=max_length,
                return_tensors="pt")
        ids, att = b["input_ids"], b["attention_mask"]
        words = _real_positions(ids, att, special)
        pos = att.bool()
        kwargs = {"input_ids": ids, "attention_mask": att}
        if task == "mlm_ce":
            chosen = (torch.rand(ids.shape, generator=gen) < 0.15) & words
            mlm_labels = torch.where(chosen, ids, torch.full_like(ids, -100))
            kwargs["input_ids"] = torch.where(chosen, torch.full_like(ids, tok.mask_token_id), ids)
            n = int(chosen.sum())
        else:
            mlm_labels = None
            n = len(ids)

        target = torch.tensor(labels[s:s + batch_size]) if task == "sentiment_ce" else mlm_labels
        clean_out = model(**kwargs)
        clean_cls = clean_out.last_hidden_state[:, 0].float() if task == "cls_kl" else None
        totals["clean"] += _task_loss(task, clean_out, target, clean_cls)
        for name, fn in (("sae", reconstruct), ("zero", torch.zeros_like)):
            with patched_layer(model, layer, fn, pos):
                totals[name] += _task_loss(task, model(**kwargs), target, clean_cls)
        count += n
    clean, sae, zero = (totals[k] / max(count, 1) for k in ("clean", "sae", "zero"))
    denom = zero - clean
    rec = (zero - sae) / denom if abs(denom) > 1e-12 else float("nan")
    return DownstreamScore(clean, sae, zero, rec, task)
