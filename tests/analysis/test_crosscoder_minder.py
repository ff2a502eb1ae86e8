"""Minder et al.'s relative norm and cut-offs, Latent Scaling calibrated on the shared latents, the
re-weighted latents, and the dictionary-size sweep, each on planted truth: a twin that is an affine image of
the base plus one planted new feature is found as a twin-only latent once the dictionary has room for it."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from finsae.analysis.config import AnalysisConfig, CrosscoderConfig
from finsae.analysis.crosscoder import (
    FIXED_NU, calibrate_nu, classify, crosscoder_table, latent_scaling, relative_norm,
)
from finsae.analysis.crosscoder_plots import plot_sweep
from finsae.analysis.crosscoder_summary import layer_summary
from finsae.analysis.crosscoder_sweep import SWEEP_COLUMNS, SweepPoint, sweep_table, sweep_tag, sweep_tags
from finsae.analysis.methods.crosscoder import Crosscoder
from finsae.analysis.saes import PairSaes
from finsae.errors import ConfigError
from finsae.paths import crosscoder_name, sae_dir
from finsae.sae import SaeConfig, SaeTrainConfig, TopKSAE, decoder_blocks, fit, save


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


def test_minder_delta_admits_a_twin_only_latent_the_strict_share_calls_other():
    """||d_base|| = 0.15 ||d_domain||: Minder et al.'s delta 1 - 0.15 / 2 = 0.925 (twin-only, their bound is
    0.2), the share 1 / 1.15 = 0.870 (not twin-only under the strict cut-offs, whose bound is 0.11)."""
    base = np.array([[0.15, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    dom = np.array([[0.0, 1.0], [0.0, 0.15], [0.0, 1.0], [0.0, 0.0]])
    minder, strict = relative_norm(base, dom), relative_norm(base, dom, "strict")
    np.testing.assert_allclose(minder[:3], [0.925, 0.075, 0.5])
    np.testing.assert_allclose(strict[:3], [1 / 1.15, 0.15 / 1.15, 0.5])
    assert np.isnan(minder[3]) and np.isnan(strict[3])
    assert list(classify(minder[:3])) == ["domain_only", "base_only", "shared"]
    assert list(classify(strict[:3], cuts=CrosscoderConfig(cutoffs="strict"))) == ["other", "other", "shared"]
    with pytest.raises(ValueError, match="cutoffs must be one of"):
        relative_norm(base, dom, "loose")


@pytest.mark.parametrize("bad, match", [
    ({"cutoffs": "loose"}, "analysis.crosscoder.cutoffs"),
    ({"nu_calibration": "median"}, "analysis.crosscoder.nu_calibration"),
    ({"shared_cosine_low": 0.8}, "shared_cosine_low < shared_cosine_high"),
    ({"sweep_max_dead": 0}, "sweep_max_dead"),
    ({"nu_calibration_latents": -1}, "nu_calibration_latents"),
])
def test_bad_crosscoder_settings_fail_in_one_line(bad, match):
    with pytest.raises(ConfigError, match=match):
        CrosscoderConfig(**bad)


# -- Latent Scaling calibrated on the shared latents --------------------------------------------------
D, N_SHARED, SHRUNK = 16, 12, 12
DOMAIN_SCALE, DECODER_SCALE, BASE_SHARE = 0.6, 0.85, 0.35


def planted_scale_crosscoder() -> TopKSAE:
    """Latents 0-11 shared (e_i in both blocks, the domain block 0.85 long: delta 0.425), latent 12
    domain-only on e_12 (its base block shrank to zero)."""
    e, z = torch.eye(D), torch.zeros(D)
    rows = [torch.cat([e[i], DECODER_SCALE * e[i]]) for i in range(N_SHARED)] + [torch.cat([z, e[SHRUNK]])]
    w = torch.nn.functional.normalize(torch.stack(rows), dim=1)
    sae = TopKSAE(SaeConfig(d_in=2 * D, num_latents=len(rows), k=2, k_aux=1, normalize_input=False))
    with torch.no_grad():
        sae.W_dec.copy_(w), sae.W_enc.copy_(w), sae.b_dec.zero_(), sae.b_enc.zero_()
        sae.norm_scale.fill_(1.0)
    return sae


def planted_scale_data(n: int = 2600) -> torch.Tensor:
    """One concept per token (amplitude U(1, 2)): a shared concept i is in the twin at 0.6 of its base
    strength (a global scale the block normalisation left: Latent Scaling's nu_eps of every shared latent is
    0.6); concept 12 is in the base at 0.35 of its twin strength (complete shrinkage: nu_eps 0.35, below 0.5,
    above 0.5 x 0.6)."""
    g = torch.Generator().manual_seed(0)
    e = torch.eye(D)
    c = torch.arange(n) % (N_SHARED + 1)
    a = (1 + torch.rand(n, generator=g)).unsqueeze(1)
    shared = (c < N_SHARED).float().unsqueeze(1)
    hb = a * e[c] * (shared + (1 - shared) * BASE_SHARE)
    hd = a * e[c] * (shared * DOMAIN_SCALE + (1 - shared))
    return torch.cat([hb, hd], 1)


def test_nu_calibration_recovers_a_planted_scale_and_flags_what_a_fixed_half_misses():
    sae, x = planted_scale_crosscoder(), planted_scale_data()
    s = latent_scaling(sae, x.split(1000))
    np.testing.assert_allclose(s.nu_eps[:N_SHARED], DOMAIN_SCALE, atol=1e-6)
    assert s.nu_eps[SHRUNK] == pytest.approx(BASE_SHARE, abs=1e-6)
    cal = calibrate_nu(sae, s)
    assert cal.nu_eps_shared == pytest.approx(DOMAIN_SCALE, abs=1e-6)  # the planted scale, recovered
    assert cal.nu_r_shared == pytest.approx(DECODER_SCALE, abs=1e-6)  # the shared latents' own other block
    assert cal.n_calibration == N_SHARED
    fixed = CrosscoderConfig(nu_calibration="fixed")
    assert calibrate_nu(sae, s, fixed) == FIXED_NU
    t_fixed = crosscoder_table(0, sae, s, cuts=fixed)
    t_cal = crosscoder_table(0, sae, s)
    assert list(t_cal["class"]) == ["shared"] * N_SHARED + ["domain_only"]
    assert not t_fixed["artifact"].any()  # 0.35 < 0.5: a fixed half calls the shrunk latent twin-only
    assert list(t_cal["artifact"]) == [False] * N_SHARED + [True]  # 0.35 > 0.5 x 0.6
    row = layer_summary(t_cal, calibration=cal)
    assert (row.n_domain_only, row.n_domain_only_artifact, row.n_shared) == (0, 1, N_SHARED)
    assert row.nu_eps_shared == pytest.approx(DOMAIN_SCALE) and row.n_nu_calibration == N_SHARED
    few = CrosscoderConfig(nu_calibration_latents=5)  # fewer than the minimum sample: left uncalibrated
    assert calibrate_nu(sae, s, few) == FIXED_NU


# -- re-weighted latents, block cosine, median --------------------------------------------------------
def test_layer_summary_counts_reweighted_latents_block_cosines_and_seed1():
    cuts = CrosscoderConfig(reweighted_examples=2)
    t = pd.DataFrame({
        "latent": np.arange(9), "delta": [0.5, 0.45, 0.55, 0.2, 0.8, 0.7, 0.95, 0.05, np.nan],
        "decoder_cosine": [0.9, 0.1, 0.8, 0.95, 0.99, 0.2, np.nan, np.nan, np.nan],
        "class": ["shared"] * 3 + ["other"] * 3 + ["domain_only", "base_only", "dead"],
        "artifact": [False] * 7 + [True, False], "financial": False})
    row = layer_summary(t, seed1=t.assign(**{"class": ["other"] * 8 + ["dead"]}), cuts=cuts)
    assert (row.n_reweighted, row.n_reweighted_base, row.n_reweighted_domain) == (3, 1, 2)
    assert row.n_reweighted_seed1 == 8
    assert (row.n_shared_cos_high, row.n_shared_cos_low) == (2, 1)  # 0.9, 0.8 >= 0.7; 0.1 < 0.3
    assert row.delta_median == pytest.approx(0.525)  # of the 8 live latents (0.5 and 0.55 in the middle)
    # re-weighted examples: one direction in both (cos >= 0.7), farthest from 1/2 first; not 5 (cos 0.2)
    assert row.reweighted_examples == "3 (delta 0.20, cos 0.95); 4 (delta 0.80, cos 0.99)"
    assert (row.n_base_only, row.n_base_only_artifact, row.n_domain_only) == (0, 1, 1)
    assert row.crosscoder_cutoffs == "minder"
    cell = Crosscoder().findings_cell(pd.Series(row.columns()))
    assert cell == ("1 [0, 4] (0) / 0 [0, 3] (0) / 3 [1, 6] (0) (n/a); re-weighted 1 / 2 (8) (e.g. 3 "
                    "(delta 0.20, cos 0.95); 4 (delta 0.80, cos 0.99)); median 0.53; shared cos 2 / 1")


# -- a planted new feature in the twin, and the dictionary-size sweep ---------------------------------
N_CONCEPTS = 12


def planted_twin(n: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """The twin is an affine image of the base (a rotation and an offset) plus one planted new feature that
    fires on 10% of the tokens; the base holds 12 concepts, each on in 15% of the tokens."""
    g = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(D, D, generator=torch.Generator().manual_seed(99)))[0]
    dirs = torch.linalg.qr(torch.randn(D, D, generator=torch.Generator().manual_seed(7)))[0][:N_CONCEPTS + 1]
    amp = (torch.rand(n, N_CONCEPTS, generator=g) < 0.15) * (1 + torch.rand(n, N_CONCEPTS, generator=g))
    hb = amp @ dirs[:N_CONCEPTS]
    new = (torch.rand(n, 1, generator=g) < 0.10) * (1 + torch.rand(n, 1, generator=g))
    return hb, hb @ q.t() + 0.2 + new * (q @ dirs[N_CONCEPTS])


def planted_direction() -> torch.Tensor:
    q = torch.linalg.qr(torch.randn(D, D, generator=torch.Generator().manual_seed(99)))[0]
    return q @ torch.linalg.qr(torch.randn(D, D, generator=torch.Generator().manual_seed(7)))[0][N_CONCEPTS]


def trained_crosscoder(num_latents: int, k: int, x: torch.Tensor) -> TopKSAE:
    cfg = SaeTrainConfig(expansion_factor=1, k=k, batch_size=128, tokens=128 * 300, lr=2e-2, init_sample=2048,
                         normalize_input=False)
    sae_cfg = dataclasses.replace(cfg.crosscoder_config(d_model=D, seed=0), num_latents=num_latents,
                                  k_aux=max(1, num_latents // 2))
    sae = TopKSAE(sae_cfg)
    fit(sae, x.split(128), cfg)
    return sae


def test_sweep_finds_the_planted_twin_feature_only_where_the_dictionary_has_room(tmp_path):
    hb, hd = planted_twin(128 * 300)
    x = torch.cat([hb, hd], 1)
    held = x[:6000].numpy()  # the analysis rows (any rows of the pair do for counting)
    name, tag = crosscoder_name("base_m", "twin_m"), "t"
    small, roomy = trained_crosscoder(8, 2, x), trained_crosscoder(32, 3, x)
    for sae, t in ((small, tag), (roomy, sweep_tag(tag, 32))):
        save(sae, sae_dir(tmp_path, name, 3, t), extra={"crosscoder": {"block_scales": [1.0, 1.0]}})
    save(roomy, sae_dir(tmp_path, name, 4, sweep_tag(tag, 128)), extra={"crosscoder": {}})  # another layer
    assert sweep_tags(tmp_path, name, tag, 3) == ["t_sweep32"]
    assert sweep_tags(tmp_path, name, tag) == ["t_sweep32", "t_sweep128"]  # by size, any layer
    saes = PairSaes(tmp_path, "base_m", "twin_m", tag, ("t_seed1",))
    tags = (tag, "t_seed1", "t_sweep32", "t_sweep128")
    assert Crosscoder().sae_folders(saes, AnalysisConfig()) == [(name, t) for t in tags]

    cuts = AnalysisConfig().crosscoder
    first = crosscoder_table(3, small, latent_scaling(small, [torch.from_numpy(held)]))
    point = SweepPoint("t_sweep32", roomy, held, sae_dir(tmp_path, name, 3, "t_sweep32"))
    sweep = sweep_table(3, (tag, first, sae_dir(tmp_path, name, 3, tag)), [point], cuts)
    assert tuple(sweep.columns) == SWEEP_COLUMNS
    assert list(sweep["num_latents"]) == [8, 32] and list(sweep["k"]) == [2, 3]
    assert list(sweep["tokens"]) == [128 * 300] * 2
    assert not sweep["meets_bar"].any() and sweep["fvu"].isna().all()  # no training summary: bar not met
    assert sweep.loc[0, "n_domain_only"] == 0  # 8 latents for 12 shared concepts: no room for the new one
    assert sweep.loc[1, "n_domain_only"] >= 1

    roomy_table = crosscoder_table(3, roomy, latent_scaling(roomy, [torch.from_numpy(held)]))
    cos = torch.nn.functional.normalize(decoder_blocks(roomy).domain, dim=1) @ planted_direction()
    j = int(cos.abs().argmax())
    assert float(cos.abs()[j]) > 0.95  # a latent for the planted feature ...
    hit = roomy_table.iloc[j]
    assert hit["class"] == "domain_only" and not hit["artifact"] and hit["delta"] > 0.9  # ... twin-only
    small_cos = torch.nn.functional.normalize(decoder_blocks(small).domain, dim=1) @ planted_direction()
    assert float(small_cos.abs().max()) < 0.5
    fig = plot_sweep(pd.concat([sweep, sweep.assign(layer=4)]), "sweep")
    assert fig.axes[0].get_xscale() == "log"
    assert math.isclose(sweep.loc[1, "delta_median"], float(roomy_table.loc[roomy_table["class"] != "dead",
                                                                            "delta"].median()))


def test_delta_figure_marks_each_layers_median_and_names_its_definition():
    from finsae.analysis.crosscoder_plots import plot_delta_by_layer
    from finsae.analysis.plotting import pyplot

    t = pd.DataFrame({"layer": [1] * 4 + [3] * 3, "delta": [0.1, 0.2, 0.3, 0.9, 0.5, 0.6, np.nan],
                      "class": ["other"] * 4 + ["shared", "shared", "dead"], "artifact": False})
    fig = plot_delta_by_layer(t, "p", CrosscoderConfig(cutoffs="strict"))
    panels = [ax for ax in fig.axes if ax.axison]
    medians = [[x.get_text() for x in ax.get_legend().get_texts() if x.get_text().startswith("median")]
               for ax in panels]
    assert medians == [["median 0.25"], ["median 0.55"]]  # the dead latent left out
    assert panels[0].get_xlabel().startswith("norm share")
    pyplot().close(fig)


def test_the_method_finds_the_sweep_beside_its_crosscoder_and_writes_one_row_per_size(tmp_path):
    """The plug-in at one layer: the pair's crosscoder of the tag and a sweep crosscoder are read into
    ``crosscoder_sweep`` rows; a sweep crosscoder of another pair is skipped, not fatal."""
    from finsae.analysis.heldout import HeldoutSet
    from finsae.analysis.methods.base import LayerData
    from finsae.data.corpus import Corpus

    sae, n_docs, per = planted_scale_crosscoder(), 40, 5
    x = planted_scale_data(n_docs * per).numpy()
    hb, hd = x[:, :D], x[:, D:]
    name = crosscoder_name("b", "d")
    mine = {"crosscoder": {"base": "b", "domain": "d", "d_model": D, "block_scales": [1.0, 1.0]}}
    save(sae, sae_dir(tmp_path, name, 2, "t"), extra=mine)
    save(sae, sae_dir(tmp_path, name, 2, sweep_tag("t", 52)), extra=mine)
    other = {"crosscoder": {"base": "b", "domain": "x", "d_model": D, "block_scales": [1.0, 1.0]}}
    save(sae, sae_dir(tmp_path, name, 2, sweep_tag("t", 99)), extra=other)
    frame = pd.DataFrame({"doc_id": [f"d{i}" for i in range(n_docs)],
                          "text": ["alpha beta gamma delta epsilon"] * n_docs, "source": "test"})
    held = HeldoutSet(Corpus(name="toy", frame=frame), {
        "financial": np.arange(20), "general": np.arange(20, 40), "ag_business": np.arange(10),
        "ag_other": np.arange(20, 30)})
    data = LayerData(saes=PairSaes(tmp_path, "b", "d", "t", ("t_seed1",)), analysis=AnalysisConfig(),
                     arrays={("b", 2): hb, ("d", 2): hd}, doc_of_row=np.repeat(np.arange(n_docs), per),
                     char_start=np.tile(np.array([0, 6, 11, 17, 23]), n_docs), held=held, layer=2)
    method = Crosscoder()
    inputs = method.inputs(data)
    assert [p.tag for p in inputs.sweep] == ["t_sweep52"]  # the other pair's crosscoder skipped
    result = method.analyze(inputs, data, {}, lambda msg: None)
    sweep = result.tables["crosscoder_sweep"]
    assert list(sweep["tag"]) == ["t", "t_sweep52"] and list(sweep["layer"]) == [2, 2]
    assert list(sweep["n_domain_only_artifact"]) == [1, 1]  # the shrunk latent, at both "sizes"
    np.testing.assert_allclose(sweep["nu_eps_shared"], DOMAIN_SCALE, atol=1e-6)
    assert result.row.nu_eps_shared == pytest.approx(DOMAIN_SCALE, abs=1e-6)
    assert list(result.tables["crosscoder"]["artifact"]) == [False] * N_SHARED + [True]
