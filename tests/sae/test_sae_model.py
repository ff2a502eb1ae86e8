"""TopKSAE behaviour: initialisation, normalisation, decoder constraints, geometric median."""

from __future__ import annotations

import torch

from finsae.sae import (
    DeadLatentTracker,
    SaeConfig,
    SaeTrainConfig,
    TopKSAE,
    build_optimizer,
    geometric_median,
    remove_parallel_decoder_grad,
    renorm_decoder,
    train_step,
)
from tolerances import FLOAT32_REDUCTION_TOL


def test_init_encoder_is_decoder_transpose_and_unit_norm():
    sae = TopKSAE(SaeConfig(d_in=32, expansion_factor=4, k=8))
    assert sae.W_enc.shape == sae.W_dec.shape == (128, 32)
    torch.testing.assert_close(sae.W_enc, sae.W_dec)
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(128))
    assert sae.b_enc.abs().sum() == 0 and not sae.initialized


def test_same_seed_same_weights_and_global_rng_untouched():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = TopKSAE(SaeConfig(d_in=8, num_latents=16, k=2, seed=5))
    after = torch.rand(1)
    b = TopKSAE(SaeConfig(d_in=8, num_latents=16, k=2, seed=5))
    c = TopKSAE(SaeConfig(d_in=8, num_latents=16, k=2, seed=6))
    assert torch.equal(before, after)
    assert torch.equal(a.W_dec, b.W_dec) and not torch.equal(a.W_dec, c.W_dec)


def test_geometric_median_identical_rows_is_that_row():
    p = torch.tensor([1.5, -2.0, 3.25]).repeat(7, 1)
    torch.testing.assert_close(geometric_median(p), p[0])


def test_geometric_median_known_answers():
    # 1-D: the median. Symmetric cloud: its centre. Collinear odd count: the middle point.
    pts = torch.tensor([[0.0], [1.0], [2.0], [3.0], [100.0]], dtype=torch.float64)
    assert abs(float(geometric_median(pts)) - 2.0) < 1e-4
    square = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]], dtype=torch.float64) + 5
    torch.testing.assert_close(geometric_median(square), torch.tensor([5.0, 5.0], dtype=torch.float64), atol=1e-6, rtol=0)
    # Equilateral triangle: the Fermat point is the centroid.
    tri = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 3**0.5 / 2]], dtype=torch.float64)
    torch.testing.assert_close(geometric_median(tri), tri.mean(0), atol=1e-5, rtol=0)


def test_geometric_median_robust_to_outliers():
    g = torch.Generator().manual_seed(0)
    inliers = torch.randn(200, 8, generator=g) * 0.1 + 2.0
    outliers = torch.full((30, 8), 1000.0)
    pts = torch.cat([inliers, outliers])
    med = geometric_median(pts)
    assert (med - 2.0).abs().max() < 0.1
    assert (pts.mean(0) - 2.0).abs().min() > 100  # the mean is dragged away


def test_normalisation_round_trip_and_scale_free_fvu():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(512, 16, generator=g, dtype=torch.float64) * 50 + 7
    sae = TopKSAE(SaeConfig(d_in=16, num_latents=64, k=64), dtype=torch.float64)  # k = m: near-perfect code
    sae.init_from_sample(x)
    xn = x * sae.norm_scale
    assert abs(float(xn.pow(2).sum(1).mean()) - 1.0) < 1e-12
    # With every latent active and an orthonormal-ish full dictionary, reconstruction is in x's units.
    out = sae(x)
    assert out.sae_out.shape == x.shape
    scaled = TopKSAE(SaeConfig(d_in=16, num_latents=64, k=64), dtype=torch.float64)
    scaled.init_from_sample(x * 1000)
    out_scaled = scaled(x * 1000)
    torch.testing.assert_close(out_scaled.sae_out, out.sae_out * 1000, rtol=1e-9, atol=1e-6)
    torch.testing.assert_close(out_scaled.fvu, out.fvu, rtol=1e-9, atol=0)
    # decode(encode(x)) is forward's reconstruction, in original units.
    torch.testing.assert_close(sae.decode(*sae.encode(x)), out.sae_out)


def test_no_normalisation_keeps_scale_one():
    sae = TopKSAE(SaeConfig(d_in=4, num_latents=8, k=2, normalize_input=False))
    sae.init_from_sample(torch.randn(64, 4) * 30)
    assert float(sae.norm_scale) == 1.0


