"""No secret reaches a file, whatever the command (issue 37 §3): marker secrets planted in the environment (every
variable a key may live in) and in configs (a config file's URL, a command line's URL, a saved config copied by
``finsae.reproduce``), then every file the commands wrote — run folders, Hydra's ``.hydra/``, the offline W&B run
and its debug logs, W&B's own cache, the store, the export, the report — and every line they printed is searched
for each marker."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid

import pytest
import yaml

pytestmark = pytest.mark.slow

TAG = uuid.uuid4().hex[:12]
ENV_MARKS = {"OPENAI_API_KEY": f"sk-envmark-openai-{TAG}", "HF_TOKEN": f"hf_envmark{TAG}",
             "WANDB_API_KEY": f"envmarkwandb{TAG}".ljust(40, "0"), "ANTHROPIC_API_KEY": f"envmark-anthropic-{TAG}"}
CONFIG_FILE_MARK = f"cfgfilemark{TAG}"
COMMAND_LINE_MARK = f"clmark{TAG}"
SAVED_CONFIG_MARK = f"savedmark{TAG}"
MARKS = [*ENV_MARKS.values(), CONFIG_FILE_MARK, COMMAND_LINE_MARK, SAVED_CONFIG_MARK]


def _run(project_root, env, *args):
    r = subprocess.run([sys.executable, *map(str, args)], cwd=project_root, env=env, capture_output=True, text=True,
                       timeout=900, check=False)
    return r


def _one_error_line(r, message):
    lines = [line for line in r.stderr.splitlines() if line.startswith("finsae: error:")]
    assert r.returncode == 2 and len(lines) == 1 and message in lines[0], r.stderr[-2000:]


def test_no_planted_secret_reaches_any_file_or_output(project_root, data_dir, tmp_path):
    env = {**os.environ, **ENV_MARKS, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline",
           # W&B's own side folders under tmp_path, so that the search below sees whatever it writes there
           "WANDB_CONFIG_DIR": str(tmp_path / "wandb-home" / "config"),
           "WANDB_CACHE_DIR": str(tmp_path / "wandb-home" / "cache"),
           "WANDB_DATA_DIR": str(tmp_path / "wandb-home" / "data"),
           "FINSAE_OUTPUTS": str(tmp_path / "outputs")}
    art, run = tmp_path / "art", tmp_path / "run"
    printed = []

    # train.py with every environment secret set, W&B offline: run folder, .hydra, W&B run, store
    r = _run(project_root, env, "train.py", "debug=tiny", "layer=1", "tag=s", "logger=wandb_offline",
             f"paths.artifacts={art}", f"hydra.run.dir={run}")
    printed.append(r.stdout + r.stderr)
    assert r.returncode == 0, r.stderr[-3000:]
    assert next((run / "wandb").glob("offline-run-*/*.wandb")).is_file()

    # export and report of that store
    r = _run(project_root, env, "-m", "finsae.export", art / "sae" / "tiny" / "layer_1" / "s", tmp_path / "exported")
    printed.append(r.stdout + r.stderr)
    assert r.returncode == 0, r.stderr[-2000:]
    r = _run(project_root, env, "-m", "finsae.report", "--artifacts", art, "--out", tmp_path / "report",
             "--results", tmp_path / "pages", "--readme", "")
    printed.append(r.stdout + r.stderr)
    assert r.returncode == 0, r.stderr[-2000:]

    # a credential in a config file's URL (a label option of one's own, through --config-dir)
    extra = tmp_path / "extra" / "label"
    extra.mkdir(parents=True)
    (extra / "leaky.yaml").write_text(yaml.safe_dump({"defaults": ["_schema"], "backend": "openai", "model": "tiny",
                                                      "base_url": f"http://127.0.0.1:9/v1?api_key={CONFIG_FILE_MARK}"}))
    r = _run(project_root, env, "label.py", "--config-dir", tmp_path / "extra", "label=leaky", f"paths.artifacts={art}",
             f"hydra.run.dir={tmp_path / 'label_run'}", "logger=wandb_offline")
    printed.append(r.stdout + r.stderr)
    _one_error_line(r, "label.base_url holds credentials (in its query parameter 'api_key')")

    # a credential in a command line's URL
    r = _run(project_root, env, "label.py", "label.backend=openai", "label.model=tiny", "logger=wandb_offline",
             f"label.base_url='http://127.0.0.1:9/v1#token={COMMAND_LINE_MARK}'", f"paths.artifacts={art}",
             f"hydra.run.dir={tmp_path / 'label_run2'}")
    printed.append(r.stdout + r.stderr)
    _one_error_line(r, "label.base_url holds credentials (in its fragment parameter 'token')")

    # a saved config holding a secret, given to finsae.reproduce
    leaky = tmp_path / "leaky_run"
    shutil.copytree(run, leaky, ignore=shutil.ignore_patterns("wandb"))
    cfg = yaml.safe_load((leaky / ".hydra" / "config.yaml").read_text())
    (leaky / ".hydra" / "config.yaml").write_text(yaml.safe_dump({**cfg, "hf_token": SAVED_CONFIG_MARK}))
    r = _run(project_root, env, "-m", "finsae.reproduce", leaky, "--out", tmp_path / "repro")
    printed.append(r.stdout + r.stderr)
    _one_error_line(r, "holds a secret (hf_token)")

    planted = {leaky / ".hydra" / "config.yaml", extra / "leaky.yaml"}
    found = {}
    for path in tmp_path.rglob("*"):
        if path.is_file() and not path.is_symlink() and path not in planted:
            data = path.read_bytes()
            hits = [m for m in MARKS if m.encode() in data]
            if hits:
                found[str(path.relative_to(tmp_path))] = hits
    assert found == {}
    assert [m for m in MARKS if any(m in text for text in printed)] == []
    assert (tmp_path / "label_run" / ".hydra" / "config.yaml").is_file()  # Hydra did save it, masked
