"""The fine-tune stage's steps on typed settings (finsae.finetune.run) that need no model: the step count, the
table of twin vs probe, and when a run skips."""

import numpy as np

from finsae.finetune import classification_metrics
from finsae.finetune.config import FinetuneConfig
from finsae.finetune.run import Settings, comparison_table, is_done, total_steps


def test_total_steps_are_epochs_of_batches_capped_by_max_steps():
    assert total_steps(FinetuneConfig(epochs=3), 7) == 21
    assert total_steps(FinetuneConfig(epochs=3, max_steps=5), 7) == 5
    assert total_steps(FinetuneConfig(epochs=1, max_steps=50), 7) == 7


def test_comparison_table_puts_the_twin_beside_the_probe_on_both_subsets():
    y = np.array([0, 1, 2, 0, 1, 2])
    twin, probe = np.array([0, 1, 2, 0, 1, 1]), np.array([0, 0, 0, 0, 1, 2])
    agree = np.array([True, True, False, True, False, True])
    m = {**classification_metrics(y, twin, "phrasebank_test_"),
         **classification_metrics(y[agree], twin[agree], "phrasebank_test_allagree_"),
         **classification_metrics(y, probe, "probe_test_"),
         **classification_metrics(y[agree], probe[agree], "probe_test_allagree_")}
    t = comparison_table(m, "tiny_fin", "tiny")
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
