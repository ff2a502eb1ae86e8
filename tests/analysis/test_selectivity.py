"""Selectivity: scipy-exact AUROC/p, planted latents found, BH near its nominal rate under the null."""

import numpy as np
import pytest
from scipy.stats import false_discovery_control

from finsae.analysis.selectivity import RankedScores, contrast, percentile_ci, stratified_weights


def sparse_scores(rng, n, L, p_fire=0.3):
    return np.where(rng.random((n, L)) < p_fire, rng.gamma(2.0, size=(n, L)), 0.0).astype(np.float32)


def test_weighted_ranks_equal_scipy_on_resamples():
    rng = np.random.default_rng(0)
    x = sparse_scores(rng, 400, 12)
    is_pos = rng.random(400) < 0.4
    ranked = RankedScores(x, is_pos)
    for w in [None, *stratified_weights(is_pos, 4, seed=1)]:
        idx = np.arange(400) if w is None else np.repeat(np.arange(400), w.astype(int))
        ref = contrast(x[idx][is_pos[idx]], x[idx][~is_pos[idx]])
        a, p = ranked.auroc_p(w)
        assert np.allclose(a, ref.auroc) and np.allclose(p, ref.p)


def test_planted_financial_latent_is_found_and_its_ci_covers_it():
    rng = np.random.default_rng(2)
    n = 600
    is_pos = np.arange(n) < 300
    x = sparse_scores(rng, n, 50)
    x[is_pos, 7] += rng.gamma(2.0, size=300).astype(np.float32)  # fires harder on financial documents
    c = contrast(x[is_pos], x[~is_pos])
    sel = c.selected(0.05, 0.6)
    assert sel[7] and sel.sum() <= 3
    boot = np.stack([a for a, _ in map(RankedScores(x, is_pos).auroc_p, stratified_weights(is_pos, 100))])
    lo, hi = percentile_ci(boot)
    assert lo[7] < c.auroc[7] < hi[7] and lo[7] > 0.6


def test_bh_keeps_false_positives_near_five_percent_under_shuffled_labels():
    rng = np.random.default_rng(3)
    n, L = 400, 2000
    x = sparse_scores(rng, n, L)
    x[:200, :200] += 1.0  # 200 real effects, then labels shuffled: none left
    is_pos = rng.permutation(np.arange(n) < 200)
    c = contrast(x[is_pos], x[~is_pos])
    assert (c.q <= 0.05).mean() < 0.01  # FDR control under the complete null: almost never a discovery
    per_test = (c.p <= 0.05).mean()
    assert 0.03 < per_test < 0.07  # and the raw p-values are calibrated
    assert np.allclose(c.q, false_discovery_control(c.p, method="bh"))


def test_genre_matched_contrast_rejects_a_style_latent():
    """A latent that fires on every tweet passes the broad contrast (financial text is mostly tweets) but not
    the genre-matched one (AG Business vs other AG news, no tweets on either side)."""
    rng = np.random.default_rng(4)
    fin_tweet = np.r_[np.ones(700, bool), np.zeros(300, bool)]  # broad positives: 70% tweets
    gen_tweet = np.zeros(1000, bool)
    style = lambda tweet: np.where(tweet, rng.gamma(3.0, size=len(tweet)), 0.0)  # noqa: E731
    topic = lambda fin: np.where(fin, rng.gamma(3.0, size=len(fin)), rng.gamma(1.0, size=len(fin)) * (rng.random(len(fin)) < 0.3))  # noqa: E731
    broad_pos = np.stack([style(fin_tweet), topic(np.ones(1000, bool))], 1)
    broad_neg = np.stack([style(gen_tweet), topic(np.zeros(1000, bool))], 1)
    ag_pos = np.stack([style(np.zeros(500, bool)), topic(np.ones(500, bool))], 1)
    ag_neg = np.stack([style(np.zeros(500, bool)), topic(np.zeros(500, bool))], 1)
    broad, genre = contrast(broad_pos, broad_neg), contrast(ag_pos, ag_neg)
    financial = broad.selected() & genre.selected()
    assert broad.selected()[0] and not genre.selected()[0] and not financial[0]
    assert financial[1]


def test_empty_side_is_refused():
    with pytest.raises(ValueError, match="both sides"):
        contrast(np.zeros((0, 3)), np.ones((4, 3)))


def test_document_bootstrap_moves_the_passages_of_one_document_together():
    from finsae.analysis.selectivity import document_weights

    # side 1: doc A (5 passages), B (1), C (2); side 0: D (3), E (1); A appears on one side only
    source = np.array(["A"] * 5 + ["B", "C", "C", "D", "D", "D", "E"])
    is_pos = np.array([True] * 8 + [False] * 4)
    w = document_weights(is_pos, source, n_boot=500, seed=0)
    assert w.shape == (500, 12)
    for doc in "ABCDE":
        cols = np.flatnonzero(source == doc)
        assert (w[:, cols] == w[:, cols[:1]]).all(), doc  # one weight per document in every resample
    # stratified by side: three documents drawn on the positive side, two on the negative, every time
    assert (w[:, [0, 5, 6]].sum(1) == 3).all() and (w[:, [8, 11]].sum(1) == 2).all()
    assert w[:, 0].std() > 0  # and the draws vary
    with pytest.raises(ValueError, match="source ids"):
        document_weights(is_pos, source[:3], 10)


def test_basic_interval_does_not_start_at_the_point_of_an_upward_biased_count():
    from finsae.analysis.selectivity import basic_ci

    boots = np.r_[np.full(5, 7.0), np.linspace(8, 15, 95)]  # a threshold count: resamples mostly above 8
    lo, hi = basic_ci(boots, 8)
    assert lo < 8 < hi and hi <= 9.5
    assert basic_ci(np.array([1.0, 5.0, 9.0]), 1)[0] == 0.0  # never below zero
