"""The independent SAEs at every seed on planted truth: seeds that differ in their financial latents give that
spread as the seed SD and inside the hierarchical interval; a floor at which every financial latent is
unmatched in both SAEs says "no power"; the layer job turns the samples into ``*_seed_*`` columns and
``n_seeds``."""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch
from planted import planted_docs, tied_sae

from finsae.analysis.config import AnalysisConfig
from finsae.analysis.layers import rerun_at_seeds
from finsae.analysis.methods.base import DiffingMethod, LayerData, MethodResult, RowFields
from finsae.analysis.rows import LayerRow
from finsae.analysis.saes import PairSaes
from finsae.analysis.heldout import BROAD, GENRE
from finsae.analysis.seed_repeats import (
    PER_REPEAT,
    PER_SEED,
    FinancialCount,
    SeedRepeatInputs,
    SeedSaes,
    counts_from_layer_scores,
    financial_count,
    seed_samples,
)
from finsae.analysis.seeds import ESTIMATE_COLUMNS, SeedBootstrapConfig
from finsae.analysis.selectivity import contrast_weights
from finsae.analysis.summary import AnalysisSummary
from finsae.sae import TopKSAE

D, M, K = 32, 64, 8
N_DOCS, PER_DOC = 800, 6
CFG = AnalysisConfig(n_boot=20)
BOOT = SeedBootstrapConfig(n_boot=2000, documents="shared")
BASIS = torch.linalg.qr(torch.randn(D, D, generator=torch.Generator().manual_seed(0)))[0].T
"""Rows: an orthonormal basis; rows 0-5 are the financial directions, the rest their complement."""


def sae_with(financial: list[int], seed: int) -> TopKSAE:
    """An SAE whose first latents are the financial directions ``financial`` and whose others are random
    directions orthogonal to every financial one (they fire alike on every document: never financial)."""
    g = torch.Generator().manual_seed(100 + seed)
    other = torch.randn(M - len(financial), D - 6, generator=g) @ BASIS[6:]
    return tied_sae(torch.nn.functional.normalize(torch.cat([BASIS[financial], other]), dim=1), K, seed)


@pytest.fixture(scope="module")
def held_and_acts():
    docs = planted_docs(N_DOCS, PER_DOC)
    x = np.random.default_rng(0).standard_normal((len(docs.doc_of_row), D)).astype(np.float32) * 0.3
    x[docs.financial_row] += BASIS[:6].sum(0).numpy()  # every financial direction fires on financial text
    return docs.held, docs.doc_of_row, x.astype(np.float16)


def inputs(held_and_acts, base: list[list[int]], domain: list[list[int]]) -> SeedRepeatInputs:
    held, doc_of_row, x = held_and_acts
    seeds = [SeedSaes("t" if s == 0 else f"t_seed{s}", sae_with(b, 2 * s), sae_with(d, 2 * s + 1))
             for s, (b, d) in enumerate(zip(base, domain, strict=True))]
    return SeedRepeatInputs(seeds, x, x, doc_of_row, held)


def test_seeds_that_differ_give_their_spread(held_and_acts):
    """Planted: the twin's SAE finds 2, 4 and 6 of the financial directions at seeds 0, 1, 2 (seed SD 2); the
    base's finds direction 0 at every seed. Repeats: 3 and 5 unmatched in base seed 0, 2 and 4 in twin seed
    0."""
    inp = inputs(held_and_acts, [[0]] * 3, [[0, 1], [0, 1, 2, 3], [0, 1, 2, 3, 4, 5]])
    samples = seed_samples(inp, CFG)
    assert set(samples) == set(PER_SEED) | set(PER_REPEAT)
    est = {k: s.estimate(BOOT) for k, s in samples.items()}
    fin = est["n_financial"]
    np.testing.assert_array_equal(fin.per_seed, [2, 4, 6])
    assert fin.value == pytest.approx(4) and fin.seed_sd == pytest.approx(2) and fin.power
    assert 2 <= fin.lo < 3.5 and 4.5 < fin.hi <= 6  # the interval holds the planted spread, not a point
    assert samples["n_financial"].doc_replicates.shape == (3, CFG.n_boot)
    assert est["n_financial_base"].seed_sd == pytest.approx(0) and est["n_financial_base"].value == 1
    np.testing.assert_array_equal(est["n_specialized_repeat"].per_seed, [3, 5])
    np.testing.assert_array_equal(est["n_specialized_seed_floor"].per_seed, [2, 4])
    over = est["n_specialized_over_floor"]
    assert over.value == pytest.approx(1) and over.seed_sd == pytest.approx(0) and over.power
    assert est["n_specialized_seed_floor"].power and est["n_specialized_seed_floor"].n_seeds == 2
    # the other latents are independent random directions: the SAEs share (almost) none
    for name in ("overlap", "overlap_cross_seed", "overlap_seed_ceiling_base", "overlap_seed_ceiling_domain"):
        assert est[name].value < 0.1 and samples[name].doc_replicates is None  # decoders only: no documents


