"""Bad inputs a user can give: each is refused before any work with one line that names the problem.

Config rows run in-process (compose + validate, what every entry point does first); the rows that need a whole
command run it and check the exit code, the single ``finsae: error:`` line, and what was (not) written.
"""

import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from finsae.errors import ConfigError
from finsae.glue.schemas import register_schemas, validate

CONFIG_ROWS = [
    ("data.eval_start=not-a-date", "data.eval_start='not-a-date' is not a date"),
    ("data.eval_start=2015-02-30", "data.eval_start='2015-02-30' is not a date"),
    ("data.sae_eval_frac=0.9", "data.sae_eval_frac must be in"),
    ("trainer.precision=garbage", "trainer.precision must be one of"),
    ("trainer.accelerator=tpu", "trainer.accelerator must be one of"),
    ("trainer.checkpoint_every=0", "trainer.checkpoint_every must be >= 1"),
    ("trainer.devices=0", "trainer.devices and trainer.num_nodes must be >= 1"),
    ("sae.init_sample=0", "sae.init_sample must be a positive int"),
    ("sae.k=0", "sae.k must be a positive int"),
    ("sae.lr=-1", "sae.lr must be > 0"),
    ("sae.tokens=10", "sae.tokens must be an int >= batch_size"),
    ("sae.schedule=step", "sae.schedule must be one of"),
    ("sae.encoder_dtype=fp8", "sae.encoder_dtype must be one of"),
    ("sae.warmup_frac=1.5", "sae.warmup_frac must be in [0, 1)"),
    ("activations.windowing=paragraph", "activations windowing='paragraph'"),
    ("activations.dtype=int8", "activations dtype='int8'"),
    ("activations.max_length=2", "activations max_length=2"),
    ("finetune.lr=-1", "finetune.lr must be > 0"),
    ("finetune.max_length=0", "finetune.max_length must be in [8, 512]"),
    ("finetune.max_steps=0", "finetune.max_steps must be >= 1"),
    ("finetune.test_frac=0.9", "finetune.test_frac must be in"),
    ("finetune.out_name=../x", "finetune.out_name='../x' must be a plain name"),
    ("tag=../../x", "tag='../../x' must be a plain name"),
    ("task=nope", "task must be one of"),
    ("logger.kind=tensorboard", "logger.kind must be wandb, csv or none"),
    ("logger.mode=sometimes", "logger.mode must be offline or online"),
    ("model.name=gpt9", "model.name='gpt9' is unknown"),
    ("+sae.kk=3", "unknown config key(s) ['sae.kk']"),
    ("+paths.scratch=/tmp", "unknown config key(s) ['paths.scratch']"),
    ("+openai_api_key=sk-abc", "set OPENAI_API_KEY in the environment"),
    ("+logger.api_key=abc", "set API_KEY in the environment"),
]


