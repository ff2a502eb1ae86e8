"""`train.py` for SAEs end to end on the tiny model: artifacts, W&B, DDP equivalence, resume after a kill."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from finsae.glue.tracking import read_offline_summary
from finsae.sae import load

pytestmark = pytest.mark.slow
BASE = ["debug=tiny", "layer=1"]


def train(root, tmp, *overrides, check=True, timeout=600):
    cmd = [sys.executable, "train.py", *BASE, f"paths.artifacts={tmp / 'art'}", *overrides]
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert r.returncode == 0, r.stderr[-4000:]
    return r


def train_until_sigterm(root, tmp, *overrides, meanwhile=None):
    """Start a run, SIGTERM it once training has begun (after calling ``meanwhile()``, if given); returns the
    finished process and its stderr."""
    cmd = [sys.executable, "train.py", *BASE, f"paths.artifacts={tmp / 'art'}", *overrides, "trainer.progress_bar=true"]
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    seen = ""
    while "sae tiny L1:" not in seen and time.time() < deadline and proc.poll() is None:  # training has started
        seen += proc.stdout.read(64)  # Lightning's bar writes to stdout
    if meanwhile is not None:
        meanwhile()
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    return proc, err


def weights(tmp, tag):
    return load_file(str(tmp / "art" / "sae" / "tiny" / "layer_1" / tag / "sae.safetensors"))


@pytest.fixture(scope="module")
def tmp(tmp_path_factory, data_dir):
    return tmp_path_factory.mktemp("sae_stage")


def test_end_to_end_with_wandb(project_root, tmp):
    run_dir = tmp / "run"
    train(project_root, tmp, "logger=wandb_offline", f"hydra.run.dir={run_dir}", "tag=e2e")
    out = tmp / "art" / "sae" / "tiny" / "layer_1" / "e2e"
    summary = json.loads((out / "summary.json").read_text())
    for key in ("fvu", "dead_fraction", "l0", "loss_recovered", "tokens", "nmse", "sae_eval_tokens"):
        assert key in summary, key
    assert summary["tokens"] == 8192 and summary["steps"] == 16
    assert sorted(p.name for p in out.iterdir()) == ["cfg.json", "sae.safetensors", "sae_eval_frequency.npy",
                                                     "summary.json"]
    assert not list(out.parent.glob(".e2e.tmp-*"))  # published in one rename, nothing left half-written
    assert 0 < summary["fvu"] < 1 and abs(summary["l0"] - 4) < 1e-6
    assert 0 <= summary["dead_fraction"] <= 1
    assert json.loads((run_dir / "summary.json").read_text())["fvu"] == summary["fvu"]
    sae = load(out, expected_d_in=32)
    assert json.loads((out / "cfg.json").read_text())["tokens_seen"] == 8192
    assert sae.cfg.num_latents == 128 and sae.cfg.k == 4
    wb = read_offline_summary(next((run_dir / "wandb").glob("offline-run-*")))
    s = wb["summary"]
    assert abs(s["fvu"] - summary["fvu"]) < 1e-9
    for key in ("train/fvu", "train/l0", "train/dead_fraction", "train/loss", "val/fvu"):
        assert key in s, key
    assert s["firing_histogram"]["_type"] == "image-file"
    assert s["sae_summary"]["_type"] == "table-file"
    assert wb["config"]["sae"]["k"] == 4


def test_no_validation_during_the_fit_leaves_training_and_the_published_fvu_alone(project_root, tmp):
    """``trainer.val_checks=0`` (the demo's): no ``val/*`` curve, the same weights and final FVU as with them."""
    run_dir = tmp / "run_noval"
    train(project_root, tmp, "logger=wandb_offline", f"hydra.run.dir={run_dir}", "tag=noval", "trainer.val_checks=0")
    s = read_offline_summary(next((run_dir / "wandb").glob("offline-run-*")))["summary"]
    assert "train/fvu" in s and not any(k.startswith("val/") for k in s)
    if not (tmp / "art" / "sae" / "tiny" / "layer_1" / "e2e").is_dir():
        train(project_root, tmp, "tag=e2e")
    a, b = weights(tmp, "noval"), weights(tmp, "e2e")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    fvu = [json.loads((tmp / "art" / "sae" / "tiny" / "layer_1" / t / "summary.json").read_text())["fvu"]
           for t in ("noval", "e2e")]
    assert abs(fvu[0] - fvu[1]) < 1e-6


def test_rescore_updates_the_downstream_score_only(project_root, tmp):
    train(project_root, tmp, "logger=none", "tag=rescore")  # its own SAE: the test does not lean on another's
    out = tmp / "art" / "sae" / "tiny" / "layer_1" / "rescore"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["loss_recovered_all"] == summary["loss_recovered_all"]  # defined (not NaN)
    before = (out / "sae.safetensors").read_bytes()
    stale = {k: v for k, v in summary.items() if k not in ("loss_recovered", "loss_recovered_all")}
    (out / "summary.json").write_text(json.dumps(stale))
    train(project_root, tmp, "logger=none", "tag=rescore", "rescore=true")
    again = json.loads((out / "summary.json").read_text())
    for key in ("loss_recovered", "loss_recovered_all"):  # real-token score is NaN at tiny's last layer
        assert again[key] == pytest.approx(summary[key], abs=1e-9, nan_ok=True), key
    assert again["fvu"] == summary["fvu"] and (out / "sae.safetensors").read_bytes() == before
    r = train(project_root, tmp, "logger=none", "tag=never_trained", "rescore=true", check=False)
    assert r.returncode == 2 and "needs a finished SAE" in r.stderr


def test_bad_shapes_fail_before_work(project_root, tmp):
    for override, msg in (("sae.k=200", "exceeds num_latents"), ("layer=7", "outside the model")):
        r = train(project_root, tmp, override, "logger=none", check=False)
        assert r.returncode == 2 and msg in r.stderr, r.stderr[-2000:]
        assert "Traceback" not in r.stderr
    assert not (tmp / "art" / "sae" / "tiny" / "layer_7").exists()


def test_ddp_two_processes_equals_single(project_root, tmp):
    train(project_root, tmp, "logger=none", "tag=single")
    train(project_root, tmp, "logger=none", "trainer=ddp_sim", "tag=ddp2")
    a, b = weights(tmp, "single"), weights(tmp, "ddp2")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k
    sa = json.loads((tmp / "art/sae/tiny/layer_1/single/summary.json").read_text())
    sb = json.loads((tmp / "art/sae/tiny/layer_1/ddp2/summary.json").read_text())
    timing = {"seconds", "fit_seconds", "tokens_per_second_train", "tag", "run_dir", "wandb_run_id"}
    assert sa.keys() == sb.keys()
    for key in sorted(sa.keys() - timing):
        if isinstance(sa[key], float):
            assert sa[key] == pytest.approx(sb[key], abs=1e-5, nan_ok=True), key
        else:
            assert sa[key] == sb[key], key
    assert sb["steps"] == 16 and sb["tokens"] == 8192
    ca = json.loads((tmp / "art/sae/tiny/layer_1/single/cfg.json").read_text())
    cb = json.loads((tmp / "art/sae/tiny/layer_1/ddp2/cfg.json").read_text())
    assert cb["tokens_seen"] == ca["tokens_seen"] == 8192 and cb["extra"]["tokens"] == 8192


def test_a_finished_or_unfinished_run_is_never_clobbered(project_root, tmp):
    train(project_root, tmp, "logger=none", "tag=keep", "downstream_docs=0")
    out = tmp / "art" / "sae" / "tiny" / "layer_1" / "keep"
    before = (out / "sae.safetensors").read_bytes()
    r = train(project_root, tmp, "logger=none", "tag=keep", "seed=5", check=False)
    assert r.returncode == 2 and "holds a finished SAE" in r.stderr and "overwrite=true" in r.stderr
    assert (out / "sae.safetensors").read_bytes() == before
    train(project_root, tmp, "logger=none", "tag=keep", "seed=5", "overwrite=true", "downstream_docs=0")
    assert (out / "sae.safetensors").read_bytes() != before
    ckpt = tmp / "art" / "checkpoints" / "sae" / "tiny" / "layer_1" / "unfinished"
    ckpt.mkdir(parents=True)
    (ckpt / "last.ckpt").write_bytes(b"state of an interrupted run")
    r = train(project_root, tmp, "logger=none", "tag=unfinished", check=False)
    assert r.returncode == 2 and "resume=true" in r.stderr and "overwrite=true" in r.stderr
    assert (ckpt / "last.ckpt").read_bytes() == b"state of an interrupted run"
    r = train(project_root, tmp, "logger=none", "tag=nothing_to_resume", "resume=true", "downstream_docs=0")
    assert "resume=true but no checkpoint" in r.stdout and "training from the start" in r.stdout


def test_resume_after_kill_matches_uninterrupted(project_root, tmp):
    long = ["logger=none", "sae.tokens=204800", "trainer.checkpoint_every=20", "downstream_docs=0"]
    train(project_root, tmp, *long, "tag=straight")
    cmd = [sys.executable, "train.py", *BASE, f"paths.artifacts={tmp / 'art'}", *long, "tag=killed"]
    out = tmp / "art" / "sae" / "tiny" / "layer_1" / "killed"
    ckpts = tmp / "art" / "checkpoints" / "sae" / "tiny" / "layer_1" / "killed"
    proc = subprocess.Popen(cmd, cwd=project_root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (ckpts / "last.ckpt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "summary.json").exists(), "the run finished before it could be killed"
    step_at_kill = torch.load(ckpts / "last.ckpt", weights_only=False)["global_step"]
    assert 0 < step_at_kill < 400
    train(project_root, tmp, *long, "tag=killed", "resume=true")
    a, b = weights(tmp, "straight"), weights(tmp, "killed")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6, rtol=1e-5), k
    sa = json.loads((tmp / "art/sae/tiny/layer_1/straight/summary.json").read_text())
    sb = json.loads((out / "summary.json").read_text())
    assert sa["steps"] == sb["steps"] == 400
    assert abs(sa["fvu"] - sb["fvu"]) < 1e-6


def test_plain_ddp_does_post_fit_work_on_rank_zero_only(project_root, tmp):
    """strategy=ddp re-runs train.py once per extra rank (as on a cluster): one W&B run, one summary, one save."""
    run_dir = tmp / "ddp_run"
    r = train(project_root, tmp, "logger=wandb_offline", "trainer=ddp_sim", "trainer.strategy=ddp",
              f"hydra.run.dir={run_dir}", "tag=ddp_plain", "downstream_docs=0")
    assert r.stdout.count("sae: tiny layer 1 [ddp_plain]") == 1, r.stdout[-2000:]
    runs = list(run_dir.rglob("offline-run-*"))
    assert len(runs) == 1, runs
    summary = json.loads((tmp / "art/sae/tiny/layer_1/ddp_plain/summary.json").read_text())
    assert summary["steps"] == 16 and summary["tokens"] == 8192


def test_sigterm_checkpoints_and_resume_matches_uninterrupted(project_root, tmp):
    long = ["logger=none", "sae.tokens=204800", "trainer.checkpoint_every=1000", "downstream_docs=0"]
    if not (tmp / "art/sae/tiny/layer_1/straight/summary.json").exists():
        train(project_root, tmp, *long, "tag=straight")
    ckpts = tmp / "art" / "checkpoints" / "sae" / "tiny" / "layer_1" / "termed"
    proc, err = train_until_sigterm(project_root, tmp, *long, "tag=termed")
    assert proc.returncode == 143, err[-3000:]
    assert "stopped by SIGTERM" in err and "resume=true" in err
    assert (ckpts / "last.ckpt").exists()  # no periodic checkpoint was due: this one is the signal's
    step = torch.load(ckpts / "last.ckpt", weights_only=False)["global_step"]
    assert 0 < step < 400
    assert not (tmp / "art/sae/tiny/layer_1/termed").exists()
    train(project_root, tmp, *long, "tag=termed", "resume=true")
    a, b = weights(tmp, "straight"), weights(tmp, "termed")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6, rtol=1e-5), k
    sb = json.loads((tmp / "art/sae/tiny/layer_1/termed/summary.json").read_text())
    assert sb["steps"] == 400


def test_resume_refuses_a_changed_config_and_a_truncated_checkpoint(project_root, tmp):
    ckpts = tmp / "art" / "checkpoints" / "sae" / "tiny" / "layer_1" / "changed"
    proc, err = train_until_sigterm(project_root, tmp, "logger=none", "tag=changed", "sae.tokens=204800",
                                    "downstream_docs=0")
    assert proc.returncode == 143 and (ckpts / "last.ckpt").exists(), err[-2000:]
    r = train(project_root, tmp, "logger=none", "tag=changed", "sae.tokens=204800", "sae.k=8", "seed=3",
              "resume=true", check=False)
    assert r.returncode == 2 and "changed config" in r.stderr, r.stderr[-2000:]
    assert "'sae.k'" in r.stderr and "'seed'" in r.stderr and "'sae.tokens'" not in r.stderr
    (ckpts / "last.ckpt").write_bytes((ckpts / "last.ckpt").read_bytes()[:1000])
    r = train(project_root, tmp, "logger=none", "tag=changed", "sae.tokens=204800", "resume=true", check=False)
    assert r.returncode == 2 and "unreadable" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]


