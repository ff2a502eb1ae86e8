"""Dead latents, learning rate, fit, save/load and config validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from finsae.errors import ConfigError, DataMissingError
from finsae.sae import (
    DeadLatentTracker,
    SaeConfig,
    SaeTrainConfig,
    TopKSAE,
    default_lr,
    fit,
    load,
    lr_schedule,
    published_lr,
    read_meta,
    save,
)

# ---------------------------------------------------------------------------- dead latents


def test_dead_tracker_counts_and_resets():
    t = DeadLatentTracker(6, dead_tokens=100)
    t.update(torch.tensor([[0, 1], [1, 2]]), num_tokens=60)
    assert t.tokens_since_fired.tolist() == [0, 0, 0, 60, 60, 60]
    assert not t.dead_mask().any()
    t.update(torch.tensor([[0, 5]]), num_tokens=40, latent_acts=torch.tensor([[1.0, 0.0]]))  # 5 did not fire
    assert t.tokens_since_fired.tolist() == [0, 40, 40, 100, 100, 100]
    assert t.dead_mask().tolist() == [False, False, False, True, True, True]
    assert t.dead_fraction() == 0.5
    state = t.state_dict()
    u = DeadLatentTracker(6, dead_tokens=100)
    u.load_state_dict(state)
    assert torch.equal(u.tokens_since_fired, t.tokens_since_fired)


def test_dead_tracker_reduce_fn_makes_ranks_agree():
    """Two simulated ranks: the reduce sums fired flags and token counts, so both agree."""
    ranks = [DeadLatentTracker(4, 50) for _ in range(2)]
    packed_by_rank = {}

    def make_reduce(r):
        def reduce_fn(t):
            packed_by_rank[r] = t.clone()
            return t  # replaced below once both ranks have "sent"
        return reduce_fn

    # Rank 0 fires latent 0 on 30 tokens, rank 1 fires latent 2 on 20 tokens.
    local = [(torch.tensor([[0]]), 30), (torch.tensor([[2]]), 20)]
    for r, (idx, n) in enumerate(local):
        ranks[r].reduce_fn = make_reduce(r)
        ranks[r].update(idx, n)
    total = packed_by_rank[0] + packed_by_rank[1]
    assert total[-1] == 50 and total[:-1].tolist() == [1, 0, 1, 0]
    for idx, n in local:
        fresh = DeadLatentTracker(4, 50, reduce_fn=lambda t: total.clone())
        fresh.update(idx, n)
        assert fresh.tokens_since_fired.tolist() == [0, 50, 0, 50]
        assert fresh.dead_mask().tolist() == [False, True, False, True]


# ---------------------------------------------------------------------------- learning rate


def test_default_lr_interpolates_between_boosted_and_published():
    m = 12_288
    assert math.isclose(default_lr(m, 1_000_000), 1e-3, rel_tol=1e-9)
    assert math.isclose(default_lr(m, 2_000_000), 1e-3, rel_tol=1e-9)
    assert math.isclose(default_lr(m, 10**9), published_lr(m), rel_tol=1e-9)
    assert math.isclose(published_lr(2**14), 2e-4)
    mid = default_lr(m, 31_622_776)  # geometric middle of 2M and 500M
    assert math.isclose(mid, math.sqrt(1e-3 * published_lr(m)), rel_tol=1e-6)
    lrs = [default_lr(m, t) for t in (1e6, 1e7, 1e8, 1e9)]
    assert lrs == sorted(lrs, reverse=True)
    assert default_lr(4 * m, 10**6) == pytest.approx(default_lr(m, 10**6) / 2)


def test_lr_schedule_shapes():
    peak = 1.0
    lin = [lr_schedule(s, 100, peak, warmup_steps=10) for s in range(100)]
    assert lin[0] == pytest.approx(0.1) and lin[9] == pytest.approx(1.0)
    assert lin[10] == pytest.approx(1.0) and lin[-1] == pytest.approx(0.0)
    assert all(a >= b for a, b in zip(lin[10:], lin[11:], strict=False))
    cos = [lr_schedule(s, 100, peak, 10, "cosine", final_lr_frac=0.1) for s in range(100)]
    assert cos[-1] == pytest.approx(0.1) and cos[55] == pytest.approx(0.55, abs=0.02)
    assert lr_schedule(50, 100, 2.0, 0, "constant") == 2.0
    with pytest.raises(ValueError):
        lr_schedule(1, 10, 1.0, 0, "bogus")


# ---------------------------------------------------------------------------- fit


def _sparse_data(n, d, atoms, active, seed):
    g = torch.Generator().manual_seed(seed)
    dictionary = torch.randn(atoms, d, generator=torch.Generator().manual_seed(99))
    dictionary /= dictionary.norm(dim=1, keepdim=True)
    ids = torch.stack([torch.randperm(atoms, generator=g)[:active] for _ in range(n)])
    coef = torch.rand(n, active, generator=g) + 0.5
    x = torch.einsum("na,nad->nd", coef, dictionary[ids])
    return x + 0.3 + 0.01 * torch.randn(n, d, generator=g)


def test_fit_learns_synthetic_sparse_data():
    """2-sparse combinations of 32 atoms: 60 steps must take held-out FVU from ~0.7 to well under 0.2."""
    d, atoms, active, steps, batch = 32, 32, 2, 60, 256
    train = _sparse_data(steps * batch, d, atoms, active, seed=0)
    test = _sparse_data(1024, d, atoms, active, seed=1)
    sae = TopKSAE(SaeConfig(d_in=d, num_latents=64, k=4))
    sae.init_from_sample(train[:2048])
    with torch.no_grad():
        start = float(sae(test).fvu)
    cfg = SaeTrainConfig(lr=2e-2, warmup_frac=0.1, batch_size=batch, tokens=train.shape[0])
    history = fit(sae, list(train.split(batch)), cfg)
    with torch.no_grad():
        end = float(sae(test).fvu)
    assert len(history) == steps
    assert start > 0.5
    assert end < 0.2 and end < 0.3 * start, (start, end)
    assert history[-1].fvu < 0.5 * history[0].fvu
    assert sae.tokens_seen == train.shape[0]


def test_fit_initialises_fresh_sae_and_respects_token_budget():
    x = torch.randn(10 * 64, 8) * 4 + 1
    sae = TopKSAE(SaeConfig(d_in=8, num_latents=32, k=4))
    history = fit(sae, iter(x.split(64)), SaeTrainConfig(init_sample=128, batch_size=64, tokens=5 * 64))
    assert sae.initialized and len(history) == 5
    assert abs(float((x[:128] * sae.norm_scale).pow(2).sum(1).mean()) - 1) < 1e-4
    with pytest.raises(ValueError, match="no batches"):
        fit(TopKSAE(SaeConfig(d_in=8, num_latents=32, k=4)), iter([]), SaeTrainConfig(batch_size=64, tokens=64))


# ---------------------------------------------------------------------------- save / load


def test_save_load_round_trip(tmp_path):
    x = torch.randn(300, 12) * 3
    sae = TopKSAE(SaeConfig(d_in=12, num_latents=48, k=5, k_aux=7, seed=3))
    sae.init_from_sample(x)
    with torch.no_grad():
        sae.b_enc.normal_()
    sae.tokens_seen = 12345
    path = save(sae, tmp_path / "sae", extra={"layer": 3, "model": "minilm"})
    assert {p.name for p in path.iterdir()} == {"sae.safetensors", "cfg.json"}
    meta = read_meta(path)
    assert meta["tokens_seen"] == 12345 and meta["extra"] == {"layer": 3, "model": "minilm"}
    assert meta["finsae_version"] and meta["norm_scale"] == pytest.approx(float(sae.norm_scale))
    assert meta["num_latents"] == 48 and meta["k_aux"] == 7
    back = load(path, expected_d_in=12)
    assert back.cfg == sae.cfg and back.initialized and back.tokens_seen == 12345
    for name in ("W_enc", "b_enc", "W_dec", "b_dec", "norm_scale"):
        assert torch.equal(getattr(back, name), getattr(sae, name)), name
    torch.testing.assert_close(back(x).sae_out, sae(x).sae_out)


def test_load_d_in_mismatch_and_missing(tmp_path):
    sae = TopKSAE(SaeConfig(d_in=12, num_latents=24, k=2))
    save(sae, tmp_path / "s")
    with pytest.raises(ConfigError, match="d_in=12 but d_in=768 was expected"):
        load(tmp_path / "s", expected_d_in=768)
    with pytest.raises(DataMissingError):
        load(tmp_path / "nowhere")
    cfg = json.loads((tmp_path / "s" / "cfg.json").read_text())
    cfg["num_latents"] = 30
    (tmp_path / "s" / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="W_enc has shape"):
        load(tmp_path / "s")


def test_sae_folder_check_and_identity(tmp_path):
    from finsae.sae.io import is_sae_dir, sae_identity

    a = save(TopKSAE(SaeConfig(d_in=12, num_latents=24, k=2, seed=1)), tmp_path / "a")
    b = save(TopKSAE(SaeConfig(d_in=12, num_latents=24, k=2, seed=2)), tmp_path / "b")
    assert is_sae_dir(a) and is_sae_dir(b) and not is_sae_dir(tmp_path / "nowhere")
    assert sae_identity(a) == sae_identity(a) and sae_identity(a) != sae_identity(b)
    (a / "cfg.json").unlink()  # weights alone are not an SAE folder
    assert not is_sae_dir(a)


# ---------------------------------------------------------------------------- config


def test_config_resolves_defaults():
    c = SaeConfig(d_in=384)
    assert c.num_latents == 32 * 384 and c.k_aux == 192 and c.k == 32
    assert SaeConfig(d_in=10, expansion_factor=2, num_latents=0, k=4).num_latents == 20
    assert SaeConfig.from_dict({**c.to_dict(), "junk": 1}) == c


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"d_in": 0}, "d_in"),
        ({"d_in": 8, "k": 0}, "k"),
        ({"d_in": 8, "k": -3}, "k"),
        ({"d_in": 8, "num_latents": 16, "k": 17}, "k"),
        ({"d_in": 8, "expansion_factor": 0}, "expansion_factor"),
        ({"d_in": 8, "num_latents": -1}, "num_latents"),
        ({"d_in": 8, "k_aux": 0}, "k_aux"),
        ({"d_in": 8, "num_latents": 16, "k": 4, "k_aux": 99}, "k_aux"),
        ({"d_in": 8, "encoder_dtype": "fp16"}, "encoder_dtype"),
        ({"d_in": 8, "k": 2.5}, "k"),
    ],
)
def test_config_errors_are_one_clear_line(kwargs, field):
    with pytest.raises(ConfigError) as err:
        SaeConfig(**kwargs)
    msg = str(err.value)
    assert f"SaeConfig.{field}" in msg and "\n" not in msg


@pytest.mark.parametrize("kwargs, field", [
    ({"schedule": "step"}, "schedule"), ({"lr": -1.0}, "lr"), ({"auxk_coef": -1.0}, "auxk_coef"),
    ({"dead_tokens": 0}, "dead_tokens"), ({"init_sample": 0}, "init_sample"), ({"k": 0}, "k"),
    ({"batch_size": 512, "tokens": 100}, "tokens"), ({"encoder_dtype": "fp8"}, "encoder_dtype"),
])
def test_train_config_errors_name_the_override(kwargs, field):
    with pytest.raises(ConfigError) as err:
        SaeTrainConfig(**kwargs)
    assert str(err.value).startswith(f"sae.{field} ") and "\n" not in str(err.value)


def test_train_config_derives_steps_warmup_dead_threshold_and_sae_config():
    c = SaeTrainConfig(tokens=2_000_000, batch_size=512, warmup_frac=0.05, expansion_factor=8, k=16)
    assert c.total_steps == 3906 and c.warmup_steps == 195 and c.dead_token_threshold == 200_000
    assert SaeTrainConfig(tokens=200_000_000, batch_size=8192).warmup_steps == 1000  # capped
    assert SaeTrainConfig(tokens=10**9, batch_size=4096).dead_token_threshold == 10_000_000
    assert c.peak_lr(3072) == default_lr(3072, 3906 * 512) and SaeTrainConfig(lr=3e-4).peak_lr(10) == 3e-4
    sc = c.sae_config(d_in=48, seed=7)
    assert (sc.num_latents, sc.k, sc.k_aux, sc.seed, sc.encoder_dtype) == (384, 16, 24, 7, "fp32")
    with pytest.raises(ConfigError, match="sae.k=16 exceeds num_latents=8"):
        c.sae_config(d_in=1)


def test_topk_sae_refuses_a_dict():
    with pytest.raises(ConfigError, match="TopKSAE needs a SaeConfig"):
        TopKSAE({"d_in": 8})  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- init sample


def test_init_sample_is_uniform_over_the_whole_mix():
    """Three corpora one after another in row order (as a mixed cache stores them): the sample keeps each one's
    share within sampling error, at the size asked for, and none of it is dropped before the init."""
    from finsae.sae import uniform_sample_rows

    sizes = {"financial": 60_000, "general": 30_000, "phrasebank": 10_000}
    corpus_of_row = np.repeat(np.arange(3), list(sizes.values()))
    train_rows = np.flatnonzero(np.arange(len(corpus_of_row)) % 20 != 0)  # the sae_eval documents are gone
    sample = uniform_sample_rows(train_rows, 32768, seed=0)
    assert len(sample) == 32768 and len(np.unique(sample)) == 32768 and np.isin(sample, train_rows).all()
    want = np.bincount(corpus_of_row[train_rows], minlength=3) / len(train_rows)
    got = np.bincount(corpus_of_row[sample], minlength=3) / len(sample)
    sigma = np.sqrt(want * (1 - want) / len(sample))
    assert (np.abs(got - want) < 4 * sigma).all(), (got, want)
    assert not np.array_equal(sample, uniform_sample_rows(train_rows, 32768, seed=1))
    assert len(uniform_sample_rows(train_rows[:10], 32768, seed=0)) == 10


def test_init_from_sample_uses_every_row():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(16_384, 4, generator=g), torch.randn(8_000, 4, generator=g) + 50.0])
    sae = TopKSAE(SaeConfig(d_in=4, num_latents=8, k=2))
    sae.init_from_sample(x)
    ms = x.double().pow(2).sum(1).mean()
    assert float(sae.norm_scale) == pytest.approx(float(1 / ms.sqrt()), rel=1e-6)  # the second block counts
