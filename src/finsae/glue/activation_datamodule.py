"""Lightning adapter for the activation cache: shuffled train batches and the fixed SAE-eval set per rank."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from finsae.activations import ActivationBatches, ActivationStore, PairedStore, open_store


class ActivationDataModule(L.LightningDataModule):
    """Batches of one layer's cached activations for SAE training.

    ``batch_size`` is per rank: under DDP each rank takes its ``rank::world_size`` slice of every global batch
    of ``batch_size * world_size`` rows (rank and world size are read from the trainer in ``setup``), so the
    data a step sees does not depend on the device count. The loaders are iterable, so Lightning does not
    wrap them in a ``DistributedSampler``. Validation is the document-level ``sae_eval`` split, in fixed order.
    With ``max_tokens`` (one pass of the iterator covers the whole run) a resumed fit continues mid-pass at
    the restored global step, so the resumed run sees exactly the batches the uninterrupted one would.
    """

    def __init__(
        self,
        store: ActivationStore | PairedStore | str | Path,
        batch_size: int = 4096,
        *,
        sae_eval_frac: float = 0.05,
        seed: int = 0,
        epochs: int = 1,
        max_tokens: int | None = None,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        verify: bool | None = None,
    ):
        super().__init__()
        by_path = isinstance(store, (str, Path))  # else an open store (ActivationStore, PairedStore)
        self.store = None if by_path else store
        self.store_path = Path(store if by_path else store.path)
        self.batch_size, self.val_batch_size = batch_size, val_batch_size or batch_size
        self.sae_eval_frac, self.seed, self.epochs, self.max_tokens = sae_eval_frac, seed, epochs, max_tokens
        self.num_workers, self.verify = num_workers, verify
        self.train_set: ActivationBatches | None = None
        self.val_set: ActivationBatches | None = None

    def rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (0, 1) if trainer is None else (int(trainer.global_rank), int(trainer.world_size))

    def setup(self, stage: str | None = None) -> None:
        if self.store is None:
            self.store = open_store(self.store_path, verify=self.verify)
        rank, world = self.rank_and_world()
        common = dict(sae_eval_frac=self.sae_eval_frac, seed=self.seed, rank=rank, world_size=world)
        self.train_set = ActivationBatches(self.store, self.batch_size, split="train", epochs=self.epochs,
                                           max_tokens=self.max_tokens, **common)
        if self.sae_eval_frac > 0:
            self.val_set = ActivationBatches(self.store, self.val_batch_size, split="sae_eval", **common)

    def train_dataloader(self) -> DataLoader:
        if self.max_tokens is not None and self.trainer is not None:
            self.train_set.skip_next(int(self.trainer.global_step))
        return self._loader(self.train_set)

    def val_dataloader(self):
        return [] if self.val_set is None else self._loader(self.val_set)

    def _loader(self, dataset: ActivationBatches) -> DataLoader:
        # Persistent workers keep their dataset copy, whose epoch counter then advances with every pass
        # (a fresh copy per epoch would replay epoch 0's order).
        return DataLoader(dataset, batch_size=None, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)
