"""`analyze.py` end to end on the tiny model (both sides of the pair), with a crosscoder and warm-started runs
at layer 1 (none at layer 0: "not run" there), and its one-line refusals."""

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from method_columns import side_by_side_heading
from stage_runs import PAIR, QUICK_LAYER_1, SMALL_ANALYSIS, run, train_warm_runs
from finsae.analysis.artifacts import (
    TableSpec,
    contexts_path,
    plot_paths,
    read_features,
    read_findings,
    read_layers,
    read_summary,
    read_table,
)
from finsae.analysis.contexts import CONTEXT_COLUMNS, read_contexts
from finsae.analysis.crosscoder import CROSSCODER_COLUMNS
from finsae.analysis.methods.base import DiffingMethod, LayerData, MethodResult, RowFields
from finsae.analysis.methods.crosscoder import NAME as CROSSCODER
from finsae.analysis.saes import PairSaes
from finsae.analysis.warmstart import WARMSTART_COLUMNS
from finsae.paths import analysis_dir

pytestmark = pytest.mark.slow
SMALL = [*SMALL_ANALYSIS, "logger=csv"]


@pytest.fixture(scope="module")
def art(tmp_path_factory, project_root, data_dir):
    art = tmp_path_factory.mktemp("analyze") / "art"
    run(project_root, art, "train.py", "--multirun", "debug=tiny", "layer=0,1", "tag=t")
    for seed in (1, 2):  # layer 1 has three seeds, layer 0 one (issue 33 §3: a layer reports what it has)
        run(project_root, art, "train.py", "debug=tiny", "layer=1", f"tag=t_seed{seed}", f"seed={seed}")
    for tag, seed in (("t", 0), ("t_seed1", 1)):  # the crosscoder and its seed repeat, as the demo plan (finsae.demo.plan)
        run(project_root, art, "train.py", *QUICK_LAYER_1, "task=crosscoder", *PAIR, f"tag={tag}",
            f"seed={seed}")
    train_warm_runs(project_root, art)
    return art


def test_all_layers_then_multirun_give_the_same_tables(project_root, art):
    # all layers in two worker processes, then one layer per job in-process: the same tables
    run(project_root, art, "analyze.py", *PAIR, "tag=t", "analysis.jobs=2", *SMALL)
    out = analysis_dir(art, "tiny_tiny")
    layers = read_layers(out)
    feats = read_features(out)
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
    summary = read_summary(out)
    assert summary.layers == [0, 1] and summary.docs["ag_business"] > 1800
    # what each method cost, over the layers computed (the crosscoder and warm start ran at layer 1 only)
    assert {"lens", "independent", "crosscoder", "warmstart"} <= set(summary.method_seconds)
    assert all(s > 0 for s in summary.method_seconds.values())
    findings = read_findings(out)
    assert "1,200+ specialized" in findings and "seed ceiling" in findings
    assert {p.name for p in plot_paths(out)} >= {"overlap_by_layer.png", "counts_by_layer.png"}
    check_seed_estimates(layers, summary)
    check_crosscoder_and_warmstart(out, layers, findings)
    before = {n: read_table(out, n) for n in ("layers", "features", "curves", "crosscoder", "warmstart")}

    shutil.rmtree(out)
    run(project_root, art, "analyze.py", "--multirun", "layer=0,1", *PAIR, "tag=t", *SMALL)
    for n, frame in before.items():
        pd.testing.assert_frame_equal(read_table(out, n), frame, check_like=True)


def check_seed_estimates(layers, summary):
    """Counts and overlaps as mean ± seed SD over the seeds each layer has: three at layer 1, one at 0."""
    by = layers.set_index("layer")
    assert by["n_seeds"].to_dict() == {0: 1, 1: 3}
    assert by.loc[1, "n_financial_n_seeds"] == 3 and by.loc[0, "n_financial_n_seeds"] == 1
    assert np.isfinite(by.loc[1, "n_financial_seed_sd"]) and np.isnan(by.loc[0, "n_financial_seed_sd"])
    one = by.loc[1]
    assert one["n_financial_seed_lo"] <= one["n_financial_seed_mean"] <= one["n_financial_seed_hi"]
    assert by["overlap_seed_mean"].eq(1.0).all()  # each seed's SAE on both sides matches itself
    assert one["n_specialized_repeat_n_seeds"] == 2 and pd.isna(by.loc[0, "n_specialized_repeat_seed_text"])
    assert 0 <= by.loc[1, "overlap_cross_seed_seed_mean"] < 1
    # one model on both sides: base seed 0 IS domain seed 0, so the repeats' count equals their floor
    assert by.loc[1, "n_specialized_over_floor_seed_mean"] == 0
    text = by.loc[1, "n_specialized_over_floor_seed_text"]
    power = one["n_specialized_over_floor_seed_power"]
    assert text.startswith("no power (") if not power else "± 0.0" in text
    assert summary.seed_tags == ["t_seed1", "t_seed2"] and summary.n_seeds == {"0": 1, "1": 3}
    assert summary.seed_estimates["n_financial"]["1"]["n_seeds"] == 3
    assert summary.seed_estimates["n_specialized_seed_floor"].keys() == {"1"}


