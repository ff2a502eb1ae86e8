"""Shuffled fp32 batches read straight from a memory-mapped store, with a document-level SAE-eval split.

Splits of one store: ``train`` (what an SAE trains on) and ``sae_eval`` (``sae_eval_frac`` of the documents,
chosen by a hash of each ``doc_id``, on which the SAE is scored). Both lie inside the corpus's own ``train``
split; the corpus's ``heldout`` texts (``finsae.data.corpus``) are never in an SAE-training store at all.

RAM stays bounded: a batch reads only its own rows (sorted, so the reads go forward through the file);
the whole array is never loaded. The order is a pure function of (seed, epoch), so runs repeat exactly.

DDP: with ``world_size`` ranks each global batch of ``batch_size * world_size`` rows is dealt out as
``global[rank::world_size]``, so 2 ranks x ``b`` see exactly the rows 1 rank x ``2b`` sees, and every rank
yields the same number of batches. DataLoader workers take whole batches in turn (``g % workers``), which
keeps the order of a single-process run.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from finsae.activations.store import ActivationStore
from finsae.activations.guard import check_trainable
from finsae.errors import ConfigError

SPLITS = ("train", "sae_eval")


def sae_eval_docs(doc_ids: Sequence[str], frac: float) -> np.ndarray:
    """[n_docs] bool: the documents in the ``sae_eval`` split, chosen by a hash of each ``doc_id`` (independent
    of seed, model and corpus order, so both models of a pair score on the same documents)."""
    cut = int(frac * 2**64)
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(str(d).encode(), digest_size=8).digest(), "little") < cut for d in doc_ids),
        dtype=bool, count=len(doc_ids),
    )


def split_rows(store: ActivationStore, split: str, sae_eval_frac: float) -> np.ndarray:
    """Sorted token rows of ``split``: all tokens of a document fall on the same side."""
    if split not in SPLITS:
        raise ConfigError(f"split={split!r}; choose one of {list(SPLITS)}")
    if not 0.0 <= sae_eval_frac < 1.0:
        raise ConfigError(f"sae_eval_frac={sae_eval_frac} must be in [0, 1)")
    check_trainable(store)  # ActivationBatches reads its rows through here too
    held = sae_eval_docs(store.table.doc_ids, sae_eval_frac)
    in_split = held[store.table.column("doc")]
    if split == "train":
        in_split = ~in_split
    rows = np.flatnonzero(in_split)
    return rows.astype(np.int32) if len(store) < 2**31 else rows


class ActivationBatches(IterableDataset):
    """Batches of ``[batch_size, d]`` fp32 activations of one split, for this rank.

    Use with ``DataLoader(ds, batch_size=None)``. Each new iteration reshuffles (epoch counter, or
    ``set_epoch``); one iteration covers ``epochs`` passes, or ``max_tokens`` rows (all ranks together),
    cycling passes as needed.
    """

    def __init__(
        self,
        store: ActivationStore,
        batch_size: int,
        *,
        split: str = "train",
        sae_eval_frac: float = 0.05,
        seed: int = 0,
        shuffle: bool | None = None,
        drop_last: bool | None = None,
        epochs: int = 1,
        max_tokens: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ):
        if batch_size < 1 or epochs < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"bad batching: batch_size={batch_size} epochs={epochs} rank={rank}/{world_size}")
        self.array = store.array
        self.rows = split_rows(store, split, sae_eval_frac)
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.seed, self.epochs, self.max_tokens = seed, epochs, max_tokens
        self.shuffle = split == "train" if shuffle is None else shuffle
        self.drop_last = self.shuffle if drop_last is None else drop_last
        self.global_batch = batch_size * world_size
        n = len(self.rows)
        self.per_pass = n // self.global_batch if self.drop_last else math.ceil(n / self.global_batch)
        if self.per_pass == 0:
            raise ConfigError(
                f"the {split} split has {n} token rows, fewer than one global batch of {self.global_batch}; "
                f"lower the batch size or use a larger corpus"
            )
        if max_tokens is not None and max_tokens < self.global_batch:
            raise ConfigError(f"max_tokens={max_tokens} is less than one global batch of {self.global_batch}")
        self._epoch = 0
        self._skip = 0

    def skip_next(self, batches: int) -> None:
        """Make the next iteration start after its first ``batches`` batches (a resumed run's steps already
        taken); ``len`` stays the full length, as Lightning restores its in-pass batch counter."""
        self._skip = int(batches)

    def set_epoch(self, epoch: int) -> None:
        self._epoch = int(epoch)

    def __len__(self) -> int:
        """Batches this rank yields per iteration (all DataLoader workers together)."""
        if self.max_tokens is not None:
            return self.max_tokens // self.global_batch
        return self.per_pass * self.epochs

    def batch_indices(self, epoch: int | None = None) -> Iterator[np.ndarray]:
        """This rank's sorted row indices, batch by batch, for iteration ``epoch`` (default: the current)."""
        epoch = self._epoch if epoch is None else epoch
        total, done, n_pass = len(self), 0, 0
        while done < total:
            order = self.rows
            if self.shuffle:
                order = order.copy()
                np.random.default_rng([self.seed, epoch, n_pass]).shuffle(order)
            for g in range(min(self.per_pass, total - done)):
                global_batch = order[g * self.global_batch:(g + 1) * self.global_batch]
                yield np.sort(global_batch[self.rank::self.world_size])
            done += min(self.per_pass, total - done)
            n_pass += 1

    def __iter__(self) -> Iterator[torch.Tensor]:
        epoch, skip = self._epoch, self._skip
        self._epoch += 1  # the next iteration reshuffles even if nobody calls set_epoch
        self._skip = 0
        info = get_worker_info()
        for g, idx in enumerate(self.batch_indices(epoch)):
            if g < skip or (info is not None and g % info.num_workers != info.id):
                continue
            yield torch.from_numpy(self.array.take(idx)).float()