def test_two_runs_of_one_tag_refuse_each_other(project_root, tmp):
    second = {}

    def start_the_same_run():
        second["r"] = train(project_root, tmp, "logger=none", "tag=twice", f"sae.tokens={tokens}", check=False)

    # a budget the first run cannot finish while the second starts, however loaded the machine: it ends on SIGTERM
    tokens = 100 * 409600
    proc, err = train_until_sigterm(project_root, tmp, "logger=none", "tag=twice", f"sae.tokens={tokens}",
                                    "downstream_docs=0", meanwhile=start_the_same_run)
    r = second["r"]
    assert r.returncode == 2 and "another run is training this SAE now" in r.stderr, r.stderr[-2000:]
    assert proc.returncode == 143, err[-2000:]  # the first run was not disturbed: it stopped on our signal


def test_a_job_that_fails_at_run_time_does_not_end_the_sweep(project_root, tmp, data_dir):
    """A bad config is refused before any job starts (tests/glue/test_bad_inputs.py); what only running shows
    (here job 0's data archive is truncated) is recorded and the other jobs run."""
    bad = tmp / "bad_data" / "financial_phrasebank" / "FinancialPhraseBank-v1.0.zip"
    bad.parent.mkdir(parents=True)
    good = (data_dir / "financial_phrasebank" / "FinancialPhraseBank-v1.0.zip").read_bytes()
    bad.write_bytes(good[: len(good) // 2])
    sweep = tmp / "sweep"
    cmd = [sys.executable, "train.py", "--multirun", "debug=tiny", "layer=0", "logger=none", "downstream_docs=0",
           f"paths.data_dir={tmp / 'bad_data'},{data_dir}", f"paths.artifacts={tmp / 'art'}",
           f"hydra.sweep.dir={sweep}", "tag=sweep"]
    r = subprocess.run(cmd, cwd=project_root, capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 2, r.stderr[-3000:]
    assert (tmp / "art/sae/tiny/layer_0/sweep/summary.json").exists()  # job 1 ran after job 0 failed
    assert "1 job(s) of the sweep failed" in r.stderr and "job 0: " in r.stderr and str(bad) in r.stderr
    assert "damaged or truncated" in (sweep / "failed_jobs.tsv").read_text()
    assert "Traceback" not in r.stderr
