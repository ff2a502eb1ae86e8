"""Detection and fuzzing end to end through the openai backend, against a loopback server that answers like a
well-behaved LLM (it labels with the marked word and judges examples by the label's word): own labels score
1.0, shuffled labels 0.5, and a random latent's label does no better than chance."""

import json

import numpy as np
import pytest

from finsae.labeling.cache import AnswerCache
from finsae.labeling.config import LabelConfig
from finsae.labeling.openai_backend import OpenAIBackend
from finsae.labeling.pipeline import LabelingFailed, run_labeling

from .chat_server import ChatServer, Reply, oracle
from .fixtures import planted_jobs

PLANTED = {0: "dividend", 1: "volcano", 2: "guitar"}
RANDOM = [10, 11, 12]


def _run(server, embedder, cache_dir, **over):
    opts = {"scorers": ["embedding", "detection", "fuzzing"], "max_retries": 1, "backoff_s": 0.01, "timeout_s": 5}
    cfg = LabelConfig(backend="openai", model="tiny", base_url=server.url, **{**opts, **over})
    backend = OpenAIBackend(server.url, "tiny", concurrency=4, timeout_s=5, max_retries=1, backoff_s=0.01)
    return run_labeling(planted_jobs(embedder, cfg, PLANTED, RANDOM), cfg, backend, AnswerCache(cache_dir), embedder)


def test_detection_and_fuzzing_score_own_labels_above_shuffled_ones(embedder, tmp_path):
    with ChatServer(oracle) as s:
        df, usage = _run(s, embedder, tmp_path)
    df = df.set_index("latent")
    assert (df["status"] == "labelled").all()
    for lat, kw in PLANTED.items():
        assert df.loc[lat, "label"] == kw
        assert df.loc[lat, "detection_balanced_accuracy"] == 1.0 and df.loc[lat, "detection_f1"] == 1.0
        assert df.loc[lat, "fuzzing_balanced_accuracy"] == 1.0
        assert df.loc[lat, "detection_balanced_accuracy_control"] == 0.5  # another keyword: says "no" to all
        assert df.loc[lat, "fuzzing_balanced_accuracy_control"] == 0.5
    rand = df.loc[RANDOM, "detection_balanced_accuracy"]
    assert rand.max() < 0.8, rand.tolist()  # one marked word of a random sentence explains little
    kinds = [("Sentences where" in r["messages"][1]["content"], "Decide whether the marked words" in r["messages"][0]["content"])
             for r in s.requests]
    n_explain = sum(k[0] for k in kinds)
    n_fuzz = sum(k[1] for k in kinds)
    # own + shuffled for every latent, + the generic label for the 3 targets; 20 detection items: 2 batches
    assert n_explain == 6 and n_fuzz == 12 + 3 and len(s.requests) == 6 + 15 + 24 + 6
    assert usage.requests == len(s.requests) and usage.prompt_tokens == 100 * len(s.requests)
    formats = [r["response_format"]["json_schema"] for r in s.requests]
    assert {f["name"] for f in formats} == {"label", "answers"}
    counts = {f["schema"]["properties"]["answers"]["maxItems"] for f in formats if f["name"] == "answers"}
    assert counts == {10}  # the answer count is pinned to the batch size
    assert (df["prompt_tokens"] > 0).all()


def test_a_failing_scorer_request_gives_nan_not_a_score(embedder, tmp_path):
    def reply(body, n):
        if "Decide whether the marked words" in body["messages"][0]["content"]:
            return Reply(json.dumps({"answers": [1]}))  # wrong count, every time
        return oracle(body, n)

    with ChatServer(reply) as s:
        df, _ = _run(s, embedder, tmp_path, max_failure_share=1.0)  # failures tolerated: the rows are the point
    assert df["fuzzing_balanced_accuracy"].isna().all()
    assert df["fuzzing_error"].str.contains("answers for").all()
    assert np.isfinite(df["detection_balanced_accuracy"]).all()
    with ChatServer(reply) as s, pytest.raises(LabelingFailed, match=r"^15 of 51 LLM answers failed .*answers for"):
        _run(s, embedder, tmp_path / "strict")  # by default, 15 failures of 51 fail the run


@pytest.mark.parametrize("scorers", [["detection"]])
def test_llm_scorers_need_an_llm(scorers):
    from finsae.errors import ConfigError

    with pytest.raises(ConfigError, match="need an LLM but label.backend=lexical"):
        LabelConfig(scorers=scorers)


def test_a_copied_few_shot_label_is_never_a_label(embedder, tmp_path):
    """What Qwen2.5-Coder-1.5B did with the examples in its instructions: answer an example's label verbatim.
    Such an answer is retried, then recorded as a failure; no label equals an example's label."""
    from finsae.labeling.prompts import FEW_SHOT, FEW_SHOT_LABELS

    copy = json.dumps(FEW_SHOT[0][1])

    def reply(body, n):  # copies on the greedy first try, answers on the sampled retry
        if "Sentences where the feature fires" in body["messages"][-1]["content"] and body["temperature"] == 0:
            return Reply(copy.replace('"central', '"Central') if n % 2 else copy)
        return oracle(body, n)

    with ChatServer(reply) as s:
        df, _ = _run(s, embedder, tmp_path, max_failure_share=1.0, scorers=["embedding"])
    labels = df["label"].dropna().str.lower()
    assert not set(labels) & FEW_SHOT_LABELS and len(labels) == len(df)  # every copy retried, then a real label
    assert (df["attempts"] == 2).all()
    with ChatServer(reply) as s:
        df, _ = _run(s, embedder, tmp_path / "no_retry", max_failure_share=1.0, scorers=["embedding"], max_retries=0)
    assert df["label"].isna().all() and df["error"].str.contains("copied the few-shot example's label").all()
