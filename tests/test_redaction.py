"""finsae.redaction: the one redaction of what commands write (issue 37 §3) and the one URL credential check."""

from __future__ import annotations

import pytest

from finsae.redaction import REDACTED, redact, redact_yaml_file, url_credentials

S = "s3cr3t-MARK"


@pytest.mark.parametrize("url, where", [
    (f"http://u:{S}@h/v1", "user-info (user:password@host)"),
    (f"http://h/v1?api_key={S}", "query parameter 'api_key'"),
    (f"http://h/v1?a=1;password={S}", "query parameter 'password'"),
    (f"http://h/v1#token={S}", "fragment parameter 'token'"),
    (f"http://h/v1?X-Amz-Signature={S}", "query parameter 'X-Amz-Signature'"),
    ("http://[::1/v1", "a part that cannot be parsed"),
    ("http://h:8000/v1?x=a@b&tokens=5&exclude_keys=a", None),
    ("http://127.0.0.1:8000/v1", None),
])
def test_url_credentials_says_where(url, where):
    assert url_credentials(url) == where


def test_redact_masks_keys_urls_and_overrides_and_keeps_the_rest():
    cfg = {"label": {"base_url": f"http://h/v1?api_key={S}&model=m", "api_key_env": "OPENAI_API_KEY",
                     "password": 1234, "tokens": 1000, "note": f"see https://u:{S}@h/x and more"},
           "overrides": [f"label.base_url=http://h/v1#token={S}", f"+llm.api_key={S}", "layer=1"],
           "nested": {"secret": {"inner": S}}, "empty_key": "", "flag": True}
    out = redact(cfg)
    assert S not in repr(out)
    assert out["label"]["base_url"] == f"http://h/v1?api_key={REDACTED}&model=m"
    assert out["label"]["note"] == f"see https://{REDACTED}@h/x and more"
    assert out["label"]["password"] == REDACTED and out["label"]["tokens"] == 1000
    assert out["label"]["api_key_env"] == "OPENAI_API_KEY"
    assert out["overrides"] == [f"label.base_url=http://h/v1#token={REDACTED}", f"+llm.api_key={REDACTED}", "layer=1"]
    assert out["nested"] == {"secret": {"inner": REDACTED}} and out["empty_key"] == "" and out["flag"] is True


def test_redact_yaml_file_rewrites_only_a_file_with_a_secret(tmp_path):
    clean, dirty = tmp_path / "clean.yaml", tmp_path / "dirty.yaml"
    clean.write_text("a: 1   # a comment kept\nurl: http://h/v1\n")
    dirty.write_text(f"label:\n  base_url: http://h/v1?api_key={S}\n  model: m\n")
    assert redact_yaml_file(clean) is False and clean.read_text() == "a: 1   # a comment kept\nurl: http://h/v1\n"
    assert redact_yaml_file(dirty) is True
    assert S not in dirty.read_text() and "model: m" in dirty.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.yaml", "dirty.yaml"]  # no temp file left


def test_secret_paths_names_each_masked_value():
    from finsae.redaction import secret_paths

    cfg = {"label": {"base_url": f"http://h/v1?api_key={S}", "api_key_env": "X"}, "llm_api_key": S,
           "runs": [{"token": S}, {"n": 1}], "ok": "http://h/v1"}
    assert secret_paths(cfg) == ["label.base_url", "llm_api_key", "runs.0.token"]
    assert secret_paths({"a": 1, "b": ["x"]}) == []


def test_the_stages_resolved_config_is_redacted():
    """What the stages hand to W&B and their records (``glue.app.resolved_config``) passes through the redaction,
    interpolations resolved first."""
    from omegaconf import OmegaConf

    from finsae.glue.app import resolved_config

    cfg = OmegaConf.create({"label": {"base_url": f"http://h/v1?api_key={S}"}, "copy": "${label.base_url}", "k": 4})
    out = resolved_config(cfg)
    assert S not in repr(out) and out["k"] == 4 and out["copy"] == f"http://h/v1?api_key={REDACTED}"


@pytest.mark.parametrize("mode", ["RUN", "MULTIRUN"])
def test_hydras_saved_configs_are_redacted_when_the_job_starts(tmp_path, mode):
    """``CheckBeforeWork.on_job_start`` (conf/hydra/default.yaml): what Hydra saved just before — the job's
    ``.hydra/*.yaml`` and a sweep's ``multirun.yaml`` — holds no secret once the job runs."""
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from finsae.glue.app import CheckBeforeWork

    job, sweep = tmp_path / "sweep" / "0", tmp_path / "sweep"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text(f"label:\n  base_url: http://h/v1?api_key={S}\n  model: m\n")
    (job / ".hydra" / "overrides.yaml").write_text(f"- +llm.api_key={S}\n- layer=1\n")
    (job / ".hydra" / "hydra.yaml").write_text("hydra:\n  job:\n    name: label\n")
    (sweep / "multirun.yaml").write_text(f"label:\n  base_url: http://u:{S}@h/v1\n")
    config = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(job)}, "output_subdir": ".hydra",
                                         "mode": getattr(RunMode, mode), "sweep": {"dir": str(sweep)}}})
    before = (job / ".hydra" / "hydra.yaml").read_bytes()
    CheckBeforeWork().on_job_start(config=config, task_function=None)
    hydra_dir = [p.read_text() for p in (job / ".hydra").iterdir()]
    assert all(S not in text for text in hydra_dir) and "model: m" in (job / ".hydra" / "config.yaml").read_text()
    assert (job / ".hydra" / "hydra.yaml").read_bytes() == before  # a file without a secret is left as it was
    assert (S in (sweep / "multirun.yaml").read_text()) == (mode == "RUN")  # a single run has no sweep file
