"""`analyze.py` end to end on the tiny model (both sides of the pair), and its one-line refusals."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from finsae.analysis.contexts import CONTEXT_COLUMNS, read_contexts
from finsae.analysis.summary import AnalysisSummary

pytestmark = pytest.mark.slow
PAIR = ["pair.base=tiny", "pair.domain=tiny"]
SMALL = ["analysis.docs_per_side=150", "analysis.docs_per_category=20", "analysis.n_boot=10",
         "analysis.agreement_tokens=4000", "analysis.control_latents=4", "progress_bar=false", "logger=csv"]


def run(root, art, script, *overrides, check=True):
    flags = [o for o in overrides if o.startswith("--")]
    cmd = [sys.executable, script, *flags, f"paths.artifacts={art}", *(o for o in overrides if o not in flags)]
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=900, check=False)
    if check:
        assert r.returncode == 0, r.stderr[-4000:]
    return r


@pytest.fixture(scope="module")
def art(tmp_path_factory, project_root, data_dir):
    art = tmp_path_factory.mktemp("analyze") / "art"
    run(project_root, art, "train.py", "--multirun", "debug=tiny", "layer=0,1", "tag=t")
    run(project_root, art, "train.py", "debug=tiny", "layer=1", "tag=t_seed1", "seed=1")
    return art


def test_all_layers_then_multirun_give_the_same_tables(project_root, art):
    # all layers in two worker processes, then one layer per job in-process: the same tables
    run(project_root, art, "analyze.py", *PAIR, "tag=t", "analysis.jobs=2", *SMALL)
    out = art / "analysis" / "tiny_tiny"
    layers = pd.read_parquet(out / "layers.parquet")
    feats = pd.read_parquet(out / "features.parquet")
    assert layers["layer"].tolist() == [0, 1]
    for col in ("overlap", "overlap_seed_ceiling", "overlap_random", "n_financial", "n_specialized",
                "n_specialized_seed_floor", "overlap_ci_low", "n_financial_ci_high", "fvu_base_on_domain"):
        assert col in layers, col
    # the same SAE on both sides matches itself; seeds differ; the ceiling exists only where a seed repeat does
    assert layers["overlap"].eq(1.0).all()
    assert np.isnan(layers.loc[0, "overlap_seed_ceiling"]) and 0 <= layers.loc[1, "overlap_seed_ceiling"] < 1
    assert layers["overlap_random"].max() < 0.2
    for col in ("overlap_seed_ceiling_base", "overlap_seed_ceiling_domain", "overlap_null", "overlap_null_adjacent",
                "overlap_count_max_cardinality", "cross_fvu_corrected_base_on_domain",
                "cross_fvu_corrected_domain_on_base", "n_specialized_seed1", "n_specialized_seed_floor_lo",
                "n_specialized_seed_floor_hi", "specialized_over_floor", "overlap_seed1", "improvement_genre"):
        assert col in layers, col
    assert layers["null_adjacent_layer"].tolist() == [1, 0]  # each layer's neighbour, both trained
    assert (layers["overlap_count_max_cardinality"] >= layers["n_matched"]).all()
    assert np.isfinite(layers.loc[1, "n_specialized_seed_floor"]) and np.isnan(layers.loc[0, "n_specialized_seed1"])
    # base and domain are one model here: on one latent set the base-vs-domain count IS the seed floor
    assert layers.loc[1, "n_specialized_seed1"] == layers.loc[1, "n_specialized_seed_floor"]
    assert np.isfinite(layers["cross_fvu_corrected_base_on_domain"]).all()
    assert set(feats["role"]) == {"base", "domain"} and feats.groupby(["role", "layer"]).size().eq(128).all()
    ctx = read_contexts(out, "tiny", 1)
    assert tuple(ctx.columns) == CONTEXT_COLUMNS and set(ctx["kind"]) <= {"top", "quantile", "negative"}
    summary = AnalysisSummary.read(out)
    assert summary.layers == [0, 1] and summary.docs["ag_business"] > 1800
    findings = (out / "findings.md").read_text()
    assert "1,200+ specialized" in findings and "seed ceiling" in findings
    assert {p.name for p in (out / "plots").glob("*.png")} >= {"overlap_by_layer.png", "counts_by_layer.png"}
    before = {n: pd.read_parquet(out / f"{n}.parquet") for n in ("layers", "features", "curves")}

    shutil.rmtree(out)
    run(project_root, art, "analyze.py", "--multirun", "layer=0,1", *PAIR, "tag=t", *SMALL)
    for n, frame in before.items():
        pd.testing.assert_frame_equal(pd.read_parquet(out / f"{n}.parquet"), frame, check_like=True)


def one_line_error(r) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("finsae: error:")]
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-3000:]
    return lines[0]


def test_missing_sae_names_the_artifact_and_the_train_command(project_root, art):
    line = one_line_error(run(project_root, art, "analyze.py", *PAIR, "tag=t", "layers=[0,1]",
                              "pair.domain=minilm_fin", check=False))
    assert "sae/minilm_fin/layer_0/t" in line and "python train.py experiment=demo model=minilm_fin layer=0 tag=t" in line


def test_bad_inputs_fail_in_one_line(project_root, art, tmp_path):
    assert "analysis.tau" in one_line_error(run(project_root, art, "analyze.py", *PAIR, "tag=t", "analysis.tau=2",
                                                check=False))
    assert "analysis.null_tokens" in one_line_error(run(project_root, art, "analyze.py", *PAIR, "tag=t",
                                                        "analysis.null_tokens=0", check=False))
    assert "out of range" in one_line_error(run(project_root, art, "analyze.py", *PAIR, "tag=t", "layer=7",
                                                check=False))
    # two SAEs of different widths at the same layer
    other = tmp_path / "art"
    shutil.copytree(art / "sae", other / "sae")
    cfg = other / "sae" / "tiny" / "layer_0" / "t" / "cfg.json"
    meta = json.loads(cfg.read_text())
    shutil.copytree(other / "sae" / "tiny", other / "sae" / "minilm")
    meta2 = dict(meta, d_in=384)
    (other / "sae" / "minilm" / "layer_0" / "t" / "cfg.json").write_text(json.dumps(meta2))
    line = one_line_error(run(project_root, other, "analyze.py", "pair.base=minilm", "pair.domain=tiny", "tag=t",
                              "layer=0", check=False))
    assert "d_in=384" in line and "d_in=32" in line
    # layers trained with different settings are not mixed into one table
    cfg1 = other / "sae" / "tiny" / "layer_1" / "t" / "cfg.json"
    cfg1.write_text(json.dumps(dict(json.loads(cfg1.read_text()), k=8)))
    line = one_line_error(run(project_root, other, "analyze.py", *PAIR, "tag=t", check=False))
    assert "differ in setting" in line and "k=8" in line and "layers=[...]" in line