def test_forward_accepts_leading_dims():
    sae = TopKSAE(SaeConfig(d_in=8, num_latents=32, k=4))
    x = torch.randn(3, 5, 8)
    out = sae(x)
    assert out.sae_out.shape == (3, 5, 8)
    assert out.latent_indices.shape == (15, 4) and out.latent_acts.shape == (15, 4)
    assert out.latent_indices.dtype == torch.long and (out.latent_acts >= 0).all()


def test_parallel_grad_removal_makes_grad_tangent():
    sae = TopKSAE(SaeConfig(d_in=8, num_latents=32, k=4), dtype=torch.float64)
    sae.W_dec.grad = torch.randn(32, 8, dtype=torch.float64) + 3 * sae.W_dec.detach()
    before = sae.W_dec.grad.clone()
    remove_parallel_decoder_grad(sae)
    dots = (sae.W_dec.grad * sae.W_dec).sum(1)
    assert dots.abs().max() < 1e-12
    # Only the parallel part was removed.
    par = before - sae.W_dec.grad
    cos = torch.nn.functional.cosine_similarity(par, sae.W_dec.detach(), dim=1)
    assert (cos.abs() - 1).abs().max() < 1e-9


def test_renorm_decoder():
    sae = TopKSAE(SaeConfig(d_in=8, num_latents=32, k=4))
    with torch.no_grad():
        sae.W_dec.mul_(torch.rand(32, 1) * 5 + 0.1)
    renorm_decoder(sae)
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(32))


def test_decoder_unit_norm_after_steps_and_tokens_counted():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(256, 16, generator=g)
    sae = TopKSAE(SaeConfig(d_in=16, num_latents=128, k=8))
    sae.init_from_sample(x)
    opt = build_optimizer(sae, SaeTrainConfig(), 1e-2)
    tracker = DeadLatentTracker(128, 10_000)
    for _ in range(5):
        m = train_step(sae, opt, x, tracker, SaeTrainConfig())
        torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(128), rtol=0, atol=1e-5)
        assert sae.W_dec.grad is None
    assert sae.tokens_seen == 5 * 256 and int(tracker.tokens) == 5 * 256 and int(tracker.updates) == 5
    # loss = fvu + aux term >= fvu; the two float32 reductions round differently on AVX2 and AVX-512 (1.2e-7 seen)
    assert 0 < m.l0 <= 8 and m.loss >= m.fvu - FLOAT32_REDUCTION_TOL and m.dead_fraction == 0.0


def test_optimizer_takes_eps_from_the_config_and_steps_like_plain_adam():
    cfg = SaeTrainConfig(adam_eps=1e-6)
    a, b = (TopKSAE(SaeConfig(d_in=8, num_latents=16, k=2, seed=0)) for _ in range(2))
    opt = build_optimizer(a, cfg, 1e-2)
    assert isinstance(opt, torch.optim.Adam) and opt.defaults["eps"] == 1e-6 and opt.defaults["lr"] == 1e-2
    ref = torch.optim.Adam(b.parameters(), lr=1e-2, eps=1e-6)
    for sae, o in ((a, opt), (b, ref)):
        for p in sae.parameters():
            p.grad = torch.ones_like(p)
        o.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb)


def test_dead_mask_length_checked():
    sae = TopKSAE(SaeConfig(d_in=8, num_latents=32, k=4))
    import pytest

    with pytest.raises(ValueError, match="num_latents=32"):
        sae(torch.randn(4, 8), dead_mask=torch.ones(31, dtype=torch.bool))


def test_keep_freed_memory_in_a_subprocess():
    """Process-wide malloc tuning, run in children so this process is unaffected: with it, a big buffer
    allocated and freed again and again reuses its pages (few page faults); without it each round faults anew."""
    import platform
    import subprocess
    import sys

    import pytest

    if not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"):
        pytest.skip("glibc-only tuning")
    code = (
        "import resource, sys, numpy as np\n"
        "from finsae.sae.alloc import keep_freed_memory\n"
        "applied = keep_freed_memory() if sys.argv[1] == '1' else None\n"
        "np.empty(8 << 20).fill(1.0)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(10):\n"
        "    np.empty(8 << 20).fill(1.0)\n"  # 64 MB: above glibc's mmap threshold
        "print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    runs = {}
    for tuned in ("0", "1"):
        r = subprocess.run([sys.executable, "-c", code, tuned], capture_output=True, text=True, timeout=120, check=True)
        applied, faults = r.stdout.split()
        runs[tuned] = (applied, int(faults))
    assert runs["1"][0] == "True"
    assert runs["0"][1] >= 100  # every round maps fresh pages without the tuning (huge pages make them fewer)
    assert runs["1"][1] < 0.2 * runs["0"][1], runs
