"""The demo's job graph and its command line, without running any stage: done checks read the stages'
markers, a fully done tree runs nothing, a failing job ends the run non-zero with one line, timing.json."""

import json
import os
import sys

import pytest

import finsae.demo.__main__ as demo_main
from finsae import precision, provenance
from finsae.demo.plan import (CONTROL_LAYERS, CONTROL_PAIRS, CROSSCODER, LAYERS, SEED_LAYERS,
                              THIRD_SEED_LAYERS, control_sae_runs, demo_jobs, report_file, sae_runs)
from finsae.demo.scheduler import CACHED, Job, check_graph, run_jobs
from finsae.errors import FinsaeError
from finsae.paths import analysis_dir, backtest_dir, labels_dir, model_dir, sae_dir


def _all_done(art):
    files = [model_dir(art, "minilm_fin") / "summary.json", analysis_dir(art, "minilm_fin") / "summary.json",
             labels_dir(art, "minilm_fin") / "summary.json", backtest_dir(art, "minilm_fin") / "summary.json",
             backtest_dir(art, "minilm_fin_claim") / "summary.json"]
    files += [sae_dir(art, r.model, r.layer, r.tag) / "summary.json" for r in sae_runs() + control_sae_runs()]
    files += [model_dir(art, twin) / "summary.json" for _, twin in CONTROL_PAIRS.values()]
    files += [analysis_dir(art, pair) / "summary.json" for pair in CONTROL_PAIRS]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("{}")
    newest = max(f.stat().st_mtime for f in files)
    report = report_file(art)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("page")
    os.utime(report, (newest + 1, newest + 1))
    return report


def test_graph_is_valid_and_orders_the_study(tmp_path):
    jobs = demo_jobs(tmp_path)
    check_graph(jobs, 2)
    by = {j.name: j for j in jobs}
    # both models' SAEs with seed repeats, the crosscoder at two seeds, the two warm starts: at every layer
    assert SEED_LAYERS == LAYERS
    # seed 2 of both models and the crosscoder, and warm starts from base seeds 1 and 2: at L2-L4 only
    assert THIRD_SEED_LAYERS == (2, 3, 4)
    assert len([j for j in jobs if j.stage == "SAEs"]) == (2 * len(LAYERS) + 2 * len(SEED_LAYERS) + 4 * len(LAYERS)
                                                          + 3 * 3 + 4 * 3  # the third seeds
                                                          + 2 * 3  # the warm start's two nulls
                                                          + 2 * len(CONTROL_LAYERS))  # and the two control twins
    xc = by[f"sae {CROSSCODER} L2 demo_seed1"]
    assert set(xc.deps) == {"sae minilm L0", "sae minilm_fin L0"} and "task=crosscoder" in xc.command
    warm = by["sae minilm_fin L4 demo_warm_domain"]
    assert set(warm.deps) == {"sae minilm_fin L0", "sae minilm L4"}  # the twin's cache and the SAE it starts from
    assert f"sae.init_from={sae_dir(tmp_path, 'minilm', 4, 'demo')}" in warm.command
    assert set(by["sae minilm L4 demo_warm_control"].deps) == {"sae minilm L0", "sae minilm L4"}
    assert by["report"].deps == ("backtest", "backtest claim", "analyze minilm_sst2",
                                 "analyze minilm_fin_seed")
    assert by["report"].command[1:3] == ["-m", "finsae.report"]
    assert [j.name for j in jobs if j.stage == "report"] == ["report"]  # one report job: page and SAE tables
    assert by["sae minilm L0"].deps == ()  # beside the fine-tune
    assert by["sae minilm_fin L0"].deps == ("finetune",)
    assert by["sae minilm_fin L3 demo_seed1"].deps == ("sae minilm_fin L0",)  # after the cache is built
    # not the control twins' SAEs, but the control pairs' analyses: their lenses are in its findings.md
    assert set(by["analyze"].deps) == {r.name for r in sae_runs()} | {"analyze minilm_sst2",
                                                                      "analyze minilm_fin_seed"}
    assert "skip_if_done=true" in by["sae minilm L3 demo_seed1"].command
    # a rerun of a stopped demo continues every training run from its checkpoint (a run without resume=true
    # refuses to clobber one)
    for j in jobs:
        if j.stage in ("finetune", "SAEs"):
            assert "resume=true" in j.command, j.name
    # the layer-5 setting reaches every independent and warm-started SAE of that layer, not the crosscoder
    for name in ("sae minilm L5", "sae minilm_fin L5", "sae minilm_fin L5 demo_seed1", "sae minilm_fin L5 demo_warm_domain",
                 "sae minilm L5 demo_warm_control"):
        assert "sae.lr=0.002" in by[name].command and "sae.k=96" in by[name].command, name
    assert not {"sae.lr=0.002", "sae.k=96"} & set(by[f"sae {CROSSCODER} L5"].command)
    for name in (f"sae {CROSSCODER} L5", f"sae {CROSSCODER} L5 demo_seed1"):  # its own layer-5 setting
        assert "sae.k=64" in by[name].command, name
    assert "sae.k=64" not in by[f"sae {CROSSCODER} L4"].command
    assert not {"sae.lr=0.002", "sae.k=96"} & set(by["sae minilm_fin L4"].command)
    assert "tag=demo_seed1" in by["sae minilm L3 demo_seed1"].command
    # the tweets of each model through its layer-3 SAE: their own one-core jobs, before the backtest
    assert by["tweets minilm"].deps == ("sae minilm L3",) and "encode_only=base" in by["tweets minilm"].command
    assert by["tweets minilm_fin"].deps == ("finetune", "sae minilm_fin L3")
    assert "encode_only=domain" in by["tweets minilm_fin"].command and by["tweets minilm_fin"].slots == 1
    assert {"tweets minilm", "tweets minilm_fin", "labels"} == set(by["backtest"].deps)
    assert "features.encode_jobs=1" in by["backtest"].command  # it only reads what the tweets jobs encoded
    assert by["labels"].slots == 2 and by["labels"].deps == ("analyze",)  # alone on the machine: both cores
    # in order of preference right after the layer SAEs of both models, before the seed repeats: the shorter SAE
    # jobs after them fill both cores up to the analysis
    names = [j.name for j in jobs]
    assert names[names.index("sae minilm_fin L5") + 1:][:5] == ["tweets minilm", "tweets minilm_fin", "finetune minilm_sst2",
                                                                "finetune minilm_fin_s2", "sae minilm L0 demo_seed1"]
    assert [j.stage for j in jobs][:3] == ["finetune", "SAEs", "SAEs"]
    assert len({c for j in jobs for c in j.command if str(c).startswith("hydra.run.dir=")}) == len(jobs) - 1  # the report is no Hydra run


