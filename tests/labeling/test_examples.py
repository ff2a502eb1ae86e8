"""Context building: stored rows -> examples, marking and the 0-10 scale, quantile spread, hard negatives, and
the explainer/scorer split (disjoint by document)."""

import numpy as np
import pandas as pd

from finsae.analysis.contexts import CONTEXT_COLUMNS
from finsae.labeling.examples import (
    Example,
    examples_of,
    hard_negatives,
    latent_rng,
    split_examples,
    spread_over_quantiles,
)

from .fixtures import latent_rows


def _ex(doc, words, acts, kind="top", rank=0):
    return Example(doc, tuple(words), tuple(acts), max(acts, default=0.0), kind, rank)


def test_examples_of_reads_stored_rows_in_rank_order():
    rows = latent_rows(3, np.random.default_rng(0), "dividend", n_top=4, n_quant=2, n_neg=3)
    df = pd.DataFrame(rows[::-1], columns=list(CONTEXT_COLUMNS))  # stored in any order
    ex = examples_of(df)[3]
    assert [(e.kind, e.rank) for e in ex] == [("negative", 0), ("negative", 1), ("negative", 2), ("quantile", 0),
                                              ("quantile", 1), ("top", 0), ("top", 1), ("top", 2), ("top", 3)]
    top = [e for e in ex if e.kind == "top"]
    assert all(isinstance(w, str) for w in top[0].words) and top[0].max_act >= top[1].max_act


def test_marking_marks_activating_words_only_and_scales_to_ten():
    e = _ex("d", ["Fed", "raises", "rates", "again."], [0.0, 2.0, 4.0, 0.0])
    assert e.marked() == "Fed <<raises>> <<rates>> again."
    assert e.marked(threshold=3.0) == "Fed raises <<rates>> again."
    assert e.text == "Fed raises rates again."
    assert e.activation_scale(4.0) == [("raises", 5), ("rates", 10)]
    assert e.activation_scale(8.0) == [("raises", 3), ("rates", 5)]  # 2.5 rounds up


def test_spread_over_quantiles_covers_low_middle_and_high():
    exs = [_ex(f"d{i}", ["w"], [float(i)], kind="quantile") for i in range(100)]
    picked = spread_over_quantiles(exs[::-1], 5)
    assert [e.max_act for e in picked] == [0.0, 25.0, 50.0, 74.0, 99.0]  # evenly over the ranks, low to high
    assert len(spread_over_quantiles(exs[:3], 10)) == 3
    assert spread_over_quantiles(exs, 0) == []


def test_hard_negatives_are_the_most_similar_non_activating_examples(embedder):
    pos = [_ex(f"p{i}", t.split(), [1.0] + [0.0] * (len(t.split()) - 1)) for i, t in
           enumerate(["The central bank raised interest rates.", "Interest rates rose again this month."])]
    pool = [_ex(f"n{i}", t.split(), [0.0] * len(t.split()), "negative") for i, t in enumerate([
        "The cat slept on the warm sofa.", "Mortgage rates and bank lending climbed.", "A recipe for tomato soup.",
        "The football team won the cup.", "Bond yields rose as the central bank met."])]
    hard = hard_negatives(pos, pool, 2, embedder)
    assert {e.doc_id for e in hard} == {"n1", "n4"}
    assert hard_negatives(pos, pool, 0, embedder) == [] and hard_negatives([], pool, 2, embedder) == []


def test_split_never_shows_the_explainer_a_scored_document(embedder):
    rows = latent_rows(5, np.random.default_rng(1), "merger", n_top=20, n_quant=10, n_neg=30)
    exs = examples_of(pd.DataFrame(rows, columns=list(CONTEXT_COLUMNS)))[5]
    # A document stored as both top and quantile (it happens) must land on one side only.
    dup = next(e for e in exs if e.kind == "top" and e.rank == 1)
    exs.append(Example(dup.doc_id, dup.words, dup.acts, dup.max_act, "quantile", 99))
    split = split_examples(exs, n_explain=10, n_explain_negatives=10, n_score_activating=10,
                           n_score_random_negatives=5, n_score_hard_negatives=5, rng=latent_rng(0, 5), embed=embedder)
    explain = {e.doc_id for e in split.explain} | {e.doc_id for e in split.explain_negatives}
    scored = {e.doc_id for e in split.score_activating} | {e.doc_id for e in split.score_negatives}
    assert not explain & scored
    assert len(split.explain) == 10 and len(split.score_activating) == 10
    assert len(split.score_random_negatives) == 5 and len(split.score_hard_negatives) == 5
    assert {e.kind for e in split.explain} == {"top", "quantile"}  # strong and weaker examples
    assert {e.kind for e in split.score_activating} == {"top", "quantile"}
    assert split.explain[0].kind == "top" and split.explain[0].rank == 0  # the strongest goes to the explainer
    assert all(e.activating for e in split.score_activating) and not any(e.activating for e in split.score_negatives)
    assert split.n_activating == 30
    ids = split.ids()
    assert ids["explain_ids"] == [e.doc_id for e in split.explain]
    # Deterministic per latent; without an embedder every scoring negative is random.
    again = split_examples(exs, n_explain=10, n_explain_negatives=10, n_score_activating=10,
                           n_score_random_negatives=5, n_score_hard_negatives=5, rng=latent_rng(0, 5), embed=embedder)
    assert again == split
    plain = split_examples(exs, n_explain=10, n_explain_negatives=10, n_score_activating=10,
                           n_score_random_negatives=5, n_score_hard_negatives=5, rng=latent_rng(0, 5))
    assert len(plain.score_random_negatives) == 10 and not plain.score_hard_negatives


