"""The warm start end to end on the tiny model: the runs the demo plan trains (domain run, control A, the
affine-map null and control B, by the Hydra overrides of ``finsae.demo.plan``'s warm jobs), then
``analyze.py`` finds the null and control B by their tags and fills their columns."""

import numpy as np
import pytest
from stage_runs import PAIR, QUICK_LAYER_1, SMALL_ANALYSIS, run, train_warm_runs

from finsae.analysis.artifacts import read_findings, read_layers, read_table
from finsae.analysis.warmstart import WARMSTART_COLUMNS
from finsae.paths import analysis_dir, sae_dir
from finsae.sae.summary import SaeSummary

pytestmark = pytest.mark.slow
SMALL = [*SMALL_ANALYSIS, "logger=csv", "layer=1"]


@pytest.fixture(scope="module")
def art(tmp_path_factory, project_root, data_dir):
    """The base SAE at layer 1 and its four continuations (here the "twin" is the base model itself, so the
    affine map is the identity and every run sees the base's activations)."""
    art = tmp_path_factory.mktemp("warm") / "art"
    run(project_root, art, "train.py", "debug=tiny", "layer=1", "tag=t")
    start = f"sae.init_from={sae_dir(art, 'tiny', 1, 't')}"
    train_warm_runs(project_root, art)
    run(project_root, art, "train.py", *QUICK_LAYER_1, "seed=1", start, "sae.dictionary=affine_null",
        "tag=t_warm_affine")
    run(project_root, art, "train.py", *QUICK_LAYER_1, "seed=2", start, "tag=t_warm_control_b")
    return art


def test_the_analysis_reads_the_affine_null_and_control_b(project_root, art):
    null = SaeSummary.read(sae_dir(art, "tiny", 1, "t_warm_affine")).to_dict()
    assert null["affine_r2"] > 0.99  # the base's affine image of itself
    run(project_root, art, "analyze.py", *PAIR, "tag=t", *SMALL)
    out = analysis_dir(art, "tiny_tiny")
    ws, row = read_table(out, "warmstart"), read_layers(out).set_index("layer").loc[1]
    assert tuple(ws.columns) == WARMSTART_COLUMNS and len(ws) == 128
    for col in ("drift_affine", "drift_beyond_affine", "drift_control_b", "drift_control_b_from_a",
                "encoder_drift_domain", "firing_start"):
        assert np.isfinite(ws[col]).all(), col
    live = ws["live"].to_numpy()
    assert live.sum() > 64 and np.nanmedian(ws.loc[live, "act_corr_control"]) > 0.5
    # the domain run is control A here (one model, one seed): nothing beyond the null, nothing died
    assert bool(row["affine_null"]) and row["n_changed"] == 0 and row["n_died"] == 0
    assert 0 <= row["fp_rate_control_b_lo"] <= row["fp_rate_control_b"] <= row["fp_rate_control_b_hi"] < 0.2
    assert row["n_tested_control_b"] > 64 and np.isfinite(row["n_died_control_b"])
    assert "beyond the affine null" in read_findings(out) and "control B" in read_findings(out)