@pytest.mark.parametrize("override, message", CONFIG_ROWS, ids=[r[0] for r in CONFIG_ROWS])
def test_bad_config_is_one_line(project_root, override, message):
    register_schemas()
    with initialize_config_dir(config_dir=str(project_root / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["paths.output_dir=/tmp/finsae-test", override])
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_good_overrides_still_pass(project_root):
    register_schemas()
    with initialize_config_dir(config_dir=str(project_root / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["paths.output_dir=/tmp/x", "sae.tokens=8192", "sae.dead_tokens=100",
                                          "tag=demo_seed1", "data.eval_start=2015-07-31", "trainer.precision=bf16-mixed"])
    typed = validate(cfg)
    assert typed.sae.tokens == 8192 and typed.tag == "demo_seed1"


def _run(root, *args, module=None):
    cmd = [sys.executable, "-m", module, *args] if module else [sys.executable, "train.py", *args]
    return subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300, check=False)


def _one_error_line(r, message):
    lines = [line for line in r.stderr.splitlines() if line.startswith("finsae: error:")]
    assert r.returncode == 2, r.stderr[-2000:]
    assert len(lines) == 1 and message in lines[0], r.stderr[-2000:]
    assert "Traceback" not in r.stderr


def test_a_secret_on_the_command_line_is_refused_and_never_written(project_root, tmp_path):
    run_dir = tmp_path / "run"
    r = _run(project_root, "debug=tiny", f"paths.artifacts={tmp_path / 'art'}", f"hydra.run.dir={run_dir}",
             "+openai_api_key=sk-NEVER-WRITE-ME")
    _one_error_line(r, "set OPENAI_API_KEY in the environment")
    written = [p for p in tmp_path.rglob("*") if p.is_file() and b"sk-NEVER-WRITE-ME" in p.read_bytes()]
    assert written == [] and not run_dir.exists()


def test_a_gpu_trainer_without_a_gpu_says_so(project_root, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    for trainer in ("gpu", "ddp7"):
        r = _run(project_root, "debug=tiny", f"paths.artifacts={tmp_path / 'art'}", f"trainer={trainer}", "logger=none")
        _one_error_line(r, "no CUDA GPU is visible")


def test_the_report_refuses_a_missing_folder_and_names_a_corrupt_summary(project_root, tmp_path):
    missing = tmp_path / "nowhere"
    r = _run(project_root, "--artifacts", str(missing), "--results", "", module="finsae.report")
    _one_error_line(r, "is not a folder")
    assert not missing.exists()
    bad = tmp_path / "art" / "sae" / "minilm" / "layer_0" / "demo" / "summary.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{half a file")
    r = _run(project_root, "--artifacts", str(tmp_path / "art"), "--results", "", module="finsae.report")
    _one_error_line(r, str(bad))
    assert not (tmp_path / "art" / "report" / "index.html").exists()  # nothing written: the demo reruns it


@pytest.mark.parametrize("case", ["a file", "file inside"])
def test_an_unwritable_artifacts_folder_fails_before_any_work(project_root, tmp_path, case):
    # (A read-only folder cannot be made here: the tests run as root, which ignores permission bits.)
    if case == "a file":
        art = tmp_path / "art"
        art.write_text("not a folder")
    else:
        (tmp_path / "blocker").write_text("x")
        art = tmp_path / "blocker" / "art"
    r = _run(project_root, "debug=tiny", f"paths.artifacts={art}", "logger=none")
    _one_error_line(r, "cannot be written")


@pytest.mark.parametrize("args, message", [(["--timeout", "-1"], "--timeout must be > 0"),
                                           (["--data-dir", "FILE"], "is a file, not a folder")])
def test_fetch_refuses_bad_arguments_before_touching_the_network(project_root, tmp_path, args, message):
    f = tmp_path / "a_file"
    f.write_text("x")
    r = _run(project_root, *[str(f) if a == "FILE" else a for a in args], module="finsae.data.fetch")
    assert r.returncode == 2 and message in r.stderr and "no network" not in r.stderr, r.stderr[-1000:]


def test_an_override_train_does_not_read_is_refused(project_root):
    from finsae.glue.schemas import refuse_overrides_not_read

    register_schemas()
    with initialize_config_dir(config_dir=str(project_root / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["paths.output_dir=/tmp/x", "pair=bert_finbert"])
    typed = validate(cfg)
    for override in ("pair=bert_finbert", "pair.base=bert_base", "+pair.extra=1"):
        with pytest.raises(ConfigError, match=r"is not read by train\.py: .*model="):
            refuse_overrides_not_read(typed, [override])
    refuse_overrides_not_read(typed, ["model=minilm_fin", "experiment=demo", "paired=1"])  # others pass


# Commands refused before any work: (arguments after train.py, what the one error line says). FILE is a
# regular file, ART the artifacts folder, BAD_DATA a data folder whose PhraseBank zip is a truncated copy.
COMMAND_ROWS = [
    (["--multirun", "layer=99,0"], "no job of the sweep was started: 1 of 2 job(s) would fail: job 0 (layer=99): "
                                   "layer=99 is outside the model"),
    (["--multirun", "layer=range(0,3)", "model=tiny,gpt9"], "4 of 6 job(s) would fail: job 1 (layer=0 model=gpt9): "
                                                           "In 'train': Could not find 'model/gpt9'"),
    (["--multirun", "layer=0,1", "hydra.sweep.dir=FILE/sweep"], "hydra.sweep.dir=FILE/sweep cannot be made: FILE is a file"),
    (["hydra.run.dir=FILE"], "hydra.run.dir=FILE is a file, not a folder"),
    (["pair=bert_finbert"], "pair=bert_finbert is not read by train.py"),
    (["paths.data_dir=BAD_DATA"], "data file BAD_DATA/financial_phrasebank/FinancialPhraseBank-v1.0.zip is damaged "
                                  "or truncated (BadZipFile"),
]


@pytest.mark.parametrize("args, message", COMMAND_ROWS, ids=[" ".join(r[0]) for r in COMMAND_ROWS])
def test_bad_command_is_one_line_before_any_work(project_root, data_dir, tmp_path, args, message):
    subs = {"FILE": str(tmp_path / "a_file"), "BAD_DATA": str(tmp_path / "data")}
    (tmp_path / "a_file").write_text("a file, not a folder")
    zip_rel = "financial_phrasebank/FinancialPhraseBank-v1.0.zip"
    good = (data_dir / zip_rel).read_bytes()
    (tmp_path / "data" / zip_rel).parent.mkdir(parents=True)
    (tmp_path / "data" / zip_rel).write_bytes(good[: len(good) // 2])
    sweep = tmp_path / "sweep"

    def sub(s):
        for k, v in subs.items():
            s = s.replace(k, v)
        return s

    flags = [a for a in args if a.startswith("--")]
    extra = [f"hydra.sweep.dir={sweep}"] if flags and not any("sweep.dir" in a for a in args) else []
    r = _run(project_root, *flags, "debug=tiny", "logger=none", f"paths.artifacts={tmp_path / 'art'}", *extra,
             *[sub(a) for a in args if a not in flags])
    _one_error_line(r, sub(message))
    assert (tmp_path / "a_file").read_text() == "a file, not a folder"
    assert (tmp_path / "data" / zip_rel).read_bytes() == good[: len(good) // 2]  # nothing deleted
    assert not sweep.exists() and not (tmp_path / "art" / "sae").exists()  # no job started, nothing trained


# Disk faults injected at the artifacts folder only (the tests run as root, which ignores permission bits, so
# a chmod-ed folder would not fail): a read-only filesystem refuses the first file opened for writing, a full
# disk the first fsync. Without the writability check the run would train and fail later (or not at all).
FAULTY_DISK = """
import builtins, errno, os, runpy, sys
art, code = os.path.realpath(sys.argv[1]), getattr(errno, sys.argv[2])
under = lambda p: os.path.realpath(p).startswith(art + os.sep)
real_open, real_fsync = builtins.open, os.fsync
def open_(file, mode="r", *a, **k):
    if code == errno.EROFS and isinstance(file, (str, os.PathLike)) and set(mode) & set("wax+") and under(file):
        raise OSError(code, os.strerror(code), str(file))
    return real_open(file, mode, *a, **k)
def fsync(fd):
    if code == errno.ENOSPC and under(os.readlink(f"/proc/self/fd/{fd}")):
        raise OSError(code, os.strerror(code))
    return real_fsync(fd)
builtins.open, os.fsync = open_, fsync
sys.argv = ["train.py", *sys.argv[3:]]
runpy.run_path("train.py", run_name="__main__")
"""


@pytest.mark.parametrize("fault, message", [("EROFS", "Read-only file system"), ("ENOSPC", "No space left on device")])
def test_a_read_only_or_full_artifacts_folder_fails_before_any_work(project_root, tmp_path, fault, message):
    art = tmp_path / "art"
    art.mkdir()
    r = subprocess.run([sys.executable, "-c", FAULTY_DISK, str(art), fault, "debug=tiny", "logger=none",
                        f"paths.artifacts={art}"], cwd=project_root, capture_output=True, text=True, timeout=300,
                       check=False)
    _one_error_line(r, f"the artifacts folder {art} cannot be written ({message})")
    # No activation cache, no checkpoint folder, no lock, no probe file: nothing began, nothing left behind.
    assert [p.name for p in art.iterdir()] == []


@pytest.mark.parametrize("extra, message", [({"layer": 0, "model": "tiny"}, "is an SAE of layer 0, this run trains layer 1"),
                                            ({}, "its cfg.json records no layer")])
def test_a_warm_start_from_another_layer_is_refused_before_any_work(project_root, tmp_path, extra, message):
    from finsae.sae import SaeConfig, TopKSAE, save

    src = save(TopKSAE(SaeConfig(d_in=32, expansion_factor=4, k=4)), tmp_path / "layer0_sae", extra=extra)
    r = _run(project_root, "debug=tiny", "layer=1", "logger=none", f"paths.artifacts={tmp_path / 'art'}",
             f"sae.init_from={src}")
    _one_error_line(r, f"sae.init_from={src}")
    _one_error_line(r, message)
    assert "sae.init_from_any_layer=true" in r.stderr and not (tmp_path / "art" / "sae").exists()


@pytest.mark.parametrize("script, args, message", [
    ("analyze.py", ["pair.base=tiny", "pair.domain=tiny", "tag=nope,demo"],
     "2 of 2 job(s) would fail: job 0 (tag=nope): "),
    ("backtest.py", ["pair.base=tiny", "pair.domain=tiny", "features.sets=[domain_sae]", "features.tag=nope,demo"],
     "2 of 2 job(s) would fail: job 0 (features.tag=nope): "),
], ids=["analyze", "backtest"])
def test_every_stage_prechecks_each_job_of_a_multirun(project_root, tmp_path, script, args, message):
    """analyze.py and backtest.py sweeps, like train.py and label.py ones, refuse before their first job when a
    job's stage precheck fails (here: no SAEs of that tag)."""
    sweep = tmp_path / "sweep"
    r = subprocess.run([sys.executable, script, "--multirun", f"paths.artifacts={tmp_path / 'art'}", "logger=none",
                        f"hydra.sweep.dir={sweep}", *args], cwd=project_root, capture_output=True, text=True,
                       timeout=300, check=False)
    _one_error_line(r, "no job of the sweep was started: " + message)
    assert not sweep.exists() and not (tmp_path / "art" / "analysis").exists()
