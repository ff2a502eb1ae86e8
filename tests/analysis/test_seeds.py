"""The hierarchical bootstrap over (seed, document) on planted truth: its spread against the two-stage
variance formula, one seed against the plain document bootstrap (scipy), coverage of the population mean
when seeds differ (where holding the seeds fixed fails), and the no-power verdict."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from finsae.analysis.seeds import (
    SEED_COLUMNS,
    SeedBootstrapConfig,
    hierarchical_bootstrap,
    hierarchical_sum,
    power_check,
    replicate_estimate,
    seed_table,
)
from finsae.errors import ConfigError


def _seeds(rng, n_seeds: int, n_docs: int, seed_sd: float, mu: float = 2.0) -> np.ndarray:
    """[n_seeds, n_docs] contributions: a per-seed offset drawn with SD ``seed_sd`` plus document noise."""
    return mu + seed_sd * rng.normal(size=(n_seeds, 1)) + rng.normal(size=(n_seeds, n_docs))


def _width(e) -> float:
    return e.hi - e.lo


def _coverage(mu: float, cfg: SeedBootstrapConfig, n_sim: int, draw, estimate) -> tuple[float, float]:
    """How often the interval of ``estimate(draw(), cfg)`` covers the population mean ``mu`` over ``n_sim``
    planted draws: with the seeds resampled (``cfg``), and with them held fixed."""
    fixed = replace(cfg, resample_seeds=False)
    covered = np.zeros(2)
    for _ in range(n_sim):
        data = draw()
        covered += [e.lo <= mu <= e.hi for e in (estimate(data, cfg), estimate(data, fixed))]
    return covered[0] / n_sim, covered[1] / n_sim


def test_bootstrap_spread_matches_the_two_stage_variance():
    rng = np.random.default_rng(0)
    c = _seeds(rng, 4, 40, seed_sd=3.0)
    cfg = SeedBootstrapConfig(n_boot=4000, seed=1)
    est = hierarchical_sum(c, cfg)
    totals = c.sum(1)
    assert est.value == pytest.approx(totals.mean()) and est.seed_sd == pytest.approx(totals.std(ddof=1))
    np.testing.assert_allclose(est.per_seed, totals)
    # a slot's variance: the seeds' spread (ddof 0) plus the mean document variance of a sum (n·σ², ddof 0)
    slot_var = totals.var() + (c.shape[1] * c.var(1)).mean()
    expected = 2 * stats.norm.ppf(0.975) * np.sqrt(slot_var / len(c))
    assert _width(est) == pytest.approx(expected, rel=0.1)
    assert est.lo < est.value < est.hi


def test_one_seed_is_the_plain_document_bootstrap():
    rng = np.random.default_rng(2)
    docs = rng.exponential(size=60)
    cfg = SeedBootstrapConfig(n_boot=4000, seed=3)
    est = hierarchical_sum([docs], cfg, mean=True)
    ref = stats.bootstrap((docs,), np.mean, n_resamples=4000, method="percentile", random_state=4)
    assert est.value == pytest.approx(docs.mean()) and np.isnan(est.seed_sd) and est.power
    assert est.lo == pytest.approx(ref.confidence_interval.low, abs=0.15 * _width(est))
    assert est.hi == pytest.approx(ref.confidence_interval.high, abs=0.15 * _width(est))
    for other in (replace(cfg, documents="shared"), replace(cfg, resample_seeds=False)):
        again = hierarchical_sum([docs], other, mean=True)
        assert (again.lo, again.hi) == (est.lo, est.hi)  # one seed: the same document draws in every mode


def test_shared_documents_with_identical_seeds_equal_one_seed():
    docs = np.random.default_rng(5).normal(size=30)
    cfg = SeedBootstrapConfig(n_boot=500, seed=6, documents="shared")
    one, three = hierarchical_sum([docs], cfg), hierarchical_sum([docs] * 3, cfg)
    assert (three.lo, three.hi) == pytest.approx((one.lo, one.hi), abs=1e-9)
    assert three.seed_sd == pytest.approx(0.0, abs=1e-12)
    # drawn afresh per seed, the documents of identical copies average out: a narrower interval
    within = hierarchical_sum([docs] * 3, replace(cfg, documents="within_seed"))
    assert _width(within) < 0.75 * _width(one)


def test_interval_widens_with_the_seed_spread():
    widths = []
    for seed_sd in (0.0, 1.0, 4.0):
        c = _seeds(np.random.default_rng(7), 5, 30, seed_sd)  # the same document noise, larger seed offsets
        widths.append(_width(hierarchical_sum(c, SeedBootstrapConfig(n_boot=800, seed=8), mean=True)))
    assert widths[0] < widths[1] < widths[2] and widths[2] > 3 * widths[0]


def test_covers_the_population_mean_where_fixed_seeds_do_not():
    rng, mu = np.random.default_rng(9), 2.0
    covered, covered_fixed = _coverage(mu, SeedBootstrapConfig(n_boot=300, seed=10), 120,
                                       lambda: _seeds(rng, 5, 25, seed_sd=1.0, mu=mu),
                                       lambda c, cfg: hierarchical_sum(c, cfg, mean=True))
    # 5 seeds: the percentile bootstrap undercovers a little (factor (S-1)/S on the variance), not badly;
    # the document-only interval, blind to a seed SD 5x its own SE, misses most of the time
    assert covered > 0.75
    assert covered_fixed < 0.45


def test_saturated_floor_has_no_power_and_never_reads_zero():
    rng = np.random.default_rng(11)
    n_financial = np.array([35, 35, 32])
    # per seed: each financial latent's unmatched indicator, credited to the documents that made it financial
    owner = [rng.integers(0, 40, n) for n in n_financial]

    def unmatched_floor(seed, weights):
        # a latent counts while one of its documents is drawn; every one of them is unmatched in the other SAE
        return (weights[:, owner[seed]] > 0).sum(1).astype(float)

    est = hierarchical_bootstrap(unmatched_floor, [40, 40, 40], SeedBootstrapConfig(n_boot=200),
                                 upper=n_financial)
    assert not est.power and "saturated" in est.reason and "upper" in est.reason
    assert est.text().startswith("no power (") and "0" not in est.text().split("(")[0]
    row = seed_table({"floor": est}).iloc[0]
    assert not row.power and row.reason == est.reason
    # one seed below its bound: the floor can move, and the test has power
    fewer = n_financial + np.array([0, 0, 3])
    assert hierarchical_bootstrap(unmatched_floor, [40, 40, 40], SeedBootstrapConfig(n_boot=200),
                                  upper=fewer).power


def test_power_check_flags_undefined_and_fixed_statistics():
    assert not power_check(np.array([1.0, np.nan]), np.ones(10)).power
    fixed = power_check(np.zeros(3), np.zeros(50))
    assert not fixed.power and "every resample" in fixed.reason
    est = hierarchical_sum([np.zeros(10)] * 3, SeedBootstrapConfig(n_boot=50))
    assert not est.power and est.text().startswith("no power")
    assert power_check(np.array([0.0, 1.0]), np.array([0.0, 0.5, 1.0]), lower=0, upper=5).power


def test_table_and_text_of_an_estimate():
    c = _seeds(np.random.default_rng(12), 3, 20, seed_sd=1.0)
    est = hierarchical_sum(c, SeedBootstrapConfig(n_boot=200))
    table = seed_table({"financial latents": est, "overlap": est})
    assert list(table.columns) == list(SEED_COLUMNS) and len(table) == 2
    assert table.n_seeds.tolist() == [3, 3] and table.n_docs.tolist() == [20, 20]
    assert est.text().endswith("(3 seeds)") and " ± " in est.text()


def test_bad_inputs_are_refused():
    with pytest.raises(ConfigError, match="n_boot"):
        SeedBootstrapConfig(n_boot=1)
    with pytest.raises(ConfigError, match="documents"):
        SeedBootstrapConfig(documents="crossed")
    with pytest.raises(ConfigError, match="at least one document"):
        hierarchical_bootstrap(lambda s, w: w.sum(1), [5, 0])
    with pytest.raises(ConfigError, match="same documents"):
        hierarchical_bootstrap(lambda s, w: w.sum(1), [5, 6], SeedBootstrapConfig(documents="shared"))
    with pytest.raises(ConfigError, match="one value per row"):
        hierarchical_bootstrap(lambda s, w: w.sum(), [5, 5])
    with pytest.raises(ConfigError, match="1-d"):
        hierarchical_sum([np.ones((2, 2))])
    with pytest.raises(ConfigError, match="bound"):
        hierarchical_sum([np.ones(4)], upper=np.nan)


def _replicates(rng, values: np.ndarray, doc_sd: float, n_rep: int = 100) -> np.ndarray:
    """[n_seeds, n_rep] document replicates of per-seed values: one shared document draw moves every seed
    alike (the analysis scores every SAE of a layer under the same weights), plus a little seed-specific
    noise."""
    shared = doc_sd * rng.normal(size=n_rep)
    return values[:, None] + shared[None] + 0.2 * doc_sd * rng.normal(size=(len(values), n_rep))


def test_replicates_of_seeds_that_disagree_give_their_spread():
    """Planted: three seeds at 30, 40 and 50 (seed SD 10), documents moving each by SD 2."""
    rng = np.random.default_rng(13)
    values = np.array([30.0, 40.0, 50.0])
    reps = _replicates(rng, values, doc_sd=2.0)
    cfg = SeedBootstrapConfig(n_boot=2000, seed=14, documents="shared")
    est = replicate_estimate(values, reps, cfg, n_docs=500)
    assert est.value == pytest.approx(40.0) and est.seed_sd == pytest.approx(10.0)
    assert est.n_seeds == 3 and est.power and est.n_docs == (500, 500, 500)
    # the seed term dominates: the interval spans most of the planted spread, far beyond the documents' own
    assert est.lo < 34 and est.hi > 46
    fixed = replicate_estimate(values, reps, replace(cfg, resample_seeds=False))
    assert fixed.lo > 35 and fixed.hi < 45 and _width(est) > 2 * _width(fixed)
    assert est.text().endswith("(3 seeds)") and " ± 10.0 " in est.text()


def test_replicates_cover_the_population_mean_where_fixed_seeds_do_not():
    rng, mu = np.random.default_rng(15), 40.0

    def draw():
        values = mu + 5.0 * rng.normal(size=5)
        return values, _replicates(rng, values, doc_sd=0.3, n_rep=50)  # seed SD 5: the term that dominates

    covered, covered_fixed = _coverage(mu, SeedBootstrapConfig(n_boot=300, seed=16, documents="shared"), 150,
                                       draw, lambda data, cfg: replicate_estimate(*data, cfg))
    assert covered > 0.75
    assert covered_fixed < 0.45


def test_replicates_basic_interval_and_statistics_without_documents():
    rng = np.random.default_rng(17)
    values = np.array([20.0, 22.0, 21.0])
    # a threshold count: its resamples lean upward
    reps = values[:, None] + np.abs(rng.normal(0, 3, size=(3, 80)))
    cfg = SeedBootstrapConfig(n_boot=500, seed=18)
    pct, basic = replicate_estimate(values, reps, cfg), replicate_estimate(values, reps, cfg, basic=True)
    assert basic.lo == pytest.approx(2 * pct.value - pct.hi)
    assert basic.hi == pytest.approx(2 * pct.value - pct.lo)
    assert pct.lo > values.min() - 1 and basic.lo < pct.lo  # the percentile interval starts near the point
    # an overlap of two decoders has no document term: only the seeds move it
    ov = replicate_estimate([0.15, 0.16, 0.14], None, cfg)
    assert ov.power and 0.14 <= ov.lo < ov.hi <= 0.16 and ov.seed_sd == pytest.approx(0.01)
    # one seed of it is a measurement without an interval, not a test without power
    one = replicate_estimate([0.15], None, cfg)
    assert one.power and np.isnan(one.lo) and one.text() == "0.1 (1 seed, no interval)"


def test_replicates_of_a_saturated_floor_say_no_power_never_zero():
    """Every financial latent of each seed repeat unmatched in both SAEs: the floor at its upper bound."""
    n_financial = np.array([35.0, 32.0])
    reps = n_financial[:, None] - np.random.default_rng(19).integers(0, 3, size=(2, 60))
    est = replicate_estimate(n_financial, reps, SeedBootstrapConfig(n_boot=200), lower=0, upper=n_financial,
                             basic=True)
    assert not est.power and "saturated" in est.reason and est.text().startswith("no power (")
    excess = replicate_estimate([0.0, 0.0], np.zeros((2, 60)), SeedBootstrapConfig(n_boot=200),
                                upper=[0.0, 0.0])
    assert not excess.power and excess.text().startswith("no power")
    assert replicate_estimate(n_financial - [0, 4], reps, upper=n_financial).power


def test_replicates_refuse_bad_shapes():
    with pytest.raises(ConfigError, match="non-empty"):
        replicate_estimate([])
    with pytest.raises(ConfigError, match="document replicates"):
        replicate_estimate([1.0, 2.0], np.ones((3, 4)))
