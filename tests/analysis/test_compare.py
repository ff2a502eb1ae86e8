"""compare_layer on synthetic inputs: planted shared features, a planted financial latent, controls present."""

import numpy as np
import pandas as pd
import pytest
import torch

from method_columns import n_method_columns, side_by_side_heading
from planted import planted_docs, tied_sae
from finsae.analysis.compare import LayerInputs, compare_layer
from finsae.analysis.config import AnalysisConfig
from finsae.sae import TopKSAE
from tolerances import FLOAT32_REDUCTION_TOL, FLOAT64_TOL

D, M, K = 32, 64, 4


def sae_with(dec: torch.Tensor, seed: int) -> TopKSAE:
    """A top-K SAE with the dictionary ``dec`` (tests/analysis/planted.py)."""
    return tied_sae(dec, K, seed)


@pytest.fixture(scope="module")
def result():
    g = torch.Generator().manual_seed(0)
    shared = torch.nn.functional.normalize(torch.randn(M, D, generator=g), dim=1)
    own = torch.nn.functional.normalize(torch.randn(M, D, generator=g), dim=1)
    base_dec = shared
    dom_dec = torch.cat([shared[: M // 2], own[M // 2:]])[torch.randperm(M, generator=g)]  # half shared, shuffled
    def noisy(dec):  # a second seed of the same model: the same dictionary, a little off
        return torch.nn.functional.normalize(dec + 0.05 * torch.randn(M, D, generator=g), dim=1)

    docs = planted_docs(n_docs=800, per_doc=6)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((len(docs.doc_of_row), D)).astype(np.float32) * 0.3
    planted = shared[5].numpy()
    x[docs.financial_row] += 2.0 * planted  # base latent 5 (and its domain twin) fire on financial text
    inp = LayerInputs(2, "base", "domain", sae_with(base_dec, 0), sae_with(dom_dec, 1), x.astype(np.float16),
                      x.astype(np.float16), docs.doc_of_row, docs.char_start, docs.held,
                      base_seed=sae_with(noisy(base_dec), 2), domain_seed=sae_with(noisy(dom_dec), 3))
    cfg = AnalysisConfig(n_boot=20, agreement_tokens=2000, control_latents=3)
    return compare_layer(inp, cfg), dom_dec, shared


def test_overlap_and_controls(result):
    res, _, _ = result
    r = res.row.columns()
    assert r["overlap"] == pytest.approx(0.5, abs=0.02)  # the planted half
    assert r["overlap_ci_low"] - FLOAT64_TOL <= r["overlap"] <= r["overlap_ci_high"] + FLOAT64_TOL
    assert r["overlap_seed_ceiling"] > 0.95 and r["overlap_of_ceiling"] == pytest.approx(r["overlap"] / r["overlap_seed_ceiling"])
    assert r["overlap_random"] < 0.05 and r["overlap_index"] < 0.1
    assert list(res.curves["tau"])[0] == pytest.approx(0.3) and res.curves["overlap"].is_monotonic_decreasing


def test_planted_financial_latent_is_found_in_both_models(result):
    res, dom_dec, shared = result
    f = res.features
    base = f[f.role == "base"].set_index("latent")
    dom = f[f.role == "domain"].set_index("latent")
    assert base.loc[5, "financial"]
    twin = int(torch.argmax(dom_dec @ shared[5]))
    assert dom.loc[twin, "financial"] and not dom.loc[twin, "specialized"]  # it has its base match
    eps = FLOAT64_TOL  # a percentile bound may equal the estimate; allow its rounding
    assert base.loc[5, "auroc_broad_ci_low"] - eps <= base.loc[5, "auroc_broad"] <= base.loc[5, "auroc_broad_ci_high"] + eps
    assert np.isfinite(dom.loc[twin, "improvement"]) and abs(dom.loc[twin, "improvement"]) < 0.1
    r = res.row
    assert r.counts.n_financial_ci_low <= r.counts.n_financial <= r.counts.n_financial_ci_high
    assert r.floor.n_specialized_seed_floor >= 0


def test_contexts_for_financial_and_control_latents(result):
    res, _, _ = result
    ctx = res.contexts["base"]
    assert 5 in set(ctx.latent)
    top = ctx[(ctx.latent == 5) & (ctx.kind == "top")]
    assert len(top) == 20 and top.max_act.is_monotonic_decreasing
    assert ctx.latent.nunique() >= 1 + 3


def test_stored_codes_give_what_encoding_again_gives():
    """Every reader of the once-computed codes (scores, agreement, own FVU, contexts) sees the SAE's own output."""
    from finsae.analysis.controls import cross_fvu, own_fvu
    from finsae.analysis.doc_scores import doc_scores, encode_rows, pair_correlation

    g = torch.Generator().manual_seed(1)
    a = sae_with(torch.nn.functional.normalize(torch.randn(M, D, generator=g), dim=1), 0)
    b = sae_with(torch.nn.functional.normalize(torch.randn(M, D, generator=g), dim=1), 1)
    x = np.random.default_rng(1).standard_normal((3000, D)).astype(np.float16)
    ca, cb = encode_rows(a, x, chunk=700), encode_rows(b, x, chunk=700)
    xt = torch.from_numpy(x.astype(np.float32))
    dense_a = torch.zeros(len(x), M).scatter_(1, a.encode(xt).latent_indices, a.encode(xt).latent_acts.float())
    dense_b = torch.zeros(len(x), M).scatter_(1, b.encode(xt).latent_indices, b.encode(xt).latent_acts.float())
    rows = np.arange(0, 3000, 3)
    # chunked and whole-matrix GEMMs may block the reduction differently (AVX2 vs AVX-512): equal up to float32 rounding
    torch.testing.assert_close(ca.dense(rows), dense_a[rows], rtol=1e-5, atol=FLOAT32_REDUCTION_TOL)
    np.testing.assert_allclose(ca.latent(7, rows), dense_a[rows, 7].numpy(), rtol=1e-5, atol=FLOAT32_REDUCTION_TOL)
    assert own_fvu(a, ca, x, rows) == pytest.approx(cross_fvu(a, x, rows), rel=1e-5)
    pa, pb = np.arange(M), np.roll(np.arange(M), 5)
    corr = pair_correlation(ca, cb, pa, pb, rows, chunk=97)
    da, db = dense_a[rows].double().numpy(), dense_b[rows].double().numpy()
    for i in range(0, M, 9):
        if da[:, pa[i]].std() > 0 and db[:, pb[i]].std() > 0:
            assert corr[i] == pytest.approx(np.corrcoef(da[:, pa[i]], db[:, pb[i]])[0, 1], abs=1e-6)
    doc_of_row = np.repeat(np.arange(300), 10)
    s = doc_scores(ca, doc_of_row, 300, chunk=512)
    ref = dense_a.reshape(300, 10, M)
    assert np.allclose(s.max.toarray(), ref.amax(1).numpy())
    assert np.allclose(s.mean.toarray(), ref.mean(1).numpy(), atol=1e-6)


def test_seed_floor_counts_one_latent_set():
    """Domain seed 0 has two financial latents absent from the base SAE (p and a near-copy), domain seed 1 has p
    and a base latent q that seed 0 lacks. On seed 1's financial latents, the rule against base seed 0 flags p
    (1) and against domain seed 0 flags q (1): ratio 1. The old comparison put seed 0's count (2) against that
    floor, two different latent sets."""
    g = torch.Generator().manual_seed(7)
    shared = torch.nn.functional.normalize(torch.randn(M, D, generator=g), dim=1)
    p = torch.nn.functional.normalize(torch.randn(1, D, generator=g), dim=1)
    p_near = torch.nn.functional.normalize(p + 0.4 * torch.nn.functional.normalize(torch.randn(1, D, generator=g)), dim=1)
    q = shared[M - 1:]
    dom0 = torch.cat([shared[: M - 2], p, p_near])
    dom1 = torch.cat([shared[: M - 2], p, q])
    docs = planted_docs(n_docs=400, per_doc=4)
    x = np.random.default_rng(7).standard_normal((len(docs.doc_of_row), D)).astype(np.float32) * 0.3
    x[docs.financial_row] += 2.0 * (p[0] + q[0]).numpy()
    inp = LayerInputs(1, "base", "domain", sae_with(shared, 0), sae_with(dom0, 0), x, x, docs.doc_of_row,
                      docs.char_start, docs.held, domain_seed=sae_with(dom1, 1))
    r = compare_layer(inp, AnalysisConfig(n_boot=20, agreement_tokens=500, null_tokens=500,
                                          control_latents=1)).row.columns()
    assert r["n_specialized"] == 2  # seed 0: p and its near-copy
    assert r["n_specialized_seed1"] == 1 and r["n_specialized_seed_floor"] == 1
    assert r["specialized_over_floor"] == pytest.approx(1.0)
    for k in ("n_specialized_seed1", "n_specialized_seed_floor"):
        assert r[f"{k}_lo"] <= r[k] <= r[f"{k}_hi"]
    assert np.isnan(r["overlap_seed1"])  # no base seed repeat given


def test_refit_cross_reconstruction_removes_a_pure_rescaling():
    from finsae.analysis.controls import cross_fvu, cross_fvu_refit

    g = torch.Generator().manual_seed(3)
    dec = torch.nn.functional.normalize(torch.randn(M, D, generator=g), dim=1)
    sae = sae_with(dec, 0)
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2000, D)) * 0.5 + 1.0).astype(np.float32)
    rms = float(np.sqrt((x.astype(np.float64) ** 2).sum(1).mean()))
    with torch.no_grad():
        sae.norm_scale.fill_(1.0 / rms)  # what training sets: unit mean squared norm on its own data
        sae.b_dec.copy_(torch.from_numpy(x.mean(0) / rms))  # and an offset near the data's centre
    rows = np.arange(0, 2000, 2)
    own = cross_fvu(sae, x, rows)
    scaled = 3.0 * x  # the other model: the same activations, 3x larger
    assert cross_fvu(sae, scaled, rows) > own + 0.05
    assert cross_fvu_refit(sae, scaled, x, rows) == pytest.approx(own, rel=1e-4)
    shifted = x + 2.0  # a pure offset: mostly removed by moving b_dec
    raw, fixed = cross_fvu(sae, shifted, rows), cross_fvu_refit(sae, shifted, x, rows)
    assert fixed < raw
    assert float(sae.norm_scale) == pytest.approx(1.0 / rms)  # the SAE itself is not changed
    assert torch.allclose(sae.b_dec, torch.from_numpy(x.mean(0) / rms))


