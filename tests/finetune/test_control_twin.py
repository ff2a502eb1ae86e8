"""The control twins of issue 33 as configs: the SST-2 twin (the finance recipe on general text and SST-2, for as many
classifier steps) and the finance twin at fine-tune seed 2; their data, step count, metrics and an end-to-end run."""

import subprocess
import sys
from dataclasses import asdict, replace

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from finsae.errors import ConfigError
from finsae.finetune import classification_metrics
from finsae.finetune.config import FinetuneConfig
from finsae.finetune.datasets import LABELS, SST2_CLASSES, build_finetune_data, mlm_texts
from finsae.finetune.run import Settings, classifier_steps, comparison_table
from finsae.finetune.summary import FinetuneMetrics, FinetuneSummary
from finsae.glue.schemas import register_schemas, validate


def _recipe(root, name: str, *overrides: str):
    register_schemas()
    with initialize_config_dir(config_dir=str(root / "conf"), version_base="1.3"):
        return validate(compose("train", overrides=["paths.output_dir=/tmp/finsae-test", "task=finetune",
                                                    f"+finetune={name}", *overrides]))


def _flat(cfg) -> dict:
    return {**{f"finetune.{k}": v for k, v in asdict(cfg.finetune).items()}, "seed": cfg.seed,
            "model": cfg.model.name}


def _diff(a, b) -> set[str]:
    fa, fb = _flat(a), _flat(b)
    return {k for k in fa if fa[k] != fb[k]}


def test_each_control_recipe_differs_from_the_finance_twin_only_where_it_must(project_root):
    fin, sst2, seed2 = (_recipe(project_root, n) for n in ("minilm_fin", "minilm_sst2", "minilm_fin_s2"))
    assert fin.finetune == FinetuneConfig() and fin.seed == 0 and fin.model.name == "minilm"  # the defaults
    assert _diff(fin, seed2) == {"finetune.out_name", "seed"} and seed2.seed == 2
    assert seed2.finetune.out_name == "minilm_fin_s2"
    assert _diff(fin, sst2) == {"finetune.out_name", "finetune.task_data", "finetune.mlm_corpus", "finetune.steps_like"}
    assert (sst2.finetune.task_data, sst2.finetune.mlm_corpus, sst2.finetune.steps_like) == ("sst2", "general", "phrasebank")
    # a command-line knob still wins over the recipe file
    assert _recipe(project_root, "minilm_sst2", "finetune.max_steps=3").finetune.max_steps == 3


@pytest.mark.parametrize("knob", ["task_data=imdb", "mlm_corpus=legal", "steps_like=ag_news"])
def test_an_unknown_task_corpus_or_step_reference_is_refused(knob):
    key, value = knob.split("=")
    with pytest.raises(ConfigError, match=f"finetune.{key} must be"):
        FinetuneConfig(**{key: value})


def test_sst2_data_is_binary_in_finberts_ids_and_never_trains_on_dev(data_dir):
    d = build_finetune_data(data_dir, task_data="sst2")
    assert d.classes == SST2_CLASSES == ("positive", "negative") and not d.has_agreement
    assert len(d.test) == 872 and set(d.test.source) == set(d.train.source) == {"sst2"}
    assert not set(d.test.text) & set(d.train.text) and d.train.text.is_unique
    assert set(d.train.label) == set(d.test.label) == {LABELS.index("positive"), LABELS.index("negative")}
    from finsae.data.sst2 import load_sst2

    raw = load_sst2("dev", data_dir)
    first_positive = raw.loc[raw.label == 1, "text"].iloc[0]  # SST-2's 1 is positive: FinBERT's id 0
    assert d.test.loc[d.test.text == first_positive, "label"].iloc[0] == 0
    capped = build_finetune_data(data_dir, task_data="sst2", max_train_examples=100)
    assert len(capped.train) == 100 and capped.classes == SST2_CLASSES and capped.test.equals(d.test)


def test_the_control_trains_the_finance_twins_step_count_not_its_own(data_dir, tmp_path):
    """SST-2 train is ~5x PhraseBank + twitter: with steps_like=phrasebank the control stops at the finance twin's
    count (cycling or cutting its own set), at any batch size and epoch count."""
    fin = Settings(artifacts=tmp_path, data_dir=data_dir, run_dir=tmp_path, model=("tiny", None, None),
                   finetune=FinetuneConfig(), seed=0, eval_start="2015-08-01")
    control = replace(fin, finetune=FinetuneConfig(out_name="c", task_data="sst2", mlm_corpus="general",
                                                   steps_like="phrasebank"))
    from finsae.finetune.run import finetune_data

    fin_data, control_data = finetune_data(fin), finetune_data(control)
    assert len(control_data.train) > 4 * len(fin_data.train)
    # the finance probe fits PhraseBank's whole train split; SST-2's is cut to a comparable size
    assert (fin_data.train.source == "phrasebank").sum() <= FinetuneConfig().probe_max_examples < len(control_data.train)
    steps = classifier_steps(fin, fin_data)
    assert classifier_steps(control, control_data) == steps and 400 < steps < 450  # ~13.4k examples / 32
    own = replace(control, finetune=replace(control.finetune, steps_like=None))
    assert classifier_steps(own, control_data) > 4 * steps  # without steps_like: an epoch of SST-2
    for knobs in ({"batch_size": 64, "epochs": 2}, {"max_steps": 7}, {"max_train_examples": 5000}):
        a = replace(fin, finetune=replace(fin.finetune, **knobs))
        b = replace(control, finetune=replace(control.finetune, **knobs))
        assert classifier_steps(a, finetune_data(a)) == classifier_steps(b, finetune_data(b)), knobs


