"""`train.py task=crosscoder` and `sae.init_from=` through the one SAE stage on the tiny model: publish, resume
after SIGTERM to the same weights, warm start, and bad inputs that fail in one line before any work."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from finsae.analysis.crosscoder import load_crosscoder
from finsae.analysis.warmstart import decoder_drift
from finsae.sae import decoder_blocks, load

pytestmark = pytest.mark.slow
BASE = ["debug=tiny", "layer=1", "logger=none", "downstream_docs=0"]
XC = ["task=crosscoder", "pair.base=tiny", "pair.domain=tiny"]
LONG = ["sae.tokens=102400", "trainer.checkpoint_every=1000"]  # 200 steps: time to stop it mid-run


def train(root, tmp, *overrides, check=True):
    cmd = [sys.executable, "train.py", *BASE, f"paths.artifacts={tmp / 'art'}", *overrides]
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600, check=False)
    if check:
        assert r.returncode == 0, r.stderr[-4000:]
    return r


def sae_folder(tmp, name, tag):
    return tmp / "art" / "sae" / name / "layer_1" / tag


@pytest.fixture(scope="module")
def tmp(tmp_path_factory, data_dir):
    return tmp_path_factory.mktemp("sae_stage_variants")


def test_crosscoder_publishes_two_decoder_blocks(project_root, tmp):
    train(project_root, tmp, *XC, "tag=xc")
    out = sae_folder(tmp, "crosscoder_tiny_tiny", "xc")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "crosscoder_tiny_tiny" and summary["steps"] == 16 and 0 < summary["fvu"] < 1
    sae, scales = load_crosscoder(out)
    assert (sae.d_in, sae.num_latents, sae.k) == (64, 128, 4)  # 2 x 32 inputs, 4 x 32 latents as one model's SAE
    assert scales[0] == pytest.approx(scales[1], rel=1e-9) and scales[0] > 0  # one model twice: equal scales
    blocks = decoder_blocks(sae)
    assert blocks.base.shape == blocks.domain.shape == (128, 32)
    cfg = json.loads((out / "cfg.json").read_text())
    assert cfg["extra"]["crosscoder"]["base"] == "tiny" and "+" in cfg["extra"]["weights_hash"]


def test_crosscoder_resumes_after_sigterm_to_the_uninterrupted_weights(project_root, tmp):
    train(project_root, tmp, *XC, *LONG, "tag=xc_straight")
    cmd = [sys.executable, "train.py", *BASE, f"paths.artifacts={tmp / 'art'}", *XC, *LONG, "tag=xc_termed",
           "trainer.progress_bar=true"]
    proc = subprocess.Popen(cmd, cwd=project_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen, deadline = "", time.time() + 300
    while "sae crosscoder_tiny_tiny L1:" not in seen and time.time() < deadline and proc.poll() is None:
        seen += proc.stdout.read(64)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-3000:]
    ckpt = tmp / "art" / "checkpoints" / "sae" / "crosscoder_tiny_tiny" / "layer_1" / "xc_termed" / "last.ckpt"
    assert 0 < torch.load(ckpt, weights_only=False)["global_step"] < 200
    r = train(project_root, tmp, *XC, *LONG, "tag=xc_termed", "seed=3", "resume=true", check=False)
    assert r.returncode == 2 and "seed" in r.stderr and "changed config" in r.stderr  # no hybrid run
    train(project_root, tmp, *XC, *LONG, "tag=xc_termed", "resume=true")
    a = load_file(str(sae_folder(tmp, "crosscoder_tiny_tiny", "xc_straight") / "sae.safetensors"))
    b = load_file(str(sae_folder(tmp, "crosscoder_tiny_tiny", "xc_termed") / "sae.safetensors"))
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6, rtol=1e-5), k


def test_warm_start_continues_a_trained_sae(project_root, tmp):
    train(project_root, tmp, "tag=ws_src")
    src = sae_folder(tmp, "tiny", "ws_src")
    train(project_root, tmp, f"sae.init_from={src}", "seed=1", "tag=ws", "sae.init_refit=false")
    out = sae_folder(tmp, "tiny", "ws")
    start, end = load(src), load(out)
    assert float(end.norm_scale) == float(start.norm_scale)  # refit off: the input scale is the start's
    drift = decoder_drift(start, end)
    assert drift.max() > 0  # it trained
    assert json.loads((out / "cfg.json").read_text())["extra"]["init_from"] == str(src)
    assert json.loads((out / "summary.json").read_text())["tokens"] == 8192
    # the same tokens from a fresh init move the decoder much further than continuing the trained one
    train(project_root, tmp, "seed=1", "tag=ws_fresh")
    fresh = decoder_drift(start, load(sae_folder(tmp, "tiny", "ws_fresh")))
    assert drift.mean() < 0.5 * fresh.mean(), (drift.mean(), fresh.mean())


def test_bad_warm_starts_and_crosscoder_overrides_fail_before_work(project_root, tmp):
    r = train(project_root, tmp, f"sae.init_from={tmp / 'nowhere'}", "tag=bad1", check=False)
    assert r.returncode == 2 and "SAE config not found" in r.stderr and "Traceback" not in r.stderr
    src = sae_folder(tmp, "tiny", "ws_src")
    if not src.exists():
        train(project_root, tmp, "tag=ws_src")
    r = train(project_root, tmp, f"sae.init_from={src}", "sae.expansion_factor=2", "tag=bad2", check=False)
    assert r.returncode == 2 and "num_latents=128, this run needs num_latents=64" in r.stderr, r.stderr[-2000:]
    r = train(project_root, tmp, *XC, "model=minilm", "tag=bad3", check=False)
    assert r.returncode == 2 and "task=crosscoder trains on both models of pair=" in r.stderr
    r = train(project_root, tmp, *XC, "rescore=true", "tag=bad4", check=False)
    assert r.returncode == 2 and "a crosscoder has no downstream score" in r.stderr
    r = train(project_root, tmp, "task=crosscoder", "pair.base=tiny", "pair.domain=minilm", "tag=bad5", check=False)
    assert r.returncode == 2 and "two models of one shape" in r.stderr, r.stderr[-2000:]
    for tag in ("bad1", "bad2", "bad3", "bad4", "bad5"):
        assert not list((tmp / "art" / "sae").rglob(tag))
