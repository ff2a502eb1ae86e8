"""The paper study's job graph and command line without running a stage: every job of the full graph listed by
``--dry-run``, where each runs (CPU slots, one GPU per job, DDP, SLURM through submitit), the labels job's
vLLM server, refused options; and the scheduler giving each job its own GPUs."""

import sys

import pytest

import finsae.demo.__main__ as demo_main
from finsae.demo.paper import (BASE, CROSSCODER, LAYERS, PAIR, TWIN, PaperOptions, Placement, paper_jobs,
                               paper_runs)
from finsae.demo.scheduler import Job, check_graph, run_jobs
from finsae.errors import FinsaeError
from finsae.paths import sae_dir


def test_full_graph_has_every_job_of_the_paper_study(tmp_path):
    jobs = paper_jobs(tmp_path)
    check_graph(jobs, 2)
    names = [j.name for j in jobs]
    saes = [j for j in jobs if j.stage == "SAEs"]
    by_name = {j.name: j for j in jobs}
    # 24 SAEs (12 layers x 2 models), their 24 seed repeats, 24 crosscoders (2 seeds), 48 warm starts (domain,
    # control A, the affine-map null, control B)
    assert len(saes) == 120 and len(LAYERS) == 12
    for layer in LAYERS:
        for model in (BASE, TWIN):
            assert f"sae {model} L{layer}" in names and f"sae {model} L{layer} paper_seed1" in names
        assert f"sae {CROSSCODER} L{layer}" in names and f"sae {CROSSCODER} L{layer} paper_seed1" in names
        assert f"sae {TWIN} L{layer} paper_warm_domain" in names
        assert f"sae {BASE} L{layer} paper_warm_control" in names
        affine, control_b = by_name[f"sae {TWIN} L{layer} paper_warm_affine"], by_name[
            f"sae {BASE} L{layer} paper_warm_control_b"]
        assert "sae.dictionary=affine_null" in affine.command and "seed=2" in control_b.command
    assert names[120:] == ["tweets bert_base", "tweets finbert", "analyze", "labels", "backtest", "report"]
    assert "finetune" not in names  # FinBERT is the twin
    by = {j.name: j for j in jobs}
    assert by["sae finbert L0"].deps == ()  # no fine-tune to wait for
    assert set(by[f"sae {CROSSCODER} L7 paper_seed1"].deps) == {"sae bert_base L0", "sae finbert L0"}
    warm = by["sae finbert L4 paper_warm_domain"]
    assert set(warm.deps) == {"sae finbert L0", "sae bert_base L4"}
    assert f"sae.init_from={sae_dir(tmp_path, BASE, 4, 'paper')}" in warm.command
    assert set(by["analyze"].deps) == {j.name for j in saes}
    for j in saes:
        assert {"experiment=paper", "skip_if_done=true", "resume=true", "trainer=cpu",
                f"paths.artifacts={tmp_path}"} <= set(j.command), j.name
    for stage in ("analyze", "labels", "backtest"):
        assert f"pair={PAIR}" in by[stage].command
    assert "tag=paper" in by["analyze"].command and "label=offline" in by["labels"].command
    assert "features.tag=paper" in by["backtest"].command


