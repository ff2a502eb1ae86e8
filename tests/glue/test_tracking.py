"""W&B offline round trip through W&B's own reader, CSV fallback, and secret redaction."""

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import pytest

from finsae.glue.tracking import REDACTED, read_offline_summary, redact, start_run


def test_wandb_offline_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = {"sae": {"k": 32}, "llm": {"api_key": "sk-secret-123", "api_key_env": "OPENAI_API_KEY"}}
    tr = start_run("test", cfg, tmp_path, project="finsae-test", tags=["unit"])
    for step in range(3):
        tr.log({"train/fvu": 0.5 / (step + 1), "train/l0": 32.0}, step=step)
    tr.log_table("layers", pd.DataFrame({"layer": [0, 1], "fvu": [0.1, 0.2]}))
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png = tr.log_figure("curve", fig)
    run_dir = tr.wandb_dir
    tr.finish({"fvu": 0.123, "dead_fraction": 0.0})
    s = read_offline_summary(run_dir)
    assert s["state"] == "finished"
    assert s["summary"]["fvu"] == 0.123
    assert abs(s["summary"]["train/fvu"] - 0.5 / 3) < 1e-9
    assert s["summary"]["layers"]["_type"] == "table-file" and s["summary"]["layers"]["nrows"] == 2
    assert s["summary"]["curve"]["_type"] == "image-file"
    assert s["config"]["sae"]["k"] == 32
    assert s["config"]["llm"]["api_key"] == REDACTED and s["config"]["llm"]["api_key_env"] == "OPENAI_API_KEY"
    dumped = json.dumps(s)
    assert "sk-secret-123" not in dumped
    assert png.exists() and png.stat().st_size > 1000
    # The image is a real picture, not a blank canvas.
    img = plt.imread(png)
    assert img[..., :3].std() > 0.01


def test_csv_logger(tmp_path):
    tr = start_run("test", {}, tmp_path, kind="csv")
    tr.log({"a": 1.0}, step=0)
    tr.log({"a": 2.0, "b": 3.0}, step=1)
    tr.finish()
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert df["a"].tolist() == [1.0, 2.0]


def test_redact_keeps_env_names():
    out = redact({"a": {"API_KEY": "x", "api_key_env": "OPENAI_API_KEY", "n": [{"secret": "s"}]},
                  "tokens": 1000, "tokenizer": "bert-base-uncased"})
    assert out == {"a": {"API_KEY": REDACTED, "api_key_env": "OPENAI_API_KEY", "n": [{"secret": REDACTED}]},
                   "tokens": 1000, "tokenizer": "bert-base-uncased"}


