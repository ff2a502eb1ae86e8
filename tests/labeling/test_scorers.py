"""The embedding scorer separates a planted keyword latent from a random one, and its shuffled-label control
sits near 0.5; the lexical explainer finds the planted keyword."""

import pytest

from finsae.labeling.cache import AnswerCache
from finsae.labeling.config import LabelConfig
from finsae.labeling.lexical import lexical_label, log_odds_z
from finsae.labeling.pipeline import run_labeling
from finsae.labeling.summary import overall_fields, score_table

from .fixtures import planted_jobs

PLANTED = {0: "dividend", 1: "volcano", 2: "guitar", 3: "penguin", 4: "tomato", 5: "telescope"}
RANDOM = list(range(10, 16))


@pytest.fixture(scope="module")
def labelled(embedder, tmp_path_factory):
    cfg = LabelConfig()
    df, usage = run_labeling(planted_jobs(embedder, cfg, PLANTED, RANDOM), cfg, None, AnswerCache(tmp_path_factory.mktemp("cache")), embedder)
    return df.set_index("latent"), cfg


def test_lexical_label_finds_the_planted_keyword(labelled):
    df, _ = labelled
    for lat, kw in PLANTED.items():
        assert df.loc[lat, "status"] == "labelled"
        assert df.loc[lat, "label"].split(" / ")[0] == kw, df.loc[lat, "label"]


def test_embedding_scorer_separates_planted_from_random_and_control_sits_near_half(labelled):
    df, cfg = labelled
    planted, random_ = df.loc[list(PLANTED)], df.loc[RANDOM]
    assert planted["embedding_auroc"].min() >= 0.9, planted["embedding_auroc"].tolist()
    assert abs(random_["embedding_auroc"].mean() - 0.5) < 0.15, random_["embedding_auroc"].tolist()
    # The shuffled labels come from the other planted (financial) latents only: they share the template's words
    # ("news", "report"), so this control sits above 0.5 -- harder than a random latent's label, as intended.
    assert 0.45 < planted["embedding_auroc_control"].mean() < 0.75, planted["embedding_auroc_control"].tolist()
    table = score_table(df.reset_index(), ["embedding"], 500, 0)
    overall = overall_fields(table)
    assert overall["embedding_auroc"] >= 0.9 and overall["embedding_auroc_diff_lo"] > 0.2
    assert overall["embedding_auroc_beats_control"] == 1.0
    assert abs(overall["embedding_auroc_random"] - 0.5) < 0.15


def test_log_odds_prefers_foreground_specific_terms():
    from collections import Counter

    z = log_odds_z(Counter({"dividend": 10, "the": 10, "said": 2}), Counter({"the": 40, "said": 20, "cat": 5}))
    assert max(z, key=z.get) == "dividend" and z["the"] < z["dividend"] and z["cat"] < 0


def test_lexical_label_with_no_activating_word_is_a_failure_not_a_label():
    from finsae.labeling.examples import Example
    from finsae.labeling.parsing import ParseError

    ex = Example("d", ("a", "b"), (0.0, 0.0), 0.0, "top")
    with pytest.raises(ParseError):
        lexical_label([ex], [])
