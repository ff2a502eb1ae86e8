"""The openai backend works with both client majors pyproject.toml admits: the locked 3.x (on httpx2) in this
process, and 2.x (on httpx) in a child process with ``.test-libs/openai-compat`` first on its path (``make test``
installs it there from tests/requirements-openai-compat.txt). Each answers, retries a timeout and gives up on a
dead server through the real client against a loopback server."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from finsae.labeling.backend import ChatRequest
from finsae.labeling.openai_backend import OpenAIBackend
from finsae.labeling.prompts import LABEL_SCHEMA

from .chat_server import ChatServer, Reply

GOOD = json.dumps({"label": "rate hikes", "description": "Fires on rate moves."})
COMPAT_PIN = (Path(__file__).resolve().parents[1] / "requirements-openai-compat.txt").read_text()

PROBE = """
import json, sys, openai
from finsae.labeling.backend import ChatRequest
from finsae.labeling.openai_backend import OpenAIBackend
from finsae.labeling.prompts import LABEL_SCHEMA
b = OpenAIBackend(sys.argv[1], "tiny", concurrency=2, timeout_s=1.0, connect_timeout_s=1.0, max_retries=2,
                  backoff_s=0.01)
b.check_reachable()
req = ChatRequest(({"role": "user", "content": "hi"},), LABEL_SCHEMA, "label", max_tokens=50)
c = b.generate([req])[0]
print(json.dumps({"version": openai.__version__, "text": c.text, "error": c.error, "attempts": c.attempts}))
"""


def _slow_first(body, n):
    """The first request answers after the client's 1 s timeout; the retry answers at once."""
    return Reply(GOOD, delay=3.0) if n == 1 else Reply(GOOD)


def _compat_pin() -> str:
    [line] = [ln for ln in COMPAT_PIN.splitlines() if ln.startswith("openai==")]
    return line.split("==")[1]


def test_locked_client_answers_and_retries_a_timeout():
    import openai

    assert int(openai.__version__.split(".")[0]) >= 3, "the lock pins openai 3.x (httpx2)"
    with ChatServer(_slow_first) as s:
        b = OpenAIBackend(s.url, "tiny", concurrency=2, timeout_s=1.0, connect_timeout_s=1.0, max_retries=2,
                          backoff_s=0.01)
        b.check_reachable()
        [c] = b.generate([ChatRequest(({"role": "user", "content": "hi"},), LABEL_SCHEMA, "label", max_tokens=50)])
    assert c.error is None and json.loads(c.text)["label"] == "rate hikes" and c.attempts == 2


def test_previous_major_client_answers_and_retries_a_timeout():
    libs = os.environ.get("FINSAE_LOADER_LIBS")
    compat = Path(libs) / "openai-compat" if libs else None
    if compat is None or not (compat / "openai").is_dir():
        if libs:
            pytest.fail(f"openai {_compat_pin()} is not in {compat}; rerun `make test` (it installs "
                        "tests/requirements-openai-compat.txt there)")
        pytest.skip("`make test` installs the other openai major into .test-libs/openai-compat")
    with ChatServer(_slow_first) as s:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(compat), os.environ.get("PYTHONPATH", "")]))
        out = subprocess.run([sys.executable, "-c", PROBE, s.url], env=env, capture_output=True, text=True,
                             timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["version"] == _compat_pin()
    assert got["error"] is None and json.loads(got["text"])["label"] == "rate hikes" and got["attempts"] == 2
