"""The fine-tune stage's steps on typed settings (finsae.finetune.run) that need no model: the step count, the
table of twin vs probe, and when a run skips."""

import json

import numpy as np
import pytest

from finsae.errors import FinsaeError
from finsae.finetune import classification_metrics
from finsae.finetune.config import FinetuneConfig
from finsae.finetune.run import Settings, comparison_table, is_done, total_steps
from finsae.finetune.summary import METRICS_FILE, FinetuneMetrics, FinetuneSummary


def _metrics(y, twin, probe, agree) -> FinetuneMetrics:
    """A fine-tune's metrics record on the given labels and predictions."""
    flat = {**classification_metrics(y, twin, "phrasebank_test_"),
            **classification_metrics(y[agree], twin[agree], "phrasebank_test_allagree_"),
            **classification_metrics(y, probe, "probe_test_"),
            **classification_metrics(y[agree], probe[agree], "probe_test_allagree_"),
            "base_model": "tiny", "out_name": "tiny_fin", "train_examples": 64, "train_steps": 3,
            "mlm_steps": 2, "mlm_final_loss": 9.5, "probe_pooling": "mean", "probe_train_examples": 50,
            "seed": 0,
            "code_version": "x", "seconds": 1.0, "finbert_reported_accuracy_50agree": 0.86}
    return FinetuneMetrics.from_dict(flat)


def test_total_steps_are_epochs_of_batches_capped_by_max_steps():
    assert total_steps(FinetuneConfig(epochs=3), 7) == 21
    assert total_steps(FinetuneConfig(epochs=3, max_steps=5), 7) == 5
    assert total_steps(FinetuneConfig(epochs=1, max_steps=50), 7) == 7


def test_comparison_table_puts_the_twin_beside_the_probe_on_both_subsets():
    y = np.array([0, 1, 2, 0, 1, 2])
    twin, probe = np.array([0, 1, 2, 0, 1, 1]), np.array([0, 0, 0, 0, 1, 2])
    agree = np.array([True, True, False, True, False, True])
    t = comparison_table(_metrics(y, twin, probe, agree).summary, "tiny_fin", "tiny")
    assert list(t["model"]) == ["tiny_fin (fine-tuned)"] * 2 + ["tiny frozen + linear probe"] * 2
    assert list(t["subset"]) == ["50Agree", "AllAgree"] * 2 and list(t["n"]) == [6, 4, 6, 4]
    assert np.allclose(t["accuracy"], [5 / 6, 3 / 4, 4 / 6, 3 / 4])


def test_skip_if_present_skips_only_a_published_twin(tmp_path):
    st = Settings(artifacts=tmp_path, data_dir=tmp_path, run_dir=tmp_path / "run", model=("tiny", None, None),
                  finetune=FinetuneConfig(out_name="tiny_fin", skip_if_present=True), seed=0, eval_start="2018-01-01")
    assert not is_done(st)
    st.out_dir.mkdir(parents=True)
    (st.out_dir / "summary.json").write_text("{}")
    assert is_done(st) and st.out_dir == tmp_path / "models" / "tiny_fin"


def test_the_twins_own_split_is_read_back_for_later_stages(tmp_path):
    """Downstream scores and held-out filters use the test_frac the twin was made with (its
    finetune_config.json), the default for a model made elsewhere, and never a damaged record."""
    import json

    from finsae.finetune.config import CONFIG_FILE, twin_test_frac
    from finsae.paths import model_dir

    folder = model_dir(tmp_path, "twin")
    assert twin_test_frac(tmp_path, "twin") == FinetuneConfig().test_frac  # no twin made here
    folder.mkdir(parents=True)
    (folder / CONFIG_FILE).write_text(json.dumps({"out_name": "twin", "test_frac": 0.3, "gone_knob": 1}))
    assert twin_test_frac(tmp_path, "twin") == 0.3
    (folder / CONFIG_FILE).write_text("{cut")
    assert twin_test_frac(tmp_path, "twin") == FinetuneConfig().test_frac


def test_metrics_go_through_their_contract_and_a_damaged_file_is_named(tmp_path):
    y = np.array([0, 1, 2, 0, 1, 2])
    m = _metrics(y, np.array([0, 1, 2, 0, 1, 1]), np.array([0, 0, 0, 0, 1, 2]), np.array([True] * 6))
    path = m.write(tmp_path)
    assert path == tmp_path / METRICS_FILE
    back = FinetuneMetrics.read(tmp_path)
    assert back == m and isinstance(back.summary, FinetuneSummary)
    assert back.confusion["phrasebank_test_"] == [[2, 0, 0], [0, 2, 0], [0, 1, 1]]
    raw = json.loads(path.read_text())
    del raw["probe_test_confusion"]
    path.write_text(json.dumps(raw))
    with pytest.raises(FinsaeError, match="missing \\['probe_test_confusion'\\]"):
        FinetuneMetrics.read(tmp_path)
    raw["probe_test_confusion"] = [[1, 2], [3]]
    path.write_text(json.dumps(raw))
    with pytest.raises(FinsaeError, match="probe_test_confusion is not a square table"):
        FinetuneMetrics.read(tmp_path)
    path.write_text("{cut")
    with pytest.raises(FinsaeError, match="not valid JSON"):
        FinetuneMetrics.read(tmp_path)


def test_a_stopped_runs_checkpoints_are_kept_resumed_or_dropped_only_when_asked(tmp_path):
    from finsae.finetune.checkpoints import CLASSIFIER, LAST_CHECKPOINT, MLM, ResumePoint, resume_point

    assert resume_point(tmp_path, resume=False, overwrite=False) == ResumePoint(None, None)  # nothing there
    (tmp_path / MLM).mkdir()
    (tmp_path / MLM / LAST_CHECKPOINT).write_bytes(b"state")
    with pytest.raises(FinsaeError, match="unfinished fine-tune; resume=true continues it, overwrite=true "):
        resume_point(tmp_path, resume=False, overwrite=False)
    mlm = str(tmp_path / MLM / LAST_CHECKPOINT)
    assert resume_point(tmp_path, resume=True, overwrite=False) == ResumePoint(mlm, None)
    (tmp_path / CLASSIFIER).mkdir()
    (tmp_path / CLASSIFIER / LAST_CHECKPOINT).write_bytes(b"state")
    assert resume_point(tmp_path, resume=True, overwrite=False) == ResumePoint(
        mlm, str(tmp_path / CLASSIFIER / LAST_CHECKPOINT))
    assert resume_point(tmp_path, resume=False, overwrite=True) == ResumePoint(None, None)
    # dropped only by the run that starts over, under its run lock
    assert (tmp_path / MLM / LAST_CHECKPOINT).read_bytes() == b"state"


def test_two_fine_tunes_of_one_twin_refuse_each_other(tmp_path):
    from finsae.finetune.checkpoints import checkpoint_dir, run_lock

    ckpt = checkpoint_dir(tmp_path, "twin")
    with run_lock(ckpt):
        with pytest.raises(FinsaeError, match="another fine-tune is making twin now"):
            with run_lock(ckpt):
                pass
    with run_lock(ckpt):  # released with its holder
        pass