def test_the_control_twins_are_made_analysed_at_their_layers_and_reported(tmp_path):
    """Issue 33's control twins: each fine-tune is its recipe file, its SAEs wait for it (the first builds the
    cache), each control pair's analysis runs at CONTROL_LAYERS only after every SAE of its two models there."""
    jobs = demo_jobs(tmp_path)
    check_graph(jobs, 2)
    by = {j.name: j for j in jobs}
    assert len(by) == len(jobs)  # job names unique
    assert CONTROL_LAYERS == (2, 3, 4)
    assert CONTROL_PAIRS == {"minilm_sst2": ("minilm", "minilm_sst2"), "minilm_fin_seed": ("minilm", "minilm_fin_s2")}
    for twin in ("minilm_sst2", "minilm_fin_s2"):
        ft = by[f"finetune {twin}"]
        assert ft.stage == "finetune" and ft.deps == () and ft.slots == 1
        assert {"task=finetune", f"+finetune={twin}", "finetune.skip_if_present=true", "resume=true"} <= set(ft.command)
        (tmp_path / "models" / twin).mkdir(parents=True, exist_ok=True)
        assert not ft.done()
        (tmp_path / "models" / twin / "summary.json").write_text("{}")
        assert ft.done()  # the twin's own folder
        assert by[f"sae {twin} L2"].deps == (f"finetune {twin}",)
        for layer in (3, 4):
            assert by[f"sae {twin} L{layer}"].deps == (f"sae {twin} L2",)
            assert {f"model={twin}", f"layer={layer}", "experiment=demo"} <= set(by[f"sae {twin} L{layer}"].command)
        assert not any(f"sae {twin} L{layer}" in by for layer in (0, 1, 5))
        assert not any(f"sae {twin} L{layer} demo_seed1" in by for layer in LAYERS)  # seed 0 only
    assert "+finetune=minilm_fin" in by["finetune"].command  # the finance twin by its recipe file, too
    repeats = (" demo_seed1", " demo_seed2")
    sst2 = by["analyze minilm_sst2"]
    assert {"pair=minilm_sst2", "layers=[2,3,4]", "analysis.jobs=1"} <= set(sst2.command) and sst2.slots == 1
    base_saes = {f"sae minilm L{i}{tag}" for i in (2, 3, 4)
                 for tag in ("", *repeats, " demo_warm_control", " demo_warm_control_b",
                             *(f"{r}_warm_control" for r in repeats))}
    assert set(sst2.deps) == {f"sae minilm_sst2 L{i}" for i in (2, 3, 4)} | base_saes
    seed = by["analyze minilm_fin_seed"]  # minilm vs the seed-2 twin: like with like beside minilm_fin
    assert "pair=minilm_fin_seed" in seed.command and "layers=[2,3,4]" in seed.command
    assert set(seed.deps) == {f"sae minilm_fin_s2 L{i}" for i in (2, 3, 4)} | base_saes
    assert seed.done is not None and not seed.done()
    names = [j.name for j in jobs]
    # side by side (one core each) before the main analysis, which takes both cores and then the labels
    assert names[names.index("analyze minilm_sst2"):][:4] == ["analyze minilm_sst2", "analyze minilm_fin_seed",
                                                              "analyze", "labels"]


