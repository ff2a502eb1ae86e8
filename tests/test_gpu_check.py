"""bench/gpu_check.py's CPU fallback: the whole check on tiny shapes in a subprocess (CUDA hidden), and its
JSON. Every part is present; what ran has finite, positive figures; what needs a GPU says so; the predicted
wall time is recomputed here from the JSON's own measured fields and the paper config. A bad flag is one line
before any work; a failing part is recorded while the others still run."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.py"
PARTS = ("sae_step", "crosscoder_step", "lightning_fit", "extraction", "labels_vllm", "predicted_wall_time")
NEEDS_GPU = ("paper_shapes", "cuda_kernels", "peak_gpu_memory", "ddp_nccl", "bf16_autocast", "labels_vllm",
             "predicted_wall_time")
MAY_BE_ZERO = {"dead_fraction"}


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("gpu_check") / "check.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--threads", "1"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert f"gpu_check: wrote {out}" in r.stdout
    return json.loads(out.read_text())


def _numbers(node, path=""):
    """Every number under ``node`` with its dotted path (bools are flags, not figures)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _numbers(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _numbers(value, f"{path}[{i}]")
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path, node


def test_header_names_machine_versions_date_and_commit(report):
    import torch

    assert report["schema"] == "finsae-gpu-check/1"
    assert datetime.fromisoformat(report["date"]).tzinfo is not None
    git = report["git"]
    assert re.fullmatch(r"[0-9a-f]{40}", git["commit"] or "") or git["why"]
    assert report["versions"]["torch"] == torch.__version__ and report["versions"]["lightning"]
    assert report["machine"]["cpu_cores"] >= 1 and report["machine"]["gpu_count"] == 0
    assert (report["device"], report["shapes"], report["tiny_because"]) == ("cpu", "tiny", "no CUDA device")


def test_every_part_present_and_measured_where_a_cpu_can(report):
    parts = report["parts"]
    assert set(parts) == set(PARTS)
    assert {name: p["status"] for name, p in parts.items()} == {
        **{name: "ok" for name in PARTS}, "labels_vllm": "not_measured"}
    assert "GPU" in parts["labels_vllm"]["reason"]
    for name, part in parts.items():
        assert part["peak_gpu_memory_gb"] is None, name  # no CUDA: null, never a made-up 0
        if part["status"] != "ok":
            continue
        for path, value in _numbers(part):
            assert math.isfinite(value), f"{name}{path} = {value}"
            if path.rsplit(".", 1)[-1] not in MAY_BE_ZERO:
                assert value > 0, f"{name}{path} = {value}"


def test_says_plainly_what_needs_a_gpu(report):
    reasons = report["not_measured_without_gpu"]
    assert set(NEEDS_GPU) <= set(reasons)
    assert all(isinstance(reasons[k], str) and len(reasons[k]) > 20 for k in NEEDS_GPU)
    assert "768 -> 24,576" in reasons["paper_shapes"] and "arithmetic" in reasons["predicted_wall_time"]
    assert "arithmetic only" in report["parts"]["predicted_wall_time"]["basis"]


def test_sae_and_crosscoder_steps(report):
    step, plan = report["parts"]["sae_step"], report["plan"]
    shape = step["shape"]
    assert (shape["d_in"], shape["latents"], shape["k"]) == (plan["d_in"], plan["latents"], plan["k"])
    for c in step["contenders"].values():
        assert c["tokens_per_s"] == pytest.approx(step["shape"]["batch"] / c["seconds_per_step"], rel=1e-9)
        assert c["seconds_per_step_min"] <= c["seconds_per_step"]
    assert {"finsae fp32", "finsae bf16"} <= set(step["contenders"])
    if "sparsify" in step["contenders"]:  # the loaders folder is there: the ratios are the tokens/s ratios
        ref = step["contenders"]["sparsify"]["tokens_per_s"]
        for name in ("finsae fp32", "finsae bf16"):
            assert step["vs_sparsify"][f"{name}_vs_sparsify"] == pytest.approx(
                step["contenders"][name]["tokens_per_s"] / ref)
    else:
        assert step["vs_sparsify"] is None and step["sparsify"]["why_not"]
    cross = report["parts"]["crosscoder_step"]
    assert cross["shape"]["d_in"] == 2 * plan["d_in"] and cross["shape"]["latents"] == plan["latents"]
    assert cross["decoder_block_shapes"] == [[plan["latents"], plan["d_in"]]] * 2


def test_lightning_fit_and_extraction_ran_for_real(report):
    fit, plan = report["parts"]["lightning_fit"], report["plan"]
    ran = (fit["steps"], fit["world_size"], fit["strategy"], fit["accelerator"])
    assert ran == (plan["fit_steps"], 1, "auto", "cpu")
    assert fit["checkpoint_written"] and fit["fvu_last"] < fit["fvu_at_steady_start"]  # it trained
    assert fit["tokens_per_s"] == pytest.approx(fit["tokens_per_step"] / fit["steady_seconds_per_step"])
    ext, bert = report["parts"]["extraction"], plan["bert"]
    assert ext["layers_stored"] == bert["num_hidden_layers"] + 1  # embeddings + every block
    assert ext["bytes_written"] >= ext["tokens"] * ext["layers_stored"] * bert["hidden_size"] * 2  # fp16 rows
    assert ext["tokens_per_s"] == pytest.approx(ext["tokens"] / ext["seconds"])


def test_predicted_wall_time_follows_from_the_measured_steps(report):
    conf = yaml.safe_load((ROOT / "conf" / "experiment" / "paper.yaml").read_text())["sae"]
    gpus = yaml.safe_load((ROOT / "conf" / "trainer" / "ddp7.yaml").read_text())["devices"]
    p, parts = report["parts"]["predicted_wall_time"], report["parts"]
    assert (p["tokens_per_sae"], p["batch_size"], p["encoder_dtype"], p["gpus"]) == (
        conf["tokens"], conf["batch_size"], conf["encoder_dtype"], gpus)
    assert p["saes"] == p["layers"] * p["models"] == 24
    assert p["steps_per_sae"] == p["tokens_per_sae"] // p["batch_size"]
    assert p["tokens_trained"] == p["saes"] * p["steps_per_sae"] * p["batch_size"]
    step, fit = parts["sae_step"], parts["lightning_fit"]
    assert step["shape"]["per_rank_batch"] == math.ceil(step["shape"]["batch"] / gpus)
    ours = step["contenders"][f"finsae {p['encoder_dtype']}"]
    measured = {"ideal_data_parallel": step["shape"]["batch"] / ours["seconds_per_step"],
                "ddp_one_rank": step["shape"]["per_rank_batch"] / step["per_rank_batch"]["seconds_per_step"],
                "lightning_fit": fit["tokens_per_step"] / fit["steady_seconds_per_step"] / fit["world_size"]}
    assert set(p["estimates"]) == set(measured)
    assert p["seed_claim_hours"] == 8.0
    for name, per_gpu in measured.items():
        e = p["estimates"][name]
        hours = p["tokens_trained"] / (per_gpu * p["gpus"]) / 3600
        assert e["tokens_per_s_per_gpu"] == pytest.approx(per_gpu, rel=1e-9)
        assert e["hours"] == pytest.approx(hours, rel=1e-9)
        assert e["vs_seed_claim"] == pytest.approx(hours / 8.0, rel=1e-9)


@pytest.fixture
def gpu_check(monkeypatch):
    """bench/gpu_check.py imported in this process (its sys.path entry and bench modules undone after), on the
    CPU path even where a GPU is visible."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    for name in set(sys.modules) - before:
        if name in ("gpu_check_parts", "sae_step", "extract"):
            del sys.modules[name]


def test_bad_flag_is_one_line_before_any_work(gpu_check, tmp_path, capsys):
    out = tmp_path / "sub" / "check.json"
    assert gpu_check.main(["--parts", "sae_step,warp_drive", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpu_check: error: --parts") and "warp_drive" in err and err.count("\n") == 1
    assert not out.exists()
    assert gpu_check.main(["--fit-steps", "1", "--out", str(out)]) == 2
    assert "--fit-steps 1: must be at least 2" in capsys.readouterr().err


def test_a_failing_part_is_recorded_and_the_rest_still_run(gpu_check, tmp_path, monkeypatch):
    def broken(plan, paper):
        raise RuntimeError("out of GPU memory, say")

    monkeypatch.setattr(gpu_check, "part_crosscoder", broken)
    monkeypatch.setattr(gpu_check, "part_extraction", lambda plan: {"tokens_per_s": 5.0})
    out = tmp_path / "check.json"
    assert gpu_check.main(["--parts", "crosscoder_step,extraction,labels_vllm", "--out", str(out)]) == 1
    parts = json.loads(out.read_text())["parts"]
    assert parts["crosscoder_step"]["status"] == "error"
    assert parts["crosscoder_step"]["error"] == "RuntimeError: out of GPU memory, say"
    assert "broken" in parts["crosscoder_step"]["traceback"]
    assert parts["extraction"] == {"status": "ok", "tokens_per_s": 5.0,
                                   "part_seconds": pytest.approx(parts["extraction"]["part_seconds"]),
                                   "peak_gpu_memory_gb": None}
    assert parts["labels_vllm"]["status"] == "not_measured"
    assert "predicted_wall_time" not in parts  # no sae_step asked for: nothing to predict from
