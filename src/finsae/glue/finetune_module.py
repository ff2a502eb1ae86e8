"""Lightning modules for the finance twin: masked-LM domain pass, then 3-class sentiment."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset
from transformers import get_linear_schedule_with_warmup

from finsae.finetune import length_grouped_batches, num_grouped_batches


class TextDataset(Dataset):
    def __init__(self, texts: list[str], labels: list[int] | None = None):
        self.texts, self.labels = list(texts), None if labels is None else list(labels)

    def __len__(self):
        return len(self.texts)

    def __getitem__(self, i):
        return (self.texts[i], -1 if self.labels is None else self.labels[i])


class _GroupedBatches:
    """Batch sampler: length-grouped batches, reshuffled each epoch (seed + epoch)."""

    def __init__(self, lengths, batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed, self.epoch = lengths, batch_size, seed, 0

    def __len__(self):
        return num_grouped_batches(len(self.lengths), self.batch_size)

    def __iter__(self):
        batches = length_grouped_batches(self.lengths, self.batch_size, self.seed + self.epoch)
        self.epoch += 1
        return iter([b.tolist() for b in batches])


def text_loader(tokenizer, texts, labels=None, batch_size=32, max_length=64, shuffle=False, seed=0,
                group_by_length=False):
    """Batches tokenised with dynamic padding (short finance sentences waste no compute on [PAD]).

    ``group_by_length`` (with ``shuffle``): seeded random batches of similar-length texts
    (:func:`finsae.finetune.length_grouped_batches`), drawn anew each epoch.
    """

    def collate(items):
        b = tokenizer([t for t, _ in items], padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt")
        b["labels"] = torch.tensor([y for _, y in items], dtype=torch.long)
        return dict(b)

    ds = TextDataset(texts, labels)
    if shuffle and group_by_length:
        lengths = [len(ids) for ids in tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]]
        return DataLoader(ds, batch_sampler=_GroupedBatches(lengths, batch_size, seed), collate_fn=collate)
    g = torch.Generator().manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, collate_fn=collate,
                      generator=g if shuffle else None)


class _WarmupDecay(L.LightningModule):
    def __init__(self, lr: float, weight_decay: float, warmup_frac: float, total_steps: int):
        super().__init__()
        self.lr, self.weight_decay, self.warmup_frac, self.total_steps = lr, weight_decay, warmup_frac, total_steps

    def configure_optimizers(self):
        decay, no_decay = [], []
        for _, p in self.named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim < 2 else decay).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": self.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=self.lr)
        sched = get_linear_schedule_with_warmup(opt, int(self.warmup_frac * self.total_steps), self.total_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class MaskedLMModule(_WarmupDecay):
    """MLM on financial text; the body is shared with the classifier, so this adapts it in place."""

    def __init__(self, mlm_model, tokenizer, lr, total_steps, warmup_frac=0.1, weight_decay=0.01, seed=0):
        super().__init__(lr, weight_decay, warmup_frac, total_steps)
        self.mlm = mlm_model
        self.mask_id, self.vocab = tokenizer.mask_token_id, len(tokenizer)
        self.special = list(tokenizer.all_special_ids)
        self.gen = torch.Generator().manual_seed(seed)

    def training_step(self, batch, _):
        from finsae.finetune.mlm import mask_tokens

        ids, labels = mask_tokens(batch["input_ids"], batch["attention_mask"], self.mask_id, self.vocab,
                                  self.special, generator=self.gen)
        # Score only the masked positions: the 30,522-way output over every token would cost ~7x more.
        hidden = self.mlm.bert(input_ids=ids, attention_mask=batch["attention_mask"]).last_hidden_state
        chosen = labels != -100
        logits = self.mlm.cls(hidden[chosen])
        loss = torch.nn.functional.cross_entropy(logits, labels[chosen])
        self.log("mlm/loss", loss, prog_bar=True)
        return loss


class SentimentModule(_WarmupDecay):
    """Whole-encoder fine-tune as a 3-class sequence classifier (AdamW, linear warmup/decay)."""

    def __init__(self, classifier, lr, total_steps, warmup_frac=0.1, weight_decay=0.01):
        super().__init__(lr, weight_decay, warmup_frac, total_steps)
        self.classifier = classifier

    def training_step(self, batch, _):
        out = self.classifier(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                              labels=batch["labels"])
        self.log("finetune/loss", out.loss, prog_bar=True)
        return out.loss

    @torch.inference_mode()
    def predict_texts(self, tokenizer, texts, max_length=64, batch_size=64):
        self.classifier.eval()
        preds = []
        for b in text_loader(tokenizer, texts, batch_size=batch_size, max_length=max_length):
            logits = self.classifier(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
            preds.append(logits.argmax(-1))
        return torch.cat(preds).numpy()