def test_split_with_few_examples_keeps_sides_disjoint():
    exs = [_ex(f"d{i}", ["a", "bcd"[i]], [1.0, 0.0], "top", i) for i in range(3)]  # distinct texts
    exs += [_ex(f"n{i}", ["xy"[i]], [0.0], "negative", i) for i in range(2)]
    s = split_examples(exs, n_explain=10, n_explain_negatives=10, n_score_activating=10, n_score_random_negatives=5,
                       n_score_hard_negatives=5, rng=latent_rng(0, 1))
    assert [e.doc_id for e in s.explain] == ["d0", "d2"] and [e.doc_id for e in s.score_activating] == ["d1"]
    assert len(s.explain_negatives) == 1 and len(s.score_negatives) == 1


def test_split_keeps_every_passage_of_a_document_and_near_duplicates_on_one_side():
    """Passages ``X#0``, ``X#1`` of one story, and tweets that differ only in a link, a number or case, never
    land on both sides of the explainer/scorer split."""
    from finsae.labeling.examples import near_duplicate_key, source_document, source_groups

    rng = np.random.default_rng(0)
    exs = []
    for d in range(12):  # 12 stories of 3 passages each, strongest passages first across stories
        for j in range(3):
            words = f"story {'abcdefghijkl'[d]} passage {('one', 'two', 'three')[j]} about the dividend".split()
            exs.append(_ex(f"reuters-{d}#{j}", words, [0.0] * 5 + [1.0 + d + j / 10] + [0.0], rank=3 * d + j))
    tweets = ["$AAPL dividend up 3% https://t.co/abc", "$aapl Dividend up 5% https://t.co/xyz",
              "RT @bob: $AAPL dividend up 3%!", "Dividend news: $MSFT raises payout"]
    for k, t in enumerate(tweets):
        exs.append(_ex(f"tw{k}", t.split(), [1.0] * len(t.split()), kind="quantile", rank=k))
    exs += [_ex(f"neg-{d}#{j}", f"story {'mnopqrst'[d - 12]} other passage {'xy'[j]}".split(), [0.0] * 5,
                "negative", 3 * d + j) for d in range(12, 20) for j in range(2)]
    exs.append(_ex("neg-x", "story m other passage x".split(), [0.0] * 5, "negative", 99))  # a copy of neg-12#0
    sides = split_examples(exs, n_explain=40, n_explain_negatives=40, n_score_activating=40,
                           n_score_random_negatives=40, n_score_hard_negatives=0, rng=rng)
    explain = {e.doc_id for e in sides.explain + sides.explain_negatives}
    score = {e.doc_id for e in sides.score_activating + sides.score_negatives}
    assert explain and score and not explain & score
    assert not {source_document(d) for d in explain} & {source_document(d) for d in score}
    # every passage of a story is used, on one side: the split moved whole documents, it did not drop them
    assert {source_document(d) for d in explain | score} >= {f"reuters-{d}" for d in range(12)}
    near = {"tw0", "tw1", "tw2"}
    assert near <= explain or near <= score, (explain, score)
    assert source_document("a#b#12") == "a#b" and source_document("plain") == "plain"
    assert near_duplicate_key(tweets[0]) == near_duplicate_key(tweets[1]) != near_duplicate_key(tweets[3])
    groups = source_groups(exs)
    assert groups["reuters-3#0"] == groups["reuters-3#2"] != groups["reuters-4#0"]
    assert groups["neg-x"] == groups["neg-12#1"] != groups["neg-13#0"]  # a copy joins its original's document
    assert len({groups[f"reuters-{d}#0"] for d in range(12)}) == 12
