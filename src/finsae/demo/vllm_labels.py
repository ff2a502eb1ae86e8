"""``python -m finsae.demo.vllm_labels --model DIR [--port P] -- python label.py ...``: the paper study's
labels job with its own vLLM server: serve the model on loopback, wait until it answers, run the label command
against it, stop the server (also when the labels fail or the job is stopped).

The server and the label run share a key made for this run only (``VLLM_API_KEY`` for the server,
``OPENAI_API_KEY`` for ``label.py``, whose ``label.api_key_env`` names it): nothing else on the machine can
use the server, and the key is never written anywhere. Exit status: the label command's; 2 when the server
could not be started or never answered (one line on stderr, the server's log named).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from finsae.demo.job_tree import parent_death_signal, stop_job
from finsae.errors import FinsaeError

HOST = "127.0.0.1"  # loopback only
STOP_TIMEOUT_S = 60.0


def server_command(serve: str, model: str, served_name: str, port: int) -> list[str]:
    """``vllm serve MODEL`` on loopback under the label stage's model name (``serve``: the command before the
    model, e.g. ``vllm serve`` or a venv's ``/path/bin/vllm serve``)."""
    head = shlex.split(serve)
    if not head or shutil.which(head[0]) is None:
        what = head[0] if head else "nothing"
        raise FinsaeError(f"--serve {serve!r}: {what} is not an executable on PATH; "
                          f"install vLLM (pip install vllm) or give --serve '/path/to/venv/bin/vllm serve'")
    return [*head, model, "--host", HOST, "--port", str(port), "--served-model-name", served_name]


def wait_until_serving(url: str, key: str, proc: subprocess.Popen, timeout_s: float) -> None:
    """Poll ``url`` (``/v1/models``) until it answers 200; refuse when the server exits or ``timeout_s``
    passes."""
    deadline = time.monotonic() + timeout_s
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise FinsaeError(f"the vLLM server exited with {proc.returncode} before answering")
        with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
            with urllib.request.urlopen(request, timeout=5) as r:
                if r.status == 200:
                    return
        time.sleep(1.0)
    raise FinsaeError(f"the vLLM server did not answer {url} within {timeout_s:.0f} s")


@contextlib.contextmanager
def serving(cmd: list[str], port: int, log: Path, timeout_s: float):
    """The server running (its key yielded) for the duration of the block; stopped, its whole group, after."""
    key = secrets.token_urlsafe(24)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, "VLLM_API_KEY": key}, start_new_session=True,
                                preexec_fn=parent_death_signal())
    try:
        wait_until_serving(f"http://{HOST}:{port}/v1/models", key, proc, timeout_s)
        yield key
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        stop_job(proc, STOP_TIMEOUT_S)


def _parse(argv):
    ap = argparse.ArgumentParser(prog="python -m finsae.demo.vllm_labels",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="folder of the served model's weights")
    ap.add_argument("--served-name", required=True,
                    help="the model name the label stage asks for (label.model)")
    ap.add_argument("--port", type=int, default=8000, help="loopback port of the server")
    ap.add_argument("--serve", default="vllm serve", help="the server command before the model folder")
    ap.add_argument("--server-log", default="", help="the server's log file (default: vllm_server.log here)")
    ap.add_argument("--timeout", type=float, default=1200.0, help="seconds the server may take to answer")
    ap.add_argument("label_command", nargs=argparse.REMAINDER, help="-- then the label command")
    args = ap.parse_args(argv)
    if args.label_command[:1] == ["--"]:
        args.label_command = args.label_command[1:]
    return args


def main(argv=None) -> int:
    args = _parse(argv)
    log = Path(args.server_log or "vllm_server.log")
    # a stopped job (SIGTERM from the study runner) unwinds, so the server is stopped before this process ends
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    try:
        if not args.label_command:
            raise FinsaeError("no label command after --")
        cmd = server_command(args.serve, args.model, args.served_name, args.port)
        print(f"vllm_labels: starting {shlex.join(cmd)} (log {log})", flush=True)
        with serving(cmd, args.port, log, args.timeout) as key:
            print(f"vllm_labels: server answers on http://{HOST}:{args.port}/v1; labelling", flush=True)
            return subprocess.run(args.label_command, env={**os.environ, "OPENAI_API_KEY": key},
                                  check=False).returncode
    except FinsaeError as e:
        print(f"finsae: error: {e} (server log {log})", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
