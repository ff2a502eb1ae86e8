"""The SAE stage's steps on typed settings (finsae.sae.run): what a run is named, where it publishes, and the
checks that decide whether it trains at all."""

from pathlib import Path

import pytest

from finsae.activations.config import ExtractConfig
from finsae.errors import ConfigError
from finsae.sae import SaeTrainConfig
from finsae.sae.run import Settings, nothing_to_train
from finsae.summary import SUMMARY_FILE


def settings(tmp_path: Path, **kw) -> Settings:
    base = dict(artifacts=tmp_path / "art", data_dir=tmp_path / "data", run_dir=tmp_path / "run",
                sae=SaeTrainConfig(expansion_factor=4, k=4), activations=ExtractConfig(), layer=1, tag="t", seed=0,
                model=("tiny", None, None), pair=None, corpora=("financial",), max_chars_per_corpus=None,
                max_docs=None, eval_start="2018-01-01", sae_eval_frac=0.05, world_size=1, downstream_docs=0,
                twin_test_frac=0.2)
    return Settings(**{**base, **kw})


def test_a_model_sae_and_a_crosscoder_publish_under_their_own_names(tmp_path):
    one = settings(tmp_path, pair=("minilm", "minilm_fin"))  # a one-model SAE does not read the pair
    assert one.name == "tiny" and one.kind.downstream and [s.name for s in one.specs()] == ["tiny"]
    assert one.out_dir == tmp_path / "art" / "sae" / "tiny" / "layer_1" / "t"
    cc = settings(tmp_path, pair=("minilm", "minilm_fin"), dictionary="crosscoder")
    assert not cc.kind.downstream and cc.name == "crosscoder_minilm_minilm_fin"
    assert [s.name for s in cc.specs()] == ["minilm", "minilm_fin"]
    assert cc.sae_config(32).d_in == 64 and one.sae_config(32).d_in == 32  # a crosscoder reads both models' rows


def test_rescore_needs_a_finished_single_model_sae(tmp_path):
    with pytest.raises(ConfigError, match="a crosscoder has no downstream score"):
        nothing_to_train(settings(tmp_path, pair=("minilm", "minilm_fin"), dictionary="crosscoder",
                                  rescore=True))
    st = settings(tmp_path, rescore=True)
    with pytest.raises(ConfigError, match="needs a finished SAE in"):
        nothing_to_train(st)
    st.out_dir.mkdir(parents=True)
    (st.out_dir / SUMMARY_FILE).write_text("{}")
    assert nothing_to_train(st)


def test_skip_if_done_skips_only_a_finished_sae(tmp_path):
    st = settings(tmp_path, skip_if_done=True)
    assert not nothing_to_train(st)
    st.out_dir.mkdir(parents=True)
    assert not nothing_to_train(st)  # a folder without summary.json is not finished
    (st.out_dir / SUMMARY_FILE).write_text("{}")
    assert nothing_to_train(st)
    assert not nothing_to_train(settings(tmp_path))  # without skip_if_done it trains (and precheck refuses)
