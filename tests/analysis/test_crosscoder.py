"""Crosscoder diffing: planted shared / model-specific directions are recovered with the right relative norm,
Latent Scaling flags planted sparsity artifacts and not true specific latents, and the tables round-trip."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from finsae.analysis.artifacts import read_table, write_analysis_table
from finsae.analysis.config import AnalysisConfig
from finsae.analysis.crosscoder import (
    CROSSCODER_COLUMNS,
    analyze_layer,
    class_stability,
    classify,
    crosscoder_table,
    latent_scaling,
    layer_summary,
    load_crosscoder,
    relative_norm,
)
from finsae.analysis import crosscoder as crosscoder_module
from finsae.analysis.doc_scores import encode_rows
from finsae.analysis.heldout import HeldoutSet
from finsae.data.corpus import Corpus
from finsae.errors import ConfigError, DataMissingError
from finsae.sae import SaeConfig, SaeTrainConfig, TopKSAE, decoder_blocks, fit, save


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py
D = 16
SHARED, BASE_ONLY, DOMAIN_ONLY = range(0, 4), range(4, 7), range(7, 10)


def planted_pair(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-aligned activations of two 16-d models from 10 concepts, each on in 15% of the tokens independently
    (so one model's concepts say nothing about the other model's mean): concepts 0-3 live in both models (along
    e_i in the base, Q e_i in the domain model), 4-6 in the base only, 7-9 in the domain only."""
    g = torch.Generator().manual_seed(seed)
    base_dir, dom_dir = planted_directions()
    amp = (torch.rand(n, 10, generator=g) < 0.15) * (1 + torch.rand(n, 10, generator=g))
    return amp @ base_dir, amp @ dom_dir


def planted_directions() -> tuple[torch.Tensor, torch.Tensor]:
    q, _ = torch.linalg.qr(torch.randn(D, D, generator=torch.Generator().manual_seed(99)))
    eye = torch.eye(D)
    return (torch.stack([eye[i] if i < 7 else torch.zeros(D) for i in range(10)]),
            torch.stack([q @ eye[i] if (i < 4 or i >= 7) else torch.zeros(D) for i in range(10)]))


