"""The vllm backend's import guard (vllm never lives in .venv), and -- opt-in, when ``FINSAE_VLLM_URL`` points at
a real vLLM server (``sweeps/vllm_cpu_server.sh``) -- `label.py label.backend=openai` end to end against it."""

import json
import os
import subprocess
import sys

import pytest

from finsae.errors import FinsaeError
from finsae.labeling.backend import make_backend
from finsae.labeling.config import LabelConfig

from .fixtures import write_analysis


def test_vllm_import_guard_says_where_vllm_lives(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # absent, whatever this environment holds
    with pytest.raises(FinsaeError) as err:
        make_backend(LabelConfig(backend="vllm", model="Qwen/Qwen2.5-7B-Instruct"))
    msg = str(err.value)
    assert "needs the vllm package" in msg and "requirements-vllm.txt" in msg and "\n" not in msg


def test_importing_the_backend_module_does_not_import_vllm():
    code = "import sys, finsae.labeling.vllm_backend, finsae.labeling.backend; print('vllm' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert r.stdout.strip() == "False"


@pytest.mark.skipif(not os.environ.get("FINSAE_VLLM_URL"), reason="opt-in: set FINSAE_VLLM_URL to a vLLM server "
                    "(sweeps/vllm_cpu_server.sh serves a tiny random Llama as `tiny`)")
def test_label_py_against_a_real_vllm_server(project_root, tmp_path):
    url = os.environ["FINSAE_VLLM_URL"]
    art = tmp_path / "art"
    write_analysis(art, keywords={0: "dividend", 1: "merger"}, controls=[10, 11])
    cmd = [sys.executable, "label.py", f"paths.artifacts={art}", "label=vllm_cpu_smoke", f"label.base_url={url}",
           "logger=none", "progress_bar=false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(cmd, cwd=project_root, capture_output=True, text=True, timeout=1800, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    s1 = json.loads((art / "labels" / "minilm_fin" / "summary.json").read_text())
    asked = s1["n_labelled"] + s1["n_failed"]
    assert asked > 0 and s1["requests"] >= asked and s1["completion_tokens"] > 0
    assert s1["n_labelled"] > 0, "structured output should make even a random model write a parsable label"
    second = subprocess.run(cmd, cwd=project_root, capture_output=True, text=True, timeout=1800, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    s2 = json.loads((art / "labels" / "minilm_fin" / "summary.json").read_text())
    assert s2["n_cached"] >= s1["n_labelled"]  # every answered request comes from the cache
    assert s2["n_labelled"] >= s1["n_labelled"]