def test_general_mlm_text_is_train_split_paragraphs_of_wikitext_and_brown(data_dir):
    from finsae.data.corpus import load_corpus

    texts = mlm_texts(data_dir, 500, "2015-08-01", seed=0, corpus="general")
    assert len(texts) == 500 and len(set(texts)) > 490 and min(map(len, texts)) >= 40
    assert mlm_texts(data_dir, 500, "2015-08-01", seed=0, corpus="general") == texts
    assert mlm_texts(data_dir, 500, "2015-08-01", seed=1, corpus="general") != texts
    train = "\n".join(t for n in ("wikitext", "brown") for t in load_corpus(n, data_dir, split="train").texts)
    heldout = "\n".join(t for n in ("wikitext", "brown") for t in load_corpus(n, data_dir, split="heldout").texts)
    assert all(t in train for t in texts) and not any(t in heldout for t in texts)
    assert any(t in load_corpus("wikitext", data_dir, split="train").frame["text"].str.cat(sep="\n") for t in texts)
    assert mlm_texts(data_dir, 50, "2015-08-01", seed=0) == mlm_texts(data_dir, 50, "2015-08-01", seed=0,
                                                                        corpus="financial")


def _sst2_metrics(y, twin, probe) -> FinetuneMetrics:
    none = {f"{p}allagree_{k}": None for p in ("phrasebank_test_", "probe_test_") for k in ("accuracy", "macro_f1")}
    flat = {**classification_metrics(y, twin, "phrasebank_test_", 2), **classification_metrics(y, probe, "probe_test_", 2),
            **none, "phrasebank_test_allagree_n": 0, "probe_test_allagree_n": 0,
            "phrasebank_test_allagree_confusion": [[0, 0], [0, 0]], "probe_test_allagree_confusion": [[0, 0], [0, 0]],
            "base_model": "tiny", "out_name": "tiny_sst2", "train_examples": 64, "train_steps": 3, "mlm_steps": 2,
            "mlm_final_loss": 9.5, "probe_pooling": "mean", "probe_train_examples": 64, "seed": 0, "code_version": "x",
            "seconds": 1.0, "finbert_reported_accuracy_50agree": 0.86, "task_data": "sst2", "mlm_corpus": "general"}
    return FinetuneMetrics.from_dict(flat)


def test_the_sst2_record_goes_through_the_same_contract_without_an_agreement_subset(tmp_path):
    y, twin, probe = np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]), np.array([1, 1, 1, 0])
    m = _sst2_metrics(y, twin, probe)
    m.write(tmp_path)
    m.summary.write(tmp_path)
    back = FinetuneMetrics.read(tmp_path)
    assert back == m and FinetuneSummary.read(tmp_path) == m.summary
    assert back.summary.task_data == "sst2" and back.summary.phrasebank_test_allagree_accuracy is None
    assert back.confusion["phrasebank_test_"] == [[2, 0], [1, 1]]
    t = comparison_table(back.summary, "tiny_sst2", "tiny")
    assert list(t["subset"]) == ["SST-2 dev", "SST-2 dev"] and np.allclose(t["accuracy"], [0.75, 0.75])
    # a finance twin's record written before these fields existed reads as what it is
    old = {k: v for k, v in m.to_dict().items() if k not in ("task_data", "mlm_corpus")}
    legacy = FinetuneMetrics.from_dict(old).summary
    assert (legacy.task_data, legacy.mlm_corpus) == ("phrasebank", "financial")


