"""Lightning modules for the finance twin: masked-LM domain pass, then 3-class sentiment; and their training
batches as a data module whose one pass covers the whole fit, so a fit resumed from a checkpoint continues at
the restored step with the batches (and the random draws) the uninterrupted fit would have taken."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset
from transformers import get_linear_schedule_with_warmup

from finsae.finetune import length_grouped_batches, num_grouped_batches
from finsae.finetune.checkpoints import RECIPE_KEY


class TextDataset(Dataset):
    def __init__(self, texts: list[str], labels: list[int] | None = None):
        self.texts, self.labels = list(texts), None if labels is None else list(labels)

    def __len__(self):
        return len(self.texts)

    def __getitem__(self, i):
        return (self.texts[i], -1 if self.labels is None else self.labels[i])


class _RunBatches:
    """Batch sampler over a whole fit: ``steps`` batches, epoch after epoch (``epoch_batches(e)``), the first
    ``skip`` of them left out (a resumed fit has taken them)."""

    def __init__(self, epoch_batches: Callable[[int], list[list[int]]], steps: int, skip: int = 0):
        self.epoch_batches, self.steps, self.skip = epoch_batches, steps, skip

    def __len__(self):
        # the whole fit's length, also when resumed: Lightning counts a resumed fit's batches on from the
        # restored index, and a shorter length would end its "epoch" early and start this pass over again
        return self.steps

    def __iter__(self):
        taken, epoch = 0, 0
        while taken < self.steps:
            for batch in self.epoch_batches(epoch):
                if taken >= self.steps:
                    return
                if taken >= self.skip:
                    yield batch
                taken += 1
            epoch += 1


def _shuffled_epochs(n: int, batch_size: int, seed: int, lengths=None) -> Callable[[int], list[list[int]]]:
    """Epoch ``e``'s batches, drawn with seed ``seed + e``: length-grouped when ``lengths`` are given
    (:func:`finsae.finetune.length_grouped_batches`), else a plain permutation cut into batches."""
    def epoch_batches(epoch: int) -> list[list[int]]:
        if lengths is not None:
            return [b.tolist() for b in length_grouped_batches(lengths, batch_size, seed + epoch)]
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    return epoch_batches


def text_loader(tokenizer, texts, labels=None, batch_size=32, max_length=64, shuffle=False, seed=0,
                group_by_length=False, steps: int | None = None, skip: int = 0):
    """Batches tokenised with dynamic padding (short finance sentences waste no compute on [PAD]).

    With ``shuffle``: ``steps`` seeded random batches (default: one epoch), epoch after epoch, each epoch
    drawn anew, the first ``skip`` left out; ``group_by_length``: batches of similar-length texts
    (:func:`finsae.finetune.length_grouped_batches`).
    """

    def collate(items):
        b = tokenizer([t for t, _ in items], padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt")
        b["labels"] = torch.tensor([y for _, y in items], dtype=torch.long)
        return dict(b)

    ds = TextDataset(texts, labels)
    if not shuffle:
        return DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=collate)
    lengths = None
    if group_by_length:
        lengths = [len(ids) for ids in tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]]
    per_epoch = num_grouped_batches(len(ds), batch_size) if group_by_length else -(-len(ds) // batch_size)
    sampler = _RunBatches(_shuffled_epochs(len(ds), batch_size, seed, lengths), steps or per_epoch, skip)
    # its own generator: the loader's base seed is not drawn from the global stream dropout draws from
    return DataLoader(ds, batch_sampler=sampler, collate_fn=collate,
                      generator=torch.Generator().manual_seed(seed))


class TextRun(L.LightningDataModule):
    """The shuffled training batches of one fit of ``steps`` optimizer steps (see :func:`text_loader`); a fit
    resumed from a checkpoint starts at the restored step."""

    def __init__(self, tokenizer, texts, labels=None, *, batch_size: int, max_length: int, seed: int,
                 group_by_length: bool, steps: int | None = None):
        super().__init__()
        self.tokenizer, self.texts = tokenizer, list(texts)
        self.labels = None if labels is None else list(labels)
        self.batch_size, self.max_length, self.seed = batch_size, max_length, seed
        self.group_by_length, self.steps = group_by_length, steps

    def train_dataloader(self) -> DataLoader:
        skip = int(self.trainer.global_step) if self.trainer is not None else 0
        return text_loader(self.tokenizer, self.texts, self.labels, self.batch_size, self.max_length,
                           shuffle=True, seed=self.seed, group_by_length=self.group_by_length, steps=self.steps,
                           skip=skip)


class _WarmupDecay(L.LightningModule):
    """AdamW with linear warmup and decay; its checkpoints also hold the run's recipe, the global torch random
    state (dropout draws from it; restored before the first step of a resumed fit) and the subclass's
    :meth:`extra_state`."""

    def __init__(self, lr: float, weight_decay: float, warmup_frac: float, total_steps: int, recipe=None):
        super().__init__()
        self.lr, self.weight_decay, self.warmup_frac, self.total_steps = lr, weight_decay, warmup_frac, total_steps
        self.recipe = dict(recipe or {})
        self._restored_rng: torch.Tensor | None = None

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def on_save_checkpoint(self, checkpoint) -> None:
        checkpoint[RECIPE_KEY] = self.recipe
        checkpoint["finsae_rng"] = torch.get_rng_state()
        checkpoint["finsae_state"] = self.extra_state()

    def on_load_checkpoint(self, checkpoint) -> None:
        self._restored_rng = checkpoint.get("finsae_rng")
        self.load_extra_state(checkpoint.get("finsae_state") or {})

    def _restore_rng(self) -> None:
        if self._restored_rng is not None:
            torch.set_rng_state(self._restored_rng)
            self._restored_rng = None

    def on_train_batch_start(self, batch, batch_idx) -> None:
        self._restore_rng()

    def on_fit_end(self) -> None:
        # a fit restored at its last step runs no batch: the next phase draws on from the restored state
        self._restore_rng()

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

    def __init__(self, mlm_model, tokenizer, lr, total_steps, warmup_frac=0.1, weight_decay=0.01, seed=0,
                 recipe=None):
        super().__init__(lr, weight_decay, warmup_frac, total_steps, recipe)
        self.mlm = mlm_model
        self.mask_id, self.vocab = tokenizer.mask_token_id, len(tokenizer)
        self.special = list(tokenizer.all_special_ids)
        self.gen = torch.Generator().manual_seed(seed)
        self.last_loss = float("nan")

    def extra_state(self) -> dict:
        return {"mask_rng": self.gen.get_state(), "last_loss": self.last_loss}

    def load_extra_state(self, state: dict) -> None:
        if "mask_rng" in state:
            self.gen.set_state(state["mask_rng"])
        self.last_loss = float(state.get("last_loss", float("nan")))

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
        self.last_loss = float(loss.detach())
        return loss


class SentimentModule(_WarmupDecay):
    """Whole-encoder fine-tune as a 3-class sequence classifier (AdamW, linear warmup/decay)."""

    def __init__(self, classifier, lr, total_steps, warmup_frac=0.1, weight_decay=0.01, recipe=None,
                 mlm_final_loss: float | None = None):
        super().__init__(lr, weight_decay, warmup_frac, total_steps, recipe)
        self.classifier = classifier
        self.mlm_final_loss = mlm_final_loss
        """The masked-LM pass's last loss (kept in the checkpoint: a resumed fit does not run that pass)."""

    def extra_state(self) -> dict:
        return {"mlm_final_loss": self.mlm_final_loss}

    def load_extra_state(self, state: dict) -> None:
        self.mlm_final_loss = state.get("mlm_final_loss", self.mlm_final_loss)

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
