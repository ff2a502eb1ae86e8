"""The Lightning datamodule over the activation cache."""

from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch

from finsae.activations import ExtractConfig, build_activations
from finsae.glue.activation_datamodule import ActivationDataModule

from act_helpers import make_corpus


@pytest.fixture(scope="module")
def store(tiny, tmp_path_factory):
    texts = [f"Report {i}: revenue {'grew' if i % 3 else 'shrank'} {i} percent year on year." for i in range(120)]
    return build_activations(tiny, make_corpus(texts, name="dm"), [0], tmp_path_factory.mktemp("dm"),
                             ExtractConfig(max_length=32), progress=False)[0]


def test_loaders_without_a_trainer(store):
    dm = ActivationDataModule(store.path, batch_size=32, sae_eval_frac=0.2)
    dm.setup("fit")
    train = list(dm.train_dataloader())
    assert len(train) == len(dm.train_dataloader()) > 0
    assert all(b.shape == (32, store.d) and b.dtype == torch.float32 for b in train)
    val_a = torch.cat(list(dm.val_dataloader()))
    val_b = torch.cat(list(dm.val_dataloader()))
    assert torch.equal(val_a, val_b)  # fixed SAE-eval set
    assert len(val_a) == len(dm.val_set.rows)


def test_each_rank_gets_its_slice(store):
    def first_indices(rank, world, batch):
        dm = ActivationDataModule(store, batch_size=batch, sae_eval_frac=0.2)
        dm.trainer = SimpleNamespace(global_rank=rank, world_size=world)
        dm.setup("fit")
        return next(dm.train_set.batch_indices(0))

    whole = first_indices(0, 1, 64)
    parts = [first_indices(r, 2, 32) for r in (0, 1)]
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), whole)


class Probe(L.LightningModule):
    """A linear autoencoder stand-in: enough to prove the loaders feed a real fit loop."""

    def __init__(self, d):
        super().__init__()
        self.lin = torch.nn.Linear(d, d)
        self.seen = []

    def training_step(self, batch, _):
        self.seen.append(batch.shape)
        return ((self.lin(batch) - batch) ** 2).mean()

    def validation_step(self, batch, _):
        self.log("val_loss", ((self.lin(batch) - batch) ** 2).mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-3)


class RecordingProbe(Probe):
    """Saves every batch it trains on, per rank, so the parent process can check the DDP split."""

    def __init__(self, d, out):
        super().__init__(d)
        self.out = str(out)

    def training_step(self, batch, _):
        self.seen.append(batch.clone())
        return ((self.lin(batch) - batch) ** 2).mean()

    def on_train_end(self):
        torch.save(self.seen, f"{self.out}/rank{self.global_rank}.pt")


def test_fit_runs_on_the_datamodule(store, tmp_path):
    dm = ActivationDataModule(store, batch_size=64, sae_eval_frac=0.2)
    probe = RecordingProbe(store.d, tmp_path)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(probe, datamodule=dm)
    n = len(dm.train_set)
    assert len(probe.seen) == 2 * n and all(b.shape == (64, store.d) for b in probe.seen)
    assert not torch.equal(probe.seen[0], probe.seen[n])  # the second epoch is reshuffled
    assert "val_loss" in trainer.callback_metrics


def test_real_ddp_ranks_see_one_global_batch(store, tmp_path):
    dm = ActivationDataModule(store.path, batch_size=32, sae_eval_frac=0.2, max_tokens=3 * 64)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(RecordingProbe(store.d, tmp_path), datamodule=dm)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    single = ActivationDataModule(store, batch_size=64, sae_eval_frac=0.2, max_tokens=3 * 64)
    single.setup("fit")
    want = list(single.train_dataloader())
    assert len(ranks[0]) == len(ranks[1]) == len(want) == 3
    for a, b, whole in zip(*ranks, want, strict=True):
        got = torch.cat([a, b])
        assert got.shape == whole.shape
        # same rows as the single-process batch of 2x the size, as multisets of rows
        key = lambda t: sorted(map(tuple, t.tolist()))  # noqa: E731
        assert key(got) == key(whole)
