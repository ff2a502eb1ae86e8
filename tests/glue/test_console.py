"""The console: one step bar with real counts (never Lightning's ``Epoch 0/-2``), library noise filtered."""

import logging
import warnings

import lightning as L
import torch
from torch.utils.data import DataLoader

from finsae.glue.console import quiet_console, step_progress_bar


class _Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        return self.lin(batch).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _fit(tmp_path, bar, max_steps):
    data = [torch.randn(8, 4) for _ in range(3)]  # 3 batches an epoch: max_steps=7 spans 3 epochs
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=max_steps, max_epochs=-1, logger=False,
                        enable_checkpointing=False, enable_model_summary=False, callbacks=[bar],
                        default_root_dir=str(tmp_path))
    trainer.fit(_Tiny(), DataLoader(data, batch_size=None))
    return trainer


def test_step_bar_counts_the_runs_steps_across_epochs(tmp_path, capsys):
    bar = step_progress_bar(7, "finetune", epochs=3)
    trainer = _fit(tmp_path, bar, 7)
    assert trainer.progress_bar_callback is bar  # Lightning's own (Rich) bar is not added beside it
    tq = bar.train_progress_bar
    assert tq.total == 7 and tq.n == 7
    assert tq.desc.startswith("finetune epoch 3/3")
    out = capsys.readouterr()
    text = out.out + out.err
    assert "7/7" in text and "-2" not in text and "Epoch" not in text and "v_num" not in text


def test_step_bar_without_epoch_count(tmp_path, capsys):
    bar = step_progress_bar(5, "sae m L3")
    _fit(tmp_path, bar, 5)
    assert bar.train_progress_bar.total == 5 > 0
    assert bar.train_progress_bar.desc.startswith("sae m L3")
    assert "5/5" in capsys.readouterr().out


def test_quiet_console_drops_deprecations_and_lightning_info(capsys):
    quiet_console()
    with warnings.catch_warnings(record=True) as seen:
        # catch_warnings(record=True) resets the filters to "always"; quiet_console's filters are re-applied
        quiet_console()
        warnings.warn("old API", DeprecationWarning, stacklevel=1)
        warnings.warn("soon gone", FutureWarning, stacklevel=1)
        warnings.warn("something real", UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["something real"]
    logging.getLogger("lightning.pytorch").info("💡 Tip: try something")
    assert "Tip" not in capsys.readouterr().err
    assert not logging.getLogger("lightning.pytorch").handlers