def test_dry_run_lists_the_whole_paper_graph(tmp_path, capsys):
    assert demo_main.main(["--experiment", "paper", "--dry-run", "--artifacts", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.splitlines() if line.split() and line.split()[0] in
              ("SAEs", "tweets", "analyze", "labels", "backtest", "report")]
    assert len(listed) == len(paper_runs()) + 6 == 126
    assert "offline backend" in out  # no --vllm-model: the note says so
    assert not (tmp_path / "sae").exists()  # a dry run writes nothing


@pytest.mark.parametrize("args, where, trainer", [
    (["--gpus", "4"], "1 GPU", ["trainer=gpu"]),
    (["--gpus", "7", "--ddp"], "DDP x 7 GPUs", ["trainer=ddp7", "trainer.devices=7"]),
    (["--slurm", "hydra.launcher.partition=gpu"], "SLURM (submitit)", ["trainer=ddp7"]),
])
def test_where_the_sae_jobs_run(tmp_path, capsys, args, where, trainer):
    place = demo_main.placement(demo_main._parse(["--experiment", "paper", *args]))
    jobs = paper_jobs(tmp_path, place)
    sae = next(j for j in jobs if j.name == "sae finbert L3")
    assert all(t in sae.command for t in trainer) and place.where(sae) == where
    if "--ddp" in args:
        assert sae.slots == 7  # the DDP run holds every GPU of the node
    if "--slurm" in args:
        cmd = list(sae.command)
        assert cmd[2:4] == ["--multirun", "hydra/launcher=submitit_slurm"]
        assert "hydra.launcher.tasks_per_node=7" in cmd and cmd.index("hydra.launcher.partition=gpu") > \
            cmd.index("hydra.launcher.gpus_per_node=7")  # the user's launcher overrides come last
        assert any(c.startswith("hydra.sweep.dir=") for c in cmd)
        assert place.where(next(j for j in jobs if j.name == "analyze")) == "2 cores"  # the rest runs here


def test_labels_job_serves_vllm_when_given_weights(tmp_path):
    weights = tmp_path / "qwen"
    weights.mkdir()
    (weights / "config.json").write_text("{}")
    labels = next(j for j in paper_jobs(tmp_path, opts=PaperOptions(vllm_model=str(weights), vllm_port=8123))
                  if j.name == "labels")
    cmd = list(labels.command)
    assert cmd[1:3] == ["-m", "finsae.demo.vllm_labels"] and cmd[cmd.index("--model") + 1] == str(weights)
    label = cmd[cmd.index("--") + 1:]
    assert "label=qwen" in label and "label.base_url=http://127.0.0.1:8123/v1" in label


@pytest.mark.parametrize("args, message", [
    (["--experiment", "paper", "--layers", "0,12"], "layers 0-11"),
    (["--experiment", "paper", "--layers", "a"], "comma-separated layer numbers"),
    (["--experiment", "paper", "--override", "train.sae.k=3"], "STAGE:KEY=VALUE"),
    (["--experiment", "paper", "--override", "report:x=1"], "no such entry point"),
    (["--experiment", "paper", "--ddp"], "--gpus N with N >= 2"),
    (["--experiment", "paper", "--vllm-model", "/nonexistent/qwen"], "no config.json"),
    (["--gpus", "2"], "are for --experiment paper"),
])
def test_bad_options_are_refused_in_one_line(tmp_path, capsys, args, message):
    assert demo_main.main([*args, "--dry-run", "--artifacts", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("finsae: error:") and message in err and err.count("\n") == 1


def test_each_job_gets_its_own_gpus(tmp_path):
    """With one GPU id per slot, side-by-side jobs see disjoint CUDA_VISIBLE_DEVICES; a two-slot job gets
    two."""
    show = [sys.executable, "-c",
            "import os, time; time.sleep(0.5); print('GPUS=' + os.environ['CUDA_VISIBLE_DEVICES'])"]
    jobs = [Job("a", "s", show), Job("b", "s", show), Job("c", "s", show, deps=("a", "b"), slots=2)]
    report = run_jobs(jobs, tmp_path, slots=2, out=lambda _: None, devices=["0", "1"])
    assert report.ok
    seen = {n: (tmp_path / f"{n}.log").read_text().rsplit("GPUS=", 1)[1].strip() for n in "abc"}
    assert {seen["a"], seen["b"]} == {"0", "1"} and sorted(seen["c"].split(",")) == ["0", "1"]
    with pytest.raises(FinsaeError, match="one GPU per slot"):
        run_jobs(jobs, tmp_path, slots=2, devices=["0"])


def test_paper_graph_takes_a_layer_subset(tmp_path):
    opts = PaperOptions(layers=(0, 1), overrides={"train": ("sae.k=8",)})
    jobs = paper_jobs(tmp_path, Placement(slots=1), opts)
    check_graph(jobs, 1)
    assert len([j for j in jobs if j.stage == "SAEs"]) == 20
    by = {j.name: j for j in jobs}
    assert "layers=[0,1]" in by["analyze"].command and "features.layers=[1]" in by["backtest"].command
    assert by["sae bert_base L1"].command[-2] == "sae.k=8"  # the user's override after the experiment's


def test_every_hydra_job_reads_the_users_config_folder(tmp_path, monkeypatch):
    """With ``$FINSAE_CONFIG_DIR`` (the user's ``model/`` and ``pair/`` files outside the checkout) every
    Hydra job gets it on Hydra's search path, so its ``model=``/``pair=`` options compose; without it, none
    does."""
    from finsae.models.declared import CONFIG_DIR_ENV

    monkeypatch.delenv(CONFIG_DIR_ENV, raising=False)
    assert not any("hydra.searchpath" in a for j in paper_jobs(tmp_path) for a in j.command)
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path / "my_conf"))
    jobs = paper_jobs(tmp_path / "art")
    wanted = f"hydra.searchpath=[file://{(tmp_path / 'my_conf').resolve()}]"
    for j in jobs:
        assert (wanted in j.command) == (j.name != "report"), j.name
