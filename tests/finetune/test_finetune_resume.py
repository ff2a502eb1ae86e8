"""The fine-tune resumes from a checkpoint like the SAE fits: a run killed (SIGKILL) in the classifier phase
or stopped (SIGTERM) in the masked-LM pass continues with ``resume=true`` and ends with the twin the
uninterrupted run makes; an unfinished run's checkpoints are never clobbered nor resumed under another
recipe."""

import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from finsae.finetune.checkpoints import CLASSIFIER, LAST_CHECKPOINT, MLM, checkpoint_dir
from finsae.finetune.summary import FinetuneMetrics

pytestmark = pytest.mark.slow
# 2 batches of 32 an epoch: 200 classifier steps after 40 masked-LM steps, a checkpoint every 10
RECIPE = ["task=finetune", "model=tiny", "logger=none", "finetune.max_train_examples=64",
          "finetune.epochs=100", "finetune.mlm_steps=40", "finetune.mlm_batch_size=4",
          "trainer.checkpoint_every=10", "trainer.progress_bar=false"]
WAIT_S = 300


def command(tmp, name, *extra):
    return [sys.executable, "train.py", *RECIPE, f"paths.artifacts={tmp / 'art'}",
            f"finetune.out_name={name}", f"hydra.run.dir={tmp / 'runs' / name}", *extra]


def finetune(root, tmp, name, *extra, check=True):
    r = subprocess.run(command(tmp, name, *extra), cwd=root, capture_output=True, text=True, timeout=WAIT_S,
                       check=False)
    if check:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


def stop_at_checkpoint(root, tmp, name, phase, signum):
    """Start a run and send ``signum`` once ``phase`` has written a checkpoint; the ended process's stderr."""
    ckpt = checkpoint_dir(tmp / "art", name) / phase / LAST_CHECKPOINT
    proc = subprocess.Popen(command(tmp, name), cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + WAIT_S
        while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(0.1)  # past the write of that checkpoint
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc, err, ckpt


@pytest.fixture(scope="module")
def tmp(tmp_path_factory, data_dir, project_root):
    tmp = tmp_path_factory.mktemp("finetune_resume")
    finetune(project_root, tmp, "straight")
    return tmp


def assert_same_twin(tmp, name):
    a = load_file(str(tmp / "art" / "models" / "straight" / "model.safetensors"))
    b = load_file(str(tmp / "art" / "models" / name / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6, rtol=1e-5), k
    ma = FinetuneMetrics.read(tmp / "art" / "models" / "straight")
    mb = FinetuneMetrics.read(tmp / "art" / "models" / name)
    assert mb.confusion == ma.confusion and mb.summary.train_steps == ma.summary.train_steps == 200
    assert mb.summary.mlm_final_loss == pytest.approx(ma.summary.mlm_final_loss, rel=1e-5)
    assert not checkpoint_dir(tmp / "art", name).exists()  # the published twin's run state is gone


def test_a_run_killed_in_the_classifier_phase_resumes_to_the_same_twin(project_root, tmp):
    proc, err, ckpt = stop_at_checkpoint(project_root, tmp, "killed", CLASSIFIER, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    assert not (tmp / "art" / "models" / "killed").exists(), "the run finished before it could be killed"
    step = torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"]
    assert 0 < step < 200
    r = finetune(project_root, tmp, "killed", check=False)  # without resume=true the checkpoint is kept
    assert r.returncode == 2 and "resume=true" in r.stderr and "overwrite=true" in r.stderr, r.stderr[-2000:]
    assert ckpt.exists()
    r = finetune(project_root, tmp, "killed", "resume=true", "finetune.lr=0.001", check=False)
    assert r.returncode == 2 and "changed recipe" in r.stderr and "'lr'" in r.stderr, r.stderr[-2000:]
    finetune(project_root, tmp, "killed", "resume=true")
    assert_same_twin(tmp, "killed")


def test_a_run_stopped_in_the_masked_lm_pass_resumes_to_the_same_twin(project_root, tmp):
    proc, err, ckpt = stop_at_checkpoint(project_root, tmp, "termed", MLM, signal.SIGTERM)
    assert proc.returncode == 143, err[-2000:]
    assert "Traceback" not in err and "stopped by SIGTERM" in err and "resume=true" in err, err[-2000:]
    assert not (checkpoint_dir(tmp / "art", "termed") / CLASSIFIER).exists()
    assert 0 < torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"] < 40
    finetune(project_root, tmp, "termed", "resume=true")
    assert_same_twin(tmp, "termed")
