"""``python -m finsae.demo --profile full``: the default plan plus the crosscoder's dictionary-size sweep
and the control pairs' feature diffing at every layer; its analyses wait for those SAEs and are redone after
them."""

import os

import pytest

import finsae.demo.__main__ as demo_main
from finsae.analysis.crosscoder_sweep import sweep_tag
from finsae.demo.full import SWEEP, SWEEP_LAYERS, full_jobs
from finsae.demo.plan import CONTROL_PAIRS, CROSSCODER, LAYERS, demo_jobs
from finsae.demo.scheduler import check_graph
from finsae.paths import analysis_dir, crosscoder_name, results_pages_dir, sae_dir

SWEEP_JOBS = [f"sae {CROSSCODER} L{layer} {sweep_tag('demo', m)}" for layer in SWEEP_LAYERS for m, _ in SWEEP]


def _publish(folder, mtime=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text("{}")
    if mtime is not None:
        os.utime(folder / "summary.json", (mtime, mtime))


def test_dry_run_lists_the_sweep_and_the_control_pairs_at_every_layer(tmp_path, capsys):
    assert demo_main.main(["--artifacts", str(tmp_path), "--dry-run", "--profile", "full"]) == 0
    full = capsys.readouterr().out
    for name in SWEEP_JOBS:
        assert name in full
    for base, twin in CONTROL_PAIRS.values():
        for layer in LAYERS:
            assert f"sae {crosscoder_name(base, twin)} L{layer} demo_seed1" in full
            assert f"sae {twin} L{layer} demo_warm_domain" in full
    assert demo_main.main(["--artifacts", str(tmp_path), "--dry-run"]) == 0
    default = capsys.readouterr().out
    assert "demo_sweep" not in default and "crosscoder_minilm_minilm_sst2" not in default
    assert set(default.splitlines()) <= set(full.splitlines()) | {  # the analyses wait for more in full
        line for line in default.splitlines() if line.startswith("analyze")}


def test_the_full_plan_is_a_valid_graph_whose_analyses_wait_for_their_saes(tmp_path):
    jobs = full_jobs(tmp_path)
    check_graph(jobs, 2)
    by = {j.name: j for j in jobs}
    assert len(by) == len(jobs)
    assert len(jobs) > len(demo_jobs(tmp_path))
    sweep = by[SWEEP_JOBS[-1]]
    assert {"task=crosscoder", "layer=4", "tag=demo_sweep12288", "sae.expansion_factor=32", "sae.k=128",
            "seed=0"} <= set(sweep.command)
    assert set(SWEEP_JOBS) <= set(by["analyze"].deps)
    for pair, (base, twin) in CONTROL_PAIRS.items():
        job = by[f"analyze {pair}"]
        assert "layers=[0,1,2,3,4,5]" in job.command
        assert f"sae {crosscoder_name(base, twin)} L0" in job.deps and f"sae {twin} L5 demo_seed1" in job.deps
        assert f"sae {base} L0" in job.deps  # the default's SAE of its base at a layer the default left out
    xc = by[f"sae {crosscoder_name('minilm', 'minilm_fin_s2')} L5"]
    assert "pair=minilm_fin_seed" in xc.command and "sae.k=64" in xc.command  # the default's layer-5 k
    warm = by["sae minilm_fin_s2 L3 demo_warm_domain"]  # its control is the default's (same base, same tag)
    assert f"sae.init_from={sae_dir(tmp_path, 'minilm', 3, 'demo')}" in warm.command


def test_an_analysis_is_redone_when_a_sweep_crosscoder_is_newer(tmp_path):
    by = {j.name: j for j in full_jobs(tmp_path)}
    analyze, sweep = by["analyze"], by[SWEEP_JOBS[0]]
    assert not sweep.done() and not analyze.done()
    _publish(sae_dir(tmp_path, CROSSCODER, 3, "demo_sweep3072"), mtime=1_000_000)
    assert sweep.done()
    _publish(analysis_dir(tmp_path, "minilm_fin"), mtime=2_000_000)
    assert analyze.done()  # published after the sweep's crosscoder
    _publish(sae_dir(tmp_path, CROSSCODER, 4, "demo_sweep12288"), mtime=3_000_000)
    assert not analyze.done()  # a newer crosscoder it reads: redo it
    _publish(analysis_dir(tmp_path, "minilm_sst2"), mtime=2_000_000)
    assert by["analyze minilm_sst2"].done()
    _publish(sae_dir(tmp_path, "minilm_sst2", 0, "demo"), mtime=3_000_000)
    assert not by["analyze minilm_sst2"].done()


def test_the_profile_picks_its_pages_and_is_refused_for_the_paper_study(tmp_path, capsys):
    args = demo_main._parse(["--profile", "full"])
    assert demo_main.page_targets(args) == (results_pages_dir() / "full", None)
    args = demo_main._parse(["--profile", "full", "--results", str(tmp_path),
                             "--readme", str(tmp_path / "R.md")])
    assert demo_main.page_targets(args) == (tmp_path, tmp_path / "R.md")
    default = demo_main.page_targets(demo_main._parse([]))
    assert default[0] == results_pages_dir() and default[1].name == "README.md"
    assert demo_main.main(["--artifacts", str(tmp_path), "--experiment", "paper", "--profile", "full",
                           "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "--profile full is for --experiment demo" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        demo_main.main(["--profile", "huge"])