def test_counts_already_made_are_taken_as_given(held_and_acts):
    """Known financial counts (the layer comparison's seed-0 and seed-1 SAEs) are used, not made again."""
    inp = inputs(held_and_acts, [[0]] * 2, [[0, 1], [0, 1, 2, 3]])
    made = seed_samples(inp, CFG)
    weights = (contrast_weights(inp.heldout, BROAD, CFG.n_boot, CFG.seed),
               contrast_weights(inp.heldout, GENRE, CFG.n_boot, CFG.seed + 1))
    seed0 = financial_count(inp.seeds[0].domain, inp.domain_acts, inp, CFG, weights)
    given = seed_samples(inp, CFG, known={("domain", 0): seed0})
    for name, sample in made.items():
        np.testing.assert_array_equal(given[name].per_seed, sample.per_seed)
    planted = FinancialCount(np.zeros(M, bool), np.zeros((CFG.n_boot, M), bool))  # as if seed 0 had none
    assert seed_samples(inp, CFG, known={("domain", 0): planted})["n_financial"].per_seed.tolist() == [0, 4]


def test_the_comparisons_document_scores_give_the_counts_the_seeds_would_make(held_and_acts):
    """The independent method hands seed_samples the counts of the SAEs the layer comparison scored (seed 0
    and the first repeat, found by its tag), computed from those scores: the samples are the same as when
    every SAE is encoded again."""
    from finsae.analysis.doc_scores import doc_scores, encode_rows

    held, doc_of_row, x = held_and_acts
    inp = inputs(held_and_acts, [[0], [0], [0]], [[0, 1], [0, 1, 2, 3], [0, 1, 2, 3, 4, 5]])

    def scored(sae):
        return doc_scores(encode_rows(sae, x), doc_of_row, len(held.corpus.frame))

    first, repeat = inp.seeds[0], inp.seeds[1]
    scores = {"base": scored(first.base), "domain": scored(first.domain), "base_seed": scored(repeat.base),
              "domain_seed": scored(repeat.domain)}
    known = counts_from_layer_scores(scores, inp, "t_seed1", CFG)
    assert set(known) == {("base", 0), ("domain", 0), ("base", 1), ("domain", 1)}
    fresh, reused = seed_samples(inp, CFG), seed_samples(inp, CFG, known=known)
    assert fresh.keys() == reused.keys()
    for name, sample in fresh.items():
        np.testing.assert_array_equal(reused[name].per_seed, sample.per_seed)
        if sample.doc_replicates is not None:
            np.testing.assert_array_equal(reused[name].doc_replicates, sample.doc_replicates)
    # where the first repeat has no SAE of both models, its scores belong to no seed index here
    without = inp._replace(seeds=[inp.seeds[0], inp.seeds[2]])
    assert set(counts_from_layer_scores(scores, without, "t_seed1", CFG)) == {("base", 0), ("domain", 0)}


def test_a_saturated_floor_says_no_power_never_zero(held_and_acts):
    """Planted: each seed of the twin finds two financial directions no other SAE has, the base none: every
    financial latent of each repeat is unmatched in base seed 0 and in twin seed 0."""
    inp = inputs(held_and_acts, [[]] * 3, [[0, 1], [2, 3], [4, 5]])
    est = {k: s.estimate(BOOT) for k, s in seed_samples(inp, CFG).items()}
    np.testing.assert_array_equal(est["n_specialized_seed_floor"].per_seed, [2, 2])
    np.testing.assert_array_equal(est["n_specialized_repeat"].per_seed, [2, 2])
    for name in ("n_specialized_seed_floor", "n_specialized_over_floor"):
        assert not est[name].power and "saturated" in est[name].reason
        assert est[name].text().startswith("no power (") and "0" not in est[name].text().split("(")[0]
    assert est["n_financial"].power and est["n_financial"].value == 2
    row = LayerRow(3, {}, est).to_dict()
    assert row["n_seeds"] == 3 and row["n_specialized_over_floor_n_seeds"] == 2
    assert row["n_specialized_over_floor_seed_power"] is False
    assert row["n_specialized_over_floor_seed_text"].startswith("no power")
    assert {f"n_financial_{suffix}" for suffix in ESTIMATE_COLUMNS} <= set(row)


def test_one_seed_reports_what_it_has(held_and_acts):
    inp = inputs(held_and_acts, [[0]], [[0, 1]])
    samples = seed_samples(inp, CFG)
    assert set(samples) == set(PER_SEED)  # no repeat: no cross-seed statistic
    est = samples["n_financial"].estimate(BOOT)
    assert est.n_seeds == 1 and np.isnan(est.seed_sd) and est.value == 2
    row = LayerRow(0, {}, {k: s.estimate(BOOT) for k, s in samples.items()}).to_dict()
    assert row["n_seeds"] == 1 and "n_specialized_repeat_seed_mean" not in row