def test_stage_run_always_finishes_and_marks_a_crash_failed(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import wandb

    from finsae.glue.tracking import stage_run

    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = SimpleNamespace(kind="wandb", mode="offline", project="finsae-test", entity=None)
    with pytest.raises(RuntimeError, match="boom"):
        with stage_run("crashy", {"a": 1}, tmp_path / "bad", logger) as tracker:
            tracker.log({"x": 1.0})
            raise RuntimeError("boom")
    assert wandb.run is None
    bad = read_offline_summary(next((tmp_path / "bad" / "wandb").glob("offline-run-*")))
    assert bad["state"] == "failed" and bad["exit_code"] == 1 and bad["summary"]["x"] == 1
    with stage_run("fine", {"a": 1}, tmp_path / "good", logger) as tracker:
        tracker.log({"x": 2.0})
    good = read_offline_summary(next((tmp_path / "good" / "wandb").glob("offline-run-*")))
    assert good["state"] == "finished" and good["exit_code"] == 0


def test_online_wandb_without_a_key_fails_before_any_work(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from finsae.errors import ConfigError
    from finsae.glue.tracking import stage_run

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    logger = SimpleNamespace(kind="wandb", mode="online", project="finsae-test", entity=None)
    with pytest.raises(ConfigError, match="WANDB_API_KEY.*logger=wandb_offline"):
        with stage_run("online", {}, tmp_path, logger):
            raise AssertionError("the stage must not start")


def test_every_stage_of_a_study_shares_one_group_and_records_provenance(tmp_path, monkeypatch):
    """Read back with W&B's own reader: one group for the study, job_type = stage, the stage's name, and the
    provenance (code version, data fingerprint) that finsae.reproduce needs."""
    from types import SimpleNamespace

    from finsae.glue.tracking import read_offline_run, stage_run
    from finsae.provenance import data_fingerprint

    monkeypatch.setenv("WANDB_MODE", "offline")
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("x\n1\n")
    logger = SimpleNamespace(kind="wandb", mode="offline", project="finsae-test", entity=None, group=None)
    cfg = {"pair": {"base": "minilm", "domain": "minilm_fin"}, "paths": {"data_dir": str(data)}}
    runs = {}
    for stage, group, name in [("train_sae", "sae-demo", "sae-minilm-L3-demo"), ("analyze", "analyze-x", "analyze-minilm_fin-0-3")]:
        with stage_run(stage, {**cfg, "stage": stage}, tmp_path / stage, logger, group=group, name=name) as tr:
            tr.log({"x": 1.0})
        runs[stage] = read_offline_run(next((tmp_path / stage / "wandb").glob("offline-run-*")))
    assert {r["group"] for r in runs.values()} == {"study-minilm-vs-minilm_fin"}
    assert [r["job_type"] for r in runs.values()] == ["train_sae", "analyze"]
    assert runs["train_sae"]["name"] == "sae-minilm-L3-demo"
    prov = runs["analyze"]["config"]["provenance"]
    assert prov["data_fingerprint"] == data_fingerprint(data) != data_fingerprint(tmp_path)
    assert prov["code_version"]
    assert json.loads((tmp_path / "analyze" / "provenance.json").read_text())["stage"] == "analyze"
    named = SimpleNamespace(**{**vars(logger), "group": "my-study"})
    with stage_run("label", cfg, tmp_path / "label", named, group="label") as tr:
        pass
    assert read_offline_run(next((tmp_path / "label" / "wandb").glob("offline-run-*")))["group"] == "my-study"


def test_wandb_sweep_grid_composes_into_distinct_named_runs(project_root):
    """Every point of sweeps/wandb_sweep.yaml is a valid train.py config, and each gets its own SAE folder/name."""
    import itertools

    import yaml
    from hydra import compose, initialize_config_dir

    from finsae.glue.schemas import register_schemas, validate

    register_schemas()
    sweep = yaml.safe_load((project_root / "sweeps" / "wandb_sweep.yaml").read_text())
    assert sweep["program"] == "train.py" and sweep["method"] == "grid"
    params = sweep["parameters"]
    assert {"layer", "sae.k", "sae.expansion_factor"} <= set(params)
    fixed = [a for a in sweep["command"] if not a.startswith("${") or a.startswith("tag=")]
    keys = list(params)
    points = list(itertools.product(*(params[k]["values"] for k in keys)))
    names = set()
    with initialize_config_dir(config_dir=str(project_root / "conf"), version_base="1.3"):
        for point in points[:: max(1, len(points) // 6)] + points[-1:]:
            args = [f"{k}={v}" for k, v in zip(keys, point, strict=True)]
            cfg = validate(compose("train", overrides=["paths.output_dir=/tmp/finsae-test", *fixed, *args]))
            assert (cfg.layer, cfg.sae.k, cfg.sae.expansion_factor) == (point[keys.index("layer")],
                                                                       point[keys.index("sae.k")],
                                                                       point[keys.index("sae.expansion_factor")])
            names.add(f"sae-{cfg.model.name}-L{cfg.layer}-{cfg.tag}")
    assert len(names) == len(points[:: max(1, len(points) // 6)] + points[-1:])


@pytest.fixture
def silent_host():
    """A W&B host on loopback that accepts connections and never answers (a blackholed or hung server)."""
    import socket
    import threading

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])  # kept open, never read or answered
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


ONLINE_ROWS = [("short key", "short-key", "WANDB_API_KEY is not a W&B API key (API key must have 40+ characters"),
               ("silent host", "a" * 40, "did not answer within 1 s")]


@pytest.mark.parametrize("key, message", [r[1:] for r in ONLINE_ROWS], ids=[r[0] for r in ONLINE_ROWS])
def test_online_wandb_with_a_bad_key_or_a_silent_host_is_one_line(tmp_path, monkeypatch, silent_host, key, message):
    from types import SimpleNamespace

    from finsae.errors import ConfigError
    from finsae.glue.tracking import stage_run

    monkeypatch.setenv("WANDB_API_KEY", key)
    monkeypatch.setenv("WANDB_BASE_URL", silent_host)
    monkeypatch.setenv("WANDB_HTTP_TIMEOUT", "1")
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "5")  # without the check, W&B itself would give up after this
    logger = SimpleNamespace(kind="wandb", mode="online", project="finsae-test", entity=None)
    with pytest.raises(ConfigError) as err:
        with stage_run("online", {}, tmp_path, logger):
            raise AssertionError("the stage must not start")
    assert message in str(err.value) and "\n" not in str(err.value) and key not in str(err.value)
    assert not (tmp_path / "wandb").exists()


def test_online_wandb_with_a_bad_key_is_refused_before_the_stage_works(project_root, tmp_path):
    """Through the entry point: one line, exit 2, before the activations are extracted (not after the training)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "WANDB_API_KEY": "short-key", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "train.py", "debug=tiny", "logger=wandb", f"paths.artifacts={tmp_path / 'art'}",
                        f"hydra.run.dir={tmp_path / 'run'}"], cwd=project_root, env=env, capture_output=True, text=True,
                       timeout=600, check=False)
    lines = [line for line in r.stderr.splitlines() if line.startswith("finsae: error:")]
    assert r.returncode == 2 and len(lines) == 1 and "WANDB_API_KEY is not a W&B API key" in lines[0], r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "short-key" not in r.stderr
    assert not (tmp_path / "art" / "activations").exists()


# ------------------------------------------------------------------ issue 34: self-contained runs, traceable summaries
def _wandb_files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if "wandb" in str(p.relative_to(root)).lower())


def test_an_offline_run_writes_nothing_of_wandb_outside_its_run_folder(tmp_path, monkeypatch):
    """Artifact staging, cache and config of W&B land under the run folder (a copied run syncs alone): with HOME
    and the XDG folders pointed at an empty folder, that folder holds no W&B file afterwards."""
    from types import SimpleNamespace

    from finsae.glue.tracking import WANDB_STAGING, stage_run

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var, sub in [("XDG_CACHE_HOME", ".cache"), ("XDG_DATA_HOME", ".local/share"), ("XDG_CONFIG_HOME", ".config")]:
        monkeypatch.setenv(var, str(home / sub))
    for var in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_ARTIFACT_DIR", "WANDB_CONFIG_DIR", "WANDB_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    payload = tmp_path / "payload"
    payload.mkdir()
    (payload / "weights.bin").write_bytes(b"\0" * 4096)
    run_dir = tmp_path / "run"
    logger = SimpleNamespace(kind="wandb", mode="offline", project="finsae-test", entity=None, group=None)
    with stage_run("train_sae", {"pair": {"base": "a", "domain": "b"}}, run_dir, logger) as tr:
        tr.log({"x": 1.0})
        tr.log_artifact(payload, "sae-a-layer0-t", "sae")
    assert _wandb_files(home) == []
    assert (run_dir / WANDB_STAGING).is_dir() and list((run_dir / "wandb").glob("offline-run-*"))


def test_the_study_group_follows_the_model_trained():
    from finsae.glue.tracking import study_id

    pair = {"base": "minilm", "domain": "minilm_fin"}
    assert study_id({"name": "train", "task": "sae", "model": {"name": "tiny"}, "pair": pair}) == "study-tiny"
    assert study_id({"name": "train", "task": "sae", "model": {"name": "minilm_fin"}, "pair": pair}) == \
        "study-minilm-vs-minilm_fin"
    assert study_id({"name": "train", "task": "crosscoder", "model": {"name": "tiny"}, "pair": pair}) == \
        "study-minilm-vs-minilm_fin"  # a crosscoder trains the pair (model= is not read)
    assert study_id({"name": "analyze", "model": {"name": "tiny"}, "pair": pair}) == "study-minilm-vs-minilm_fin"
    assert study_id({"name": "train", "model": {"name": "tiny"}, "pair": pair}, group="mine") == "mine"


def test_a_summary_made_inside_a_stage_run_names_its_run(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from finsae.glue.tracking import stage_run
    from finsae.paths import PROJECT_ROOT
    from finsae.summary import StageSummary

    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = SimpleNamespace(kind="wandb", mode="offline", project="finsae-test", entity=None, group=None)
    with stage_run("analyze", {}, tmp_path / "run", logger) as tr:
        inside = StageSummary()
        run_id = tr.run.id
        inside.write(tmp_path / "art")
    assert (inside.run_dir, inside.wandb_run_id) == (str(tmp_path / "run"), run_id) and run_id
    assert next((tmp_path / "run" / "wandb").glob(f"offline-run-*-{run_id}"))
    assert StageSummary.read(tmp_path / "art").wandb_run_id == run_id
    assert StageSummary().run_dir == ""  # outside a run: nothing stamped
    off = SimpleNamespace(**{**vars(logger), "kind": "none"})
    inner = PROJECT_ROOT / "outputs" / "x"  # inside the checkout: recorded relative to it
    with stage_run("label", {}, tmp_path / "r2", off):
        from finsae.summary import run_origin

        with run_origin(inner):
            assert StageSummary().run_dir == "outputs/x"
        assert (StageSummary().run_dir, StageSummary().wandb_run_id) == (str(tmp_path / "r2"), "")
