"""`analyze.py` end to end with the causal test on the tiny pair (the tiny model on both sides, loaded as a
classifier with its seeded head): SAEs at layers 0 and 1, the warm-started runs at layer 1 only."""

import numpy as np
import pandas as pd
import pytest

from method_columns import n_method_columns
from stage_runs import PAIR, SMALL_ANALYSIS, run, train_warm_runs
from finsae.analysis.artifacts import plot_paths, read_findings, read_layers, read_table
from finsae.analysis.causal_layer import CAUSAL_COLUMNS
from finsae.analysis.methods.base import MethodResult
from finsae.analysis.methods.causal import _changed_latents
from finsae.analysis.methods.warmstart import NAME as WARMSTART
from finsae.analysis.saes import PairSaes
from finsae.paths import analysis_dir

pytestmark = pytest.mark.slow
SMALL = [*SMALL_ANALYSIS, "analysis.causal.n_boot=50", "analysis.causal.n_random_draws=2", "logger=none"]


@pytest.fixture(scope="module")
def art(tmp_path_factory, project_root, data_dir):
    art = tmp_path_factory.mktemp("causal") / "art"
    run(project_root, art, "train.py", "--multirun", "debug=tiny", "layer=0,1", "tag=t", "logger=none")
    train_warm_runs(project_root, art)
    return art


def test_analyze_writes_the_causal_test(project_root, art):
    out = run(project_root, art, "analyze.py", *PAIR, "tag=t", "analysis.jobs=1", "pair_name=causal", *SMALL)
    folder = analysis_dir(art, "causal")
    table, layers = read_table(folder, "causal"), read_layers(folder).set_index("layer")
    assert tuple(table.columns) == tuple(CAUSAL_COLUMNS) and sorted(set(table["layer"])) == [0, 1]
    for layer in (0, 1):
        rows = table[table["layer"] == layer].set_index(["intervention", "measure"])
        n = rows.loc[("none", "accuracy"), "n_texts"]
        assert 2 <= n <= 60 and layers.loc[layer, "causal_n_sentences"] == n  # 20 held-out sentences a label
        # the twin is the base: its raw states change nothing, its affine image (fitted on cached fp16 rows)
        # next to nothing
        assert rows.loc[("patch_base", "mean_abs_dlogit"), "value"] < 1e-6
        assert abs(rows.loc[("patch_affine", "accuracy_change"), "value"]) <= 0.1
        cols = ["causal_twin_accuracy", "causal_accuracy_change", "causal_accuracy_change_lo",
                "causal_dlogit"]
        assert np.isfinite(layers.loc[layer, cols].astype(float)).all()
    # no warm start at layer 0: no ablation there
    assert not table.loc[table["layer"] == 0, "intervention"].str.startswith("ablate").any()
    assert np.isnan(layers.loc[0, "ablation_dlogit_diff"])
    # layer 1 is the last: the head reads only [CLS], no latent is ablated there (no power, not "0")
    assert not table["intervention"].str.startswith("ablate").any()
    side = read_findings(folder).split("methods side by side")[1].split("Do they agree")[0]
    assert "causal: matters?" in side and side.count("| no: Δacc") == 2, side
    header = next(ln for ln in side.splitlines() if ln.startswith("| layer"))
    assert header.count("|") == n_method_columns() + 2  # layer and each method: no "|" inside a header
    assert "causal_by_layer.png" in {p.name for p in plot_paths(folder)}
    assert "layer 1: causal: affine patch" in out.stdout + out.stderr


def test_the_warm_starts_changed_latents_are_what_is_ablated(art):
    saes = PairSaes(art, "tiny", "tiny", "t", ("t_seed1",))
    table = pd.DataFrame({"latent": np.arange(6), "changed": [False, True, False, False, True, False]})
    earlier = {WARMSTART: MethodResult(row=None, tables={WARMSTART: table})}
    sae, changed = _changed_latents(earlier, saes, 1)
    assert changed.tolist() == [1, 4] and sae.num_latents == 128
    assert _changed_latents(earlier, saes, 0) == (None, None)  # no warm-started runs at layer 0
    assert _changed_latents({}, saes, 1) == (None, None)  # the warm start did not run
    nothing = {WARMSTART: MethodResult(row=None, tables={WARMSTART: table.assign(changed=False)})}
    assert _changed_latents(nothing, saes, 1) == (None, None)


def test_switched_off_it_writes_nothing(project_root, art):
    run(project_root, art, "analyze.py", *PAIR, "tag=t", "layer=0", "analysis.jobs=1", "pair_name=off",
        "analysis.causal.enabled=false", *SMALL)
    folder = analysis_dir(art, "off")
    assert not (folder / "causal.parquet").exists() and "causal_dlogit" not in read_layers(folder)