def test_findings_put_three_methods_side_by_side(result):
    from finsae.analysis.evolution import all_figures
    from finsae.analysis.findings import NOT_RUN, findings_markdown, method_signals

    res, _, _ = result
    rows = [dict(res.row.columns(), layer=layer) for layer in (1, 2, 3)]
    layers = pd.DataFrame(rows)
    md = findings_markdown(layers, "p", "base", "domain", 0.7, 0.6, 0.05, {"financial": 200},
                           {"financial": 120.0, "general": 125.0})
    side = md.split(side_by_side_heading())[1].split("Do they agree")[0]
    table = [line for line in side.splitlines() if line.startswith("| 1 ")][0]
    assert table.count(NOT_RUN) == n_method_columns() - 1  # only the independent SAEs ran
    assert "seed ceiling base" in md and "covariance-matched" in md and "0 by construction" in md
    counts = md.split("## Independent SAEs: financial latents")[1].split("##")[0]
    for line in [ln for ln in counts.splitlines() if ln.startswith("| 1 ")]:
        assert "n/a" not in line.rsplit("|", 2)[0]  # seed repeats given: only the ratio may be n/a (floor 0)
    cc = layers.assign(n_domain_only=[2, 9, 4], n_domain_only_lo=[1, 6, 2], n_domain_only_hi=[3, 12, 6],
                       n_base_only=[1, 1, 1], n_shared=[50, 40, 45], crosscoder_seed_stability=[0.5, 0.6, 0.4],
                       n_changed=[3, 20, 8], n_changed_lo=[1, 15, 5], n_changed_hi=[5, 25, 11],
                       n_changed_control=[2, 2, 2], lens_rel_change=[0.1, 0.5, 0.3],
                       causal_accuracy_change=[0.0, -0.1, -0.02])
    md2 = findings_markdown(cc, "p", "base", "domain", 0.7, 0.6, 0.05, {"financial": 200})
    side2 = md2.split(side_by_side_heading())[1]
    assert NOT_RUN not in side2.split("Do they agree")[0]
    assert "9 [6, 12]" in side2 and "largest at layer 2 (9)" in side2 and "largest at layer 2 (18)" in side2
    assert "crosscoder vs warmstart: Spearman rank correlation over 3 layers 1.00" in side2
    sig = method_signals(cc)
    assert sig["warmstart"].tolist() == [1, 18, 6]
    figs = all_figures(cc, res.features, 0.7, 0.6, "p")
    assert {"overlap_by_layer", "counts_by_layer", "cross_fvu_by_layer"} <= set(figs)

