"""compare_layer on synthetic inputs: planted shared features, a planted financial latent, controls present."""

import numpy as np
import pandas as pd
import pytest
import torch

from finsae.analysis.compare import LayerInputs, compare_layer
from finsae.analysis.config import AnalysisConfig
from finsae.analysis.heldout import HeldoutSet
from finsae.data.corpus import Corpus
from finsae.sae import SaeConfig, TopKSAE
from tolerances import FLOAT32_REDUCTION_TOL, FLOAT64_TOL

D, M, K = 32, 64, 4


def sae_with(dec: torch.Tensor, seed: int) -> TopKSAE:
    sae = TopKSAE(SaeConfig(d_in=D, expansion_factor=M // D, k=K, seed=seed, normalize_input=False))
    with torch.no_grad():
        sae.W_dec.copy_(dec)
        sae.W_enc.copy_(dec)
    sae.initialized = True
    return sae.eval()


@pytest.fixture(scope="module")
def result():
    g = torch.Generator().manual_seed(0)
    shared = torch.nn.functional.normalize(torch.randn(M, D, generator=g), dim=1)
    own = torch.nn.functional.normalize(torch.randn(M, D, generator=g), dim=1)
    base_dec = shared
    dom_dec = torch.cat([shared[: M // 2], own[M // 2:]])[torch.randperm(M, generator=g)]  # half shared, shuffled
    def noisy(dec):  # a second seed of the same model: the same dictionary, a little off
        return torch.nn.functional.normalize(dec + 0.05 * torch.randn(M, D, generator=g), dim=1)

    n_docs, per_doc = 800, 6
    groups = {"financial": np.arange(0, 200), "general": np.arange(200, 400),
              "ag_business": np.arange(400, 600), "ag_other": np.arange(600, 800)}
    fin_doc = np.zeros(n_docs, bool)
    fin_doc[groups["financial"]] = fin_doc[groups["ag_business"]] = True
    doc_of_row = np.repeat(np.arange(n_docs), per_doc)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((len(doc_of_row), D)).astype(np.float32) * 0.3
    planted = shared[5].numpy()
    x[fin_doc[doc_of_row]] += 2.0 * planted  # base latent 5 (and its domain twin) fire on financial text
    frame = pd.DataFrame({"doc_id": [f"d{i}" for i in range(n_docs)],
                          "text": [" ".join(f"w{j}" for j in range(per_doc))] * n_docs, "source": "synthetic"})
    held = HeldoutSet(Corpus("synthetic", frame), groups)
    char_start = np.tile(np.arange(per_doc) * 3, n_docs)
    inp = LayerInputs(2, "base", "domain", sae_with(base_dec, 0), sae_with(dom_dec, 1), x.astype(np.float16),
                      x.astype(np.float16), doc_of_row, char_start, held, base_seed=sae_with(noisy(base_dec), 2),
                      domain_seed=sae_with(noisy(dom_dec), 3))
    cfg = AnalysisConfig(n_boot=20, agreement_tokens=2000, control_latents=3)
    return compare_layer(inp, cfg), dom_dec, shared


def test_overlap_and_controls(result):
    res, _, _ = result
    r = res.row
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
    assert res.row["n_financial_ci_low"] <= res.row["n_financial"] <= res.row["n_financial_ci_high"]
    assert res.row["n_specialized_seed_floor"] >= 0


def test_contexts_for_financial_and_control_latents(result):
    res, _, _ = result
    ctx = res.contexts["base"]
    assert 5 in set(ctx.latent)
    top = ctx[(ctx.latent == 5) & (ctx.kind == "top")]
    assert len(top) == 20 and top.max_act.is_monotonic_decreasing
    assert ctx.latent.nunique() >= 1 + 3


def test_stored_codes_give_what_encoding_again_gives():
    """Every reader of the once-computed codes (scores, agreement, own FVU, contexts) sees the SAE's own output."""
    from finsae.analysis.compare import cross_fvu, own_fvu
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
