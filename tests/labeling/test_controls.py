"""The controls that do not flatter (issue 22 section 3), on fixtures whose answers are known: the constant
generic label scored on every target, shuffled labels drawn only from financial latents of the same layer, and
the intruder scorer (exact chance level, parsing, and a loopback LLM that finds or misses the intruder)."""

import json
import re

import numpy as np
import pytest

from finsae.labeling.cache import AnswerCache
from finsae.labeling.config import LabelConfig
from finsae.labeling.examples import latent_rng
from finsae.labeling.openai_backend import OpenAIBackend
from finsae.labeling.parsing import ParseError, parse_intruder
from finsae.labeling.pipeline import LatentJob, run_labeling
from finsae.labeling.scorers import intruder_sets, shuffled_partners
from finsae.labeling.summary import overall_fields, score_table

from .chat_server import ChatServer, Reply, oracle, user_text
from .fixtures import planted_jobs

PLANTED = {0: "dividend", 1: "volcano", 2: "guitar", 3: "stock"}
RANDOM = [10, 11, 12]


def finds_the_intruder(body, n):
    """An LLM that knows the planted keywords: the intruder is the sentence without one."""
    if "Find the intruder" not in body["messages"][0]["content"]:
        return oracle(body, n)
    items = re.findall(r"^\d+\. (.*)$", user_text(body), re.MULTILINE)
    plain = [i + 1 for i, t in enumerate(items) if not set(t.lower().split()) & set(PLANTED.values())]
    return Reply(json.dumps({"intruder": plain[0] if len(plain) == 1 else 1}))


def _run(server, embedder, cache_dir, **over):
    cfg = LabelConfig(backend="openai", model="tiny", base_url=server.url, max_retries=1, backoff_s=0.01,
                      scorers=["embedding", "detection", "intruder"], **over)
    backend = OpenAIBackend(server.url, "tiny", concurrency=4, timeout_s=5, max_retries=1, backoff_s=0.01)
    jobs = planted_jobs(embedder, cfg, PLANTED, RANDOM)
    df, usage = run_labeling(jobs, cfg, backend, AnswerCache(cache_dir), embedder)
    return df.set_index("latent"), cfg


def test_generic_label_and_intruder_on_known_answers(embedder, tmp_path):
    with ChatServer(finds_the_intruder) as s:
        df, cfg = _run(s, embedder, tmp_path, intruder_sets=4, intruder_set_size=5)
    targets, controls = df.loc[list(PLANTED)], df.loc[RANDOM]
    # The oracle judges by the label's first word: the generic label ("stock market ...") says yes exactly to the
    # "stock" latent's sentences, so it scores 1.0 there and chance (0.5) on the others; own labels score 1.0.
    assert (targets["detection_balanced_accuracy"] == 1.0).all()
    assert targets.loc[3, "generic_detection_balanced_accuracy"] == 1.0
    assert (targets.loc[[0, 1, 2], "generic_detection_balanced_accuracy"] == 0.5).all()
    assert targets["generic_embedding_auroc"].notna().all() and controls["generic_embedding_auroc"].isna().all()
    generic_asked = [r for r in s.requests if "Explanation: stock market and company news" in user_text(r)]
    assert len(generic_asked) == 2 * len(PLANTED)  # 20 detection items = 2 batches per target, targets only
    # Intruder: found every time on planted latents; chance is exactly 1 / set size.
    assert (targets["intruder_accuracy"] == 1.0).all() and (targets["intruder_sets"] == 4).all()
    np.testing.assert_allclose(df["intruder_accuracy_control"], 0.2, rtol=0, atol=1e-12)
    assert df["explainer"].eq("openai:tiny").all()
    table = score_table(df.reset_index(), list(cfg.scorers), 200, 0)
    overall = overall_fields(table)
    assert overall["detection_balanced_accuracy_generic"] == pytest.approx(0.625, abs=1e-12)  # (1 + 3 x 0.5) / 4
    assert overall["detection_balanced_accuracy_generic_diff"] == pytest.approx(0.375, abs=1e-12)
    lo, hi = overall["detection_balanced_accuracy_generic_diff_lo"], overall["detection_balanced_accuracy_generic_diff_hi"]
    assert 0.0 <= lo <= 0.375 <= hi <= 0.5
    assert overall["intruder_accuracy_control"] == pytest.approx(0.2, abs=1e-12)
    assert overall["intruder_accuracy_diff"] == pytest.approx(0.8, abs=1e-12)
    row = table[(table["model"] == "all") & (table["metric"] == "detection_balanced_accuracy")].iloc[0]
    assert row["beats_generic"] == pytest.approx(0.75, abs=1e-12) and row["n_generic"] == 4


def test_an_intruder_guesser_scores_what_its_guesses_earn(embedder, tmp_path):
    """Always answering 1 scores exactly the share of sets whose intruder sits first."""
    def always_one(body, n):
        if "Find the intruder" in body["messages"][0]["content"]:
            return Reply('{"intruder": 1}')
        return oracle(body, n)

    with ChatServer(always_one) as s:
        df, cfg = _run(s, embedder, tmp_path, intruder_sets=6, intruder_set_size=4, generic_label="")
    jobs = planted_jobs(embedder, cfg, PLANTED, RANDOM)
    for job in jobs:
        sets = intruder_sets(job.examples, latent_rng(cfg.seed, "intruder", job.model, job.layer, job.latent), 6, 4)
        expect = np.mean([truth == 1 for _, truth in sets])
        assert df.loc[job.latent, "intruder_accuracy"] == pytest.approx(expect, abs=1e-12)
    assert df["generic_detection_balanced_accuracy"].isna().all()  # generic_label="" skips the control