class _Counted(DiffingMethod):
    """A method whose one count differs by seed (planted: 10, 14, 18 at seeds 0, 1, 2); seed 3 is absent."""

    name = "counted"
    seed_statistics = ("n_counted",)
    planted = {"t": 10.0, "t_seed1": 14.0, "t_seed2": 18.0}

    @dataclass
    class Row(RowFields):
        n_counted: float
        other: float

    def inputs(self, data: LayerData):
        return self.planted.get(data.saes.tag)

    def analyze(self, inputs, data, earlier, say) -> MethodResult:
        return MethodResult(self.Row(inputs, -1.0))


def test_a_method_rerun_at_each_seed_repeat_gives_its_seed_sd(tmp_path):
    saes = PairSaes(tmp_path, "a", "b", "t", ("t_seed1", "t_seed2", "t_seed3"))
    data = LayerData(saes, CFG, {}, np.zeros(0, int), np.zeros(0, int), None, layer=2)
    method = _Counted()
    first = method.analyze(method.inputs(data), data, {}, lambda msg: None)
    samples = rerun_at_seeds(method, data, first, lambda msg: None)
    assert set(samples) == {"n_counted"}  # only the statistics it names
    np.testing.assert_array_equal(samples["n_counted"].per_seed, [10, 14, 18])  # t_seed3: no SAEs, skipped
    est = samples["n_counted"].estimate(BOOT)
    assert est.seed_sd == pytest.approx(4) and est.lo < 12.5 and est.hi > 15.5 and est.power
    assert rerun_at_seeds(_SeedZeroOnly(), data, first, lambda msg: None) == {}  # names none: seed 0 only


class _SeedZeroOnly(_Counted):
    seed_statistics = ()


def test_the_summary_carries_each_statistic_per_layer(tmp_path, held_and_acts):
    inp = inputs(held_and_acts, [[]] * 3, [[0, 1], [2, 3], [4, 5]])
    est = {k: s.estimate(BOOT) for k, s in seed_samples(inp, CFG).items()}
    one = {k: s.estimate(BOOT) for k, s in seed_samples(inputs(held_and_acts, [[0]], [[0, 1]]), CFG).items()}
    layers = pd.DataFrame([LayerRow(3, {}, est).to_dict(), LayerRow(0, {}, one).to_dict()])
    summary = AnalysisSummary(pair="p", base="a", domain="b", tag="t", seed_tag="t_seed1")
    summary.add_seed_estimates(layers)
    summary.write(tmp_path)
    back = AnalysisSummary.read(tmp_path)
    assert back.n_seeds == {"0": 1, "3": 3}
    floor = back.seed_estimates["n_specialized_seed_floor"]
    assert set(floor) == {"3"} and not floor["3"]["power"] and floor["3"]["text"].startswith("no power")
    fin = back.seed_estimates["n_financial"]
    assert fin["0"]["n_seeds"] == 1 and fin["0"]["sd"] is None and fin["3"]["mean"] == pytest.approx(2)


def test_findings_read_the_seed_estimates_and_never_print_zero_without_power():
    """The independent method's findings cell and signal: the repeats vs their floor over seeds; a layer whose
    floor is saturated has no signal (NaN, so no 'largest at' claim), never 0; a table without seed columns
    keeps the seed-1 values."""
    from finsae.analysis.methods.independent import IndependentSaes

    layers = pd.DataFrame({
        "layer": [0, 2, 3], "n_specialized_seed1": [35.0, 43.0, 52.0],
        "n_specialized_seed_floor": [35.0, 30.0, 40.0],
        "n_specialized_over_floor_seed_mean": [0.0, 11.5, np.nan],
        "n_specialized_over_floor_seed_power": [False, True, None],
        "n_specialized_repeat_seed_text": ["no power (saturated)", "41.0 ± 2.8 [38.0, 44.0] (2 seeds)", None],
        "n_specialized_seed_floor_seed_text": ["no power (saturated)", "29.5 ± 0.7 [29.0, 30.0] (2 seeds)",
                                               None]})
    method = IndependentSaes()
    signal = method.signal(layers)
    assert np.isnan(signal[0]) and signal[1] == pytest.approx(11.5) and signal[2] == pytest.approx(12.0)
    cells = [method.findings_cell(r) for _, r in layers.iterrows()]
    assert cells[0] == "no power (saturated) vs no power (saturated)"
    assert cells[1].startswith("41.0 ± 2.8") and " vs 29.5 ± 0.7" in cells[1]
    assert cells[2] == "52 [n/a, n/a] vs 40 [n/a, n/a]"  # no seed estimates at that layer: seed 1's values