def check_crosscoder_and_warmstart(out, layers, findings):
    """Layer 1 has a crosscoder (two seeds) and both warm-started runs, layer 0 none of them."""
    cc, ws = read_table(out, "crosscoder"), read_table(out, "warmstart")
    assert tuple(cc.columns) == CROSSCODER_COLUMNS and cc["layer"].eq(1).all() and len(cc) == 128
    assert tuple(ws.columns) == WARMSTART_COLUMNS and ws["layer"].eq(1).all() and len(ws) == 128
    l0, l1 = layers.set_index("layer").loc[0], layers.set_index("layer").loc[1]
    for col in ("n_shared", "n_base_only", "n_domain_only", "crosscoder_seed_stability", "n_changed",
                "n_changed_control"):
        assert np.isnan(l0[col]), col  # not run at layer 0: NaN, never a failure
    live = cc["class"] != "dead"
    assert l1["n_live_crosscoder"] == live.sum() > 0
    for cls in ("shared", "base_only", "domain_only"):
        specific = (cc["class"] == cls) & ~cc["artifact"]
        assert l1[f"n_{cls}"] == specific.sum(), cls
        assert l1[f"n_{cls}_lo"] <= l1[f"n_{cls}"] <= l1[f"n_{cls}_hi"], cls
        assert np.isfinite(l1[f"n_{cls}_seed1"]), cls
    # one model on both sides: no latent can be specific to either, its two decoder blocks read the same rows
    assert cc.loc[live, "delta"].between(0.2, 0.8).all(), cc.loc[live, "delta"].describe()
    # the domain run saw exactly the control run's inputs: same drifts, changed only at the control's level
    np.testing.assert_allclose(ws["drift_domain"], ws["drift_control"], rtol=0, atol=1e-6)
    assert ws["drift_control"].max() > 0 and l1["n_changed"] == l1["n_changed_control"]
    assert l1["n_changed_lo"] <= l1["n_changed"] <= l1["n_changed_hi"]
    ctx = read_contexts(out, CROSSCODER, 1)
    assert tuple(ctx.columns) == CONTEXT_COLUMNS and set(ctx["latent"]) <= set(cc.loc[cc["class"] == "shared", "latent"])
    assert not contexts_path(out, CROSSCODER, 0).exists()
    methods = findings.split(side_by_side_heading())[1].split("Do they agree")[0]
    row0, row1 = (ln for ln in methods.splitlines() if ln.startswith(("| 0 |", "| 1 |")))
    assert row0.count("not run") >= 2 and "not run" not in row1.split("|", 3)[3], (row0, row1)
    assert {p.name for p in plot_paths(out)} >= {"crosscoder_delta.png",
                                                               "crosscoder_classes_by_layer.png",
                                                               "warmstart_drift.png"}


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
    # layers may differ in setting (a denser last layer); base and twin of one layer may not
    cfg1 = other / "sae" / "tiny" / "layer_1" / "t" / "cfg.json"
    cfg1.write_text(json.dumps(dict(json.loads(cfg1.read_text()), k=8)))
    assert PairSaes(other, "tiny", "tiny", "t", ("t_seed1",)).resolve_layers(None) == [0, 1]
    line = one_line_error(run(project_root, other, "analyze.py", "pair.base=minilm", "pair.domain=tiny", "tag=t",
                              "layer=1", check=False))
    assert "layer 1" in line and "differ in setting" in line and "k=8" in line and "overwrite=true" in line


def test_a_tag_without_saes_names_only_layers_the_model_has(project_root, art):
    line = one_line_error(run(project_root, art, "analyze.py", *PAIR, "tag=nope", check=False))
    # the tiny model has 2 layers: the hint sweeps 0,1 and never names a layer it lacks (it said layer=3)
    assert "tagged 'nope'" in line and "layer=0,1 tag=nope" in line and "0 .. 1" in line, line
    assert "layer=3" not in line and "layer=2" not in line, line


# analyze.py with the stage's write of a layer replaced by: write it, start a stray process (a stand-in for a
# worker that outlived its pool), note every descendant, then SIGTERM to itself, so the stop lands while the main
# process is in the loop body (not waiting on a worker's result)
STOP_AFTER_FIRST_LAYER = """
import json, os, runpy, signal, subprocess, sys, time
import psutil
import finsae.glue.analyze_stage as stage
write, kids_file = stage.write_outcome, sys.argv[1]
def write_then_stop(*args, **kwargs):
    out = write(*args, **kwargs)
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kids = [(p.pid, p.create_time()) for p in psutil.Process().children(recursive=True)
            if "resource_tracker" not in " ".join(p.cmdline())]
    open(kids_file, "w").write(json.dumps(kids))
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)  # the handler raises here
    return out
stage.write_outcome = write_then_stop
sys.argv = ["analyze.py", *sys.argv[2:]]
runpy.run_path("analyze.py", run_name="__main__")
"""