def test_intruder_sets_hold_one_non_activating_sentence(embedder):
    cfg = LabelConfig()
    job = planted_jobs(embedder, cfg, {0: "dividend"}, [])[0]
    acts = {e.text for e in job.examples.score_activating}
    negs = {e.text for e in job.examples.score_negatives}
    sets = intruder_sets(job.examples, np.random.default_rng(0), 50, 5)
    assert len(sets) == 50
    for texts, truth in sets:
        assert len(texts) == len(set(texts)) == 5 and texts[truth - 1] in negs
        assert all(t in acts for i, t in enumerate(texts) if i != truth - 1)
    positions = np.bincount([t for _, t in sets], minlength=6)[1:]
    assert positions.min() > 0  # the intruder is not always in one place
    assert intruder_sets(job.examples, np.random.default_rng(0), 3, 30) == []  # too few activating examples


PARSES = [('{"intruder": 3}', 3), ('```json\n{"intruder": 2}\n```', 2), ("[RESPONSE]: 4", 4),
          ("The intruder is sentence 5 because it is about soup.", 5), ("1", 1), ('3}', 3)]


@pytest.mark.parametrize("text, k", PARSES)
def test_intruder_answers_parse(text, k):
    assert parse_intruder(text, 5, '{"intruder": ' if text == "3}" else "") == k


@pytest.mark.parametrize("text", ['{"intruder": 6}', '{"intruder": 0}', "", "I'm sorry, I cannot help with that.",
                                  '{"intruder": "two"}', "no idea"])
def test_bad_intruder_answers_are_parse_errors(text):
    with pytest.raises(ParseError):
        parse_intruder(text, 5)


def test_shuffled_labels_come_from_financial_latents_of_the_same_layer():
    jobs = [LatentJob(m, ly, lat, role, role == "target", False, 30, "x")
            for m in ("a", "b") for ly in (1, 2) for lat, role in enumerate(["target"] * 4 + ["control"] * 4)]
    labelled = list(range(len(jobs)))
    partners = shuffled_partners(jobs, labelled, 5, 0)
    for i, ps in partners.items():
        assert len(ps) == 5 and i not in ps
        assert {(jobs[p].model, jobs[p].layer, jobs[p].role) for p in ps} == {(jobs[i].model, jobs[i].layer,
                                                                                  jobs[i].role)}
    lone = [jobs[0], jobs[4], LatentJob("a", 1, 99, "target", True, False, 30, "x"),
            LatentJob("a", 2, 98, "target", True, False, 30, "x")]
    partners = shuffled_partners(lone, [0, 1, 2, 3], 3, 0)  # targets 0, 2 share a layer; 3 is alone in its layer
    assert set(partners[0]) == {2} and set(partners[3]) <= {0, 2}  # never the control latent 1


def test_selectivity_matched_controls_are_other_topic_latents_closest_in_auroc():
    import pandas as pd

    from finsae.labeling.selection import select_latents

    rows = [{"model": "m", "layer": 1, "latent": i, "financial": i < 2, "n_active_docs": 30,
             "auroc_broad": {0: 0.95, 1: 0.80}.get(i, 0.5),
             "best_category": "ag_other" if i >= 10 else "reuters_earn",
             "best_category_auroc": {10: 0.96, 11: 0.81, 12: 0.70, 13: 0.94}.get(i, 0.99)} for i in [0, 1, 5, 10, 11, 12, 13]]
    chosen = select_latents(pd.DataFrame(rows), "m", 1, [0, 1, 5, 10, 11, 12, 13], None, False, 0, matched=True)
    matched = {c.matched_to: c.latent for c in chosen if c.role == "matched"}
    assert matched == {0: 10, 1: 11}  # 0.95 -> 0.96, 0.80 -> 0.81; latent 5 (reuters_earn) is never a match
    no_cols = pd.DataFrame(rows).drop(columns=["best_category"])
    assert not [c for c in select_latents(no_cols, "m", 1, range(20), None, False, 0, matched=True)
                if c.role == "matched"]


def test_matched_controls_end_to_end_offline(project_root, tmp_path):
    import pandas as pd

    from .fixtures import write_analysis
    from .test_label_stage import label_stage_run

    art = tmp_path / "art"
    folder = write_analysis(art, keywords={0: "dividend", 1: "merger"}, controls=[10, 11, 12, 13])
    feats = pd.read_parquet(folder / "features.parquet")
    feats["best_category"] = np.where(feats["latent"].isin([12, 13]), "ag_other", "reuters_earn")
    feats["best_category_auroc"] = np.where(feats["latent"] == 12, 0.9, 0.6)
    feats.to_parquet(folder / "features.parquet", index=False)
    summary = label_stage_run(project_root, art, tmp_path, "logger=none", "label.control_latents=false")
    labels = pd.read_parquet(art / "labels" / "minilm_fin" / "labels.parquet")
    matched = labels[labels["role"] == "matched"]
    assert set(matched["latent"]) == {12, 13} and len(matched) == 4  # two targets of each model get one each
    t = labels[(labels["role"] == "target") & (labels["status"] == "labelled")].set_index(["model", "latent"])
    m = labels.set_index(["model", "latent"])
    for (model, _), row in t.iterrows():
        own = m.loc[(model, int(row["matched_control_latent"])), "embedding_auroc"]
        assert row["matched_control_embedding_auroc"] == pytest.approx(own, abs=1e-12)
    per_layer = pd.read_csv(art / "labels" / "minilm_fin" / "per_layer.csv")
    assert {"matched_control", "diff_matched", "diff_matched_lo", "diff_matched_hi"} <= set(per_layer.columns)
    assert np.isfinite(summary.embedding_auroc_matched_diff)