def test_the_third_seed_runs_at_layers_2_to_4_only_like_the_seed_1_jobs(tmp_path):
    """Issue 33 §3: seed 2 of both models' SAEs and of the crosscoder, and the warm starts (domain and
    control) repeated from base seeds 1 and 2, at L2-L4 and nowhere else; each waits, logs and is done like
    its seed-1 counterpart (the warm repeats wait for the base SAE of their own seed and continue it)."""
    jobs = demo_jobs(tmp_path)
    check_graph(jobs, 2)
    by = {j.name: j for j in jobs}
    for layer in LAYERS:
        third = layer in (2, 3, 4)
        for model in ("minilm", "minilm_fin", CROSSCODER):
            assert (f"sae {model} L{layer} demo_seed2" in by) == third, (model, layer)
        for seed in (1, 2):
            assert (f"sae minilm_fin L{layer} demo_seed{seed}_warm_domain" in by) == third
            assert (f"sae minilm L{layer} demo_seed{seed}_warm_control" in by) == third
    for layer in (2, 3, 4):
        for model in ("minilm", "minilm_fin"):
            one, two = by[f"sae {model} L{layer} demo_seed1"], by[f"sae {model} L{layer} demo_seed2"]
            assert two.deps == one.deps and two.stage == one.stage == "SAEs"
            assert {"seed=2", "tag=demo_seed2", f"model={model}", f"layer={layer}"} <= set(two.command)
            assert [c for c in two.command if "seed" not in c] == [c for c in one.command if "seed" not in c]
            assert not two.done()
            (sae_dir(tmp_path, model, layer, "demo_seed2") / "summary.json").parent.mkdir(parents=True)
            (sae_dir(tmp_path, model, layer, "demo_seed2") / "summary.json").write_text("{}")
            assert two.done() and not one.done()  # its own folder
        xc = by[f"sae {CROSSCODER} L{layer} demo_seed2"]
        assert xc.deps == by[f"sae {CROSSCODER} L{layer} demo_seed1"].deps and "task=crosscoder" in xc.command
        for seed in (1, 2):
            start = f"demo_seed{seed}"
            for model, kind in (("minilm_fin", "domain"), ("minilm", "control")):
                warm = by[f"sae {model} L{layer} {start}_warm_{kind}"]
                assert set(warm.deps) == {f"sae {model} L0", f"sae minilm L{layer} {start}"}
                assert f"sae.init_from={sae_dir(tmp_path, 'minilm', layer, start)}" in warm.command
                assert {f"seed={seed + 1}", f"tag={start}_warm_{kind}"} <= set(warm.command)
        # the domain and control runs of one start see the same tokens in the same order: the same seed
        for seed in (0, 1, 2):
            start = "demo" if seed == 0 else f"demo_seed{seed}"
            d = by[f"sae minilm_fin L{layer} {start}_warm_domain"]
            c = by[f"sae minilm L{layer} {start}_warm_control"]
            assert [a for a in d.command if a.startswith("seed=")] == [a for a in c.command if a.startswith("seed=")]
    assert set(by["analyze"].deps) >= {f"sae {m} L3 demo_seed2" for m in ("minilm", "minilm_fin", CROSSCODER)}
    logs = [c for j in jobs for c in j.command if str(c).startswith("hydra.run.dir=")]
    assert len(set(logs)) == len(logs)  # every job its own log folder


