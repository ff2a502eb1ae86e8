"""The kinds of dictionary (finsae.sae.inputs) and the warm start's corrections on planted data: the refit
of the input scale and offset, and the affine-map null that absorbs an affine twin but not a planted new
feature."""

import copy

import numpy as np
import pytest
import torch

from finsae.activations.mapped import MappedArray
from finsae.analysis.affine import fit_affine
from finsae.analysis.warmstart import decoder_drift
from finsae.errors import ConfigError
from finsae.sae import SaeTrainConfig, TopKSAE, evaluate, fit, warm_start
from finsae.sae.inputs import KINDS, kind_name
from finsae.sae.warm_start import refit_input_stats, row_moments

D, N_FEATURES, N = 16, 48, 40_000


def sparse_activations(seed: int = 0):
    """Rows built from a few of ``N_FEATURES`` random unit directions each (a known dictionary); the codes."""
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(N_FEATURES, D))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    codes = rng.exponential(1.0, size=(N, N_FEATURES)) * (rng.random((N, N_FEATURES)) < 3 / N_FEATURES)
    x = codes @ dirs + 0.3 + 0.01 * rng.normal(size=(N, D))
    return x.astype(np.float32), codes


def train_cfg(tokens: int) -> SaeTrainConfig:
    return SaeTrainConfig(expansion_factor=4, k=4, batch_size=256, tokens=tokens, init_sample=4096, lr=4e-3)


def batches(array, seed: int, steps: int, size: int = 256):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        yield torch.from_numpy(np.asarray(array[np.sort(rng.choice(len(array), size, replace=False))],
                                          np.float32))


def fvu(sae, x) -> float:
    return float(evaluate(sae, [torch.from_numpy(np.asarray(x, np.float32))]).fvu)


@pytest.fixture(scope="module")
def base():
    x, codes = sparse_activations()
    cfg = train_cfg(200 * 256)
    sae = TopKSAE(cfg.sae_config(D, seed=0))
    fit(sae, batches(x, 0, cfg.total_steps), cfg, init_sample=torch.from_numpy(x[:4096]))
    return sae, x, codes


def test_refit_sets_the_scale_and_offset_to_the_twins_statistics(base):
    sae, x, _ = base
    rows = np.arange(len(x))
    own = fvu(sae, x)
    scaled = 2.5 * x
    fitted = refit_input_stats(copy.deepcopy(sae), row_moments(scaled, rows), row_moments(x, rows).mean)
    rms = float(np.sqrt((scaled.astype(np.float64) ** 2).sum(1).mean()))
    assert float(fitted.norm_scale) == pytest.approx(1 / rms, rel=1e-6)
    assert fvu(fitted, scaled) == pytest.approx(own, rel=1e-4)  # a global rescaling is no feature change
    shift = np.linspace(-2, 2, D, dtype=np.float32)
    shifted = x + shift
    fitted = refit_input_stats(copy.deepcopy(sae), row_moments(shifted, rows), row_moments(x, rows).mean)
    mean_x, mean_t = x.astype(np.float64).mean(0), shifted.astype(np.float64).mean(0)
    moved = (fitted.b_dec - sae.b_dec).detach().numpy()  # b_dec follows the normalised mean
    np.testing.assert_allclose(moved, mean_t * float(fitted.norm_scale) - mean_x * float(sae.norm_scale),
                               atol=1e-5)
    assert fvu(fitted, shifted) < 0.5 * fvu(sae, shifted)
    assert fvu(fitted, shifted) < 1.2 * own  # near its own (the scale moved with the mean, so not equal)


def continue_on(start: TopKSAE, array, refit_from, seed: int, steps: int = 120) -> TopKSAE:
    """A warm start of ``start`` on ``array``, refitted first against ``refit_from`` (the start's rows)."""
    sae = TopKSAE(copy.deepcopy(start.cfg))
    warm_start(sae, start)
    rows = np.arange(len(array))
    refit_input_stats(sae, row_moments(array, rows), row_moments(refit_from, rows).mean)
    cfg = train_cfg(steps * 256)
    fit(sae, batches(array, seed, steps), cfg)
    return sae


def drift_beyond_null(start, twin, x, seed: int = 1) -> np.ndarray:
    """Per latent: its decoder drift in the domain run minus that in the affine-null run (same batches)."""
    fitted = fit_affine(x, twin, np.arange(0, len(x), 2))  # on every other row: no held-out needed here
    null = continue_on(start, MappedArray(x, fitted, D), x, seed)
    domain = continue_on(start, twin, x, seed)
    return decoder_drift(start, domain) - decoder_drift(start, null)


def test_the_affine_null_absorbs_an_affine_twin_but_not_a_planted_new_feature(base):
    sae, x, codes = base
    rng = np.random.default_rng(5)
    a = np.eye(D) + 0.3 * rng.normal(size=(D, D)) / np.sqrt(D)
    affine_twin = (x @ a + 0.5).astype(np.float32)
    new = rng.normal(size=D)
    new /= np.linalg.norm(new)
    fires = codes[:, 0] > 0  # a new feature of the twin: on where feature 0 is, in a direction of its own
    planted = (affine_twin + 3.0 * fires[:, None] * new).astype(np.float32)
    beyond_affine, beyond_planted = drift_beyond_null(sae, affine_twin, x), drift_beyond_null(sae, planted, x)
    assert np.nanmax(np.abs(beyond_affine)) < 0.01, np.nanmax(np.abs(beyond_affine))
    noise = np.nanmax(np.abs(beyond_affine))
    assert np.nanmax(beyond_planted) > 0.03 and np.nanmax(beyond_planted) > 10 * noise


def test_the_kind_is_chosen_from_the_config_in_one_place():
    assert kind_name("sae", SaeTrainConfig()) == "sae"
    assert kind_name("crosscoder", SaeTrainConfig()) == "crosscoder"
    assert kind_name("sae", SaeTrainConfig(init_from="somewhere")) == "warm_start"
    assert kind_name("sae", SaeTrainConfig(init_from="x", dictionary="affine_null")) == "affine_null"
    assert kind_name("crosscoder", SaeTrainConfig(init_from="x")) == "crosscoder"  # a crosscoder continued
    assert KINDS["crosscoder"].reads_pair and not KINDS["affine_null"].reads_pair
    for task, sae, msg in [("sae", SaeTrainConfig(dictionary="bogus"), "not a kind of dictionary"),
                           ("sae", SaeTrainConfig(dictionary="crosscoder"), "trained by task=crosscoder"),
                           ("sae", SaeTrainConfig(dictionary="affine_null"), "set sae.init_from"),
                           ("sae", SaeTrainConfig(dictionary="sae", init_from="x"), "starts from scratch")]:
        with pytest.raises(ConfigError, match=msg):
            kind_name(task, sae)


def test_the_refit_is_the_arithmetic_of_the_analysis_refit_cross_fvu(base):
    """One correction: the warm start's refit gives the FVU the analysis reports as the refit cross-FVU."""
    from finsae.analysis.controls import cross_fvu_refit

    sae, x, _ = base
    rows = np.arange(0, len(x), 3)
    target = (1.7 * x[:, ::-1] - 0.4).astype(np.float32)  # other activations: permuted, scaled, shifted
    fitted = refit_input_stats(copy.deepcopy(sae), row_moments(target, rows), row_moments(x, rows).mean)
    assert fvu(fitted, target[rows]) == pytest.approx(cross_fvu_refit(sae, target, x, rows), rel=1e-5)