@pytest.mark.slow
def test_the_sst2_control_runs_end_to_end_on_tiny(data_dir, project_root, tmp_path):
    caps = ["finetune.max_train_examples=64", "finetune.batch_size=16", "finetune.mlm_steps=2",
            "finetune.mlm_batch_size=4", "trainer.progress_bar=false", "model=tiny", "logger=csv",
            f"paths.artifacts={tmp_path}"]
    cmd = [sys.executable, "train.py", "task=finetune", "+finetune=minilm_sst2", "finetune.out_name=tiny_sst2",
           f"hydra.run.dir={tmp_path}/run", *caps]
    r = subprocess.run(cmd, cwd=project_root, capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "models" / "tiny_sst2"
    m = FinetuneMetrics.read(out)
    s = m.summary
    assert (s.task_data, s.mlm_corpus, s.mlm_steps, s.train_examples) == ("sst2", "general", 2, 64)
    assert s.phrasebank_test_n == 872 and np.asarray(m.confusion["phrasebank_test_"]).shape == (2, 2)
    assert np.asarray(m.confusion["phrasebank_test_"]).sum() == 872 and 0 <= s.phrasebank_test_accuracy <= 1
    assert s.phrasebank_test_allagree_n == 0 and s.phrasebank_test_allagree_accuracy is None
    assert s.probe_test_n == 872 and s.probe_train_examples == 64 and s.mlm_final_loss is not None
    # the finance recipe under the same knobs makes as many classifier steps
    fin = Settings(artifacts=tmp_path, data_dir=data_dir, run_dir=tmp_path, model=("tiny", None, None),
                   finetune=FinetuneConfig(max_train_examples=64, batch_size=16, mlm_steps=2, mlm_batch_size=4),
                   seed=0, eval_start="2015-08-01")
    from finsae.finetune.run import finetune_data

    assert s.train_steps == classifier_steps(fin, finetune_data(fin)) == 4
    from finsae.models import get_spec, load_model

    clf = load_model(get_spec("minilm_sst2", path=str(out)), kind="classifier").model  # its own 2-class head
    assert clf.classifier.out_features == 2 and clf.config.id2label == {0: "positive", 1: "negative"}
    recorded = (out / "finetune_config.json").read_text()
    assert '"task_data": "sst2"' in recorded and '"steps_like": "phrasebank"' in recorded
    # an SAE of the SST-2 twin is scored on SST-2's test sentences with its own 2-class head (PhraseBank's
    # labels, 0-2, are out of its head's range), and the causal test, which scores PhraseBank, leaves it out
    from finsae.finetune.summary import head_task
    from finsae.models.patching import sae_downstream_score
    from finsae.sae import SaeConfig, TopKSAE

    spec = get_spec("minilm_sst2", path=str(out))
    assert head_task(tmp_path, spec) == ("sst2", 0)
    assert head_task(tmp_path, get_spec("tiny")) == ("phrasebank", 0)
    sae = TopKSAE(SaeConfig(d_in=clf.config.hidden_size, expansion_factor=2, k=4, seed=0))
    sae.initialized = True
    score = sae_downstream_score(spec, tmp_path, data_dir, 0, sae.eval(), 8, 0.2, 32)
    assert score.task == "sentiment_ce" and np.isfinite(score.clean) and np.isfinite(score.sae)
    import shutil

    from finsae.analysis.causal_layer import layer_inputs
    from finsae.analysis.config import CausalConfig
    from finsae.analysis.saes import PairSaes

    shutil.copytree(out, tmp_path / "models" / "minilm_sst2")  # where the registry's SST-2 twin lives
    assert layer_inputs(PairSaes(tmp_path, "minilm", "minilm_sst2", "t"), None, [0], CausalConfig()) is None


def test_the_probe_subset_is_a_hash_choice_of_at_most_n_rows():
    import pandas as pd

    from finsae.finetune.datasets import hash_subset

    frame = pd.DataFrame({"text": [f"t{i}" for i in range(50)], "label": [i % 2 for i in range(50)]})
    cut = hash_subset(frame, 10, seed=0, salt="probe")
    assert len(cut) == 10 and set(cut.text) <= set(frame.text)
    assert set(hash_subset(frame.iloc[::-1], 10, seed=0, salt="probe").text) == set(cut.text)  # order-free
    assert set(hash_subset(frame, 10, seed=1, salt="probe").text) != set(cut.text)
    assert hash_subset(frame, 50, seed=0) is frame and hash_subset(frame, None, seed=0) is frame


def test_a_second_fine_tune_seed_keeps_the_data_and_changes_the_draws(data_dir, tmp_path):
    """The seed pair measures the fine-tune's own spread: seed 2 holds out, and is scored on, the sentences seed 0
    does (finetune.split_seed); only the split seed moves the split."""
    from finsae.finetune.run import finetune_data

    st = Settings(artifacts=tmp_path, data_dir=data_dir, run_dir=tmp_path, model=("tiny", None, None),
                  finetune=FinetuneConfig(max_train_examples=500), seed=0, eval_start="2015-08-01")
    a, b = finetune_data(st), finetune_data(replace(st, seed=2))
    assert a.test.equals(b.test) and a.train.equals(b.train)
    moved = finetune_data(replace(st, finetune=replace(st.finetune, split_seed=2)))
    assert set(moved.test.text) != set(a.test.text)
