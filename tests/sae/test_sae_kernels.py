"""The sparse kernels against a naive dense float64 reference."""

from __future__ import annotations

import pytest
import torch

from finsae.sae import dense_reference_forward
from finsae.sae.kernels import TopKSaeFn, _topk_rows, topk_encode

PARAMS = ("W_enc", "b_enc", "W_dec", "b_dec")


def _grads(sae, fn, x, dead_mask, auxk_coef):
    sae.zero_grad(set_to_none=True)
    out = fn(sae, x, dead_mask)
    loss = out.fvu + auxk_coef * out.auxk_loss
    loss.backward()
    return out, {n: getattr(sae, n).grad.clone() for n in PARAMS}


def _ours(sae, x, dead_mask):
    return sae(x, dead_mask=dead_mask)


@pytest.mark.parametrize("with_aux", [False, True])
@pytest.mark.parametrize("shape", [(16, 64, 4, 8, 32), (24, 96, 7, 20, 50)])
def test_grads_match_dense_reference_float64(with_aux, shape, make_sae):
    d, m, k, k_aux, n = shape
    sae = make_sae(d, m, k, k_aux, seed=n)
    x = torch.randn(n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(7)) * 3 + 1
    dead = None
    if with_aux:
        dead = torch.zeros(m, dtype=torch.bool)
        dead[torch.randperm(m, generator=torch.Generator().manual_seed(3))[: m // 2]] = True
    coef = 0.7  # a non-default weight so the AuxK gradient is visible
    ours, g_ours = _grads(sae, _ours, x, dead, coef)
    ref, g_ref = _grads(sae, dense_reference_forward, x, dead, coef)
    assert torch.equal(ours.latent_indices.sort(1).values, ref.latent_indices.sort(1).values)
    assert abs(ours.fvu.item() - ref.fvu.item()) < 1e-12
    assert abs(ours.auxk_loss.item() - ref.auxk_loss.item()) < 1e-12
    if with_aux:
        assert ours.auxk_loss.item() > 0
    torch.testing.assert_close(ours.sae_out, ref.sae_out, rtol=0, atol=1e-12)
    for name in PARAMS:
        diff = (g_ours[name] - g_ref[name]).abs().max().item()
        assert diff < 1e-10, f"{name}: max |grad diff| = {diff:.3g}"
        assert g_ref[name].abs().max() > 0


def test_grads_through_acts_and_input_match_reference(make_sae):
    """Losses on the latent activations (e.g. an L1 term) and on the input also backprop correctly."""
    sae = make_sae()
    x = torch.randn(20, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    grads = []
    for fn in (_ours, dense_reference_forward):
        sae.zero_grad(set_to_none=True)
        xi = x.clone().requires_grad_(True)
        out = fn(sae, xi, None)
        (out.fvu + 0.1 * out.latent_acts.sum() + out.sae_out.pow(2).mean()).backward()
        grads.append([getattr(sae, p).grad.clone() for p in PARAMS] + [xi.grad.clone()])
    for a, b in zip(*grads, strict=True):
        assert (a - b).abs().max().item() < 1e-10


def test_auxk_zero_without_dead_and_positive_with_dead(sae64):
    x = torch.randn(40, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert sae64(x).auxk_loss.item() == 0.0
    assert sae64(x, dead_mask=torch.zeros(64, dtype=torch.bool)).auxk_loss.item() == 0.0
    dead = torch.zeros(64, dtype=torch.bool)
    dead[:32] = True
    out = sae64(x, dead_mask=dead)
    assert out.auxk_loss.item() > 0.0
    # AuxK never changes the main reconstruction.
    torch.testing.assert_close(out.sae_out, sae64(x).sae_out)


def test_auxk_uses_only_dead_latents(sae64):
    x = torch.randn(30, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    dead_idx = torch.arange(0, 64, 3)
    z = x * sae64.norm_scale - sae64.b_dec
    _, _, aux_acts, aux_idx = topk_encode(z, sae64.W_enc, sae64.b_enc, 4, dead_idx=dead_idx, k_aux=5)
    assert aux_idx.shape == (30, 5)
    assert torch.isin(aux_idx, dead_idx).all()
    pre = z @ sae64.W_enc.t() + sae64.b_enc
    ref = pre[:, dead_idx].topk(5, dim=1).values.relu()
    torch.testing.assert_close(aux_acts.sort(1).values, ref.sort(1).values)


@pytest.mark.parametrize("rows,cols,k", [(300, 24576, 192), (64, 12288, 32), (9, 1000, 10), (5, 64, 4), (3, 50, 50)])
def test_topk_matches_torch_topk(rows, cols, k):
    pre = torch.randn(rows, cols, generator=torch.Generator().manual_seed(cols))
    vals = torch.empty(rows, k)
    idx = torch.empty(rows, k, dtype=torch.long)
    _topk_rows(pre, k, vals, idx)
    ref_vals, ref_idx = pre.topk(k, dim=1)
    assert torch.equal(vals.sort(1).values, ref_vals.sort(1).values)
    assert torch.equal(idx.sort(1).values, ref_idx.sort(1).values)
    assert torch.equal(pre.gather(1, idx), vals)


def test_topk_falls_back_on_ties():
    pre = torch.zeros(4, 4096)
    pre[:, :3] = 1.0  # only 3 distinct winners, the rest tie at 0
    vals = torch.empty(4, 16)
    idx = torch.empty(4, 16, dtype=torch.long)
    _topk_rows(pre, 16, vals, idx)
    assert torch.equal(vals.sort(1).values, pre.topk(16, dim=1).values.sort(1).values)
    assert len(set(idx[0].tolist())) == 16


def test_encoder_topk_equals_dense_relu_topk(make_sae):
    sae = make_sae(d=32, m=4096, k=24, dtype=torch.float32)
    x = torch.randn(200, 32, generator=torch.Generator().manual_seed(5))
    enc = sae.encode(x)
    pre = (x * sae.norm_scale - sae.b_dec) @ sae.W_enc.t() + sae.b_enc
    ref = pre.relu().topk(24, dim=1)
    torch.testing.assert_close(enc.latent_acts.sort(1).values, ref.values.sort(1).values)
    pos = enc.latent_acts > 0
    assert torch.equal(pre.gather(1, enc.latent_indices)[pos], enc.latent_acts[pos])


def test_chunked_encoder_matches_single_chunk(monkeypatch, make_sae):
    import finsae.sae.kernels as kernels

    sae = make_sae(d=16, m=256, k=8, dtype=torch.float64)
    z = torch.randn(500, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    one = topk_encode(z, sae.W_enc, sae.b_enc, 8)
    monkeypatch.setattr(kernels, "CHUNK_BYTES", 64 * 256 * 8)  # 64-row chunks
    many = topk_encode(z, sae.W_enc, sae.b_enc, 8)
    for (va, ia), (vb, ib) in [((one[0], one[1]), (many[0], many[1]))]:
        sa, sb = ia.sort(1), ib.sort(1)
        assert torch.equal(sa.values, sb.values)
        torch.testing.assert_close(va.gather(1, sa.indices), vb.gather(1, sb.indices), rtol=0, atol=1e-12)


def test_decode_is_sparse_and_matches_dense(sae64):
    x = torch.randn(10, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    enc = sae64.encode(x)
    dense = torch.zeros(10, 64, dtype=torch.float64).scatter(1, enc.latent_indices, enc.latent_acts)
    ref = (dense @ sae64.W_dec + sae64.b_dec) / sae64.norm_scale
    torch.testing.assert_close(sae64.decode(*enc), ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(sae64(x).sae_out, ref, rtol=0, atol=1e-12)


def test_function_without_backward_inputs_is_cheap(sae64):
    """No parameter needs grad: the function still runs and returns nothing to backprop."""
    for p in sae64.parameters():
        p.requires_grad_(False)
    x = torch.randn(8, 16, dtype=torch.float64)
    out = TopKSaeFn.apply(x, sae64.b_dec, sae64.W_enc, sae64.b_enc, sae64.W_dec, 4, None, 0, "fp32", None)
    assert not out[0].requires_grad


def test_bf16_encoder_mode_close_to_fp32():
    import warnings

    from finsae.sae import SaeConfig, TopKSAE

    x = torch.randn(256, 64, generator=torch.Generator().manual_seed(9))
    outs = []
    for dt in ("fp32", "bf16"):
        sae = TopKSAE(SaeConfig(d_in=64, num_latents=512, k=16, encoder_dtype=dt))
        sae.init_from_sample(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outs.append(sae(x))
    same = torch.isin(outs[1].latent_indices, outs[0].latent_indices).float().mean()
    assert same > 0.8
    assert abs(outs[0].fvu.item() - outs[1].fvu.item()) < 0.02 * outs[0].fvu.item()


def test_auxk_target_is_the_error_left_by_the_live_latents(sae64):
    """AuxK (Gao et al. 2024): the top-k_aux dead latents reconstruct e = x - x_hat. Checked against the formula
    written out here (the dense reference shares the kernels' conventions, so it cannot catch a sign slip), and
    by its effect: one Adam step on AuxK alone points a dead latent's decoder row toward the mean error."""
    x = torch.randn(64, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) + 2.0
    dead = torch.zeros(64, dtype=torch.bool)
    dead[::2] = True
    out = sae64(x, dead_mask=dead)
    xn = x * sae64.norm_scale
    recon = out.sae_out * sae64.norm_scale
    z = xn - sae64.b_dec
    _, _, aux_acts, aux_idx = topk_encode(z, sae64.W_enc, sae64.b_enc, sae64.cfg.k,
                                          dead_idx=dead.nonzero().reshape(-1), k_aux=sae64.cfg.k_aux)
    aux_recon = (aux_acts.unsqueeze(-1) * sae64.W_dec[aux_idx]).sum(1)
    e = xn - recon
    expected = (aux_recon - e).pow(2).sum() / (e - e.mean(0)).pow(2).sum()
    assert abs(out.auxk_loss.item() - expected.item()) < 1e-10

    w_before = sae64.W_dec.detach().clone()
    opt = torch.optim.SGD(sae64.parameters(), lr=1e-3)
    sae64(x, dead_mask=dead).auxk_loss.backward()
    opt.step()
    moved = sae64.W_dec.detach() - w_before
    used = aux_idx.unique()
    mean_err = e.mean(0)
    # the dead rows that took part move toward the error they must explain, not away from it
    cos = torch.nn.functional.cosine_similarity(moved[used], mean_err.expand(len(used), -1), dim=1)
    assert cos.mean().item() > 0.5
