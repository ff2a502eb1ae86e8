"""Decoder matching: recovers a planted permutation, sparse == exact on small cases, controls at chance."""

import numpy as np
import pytest
import torch

from finsae.analysis.matching import (
    _dense_assignment,
    covariance_rows,
    index_cosine,
    match_decoders,
    max_matching_at,
    overlap,
    overlap_curve,
    random_unit_rows,
    sparse_assignment,
    unit_rows,
)
from finsae.errors import ConfigError


def noisy_permuted(n=300, d=48, noise=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = unit_rows(torch.randn(n, d, generator=g))
    perm = torch.randperm(n, generator=g)
    b = unit_rows(a[perm] + noise / np.sqrt(d) * torch.randn(n, d, generator=g))
    return a, b, perm.numpy()


@pytest.mark.parametrize("dense_max", [10**9, 0])
def test_recovers_a_known_permutation_under_noise(dense_max):
    a, b, perm = noisy_permuted()
    m = match_decoders(a, b, dense_max=dense_max, chunk=64)
    truth = np.argsort(perm)  # a latent i sits at row truth[i] of b
    assert m.solver == ("dense" if dense_max else "sparse")
    assert (m.one_to_one == truth).mean() > 0.99
    assert (m.best_ab == truth).mean() > 0.99 and m.mutual.mean() > 0.99
    assert overlap(m.one_to_one_cos, 0.7) > 0.95
    # the same dictionaries compared index by index (the write-up's method) share nothing
    assert (index_cosine(a, b) >= 0.7).mean() < 0.02


def test_sparse_assignment_equals_the_exact_one_on_small_cases():
    rng = np.random.default_rng(1)
    for trial in range(20):
        n_a, n_b = rng.integers(3, 12), rng.integers(3, 12)
        cos = rng.uniform(-0.5, 1.0, (n_a, n_b))
        r, c = np.nonzero(np.ones_like(cos))
        idx_s, cos_s = sparse_assignment(r, c, cos[r, c], n_a, n_b)
        idx_d, cos_d = _dense_assignment(cos)
        assert cos_s.sum() == pytest.approx(cos_d.sum(), abs=1e-6), trial
        # a valid matching: every partner used once, cosines read from the matrix
        used = idx_s[idx_s >= 0]
        assert len(set(used.tolist())) == len(used)
        assert np.allclose(cos_s[idx_s >= 0], cos[np.flatnonzero(idx_s >= 0), used])


def test_sparse_and_dense_solvers_agree_on_real_sized_dictionaries():
    a, b, _ = noisy_permuted(n=400, d=32, noise=1.5, seed=3)  # heavy noise: many near-ties
    dense = match_decoders(a, b)
    sparse = match_decoders(a, b, dense_max=0, candidates=400)  # every edge a candidate
    assert sparse.one_to_one_cos.sum() == pytest.approx(dense.one_to_one_cos.sum(), rel=1e-5)
    few = match_decoders(a, b, dense_max=0, candidates=8)  # the default-style sparse graph
    assert few.one_to_one_cos.sum() <= dense.one_to_one_cos.sum() + 1e-4
    assert abs(overlap(few.one_to_one_cos, 0.5) - overlap(dense.one_to_one_cos, 0.5)) < 0.02


def test_random_baselines_sit_at_chance():
    a = random_unit_rows(512, 64, seed=0)
    b = random_unit_rows(512, 64, seed=1)
    m = match_decoders(a, b)
    assert overlap(m.one_to_one_cos, 0.7) == 0.0
    # chance level of the best match of one random direction among 512 in 64 dims: ~0.4, never 0.7
    assert 0.3 < np.median(m.best_ab_cos) < 0.55
    assert (index_cosine(a, b) >= 0.3).mean() < 0.02
    curve = overlap_curve(m.one_to_one_cos)
    assert np.all(np.diff(curve) <= 0)


def test_different_widths_are_refused():
    with pytest.raises(ConfigError, match="different widths"):
        match_decoders(torch.randn(4, 8), torch.randn(4, 16))


def test_max_cardinality_count_can_exceed_the_summed_cosine_assignment():
    """a0-b0 at 0.75 against a0-b1 and a1-b0 at 0.65: the summed cosine takes the two 0.65 pairs (1.3 > 0.75 + 0.1)
    and so has no pair at tau = 0.7, while one pair at 0.75 exists."""
    gram = np.array([[1.0, 0.4, 0.75, 0.65],   # a0
                     [0.4, 1.0, 0.65, 0.10],   # a1
                     [0.75, 0.65, 1.0, 0.4],   # b0
                     [0.65, 0.10, 0.4, 1.0]])  # b1
    v = torch.from_numpy(np.linalg.cholesky(gram)).float()  # rows with exactly these cosines
    a, b = v[:2], v[2:]
    m = match_decoders(a, b)
    assert m.one_to_one.tolist() == [1, 0] and (m.one_to_one_cos >= 0.7).sum() == 0
    assert max_matching_at(a, b, 0.7) == 1
    assert max_matching_at(a, b, 0.6) == 2 and max_matching_at(a, b, 0.8) == 0


def test_anisotropic_null_is_above_zero_on_anisotropic_data():
    rng = np.random.default_rng(0)
    d = 64
    scale = np.ones(d)
    scale[0] = 40.0  # one dominant direction, as in transformer activations
    x = rng.standard_normal((4000, d)) * scale
    e0 = torch.zeros(d)
    e0[0] = 1
    sign = torch.where(torch.arange(64) % 2 == 0, 1.0, -1.0)[:, None]
    dictionary = unit_rows(sign * e0 + 0.1 * torch.randn(64, d, generator=torch.Generator().manual_seed(1)))
    dictionary = torch.cat([dictionary, random_unit_rows(64, d, seed=2)])
    null = covariance_rows(x, 128, seed=3)
    assert null.shape == (128, d) and torch.allclose(null.norm(dim=1), torch.ones(128), atol=1e-5)
    assert overlap(match_decoders(null, dictionary).one_to_one_cos, 0.7) > 0.2
    assert overlap(match_decoders(random_unit_rows(128, d, seed=4), dictionary).one_to_one_cos, 0.7) == 0.0
    with pytest.raises(ConfigError, match="covariance_rows needs"):
        covariance_rows(x[:1], 4)
