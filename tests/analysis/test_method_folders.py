"""Which SAE folders key a layer's analysis result (PairSaes.method_saes): every seed repeat of every method
and the warm start's optional runs under the configured suffixes, so retraining any of them redoes the
layer."""

from __future__ import annotations

from dataclasses import replace

from finsae.analysis.config import AnalysisConfig
from finsae.analysis.saes import PairSaes


def test_every_seed_repeat_and_configured_warm_suffix_keys_the_layer(tmp_path):
    saes = PairSaes(tmp_path, "base", "twin", "demo", ("demo_seed1", "demo_seed2"))
    cfg = AnalysisConfig()
    cfg = replace(cfg, warmstart=replace(cfg.warmstart, affine_suffix="_aff2", control_b_suffix="_ctlb2"))
    folders = saes.method_saes(cfg)
    assert len(folders) == len(set(folders))
    for seed in ("demo", "demo_seed1", "demo_seed2"):
        assert ("crosscoder_base_twin", seed) in folders
        for model in ("base", "twin"):
            assert (model, seed) in folders
        assert ("twin", f"{seed}_warm_domain") in folders and ("base", f"{seed}_warm_control") in folders
    assert ("twin", "demo_aff2") in folders and ("base", "demo_ctlb2") in folders
    assert ("twin", "demo_warm_affine") not in folders  # the default suffix is not read under another one
