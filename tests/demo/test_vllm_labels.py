"""The labels job's own server (finsae.demo.vllm_labels) against a loopback stand-in for ``vllm serve``:
started before the label command, which reaches it with this run's key; stopped after, also when the labels
fail; a server that dies or an executable that is not there ends the job with one line."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest

STUB = Path(__file__).with_name("stub_vllm.py")
# what label.py does with the server, reduced: ask it for its models with the key of $OPENAI_API_KEY
ASK = ("import json, os, sys, urllib.request; "
       "key = 'Bearer ' + os.environ['OPENAI_API_KEY']; "
       "r = urllib.request.Request(sys.argv[1], headers={'Authorization': key}); "
       "print('MODELS', json.load(urllib.request.urlopen(r))['data'][0]['id'])")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(tmp_path: Path, label_cmd: list[str], serve: str | None = None, port: int | None = None):
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    port = port or _free_port()
    cmd = [sys.executable, "-m", "finsae.demo.vllm_labels", "--model", str(model), "--served-name", "Qwen/x",
           "--port", str(port), "--serve", serve or f"{sys.executable} {STUB}", "--server-log",
           str(tmp_path / "server.log"), "--timeout", "60", "--", *label_cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120), model, port


def _events(model: Path) -> list[str]:
    return (model / "events").read_text().split() if (model / "events").exists() else []


def test_server_up_for_the_labels_and_down_after(tmp_path):
    port = _free_port()
    r, model, _ = _run(tmp_path, [sys.executable, "-c", ASK, f"http://127.0.0.1:{port}/v1/models"], port=port)
    assert r.returncode == 0, r.stderr
    assert "MODELS Qwen/x" in r.stdout  # the label command reached the server with the run's key
    assert _events(model) == ["started", "stopped"]
    with socket.socket() as s:  # nothing listens any more
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_failed_labels_still_stop_the_server(tmp_path):
    r, model, _ = _run(tmp_path, [sys.executable, "-c", "raise SystemExit(3)"])
    assert r.returncode == 3  # the label command's status
    assert _events(model) == ["started", "stopped"]


@pytest.mark.parametrize("serve, message", [
    (f"{sys.executable} -c 'raise SystemExit(7)'", "exited with 7 before answering"),
    ("/nonexistent/vllm serve", "is not an executable on PATH"),
])
def test_a_server_that_cannot_serve_ends_the_job_in_one_line(tmp_path, serve, message):
    r, _, _ = _run(tmp_path, [sys.executable, "-c", "print('labelled')"], serve=serve)
    assert r.returncode == 2 and "labelled" not in r.stdout
    assert r.stderr.startswith("finsae: error:") and message in r.stderr and r.stderr.count("\n") == 1