def test_the_control_recipes_name_real_config_files(project_root):
    for twin in ("minilm_fin", "minilm_sst2", "minilm_fin_s2"):
        assert (project_root / "conf" / "finetune" / f"{twin}.yaml").is_file()
        assert (project_root / "conf" / "model" / f"{twin}.yaml").is_file()
    for pair in CONTROL_PAIRS:
        assert (project_root / "conf" / "pair" / f"{pair}.yaml").is_file()


@pytest.mark.parametrize("units", ["1", "0"])
def test_the_fine_tune_runs_in_bf16_only_on_a_cpu_with_bf16_units(tmp_path, monkeypatch, units):
    monkeypatch.setenv(precision.ENV, units)  # the capability check, not the math
    jobs = demo_jobs(tmp_path)
    for cmd in (j.command for j in jobs if j.stage == "finetune"):  # the control fine-tunes alike
        assert ("trainer.precision=bf16-mixed" in cmd) == (units == "1")
    assert not any("precision" in a for j in jobs if j.stage != "finetune" for a in j.command)


def test_everything_done_runs_nothing(tmp_path):
    _all_done(tmp_path)
    # a job that did start would run `false` and fail
    report = run_jobs(demo_jobs(tmp_path, python="false"), tmp_path / "logs", out=lambda s: None)
    assert report.ok
    assert {r.status for r in report.results.values()} == {CACHED}


def test_report_stale_when_a_summary_is_newer(tmp_path):
    report = _all_done(tmp_path)
    s = sae_dir(tmp_path, "minilm", 3, "demo") / "summary.json"
    t = report.stat().st_mtime + 5
    os.utime(s, (t, t))
    jobs = {j.name: j for j in demo_jobs(tmp_path)}
    assert not jobs["report"].done()
    assert jobs["sae minilm L3"].done()
    s.unlink()
    assert not jobs["sae minilm L3"].done()