def test_crosscoder_recovers_planted_shared_and_specific_directions():
    cfg = SaeTrainConfig(expansion_factor=1, k=3, batch_size=128, tokens=128 * 300, lr=2e-2, init_sample=2048,
                         normalize_input=False)
    sae = TopKSAE(cfg.crosscoder_config(d_model=D, seed=0))
    assert (sae.d_in, sae.num_latents, sae.cfg.k_aux) == (2 * D, D, D // 2)
    hb, hd = planted_pair(128 * 300, seed=1)
    fit(sae, torch.cat([hb, hd], 1).split(128), cfg)
    blocks = decoder_blocks(sae)
    delta = relative_norm(blocks.base, blocks.domain)
    planted_b, planted_d = planted_directions()
    planted = torch.nn.functional.normalize(torch.cat([planted_b, planted_d], 1), dim=1)
    cos = planted @ torch.nn.functional.normalize(sae.W_dec.detach(), dim=1).t()
    best = cos.max(1)
    assert float(best.values.min()) > 0.95, best.values  # every planted concept has its latent
    got = delta[best.indices.numpy()]
    # A specific latent keeps a small block in the other model (about 0.07 of its norm here), aligned with minus
    # that model's decoder bias: an offset it co-adapts with, not a direction of the other model.
    np.testing.assert_allclose(got[list(SHARED)], 0.5, atol=0.05)
    np.testing.assert_array_less(got[list(BASE_ONLY)], 0.1)
    np.testing.assert_array_less(0.9, got[list(DOMAIN_ONLY)])
    cls = classify(delta)[best.indices.numpy()]
    assert list(cls) == ["shared"] * 4 + ["base_only"] * 3 + ["domain_only"] * 3


def hand_built_crosscoder() -> TopKSAE:
    """d = 8 per model; latent 0 shared (e0 in both), 1 domain-only (e1), 2 domain-only (e2), 3 domain-only and
    4 base-only on the same direction e3; latents 5-7 never fire (bias -1)."""
    d = 8
    sae = TopKSAE(SaeConfig(d_in=2 * d, num_latents=8, k=2, k_aux=1, normalize_input=False))
    e = torch.eye(d)
    z = torch.zeros(d)
    rows = [torch.cat([e[0], e[0]]) / math.sqrt(2), torch.cat([z, e[1]]), torch.cat([z, e[2]]), torch.cat([z, e[3]]),
            torch.cat([e[3], z])] + [torch.zeros(2 * d)] * 3
    w = torch.stack(rows)
    with torch.no_grad():
        sae.W_dec.copy_(w), sae.W_enc.copy_(w), sae.b_dec.zero_(), sae.norm_scale.fill_(1.0)
        sae.b_enc.copy_(torch.tensor([0, 0, 0, 0, 0, -1, -1, -1.0]))
    return sae


def hand_built_data(n: int = 4000) -> torch.Tensor:
    """Tokens of one concept each (amplitude U(1, 2)): 0 shared; 1 domain-only for real; 2 also in the base at
    0.7 of the strength (its base decoder shrank to zero: complete shrinkage); 3 in both, but the base's part is
    carried by latent 4 (latent decoupling)."""
    g = torch.Generator().manual_seed(0)
    d = 8
    e = torch.eye(d)
    c = torch.arange(n) % 4
    a = (1 + torch.rand(n, generator=g)).unsqueeze(1)
    base_amp = torch.tensor([1.0, 0.0, 0.7, 1.0])[c].unsqueeze(1)
    hb = a * base_amp * e[c]
    hd = a * e[c]
    return torch.cat([hb, hd], 1)


def _dense_latent_scaling(sae, x, own_is_domain):
    """Latent Scaling's sums written out densely over all latents (fp64), the reference of the sparse one."""
    blocks = decoder_blocks(sae)
    db, dd = blocks.base.double(), blocks.domain.double()
    d = db.shape[1]
    u = torch.where(torch.from_numpy(own_is_domain).unsqueeze(1), dd, db)
    code = sae.encode(x)
    f = torch.zeros(x.shape[0], db.shape[0], dtype=torch.float64).scatter_(
        1, code.latent_indices.long(), code.latent_acts.double())
    lat = f @ torch.cat([db, dd], 1)
    xn = x.double() * float(sae.norm_scale)
    out = {}
    for k, sl, dm in (("base", slice(0, d), db), ("domain", slice(d, 2 * d), dd)):
        err = xn[:, sl] - lat[:, sl] - sae.b_dec.detach().double()[sl]
        out["eps_" + k] = (f * (err @ u.t())).sum(0) + (dm * u).sum(1) * f.pow(2).sum(0)
        out["r_" + k] = (f * (lat[:, sl] @ u.t())).sum(0)
    den = u.pow(2).sum(1) * f.pow(2).sum(0)
    return {k: (v / den).numpy() for k, v in out.items()}


@pytest.mark.parametrize("coact_max", [2048, 0], ids=["co-activation table", "reconstruction"])
def test_latent_scaling_equals_its_dense_sums_on_a_random_crosscoder(monkeypatch, coact_max):
    monkeypatch.setattr(crosscoder_module, "COACT_MAX_LATENTS", coact_max)  # both ways of summing the reconstruction
    torch.manual_seed(0)
    sae = TopKSAE(SaeConfig(d_in=16, num_latents=40, k=5, seed=0))
    x = torch.randn(700, 16)
    sae.init_from_sample(x)
    own = relative_norm(*[b.double() for b in decoder_blocks(sae)]) >= 0.5
    ref = _dense_latent_scaling(sae, x, np.asarray(own))
    s = latent_scaling(sae, x.split(300), np.asarray(own))
    alive = s.n_active > 0
    assert alive.sum() > 20
    od = np.asarray(own)
    np.testing.assert_allclose(s.beta_eps_own[alive], np.where(od, ref["eps_domain"], ref["eps_base"])[alive], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(s.beta_eps_other[alive], np.where(od, ref["eps_base"], ref["eps_domain"])[alive], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(s.beta_r_own[alive], np.where(od, ref["r_domain"], ref["r_base"])[alive], rtol=1e-9, atol=1e-9)
    codes = encode_rows(sae, x)  # the analysis' one encoding of the rows, read instead of a second
    again = latent_scaling(sae, x.split(300), np.asarray(own), codes=codes)
    np.testing.assert_allclose(again.beta_eps_own, s.beta_eps_own, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="codes hold 700 rows"):
        latent_scaling(sae, [x, x[:5]], np.asarray(own), codes=codes)


def test_latent_scaling_flags_planted_artifacts_and_keeps_true_specific_latents():
    sae = hand_built_crosscoder()
    x = hand_built_data()
    s = latent_scaling(sae, x.split(1000))
    np.testing.assert_allclose(s.beta_eps_own[:5], 1.0, atol=1e-6)  # each working latent explains its own part
    assert s.nu_eps[1] == pytest.approx(0.0, abs=1e-6) and s.nu_r[1] == pytest.approx(0.0, abs=1e-6)  # real
    assert s.nu_eps[2] == pytest.approx(0.7, abs=1e-6) and s.nu_r[2] == pytest.approx(0.0, abs=1e-6)  # shrinkage
    assert s.nu_r[3] == pytest.approx(1.0, abs=1e-6) and s.nu_eps[3] == pytest.approx(0.0, abs=1e-6)  # decoupling
    assert s.nu_r[4] == pytest.approx(1.0, abs=1e-6)
    assert (s.n_active[5:] == 0).all() and np.isnan(s.nu_eps[5:]).all()
    t = crosscoder_table(3, sae, s)
    assert list(t["class"]) == ["shared", "domain_only", "domain_only", "domain_only", "base_only", "dead", "dead",
                                "dead"]
    assert list(t["artifact"]) == [False, False, True, True, True, False, False, False]
    summ = layer_summary(t)
    assert (summ.n_shared, summ.n_domain_only, summ.n_base_only) == (1, 1, 0)
    assert (summ.n_domain_only_artifact, summ.n_base_only_artifact) == (2, 1)
    assert summ.n_live_crosscoder == 5 and summ.n_domain_only_lo <= 1 <= summ.n_domain_only_hi
    assert math.isnan(summ.n_shared_seed1)  # no seed 1 given: NaN, not a count


def test_seed_stability_counts_matching_domain_only_latents():
    g = torch.Generator().manual_seed(0)
    w0 = torch.randn(20, 32, generator=g)
    cls0 = np.array(["domain_only"] * 10 + ["shared"] * 10, object)
    w1 = w0.clone()
    w1[5:10] = torch.randn(5, 32, generator=g)  # half of the domain-only latents are not found again
    assert class_stability(w0, cls0, w1, cls0) == pytest.approx(0.5)
    cls1 = cls0.copy()
    cls1[:5] = "shared"  # found, but not as domain-only: does not count
    assert class_stability(w0, cls0, w1, cls1) == pytest.approx(0.0)
    assert math.isnan(class_stability(w0, np.array(["shared"] * 20, object), w1, cls1))


def test_tables_round_trip_and_bad_inputs_fail_in_one_line(tmp_path):
    sae = hand_built_crosscoder()
    t = crosscoder_table(1, sae, latent_scaling(sae, [hand_built_data(400)]))
    write_analysis_table(tmp_path, "crosscoder", pd.concat([t, t.assign(layer=2)]))
    back = read_table(tmp_path, "crosscoder")
    assert list(back.columns) == list(CROSSCODER_COLUMNS) and len(back) == 16
    pd.testing.assert_frame_equal(back[back.layer == 1].reset_index(drop=True), t, check_dtype=False)
    with pytest.raises(ValueError, match="lacks columns"):
        write_analysis_table(tmp_path, "crosscoder", t.drop(columns=["delta"]))
    with pytest.raises(DataMissingError, match="crosscoder table not found"):
        read_table(tmp_path / "nowhere", "crosscoder")
    save(sae, tmp_path / "plain")
    with pytest.raises(ConfigError, match="not a crosscoder"):
        load_crosscoder(tmp_path / "plain")
    save(sae, tmp_path / "xc", extra={"crosscoder": {"block_scales": [0.5, 0.25]}})
    loaded, scales = load_crosscoder(tmp_path / "xc")
    assert scales == (0.5, 0.25) and torch.equal(loaded.W_dec, sae.W_dec)
    with pytest.raises(ValueError, match="own_is_domain must have 8 entries"):
        latent_scaling(sae, [hand_built_data(40)], np.ones(3, bool))


def test_analyze_layer_scores_selectivity_contexts_and_seed_stability():
    """40 documents of 5 tokens: the 20 financial ones (10 of them AG Business) carry concept 1 (the real
    domain-only latent), the general ones concepts 0, 2, 3 in turn."""
    sae = hand_built_crosscoder()
    n_docs, per = 40, 5
    e = torch.eye(8)
    rows, doc_of_row = [], []
    for doc in range(n_docs):
        c = 1 if doc < 20 else (0, 2, 3)[doc % 3]
        for t in range(per):
            a = 1.0 + 0.1 * t + 0.01 * doc
            rows.append(torch.cat([a * (0.0 if c == 1 else 1.0) * e[c], a * e[c]]))
            doc_of_row.append(doc)
    x = torch.stack(rows).numpy()
    frame = pd.DataFrame({"doc_id": [f"d{i}" for i in range(n_docs)],
                          "text": ["alpha beta gamma delta epsilon"] * n_docs, "source": "test"})
    held = HeldoutSet(Corpus(name="toy", frame=frame), {
        "financial": np.arange(20), "general": np.arange(20, 40), "ag_business": np.arange(10),
        "ag_other": np.arange(20, 30)})
    char_start = np.tile(np.array([0, 6, 11, 17, 23]), n_docs)
    out = analyze_layer(2, sae, x, held, np.array(doc_of_row), char_start, AnalysisConfig(), sae_seed1=sae,
                        paired_rows_seed1=x)
    t = out.table
    assert list(t["financial"]) == [False, True] + [False] * 6
    assert t["auroc_broad"][1] == pytest.approx(1.0) and t["auroc_genre"][1] == pytest.approx(1.0)
    s = out.row
    assert s.n_domain_only_financial == 1 and s.crosscoder_seed_stability == pytest.approx(1.0)
    assert s.n_domain_only_seed1 == 1
    assert set(out.contexts["latent"]) == {0, 1}  # the real domain-only latent and the shared one
    top = out.contexts[(out.contexts.latent == 1) & (out.contexts.kind == "top")]
    assert len(top) > 0 and top["doc_id"].isin([f"d{i}" for i in range(20)]).all()


def test_class_stability_in_row_chunks_equals_the_whole_table():
    """Wider than one chunk (2,048 rows): the same share as the dense [a, b] table gives."""
    rng = np.random.default_rng(0)
    w0, w1 = rng.normal(size=(5000, 8)), rng.normal(size=(3000, 8))
    w1[:2500] = w0[:2500] + 0.05 * rng.normal(size=(2500, 8))  # the first 2,500 reappear in seed 1
    cls0, cls1 = np.array(["domain_only"] * 5000, object), np.array(["domain_only"] * 3000, object)
    a, b = w0 / np.linalg.norm(w0, axis=1, keepdims=True), w1 / np.linalg.norm(w1, axis=1, keepdims=True)
    dense = float(((a @ b.T).max(1) >= 0.7).mean())
    assert class_stability(w0, cls0, w1, cls1, tau=0.7) == pytest.approx(dense, abs=1e-9)
    assert dense > 0.49