def _alive(procs) -> list:
    import psutil

    out = []
    for pid, created in procs:
        try:
            p = psutil.Process(pid)
            if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def test_sigterm_while_a_layer_is_written_leaves_no_worker_behind(project_root, art, tmp_path):
    import time

    kids = tmp_path / "kids.json"
    cmd = [sys.executable, "-c", STOP_AFTER_FIRST_LAYER, str(kids), f"paths.artifacts={art}", *PAIR, "tag=t",
           "analysis.jobs=2", "pair_name=stopped", *SMALL]
    r = subprocess.run(cmd, cwd=project_root, capture_output=True, text=True, timeout=900, check=False)
    assert r.returncode == 143, r.stderr[-3000:]
    assert r.stderr.strip().splitlines()[-1].startswith("finsae: stopped by SIGTERM"), r.stderr[-3000:]
    workers = [tuple(k) for k in json.loads(kids.read_text())]
    assert len(workers) >= 3, workers  # the layer workers and the stray were there when the stop came
    for _ in range(20):  # killed workers are reaped by init within moments (the stray would live 300 s)
        if not _alive(workers):
            break
        time.sleep(0.1)
    assert _alive(workers) == [], f"orphaned workers: {_alive(workers)}"


class ToyMean(DiffingMethod):
    """A fourth method, whole in this class: the shift of the mean activation between the two models."""

    name = "toy_mean"
    tables = (TableSpec("toy_mean", "toy_mean.parquet", ("layer", "dim", "shift"), "toy table", exact=True),)
    findings_header = "toy: mean shift"
    signal_label = "toy (mean shift)"

    @dataclass
    class Row(RowFields):
        toy_shift: float
        toy_rows: int

    def inputs(self, data: LayerData):
        s = data.saes
        return np.asarray(data.acts(s.base), np.float64), np.asarray(data.acts(s.domain), np.float64)

    def analyze(self, inputs, data, earlier, say) -> MethodResult:
        base, domain = inputs
        shift = domain.mean(0) - base.mean(0)
        table = pd.DataFrame({"layer": data.layer, "dim": np.arange(len(shift)), "shift": shift})
        return MethodResult(self.Row(float(np.linalg.norm(shift)), len(base)), {"toy_mean": table})

    def figures(self, frames, cfg, pair):
        from finsae.analysis.plotting import pyplot

        fig, ax = pyplot().subplots()
        ax.plot(frames["layers"]["layer"], frames["layers"]["toy_shift"])
        return {"toy_mean_by_layer": fig}

    def findings_cell(self, row):
        return f"{row['toy_shift']:.4f}"

    def signal(self, layers):
        return layers["toy_shift"]

    def describe(self, r):
        return f"toy mean shift {r['toy_shift']:.4f}"


def test_a_fourth_method_plugs_in_with_one_class_and_one_registry_line(project_root, art, monkeypatch, capsys):
    """The whole method is the class above; registering it is one line; the layer job, the artifact contract,
    the figures and findings.md take it up (in process: worker processes import the registry afresh)."""
    from hydra import compose, initialize_config_dir

    from finsae.analysis import methods
    from finsae.glue import analyze_stage
    from finsae.glue.schemas import register_schemas, validate

    monkeypatch.setitem(methods.METHODS, ToyMean.name, ToyMean())  # the one registry line
    register_schemas()
    with initialize_config_dir(str(project_root / "conf"), version_base="1.3"):
        raw = compose("analyze", [f"paths.artifacts={art}", *PAIR, "tag=t", "analysis.jobs=1", "pair_name=toy",
                                  f"paths.output_dir={art / 'toy_out'}", *SMALL])
    analyze_stage.run(validate(raw), raw)
    out = analysis_dir(art, "toy")
    layers, toy = read_layers(out), read_table(out, "toy_mean")
    assert layers["toy_rows"].gt(0).all() and np.isfinite(layers["toy_shift"]).all()
    assert layers["toy_shift"].eq(0).all()  # one model on both sides: no shift
    assert tuple(toy.columns) == ("layer", "dim", "shift") and sorted(set(toy["layer"])) == [0, 1]
    assert (out / "layers" / "layer_1" / "toy_mean.parquet").is_file()
    assert "plots" in {p.parent.name for p in plot_paths(out)} and "toy_mean_by_layer.png" in {
        p.name for p in plot_paths(out)}
    findings = read_findings(out)
    side = findings.split(side_by_side_heading())[1].split("Do they agree")[0]
    assert "toy: mean shift" in side and "| 0.0000 |" in side
    assert "toy (mean shift): largest at layer" in findings
    assert "layer 1: toy mean shift 0.0000" in capsys.readouterr().out
    # the other methods' outputs are untouched by the newcomer
    assert read_table(out, "crosscoder")["layer"].eq(1).all() and "n_changed" in layers
