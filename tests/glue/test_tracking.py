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
