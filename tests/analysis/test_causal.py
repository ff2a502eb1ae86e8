"""The causal test on planted truth (tests/analysis/planted_causal.py: a twin that differs from the base only
at one layer, affinely or affinely plus a non-affine feature, with the same logits). Patching the base's
affine image then changes nothing where the twin is an affine image of the base, and moves the logits only
at the planted non-affine layer. The latent ablation removes planted always-on latents against random ones."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from planted_causal import (
    D,
    EVAL_TEXTS,
    FIT_TEXTS,
    N_LAYERS,
    PLANTED,
    PLANTED_LATENTS,
    logits,
    planted_sae,
    twin_of,
)

from finsae.analysis.causal import (
    ABLATION_COLUMNS,
    PATCH_COLUMNS,
    CONDITIONS,
    CausalConfig,
    ablate_latents,
    affine_patch_test,
    draw_random_latents,
    fit_patch_maps,
    latent_ablation_test,
)
from finsae.errors import ConfigError
from finsae.models.loading import LoadedModel, hidden_states

CFG = CausalConfig(n_boot=400, ridge=1e-7, batch_size=64, n_random_draws=4, conditions=list(CONDITIONS))


def _value(table, layer, condition, measure) -> float:
    row = table[(table.layer == layer) & (table.condition == condition) & (table.measure == measure)]
    assert len(row) == 1
    return float(row.value.iloc[0])


def test_planted_twin_differs_only_at_its_layer_and_keeps_the_logits(base):
    twin = twin_of(base, amplitude=2.0)
    b = base.tokenizer(EVAL_TEXTS[:8], padding=True, return_tensors="pt")
    hb = hidden_states(base.encoder, b["input_ids"], b["attention_mask"], range(N_LAYERS)).layers
    ht = hidden_states(twin.encoder, b["input_ids"], b["attention_mask"], range(N_LAYERS)).layers
    for layer in range(N_LAYERS):
        same = torch.allclose(hb[layer], ht[layer], atol=1e-4)
        assert same == (layer != PLANTED), layer
    np.testing.assert_allclose(logits(twin, EVAL_TEXTS), logits(base, EVAL_TEXTS), atol=1e-4)


def test_affine_patch_reproduces_an_affine_twin_and_the_raw_base_does_not(base):
    twin = twin_of(base, amplitude=0.0)
    labels = logits(twin, EVAL_TEXTS).argmax(1)
    maps = fit_patch_maps(base, twin, FIT_TEXTS, range(N_LAYERS), CFG)
    result = affine_patch_test(base, twin, EVAL_TEXTS, labels, maps, CFG)
    assert list(result.table.columns) == list(PATCH_COLUMNS)
    scale = np.abs(result.twin_logits - result.twin_logits.mean(0)).mean()
    for layer in range(N_LAYERS):
        assert _value(result.table, layer, "affine", "mean_abs_dlogit") < 1e-3 * scale, layer
        assert _value(result.table, layer, "identity", "mean_abs_dlogit") < 1e-5 * scale, layer
        assert _value(result.table, layer, "affine", "accuracy") == 1.0
    # the raw base state at the planted layer is not what the twin's next layer reads
    assert _value(result.table, PLANTED, "base", "mean_abs_dlogit") > 0.3 * scale
    assert _value(result.table, PLANTED, "affine", "nonaffine_share") < 1e-2


def test_affine_patch_moves_the_logits_only_at_the_non_affine_layer(base):
    twin = twin_of(base, amplitude=2.0)
    labels = logits(twin, EVAL_TEXTS).argmax(1)
    maps = fit_patch_maps(base, twin, FIT_TEXTS, range(N_LAYERS), CFG)
    table = affine_patch_test(base, twin, EVAL_TEXTS, labels, maps, CFG).table
    moved = {layer: _value(table, layer, "affine", "mean_abs_dlogit") for layer in range(N_LAYERS)}
    for layer in set(range(N_LAYERS)) - {PLANTED}:
        assert moved[layer] < 1e-3 * moved[PLANTED], moved
        assert _value(table, layer, "affine", "accuracy") == 1.0
        assert np.isnan(_value(table, layer, "affine", "nonaffine_share"))  # twin = base here: no share
    row = table[(table.layer == PLANTED) & (table.condition == "affine")
                & (table.measure == "mean_abs_dlogit")]
    assert row.lo.iloc[0] > 0 and row.lo.iloc[0] <= row.value.iloc[0] <= row.hi.iloc[0]
    assert _value(table, PLANTED, "affine", "kl") > 0
    assert _value(table, PLANTED, "affine", "accuracy_change") < 0  # labels: the twin's own predictions
    share = _value(table, PLANTED, "affine", "nonaffine_share")
    assert 0.05 < share < 5  # the non-affine feature carries a real part of what the twin's next layer reads


def test_patch_refuses_bad_labels_and_missing_maps(base):
    twin = twin_of(base, amplitude=0.0)
    with pytest.raises(ConfigError, match="too few"):  # 20 [CLS] rows for a 32-wide map
        fit_patch_maps(base, twin, FIT_TEXTS[:20], [0], replace(CFG, ridge=1e-2))
    maps = fit_patch_maps(base, twin, FIT_TEXTS[:20], [0], replace(CFG, ridge=1e-2), split_cls=False)
    with pytest.raises(ConfigError, match="too few"):  # a map handed in is held to the same bar
        affine_patch_test(base, twin, EVAL_TEXTS[:4], [0, 1, 2, 0], {0: replace(maps[0]["tokens"], n_fit=9)})
    with pytest.raises(ConfigError, match="labels"):
        affine_patch_test(base, twin, EVAL_TEXTS[:4], [0, 1, 5, 0], maps, CFG)
    with pytest.raises(ConfigError, match="labels"):
        affine_patch_test(base, twin, EVAL_TEXTS[:4], [0, 1], maps, CFG)
    with pytest.raises(ConfigError, match="layer"):
        affine_patch_test(base, twin, EVAL_TEXTS[:4], [0, 1, 2, 0], {**maps, 7: maps[0]}, CFG)
    encoder = LoadedModel(base.spec, base.model.bert, base.tokenizer, "x", "encoder")
    with pytest.raises(ConfigError, match="classifier"):
        affine_patch_test(base, encoder, EVAL_TEXTS[:4], [0, 1, 2, 0], maps, CFG)


def test_ablation_keeps_the_error_term_and_removes_exactly_the_latents(base):
    sae = planted_sae(base, 1)
    x = torch.randn(50, D) * 3
    assert torch.equal(ablate_latents(sae, [])(x), x)
    code = sae.encode(x)
    drop = torch.isin(code.latent_indices, torch.tensor(PLANTED_LATENTS))
    reference = sae.decode(code.latent_acts.masked_fill(drop, 0), code.latent_indices) \
        + (x - sae.decode(code.latent_acts, code.latent_indices))
    torch.testing.assert_close(ablate_latents(sae, PLANTED_LATENTS)(x), reference, atol=1e-5, rtol=1e-5)


def test_planted_latents_move_the_logits_more_than_random_live_ones(base):
    layer = 1
    targets = [*PLANTED_LATENTS, 90]
    result = latent_ablation_test(base, planted_sae(base, layer), layer, EVAL_TEXTS, targets, CFG)
    table = result.table
    assert list(table.columns) == list(ABLATION_COLUMNS)
    assert set(result.targets) <= set(PLANTED_LATENTS) | {90} and set(PLANTED_LATENTS) <= set(result.targets)
    assert result.random_sets.shape == (CFG.n_random_draws, len(result.targets))
    assert not np.isin(result.random_sets, result.targets).any()
    for measure in ("mean_abs_dlogit", "kl"):
        diff = table[(table.latent_set == "difference") & (table.measure == measure)].iloc[0]
        assert diff.lo > 0 and diff.p_random == 0.0, measure
        target = table[(table.latent_set == "target") & (table.measure == measure)].iloc[0]
        random = table[(table.latent_set == "random") & (table.measure == measure)].iloc[0]
        assert target.value > 2 * random.value > 0, measure


def test_random_latents_match_firing_and_refuse_a_small_pool():
    rng = np.random.default_rng(0)
    firing = rng.integers(1, 10_000, 400)
    firing[:20] = 0  # dead: never drawn
    targets = np.arange(20, 40)
    matched = draw_random_latents(firing, targets, 6, seed=1)
    uniform = draw_random_latents(firing, targets, 6, seed=1, match_firing=False)
    for draws in (matched, uniform):
        assert draws.shape == (6, 20) and not np.isin(draws, targets).any() and (firing[draws] > 0).all()
        assert all(len(set(row)) == 20 for row in draws)
    gap = {name: np.abs(np.log(firing[d]) - np.log(firing[targets])).mean() for name, d in
           (("matched", matched), ("uniform", uniform))}
    assert gap["matched"] < 0.3 * gap["uniform"]
    with pytest.raises(ConfigError, match="too few"):
        draw_random_latents(np.r_[np.zeros(10), np.ones(5)], np.arange(10, 14), 2, seed=0)


def test_ablation_refuses_dead_targets_and_bad_ids(base):
    sae = planted_sae(base, 1)
    dead = 1  # not planted; its encoder bias is pushed so low that it never fires
    cfg = replace(CFG, n_boot=10)
    with torch.no_grad():
        sae.b_enc[dead] = -1e3
    with pytest.raises(ConfigError, match="fires"):
        latent_ablation_test(base, sae, 1, EVAL_TEXTS[:6], [dead], cfg)
    with pytest.raises(ConfigError, match="latent ids"):
        latent_ablation_test(base, sae, 1, EVAL_TEXTS[:6], [500], cfg)
