"""Prompt rendering, the prompt version in every cache key, and the statistics behind scores and controls."""

import json

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from finsae.labeling import pipeline, prompts
from finsae.labeling.cache import AnswerCache, cache_key
from finsae.labeling.config import LabelConfig
from finsae.labeling.examples import Example, LatentExamples
from finsae.labeling.pipeline import LatentJob
from finsae.labeling.scorers import detection_items, fuzzing_items
from finsae.labeling.stats import auroc, balanced_accuracy, derangement, f1, paired_diff_ci, unpaired_diff_ci


def _ex(doc, text, on=(), kind="top"):
    words = text.split()
    acts = tuple(2.0 * (i + 1) if i in on else 0.0 for i in range(len(words)))
    return Example(doc, tuple(words), acts, max(acts, default=0.0), kind)


def test_explainer_prompt_marks_words_shows_scale_and_finance_examples():
    msgs = prompts.explain_messages([_ex("a", "The Fed raised rates today.", on=(2, 3)),
                                     _ex("b", "Rates rose again.", on=(0,))])
    system, user = msgs[0]["content"], msgs[-1]["content"]
    # The worked examples are earlier chat turns, not text in the instructions (a small model copies those).
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "central bank rate decisions" not in system and '"label"' in system and '"description"' in system
    answers = [json.loads(m["content"]) for m in msgs if m["role"] == "assistant"]
    assert {a["label"] for a in answers} == set(prompts.FEW_SHOT_LABELS) and all(a["description"] for a in answers)
    assert "1. The Fed <<raised>> <<rates>> today." in user and "2. <<Rates>> rose again." in user
    assert "activations: raised 8, rates 10" in user and "activations: Rates 3" in user  # 0-10, 10 = max shown
    plain = prompts.explain_messages([_ex("a", "The Fed raised rates today.", on=(2,))], show_activations=False)
    assert not any("activations:" in m["content"] for m in plain)


def test_scorer_prompts_show_the_label_and_hide_or_show_marks():
    det = prompts.detection_messages("rate hikes", "Fires on rate moves.", ["The Fed raised rates.", "A cat."])
    assert "Explanation: rate hikes - Fires on rate moves." in det[1]["content"]
    assert "1. The Fed raised rates.\n2. A cat." in det[1]["content"] and "<<" not in det[1]["content"]
    fuzz = prompts.fuzzing_messages("rate hikes", "", ["The Fed <<raised>> rates."])
    assert "1. The Fed <<raised>> rates." in fuzz[1]["content"] and "Explanation: rate hikes\n" in fuzz[1]["content"]


def _job():
    ex = LatentExamples((_ex("a", "x y", on=(0,)),), (), (_ex("b", "x z", on=(0,)),), (_ex("n", "q r", kind="negative"),),
                        (), 2)
    return LatentJob("minilm", 2, 7, "target", True, False, 30, "minilm/layer_2/default/abc", ex)


def test_prompt_version_backend_model_and_examples_are_in_the_cache_key(monkeypatch):
    cfg = LabelConfig(backend="openai", model="Qwen/Qwen2.5-7B-Instruct")
    key = pipeline._explain_key(cfg, _job())
    assert key == pipeline._explain_key(cfg, _job())
    monkeypatch.setattr(pipeline, "PROMPT_VERSION", "explain-v999")
    assert pipeline._explain_key(cfg, _job()) != key
    monkeypatch.undo()
    assert pipeline._explain_key(LabelConfig(backend="openai", model="other"), _job()) != key
    assert pipeline._explain_key(LabelConfig(backend="hf", model="Qwen/Qwen2.5-7B-Instruct"), _job()) != key
    other = _job()
    other.sae_id = "minilm/layer_2/default/def"  # retrained SAE
    assert pipeline._explain_key(cfg, other) != key
    assert cache_key(a=1, b=[1, 2]) == cache_key(b=[1, 2], a=1)


def test_cache_round_trip_and_a_torn_file_is_a_miss(tmp_path):
    cache = AnswerCache(tmp_path)
    key = cache_key(x=1)
    assert cache.get(key) is None
    cache.put(key, {"ok": True, "value": {"label": "a"}})
    assert cache.get(key)["value"] == {"label": "a"} and cache.hits == 1 and len(cache) == 1
    (tmp_path / key[:2] / f"{key}.json").write_text('{"ok": tr')  # as if cut off
    assert cache.get(key) is None


def test_detection_and_fuzzing_items():
    acts = tuple(_ex(f"p{i}", f"w{i} alpha beta gamma delta", on=(0,)) for i in range(10))
    negs = tuple(_ex(f"n{i}", f"v{i} alpha beta", kind="negative") for i in range(6))
    ex = LatentExamples((), (), acts, negs[:3], negs[3:], 16)
    texts, truth = detection_items(ex, np.random.default_rng(0))
    assert sorted(truth) == [0] * 6 + [1] * 10 and "<<" not in " ".join(texts)
    assert {t for t, y in zip(texts, truth, strict=True) if y} == {e.text for e in acts}
    marked, truth = fuzzing_items(ex, np.random.default_rng(0))
    assert sum(truth) == 5 and len(truth) == 10  # half the examples carry decoy marks
    for t, y in zip(marked, truth, strict=True):
        first = t.split()[0]
        assert (first.startswith("<<") and first.endswith(">>")) == bool(y)  # true marks are on the firing word
        assert t.count("<<") == 1  # a decoy marks as many words as really fire


def test_auroc_and_balanced_accuracy_match_sklearn():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 40), rng.normal(0, 1, 30)
    y = np.r_[np.ones(40), np.zeros(30)]
    assert auroc(pos, neg) == pytest.approx(roc_auc_score(y, np.r_[pos, neg]))
    assert auroc([1, 1], [1]) == 0.5 and np.isnan(auroc([], [1]))
    truth, pred = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
    assert balanced_accuracy(truth, pred) == pytest.approx(balanced_accuracy_score(truth, pred))
    assert f1([1, 1, 0, 0], [1, 0, 1, 0]) == 0.5 and np.isnan(balanced_accuracy([1, 1], [1, 0]))


def test_derangement_has_no_fixed_point_and_bootstrap_ci_covers_the_difference():
    rng = np.random.default_rng(0)
    for n in (2, 3, 10):
        for _ in range(20):
            assert not (derangement(n, rng) == np.arange(n)).any()
    with pytest.raises(ValueError):
        derangement(1, rng)
    score = rng.normal(0.8, 0.1, 200)
    d = paired_diff_ci(score, score - 0.2 + rng.normal(0, 0.05, 200), 500, rng)
    assert d.lo < 0.2 < d.hi and d.hi - d.lo < 0.05 and d.beats > 0.95 and d.n == 200
    same = paired_diff_ci(score, score + rng.normal(0, 0.1, 200), 500, rng)
    assert same.lo < 0 < same.hi
    assert paired_diff_ci([np.nan], [0.5], 10, rng).n == 0
    u = unpaired_diff_ci(rng.normal(0.9, 0.1, 50), rng.normal(0.5, 0.1, 40), 500, rng)
    assert u.lo < 0.4 < u.hi
