"""A loopback HTTP server on 127.0.0.1 speaking the OpenAI chat-completions protocol (``GET /v1/models``,
``POST /v1/chat/completions``), whose answers a test scripts: ``reply(body, n) -> Reply``. It records every
request and the most requests it had in flight at once; ``with ChatServer(reply) as s:`` serves from a thread."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    content: str | None = None
    """The assistant's message (a normal 200 answer)."""
    status: int = 200
    raw: bytes | None = None
    """A body sent as is (malformed JSON, ...), instead of a completion."""
    delay: float = 0.0
    """Seconds to wait before answering (a timeout)."""
    message: str = "scripted failure"
    """The error message of a non-200 answer."""


def completion(content: str, model: str = "tiny") -> bytes:
    return json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()), "model": model,
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": content}}],
                       "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}}).encode()


class ChatServer:
    def __init__(self, reply: Callable[[dict, int], Reply], models=("tiny",)):
        self.reply = reply
        self.models = list(models)
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body: bytes):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, json.dumps({"object": "list", "data": [
                        {"id": m, "object": "model", "created": 0, "owned_by": "test"} for m in server.models]}).encode())
                else:
                    self._send(404, b'{"error": "not found"}')

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with server._lock:
                    server.requests.append(body)
                    n = len(server.requests)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    r = server.reply(body, n)
                    if r.delay:
                        time.sleep(r.delay)
                finally:  # no longer in flight once the answer is decided: the client may send the next
                    with server._lock:  # request as soon as it has this one, before this thread goes on
                        server.in_flight -= 1
                if r.raw is not None:
                    self._send(r.status, r.raw)
                elif r.status != 200:
                    self._send(r.status, json.dumps({"error": {"message": r.message}}).encode())
                else:
                    self._send(200, completion(r.content or "", body.get("model", "tiny")))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def user_text(body: dict) -> str:
    """The last user turn (earlier ones are few-shot examples)."""
    return [m["content"] for m in body["messages"] if m["role"] == "user"][-1]


def oracle(body: dict, n: int) -> Reply:
    """A well-behaved LLM: labels with the first marked word; judges examples by whether they contain the
    explanation's first word (detection) or mark it (fuzzing)."""
    text = user_text(body)
    system = body["messages"][0]["content"]
    if "Sentences where the feature fires" in text:
        word = re.search(r"<<([^>]+)>>", text).group(1).strip(".").lower()
        return Reply(json.dumps({"label": word, "description": f"Fires on the word {word}."}))
    label = re.search(r"Explanation: (\S+)", text).group(1).lower()
    items = re.findall(r"^\d+\. (.*)$", text, re.MULTILINE)
    if "marked words" in system:
        bits = [int(f"<<{label}" in t.lower()) for t in items]
    else:
        bits = [int(label in t.lower().split() or f"{label}." in t.lower()) for t in items]
    return Reply(json.dumps({"answers": bits}))
