"""No credential is written (issue 18.8): a user or password inside ``label.base_url`` is refused in one line, on
the command line before Hydra saves anything, and in the config schema for values from files; the secret
appears in no output and no file."""

import pytest

from finsae.errors import ConfigError
from finsae.labeling.config import LabelConfig

from .test_label_stage import label, run_stage_inprocess

SECRET = "s3cr3t-NEVER-WRITE-ME"
URLS = [f"http://user:{SECRET}@127.0.0.1:8000/v1", f"https://{SECRET}@127.0.0.1/v1", f"http://:{SECRET}@127.0.0.1/v1",
        f"http://user:{SECRET}@[::1]:8000/v1"]


@pytest.mark.parametrize("url", URLS, ids=["user_password", "token_as_user", "password_only", "ipv6"])
def test_the_schema_refuses_credentials_in_the_url(url):
    with pytest.raises(ConfigError) as e:
        LabelConfig(backend="openai", model="tiny", base_url=url)
    assert "label.base_url holds credentials" in str(e.value) and SECRET not in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/v1", "https://example.org/v1?x=a@b"],
                         ids=["plain", "at_in_query"])
def test_urls_without_credentials_pass(url):
    assert LabelConfig(backend="openai", model="tiny", base_url=url).base_url == url


def test_credentials_on_the_command_line_are_never_written(project_root, tmp_path):
    run_dir = tmp_path / "run"
    r = label(project_root, tmp_path / "art", "label.backend=openai", "label.model=tiny", f"hydra.run.dir={run_dir}",
              f"label.base_url={URLS[0]}", "logger=wandb_offline")
    lines = [line for line in r.stderr.splitlines() if line.startswith("finsae: error:")]
    assert r.returncode == 2 and len(lines) == 1 and "label.base_url holds credentials (in its user-info" in lines[0], r.stderr[-2000:]
    assert SECRET not in r.stdout + r.stderr and "Traceback" not in r.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert written == [] and not run_dir.exists()


def test_credentials_from_a_composed_config_are_refused_in_one_line(project_root, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_stage_inprocess(project_root, f"paths.artifacts={tmp_path / 'art'}", f"paths.output_dir={tmp_path / 'run'}",
                            "logger=none", "label.backend=openai", "label.model=tiny", f"label.base_url={URLS[1]}")
    out = capsys.readouterr()
    err = out.err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and "label.base_url holds credentials" in err[0], err
    assert SECRET not in out.out + out.err and not (tmp_path / "run").exists()


# Credentials in the query string or the fragment (issue 37): refused like user-info, in one line naming where.
QUERY_URLS = [f"http://127.0.0.1:8000/v1?api_key={SECRET}", f"http://127.0.0.1:8000/v1?x=1&token={SECRET}",
              f"https://127.0.0.1/v1#access_token={SECRET}", f"https://127.0.0.1/v1?sig={SECRET}"]


WHERE = ["query parameter 'api_key'", "query parameter 'token'", "fragment parameter 'access_token'",
         "query parameter 'sig'"]


@pytest.mark.parametrize("url, where", zip(QUERY_URLS, WHERE, strict=True),
                         ids=["api_key", "token", "fragment", "signature"])
def test_the_schema_refuses_credentials_in_the_query_or_fragment(url, where):
    with pytest.raises(ConfigError) as e:
        LabelConfig(backend="openai", model="tiny", base_url=url)
    assert f"label.base_url holds credentials (in its {where})" in str(e.value) and SECRET not in str(e.value)


def test_query_credentials_on_the_command_line_are_never_written(project_root, tmp_path):
    run_dir = tmp_path / "run"
    r = label(project_root, tmp_path / "art", "label.backend=openai", "label.model=tiny", f"hydra.run.dir={run_dir}",
              f"label.base_url='{QUERY_URLS[0]}'", "logger=wandb_offline")
    lines = [line for line in r.stderr.splitlines() if line.startswith("finsae: error:")]
    assert r.returncode == 2 and len(lines) == 1 and "label.base_url holds credentials" in lines[0], r.stderr[-2000:]
    assert SECRET not in r.stdout + r.stderr and "Traceback" not in r.stderr
    assert not (run_dir / ".hydra").exists()  # refused before Hydra saved the command line
    written = [p for p in tmp_path.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert written == []
