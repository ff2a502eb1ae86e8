"""A stand-in for ``vllm serve MODEL --host H --port P --served-model-name N`` on loopback: answers ``GET
/v1/models`` (with the served name) to requests carrying the key in ``$VLLM_API_KEY``, 401 to others, and
records its start and stop in ``MODEL/events`` (the test reads them)."""

import http.server
import json
import os
import signal
import sys
from pathlib import Path

model = Path(sys.argv[1])
opts = dict(zip(sys.argv[2::2], sys.argv[3::2], strict=True))
assert opts["--host"] == "127.0.0.1"  # loopback only
key = os.environ["VLLM_API_KEY"]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the http.server interface
        ok = self.path == "/v1/models" and self.headers.get("Authorization") == f"Bearer {key}"
        body = json.dumps({"data": [{"id": opts["--served-model-name"]}]} if ok else {"error": "no"}).encode()
        self.send_response(200 if ok else 401)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def stop(_signum, _frame):
    with open(model / "events", "a") as fh:
        fh.write("stopped\n")
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
server = http.server.HTTPServer(("127.0.0.1", int(opts["--port"])), Handler)
with open(model / "events", "a") as fh:
    fh.write("started\n")
server.serve_forever()