def test_main_writes_timing_and_fails_in_one_line(tmp_path, monkeypatch, capsys):
    def fake_jobs(artifacts, run_stamp="x", **_):
        return [Job("ok", "first", [sys.executable, "-c", "print(1)"]),
                Job("bad", "first", [sys.executable, "-c", "raise SystemExit(4)"]),
                Job("after", "second", [sys.executable, "-c", "print(2)"], deps=("bad",))]

    monkeypatch.setattr(demo_main, "demo_jobs", fake_jobs)
    monkeypatch.setenv("FINSAE_CPU_BF16", "0")
    code = demo_main.main(["--artifacts", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.count("\n") == 1 and "bad" in err and "1 job(s) depending on them not run" in err
    assert "[1/2] first" in out and "total" in out
    t = json.loads((tmp_path / "report" / "timing.json").read_text())
    assert t["ok"] is False and t["total_s"] >= 0
    assert set(t["stages"]) == {"first", "second"}
    assert t["stages"]["second"]["jobs_blocked"] == 1
    assert t["dtype"] == "fp32" and set(t["cpu"]["bf16_flags"]) == {"amx_bf16", "avx512_bf16"}
    assert (tmp_path / "report" / "logs" / "bad.log").is_file()


def test_timing_goes_into_the_results_pages_whole_run_then_all_done(tmp_path, monkeypatch, capsys):
    """A whole run (every job ran) and then a rerun that finds everything done: each regenerates the results pages
    after its timing.json, so the timing page gives both, judged against their targets; README's headline holds
    the science only (the demo clock is an engineering figure: the timing page's)."""
    marker = tmp_path / "made"

    def fake_jobs(artifacts, run_stamp="x", results_dir=None, readme=None):
        assert results_dir == tmp_path / "pages" and readme == tmp_path / "README.md"
        return [Job("sae a", "SAEs", [sys.executable, "-c", f"open({str(marker)!r}, 'w')"], done=marker.is_file),
                Job("report", "report", [sys.executable, "-c", "print(1)"], deps=("sae a",),
                    done=lambda: marker.is_file() and (tmp_path / "pages" / "timing.md").is_file())]

    monkeypatch.setattr(demo_main, "demo_jobs", fake_jobs)
    monkeypatch.setenv("FINSAE_CPU_BF16", "1")
    # the checkout reads as changed once the jobs ran (the report job rewrites tracked pages): the run's code is
    # the one taken before its first job
    monkeypatch.setattr(provenance, "code_version", lambda *_: "0123456789abcdef" + ("+dirty" if marker.is_file() else ""))
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- headline:start -->\n<!-- headline:end -->\n")
    argv = ["--artifacts", str(tmp_path / "art"), "--results", str(tmp_path / "pages"), "--readme", str(readme)]
    assert demo_main.main(argv) == 0
    page = (tmp_path / "pages" / "timing.md").read_text()
    assert "## The latest whole `make demo`" in page and "met (target 45m00s, bf16 units)" in page
    assert "| sae a | SAEs |" in page and "| whole |" in page
    assert "make demo, whole study" not in readme.read_text()
    assert json.loads((tmp_path / "art" / "report" / "timing.json").read_text())["code_version"] == "0123456789abcdef"
    assert "one-thread slots, code 0123456789ab;" in page and "+dirty" not in page
    assert demo_main.main(argv) == 0  # everything done: nothing runs, the pages gain the rerun
    page = (tmp_path / "pages" / "timing.md").read_text()
    assert "| all done |" in page and "target 2m00s, everything done" in page
    assert "| 0123456789ab+dirty |" in page and "| 0123456789ab |" in page  # each run its own checkout's state
    history = tmp_path / "art" / "report" / "timing_history.jsonl"
    assert len(history.read_text().splitlines()) == 2
    history.write_text(history.read_text() + "{cut\n")
    from finsae.report import results
    from finsae.report.study import Study
    with pytest.raises(FinsaeError, match="timing_history.jsonl line 3 is not JSON"):
        results.timing_page(Study(tmp_path / "art"))
    capsys.readouterr()


def test_a_stopped_run_shows_its_stages_on_the_timing_page(tmp_path):
    from finsae import timing
    from finsae.report import results
    from finsae.report.study import Study

    stages = {"SAEs": {"wall_s": 5191.5, "job_s": 9000.0, "jobs_run": 48, "jobs_cached": 0, "jobs_failed": 0,
                       "jobs_blocked": 0, "jobs": {"sae a": {"status": "ran", "seconds": 503.8}}},
              "backtest": {"wall_s": 13.4, "job_s": 13.4, "jobs_run": 0, "jobs_cached": 0, "jobs_failed": 1,
                           "jobs_blocked": 0, "jobs": {"backtest": {"status": "failed", "seconds": 13.4}}}}
    timing.write(tmp_path / "report", {"total_s": 7506.5, "ok": False, "only": None, "stages": stages, "slots": 2,
                                       "dtype": "bf16", "cpu": {"model": "X", "cores": 2,
                                                                "bf16_flags": {"avx512_bf16": True}}})
    page = results.timing_page(Study(tmp_path))
    assert "No whole `make demo`" in page and "## The latest run that ran jobs" in page
    assert "2h05m06s wall" in page and "not ok (jobs: 1 failed, 1 ran)" in page
    assert "| SAEs | 1h26m32s |" in page and "| sae a | SAEs | 504 | ran |" in page
    assert "| stopped or failed |" in page


def test_main_only_picks_a_stage_and_its_dependencies(tmp_path, capsys):
    assert demo_main.main(["--artifacts", str(tmp_path), "--only", "saes", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "finetune" in out and "sae minilm_fin L5 demo_seed1" in out and "analyze" not in out
    with pytest.raises(SystemExit):
        demo_main.main(["--artifacts", str(tmp_path), "--slots", "x"])
    assert demo_main.main(["--artifacts", str(tmp_path), "--only", "nope"]) == 2
    assert "no such stage" in capsys.readouterr().err


def test_the_warm_start_nulls_run_at_layers_2_to_4_with_their_dictionary(tmp_path):
    """Issue 33 §5: the affine-map null (the twin's affine image of the base) and control B (another training
    seed on the base), continuing the layer's base SAE, at L2-L4 only, under the tags the analysis finds."""
    from finsae.analysis.config import WarmstartConfig

    by = {j.name: j for j in demo_jobs(tmp_path)}
    cfg = WarmstartConfig()
    for layer in LAYERS:
        affine = by.get(f"sae minilm_fin L{layer} demo{cfg.affine_suffix}")
        control_b = by.get(f"sae minilm L{layer} demo{cfg.control_b_suffix}")
        if layer not in (2, 3, 4):
            assert affine is None and control_b is None
            continue
        init = f"sae.init_from={sae_dir(tmp_path, 'minilm', layer, 'demo')}"
        assert {"sae.dictionary=affine_null", init, "model=minilm_fin"} <= set(affine.command)
        assert {init, "model=minilm", "seed=2"} <= set(control_b.command)
        assert not any(c.startswith("sae.dictionary") for c in control_b.command)
        assert f"sae minilm L{layer}" in affine.deps and f"sae minilm L{layer}" in control_b.deps
