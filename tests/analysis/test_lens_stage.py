"""`analyze.py` on the tiny pair (one model on both sides) runs the activation lens first: its table, its
layers.parquet fields, its figure, findings.md opening with it, [CLS] from the cache's special store, and its
knobs under ``analysis.lens.*``."""

import numpy as np
import pytest
from stage_runs import PAIR, SMALL_ANALYSIS, run

from finsae.analysis.artifacts import plot_paths, read_findings, read_layers, read_table
from finsae.analysis.lens import MEASURES
from finsae.analysis.methods.lens import TABLE
from finsae.paths import analysis_dir

pytestmark = pytest.mark.slow
SMALL = [*SMALL_ANALYSIS, "logger=none", "analysis.jobs=1", "analysis.lens.n_boot=20"]


def test_the_stage_runs_the_lens_first(project_root, data_dir, tmp_path):
    art = tmp_path / "art"
    run(project_root, art, "train.py", "--multirun", "debug=tiny", "layer=0,1", "tag=t", "logger=none")
    run(project_root, art, "analyze.py", *PAIR, "tag=t", "activations.store_special=true", *SMALL)
    out = analysis_dir(art, "tiny_tiny")
    lens = read_table(out, TABLE)
    assert sorted(set(lens["layer"])) == [0, 1] and set(lens["position"]) == {"tokens", "cls"}
    assert set(lens["text_type"]) == {"financial", "general", "all", "difference"}
    assert set(lens["measure"]) == set(MEASURES)
    assert (lens["lo"] <= lens["value"] + 1e-9).all() and (lens["value"] <= lens["hi"] + 1e-9).all()
    # one model on both sides: nothing changed, at the tokens and at [CLS]
    every = lens[lens["text_type"] == "all"].set_index(["layer", "position", "measure"])["value"]
    assert np.allclose(every.xs("relative_change", level="measure"), 0, atol=1e-9)
    assert np.allclose(every.xs("cka", level="measure"), 1, atol=1e-4)
    assert (every.xs("affine_r2", level="measure") > 0.999).all()
    layers = read_layers(out)
    assert layers["lens_cls_stored"].all() and np.allclose(layers["lens_rel_change"], 0, atol=1e-9)
    assert (layers["lens_n_tokens"] > 0).all() and np.allclose(layers["lens_cls_cka"], 1, atol=1e-4)
    assert "activation_lens_by_layer.png" in {p.name for p in plot_paths(out)}
    findings = read_findings(out)
    title, first = findings.split("\n## ")[:2]
    assert title.startswith("# Findings") and first.startswith("Where the twin differs: the activation lens")
    assert "| 0 | 0.000 [0.000, 0.000] |" in first and "[CLS] was not measured" not in first


def test_a_bad_lens_knob_fails_in_one_line(project_root, tmp_path):
    r = run(project_root, tmp_path / "art", "analyze.py", *PAIR, "tag=t", "analysis.lens.fit_fraction=1.5",
            check=False)
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("finsae: error:")]
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-2000:]
    assert "analysis.lens.fit_fraction" in lines[0]
