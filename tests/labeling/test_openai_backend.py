"""The openai backend against a real HTTP server on 127.0.0.1 through the real ``openai`` client: answers,
a 500, a timeout, malformed JSON, garbage and refusals, concurrency, structured output, unreachable servers."""

import json
import socket
import time

import pytest

from finsae.errors import FinsaeError
from finsae.labeling.backend import ChatRequest, make_backend
from finsae.labeling.cache import AnswerCache, cache_key
from finsae.labeling.config import LabelConfig
from finsae.labeling.openai_backend import OpenAIBackend
from finsae.labeling.parsing import parse_label
from finsae.labeling.pipeline import Progress, Usage, ask
from finsae.labeling.prompts import LABEL_SCHEMA

from .chat_server import ChatServer, Reply, oracle

GOOD = json.dumps({"label": "rate hikes", "description": "Fires on rate moves."})
REQ = ChatRequest(({"role": "user", "content": "hi"},), LABEL_SCHEMA, "label", max_tokens=50)


def _backend(server, **kw):
    opts = {"concurrency": 4, "timeout_s": 1.0, "connect_timeout_s": 1.0, "max_retries": 2, "backoff_s": 0.01}
    opts.update(kw)
    return OpenAIBackend(server.url, "tiny", **opts)


def test_answer_tokens_and_structured_output_request():
    with ChatServer(lambda body, n: Reply(GOOD)) as s:
        b = _backend(s)
        b.check_reachable()
        [c] = b.generate([REQ])
    assert c.error is None and parse_label(c.text).label == "rate hikes"
    assert (c.prompt_tokens, c.completion_tokens, c.attempts) == (100, 20, 1)
    sent = s.requests[0]
    assert sent["model"] == "tiny" and sent["max_tokens"] == 50 and sent["messages"][0]["content"] == "hi"
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"] == LABEL_SCHEMA


@pytest.mark.parametrize("failure", [Reply(status=500), Reply(GOOD, delay=3.0), Reply(raw=b'{"choices": [{"mess'),
                                     Reply(status=429)],
                         ids=["http500", "timeout", "malformed_json", "rate_limited"])
def test_transient_failures_are_retried_with_backoff(failure):
    with ChatServer(lambda body, n: failure if n == 1 else Reply(GOOD)) as s:
        t0 = time.time()
        [c] = _backend(s).generate([REQ])
    assert c.error is None and parse_label(c.text).label == "rate hikes"
    assert c.attempts == 2 and len(s.requests) == 2
    assert time.time() - t0 < 3.0  # the timeout (1 s) cut the slow answer short


def test_persistent_failure_is_an_error_not_an_exception():
    with ChatServer(lambda body, n: Reply(status=500)) as s:
        [c] = _backend(s, max_retries=2).generate([REQ])
    assert c.error == "HTTP 500" and c.text == "" and c.attempts == 3 and len(s.requests) == 3


def test_client_errors_are_not_retried():
    with ChatServer(lambda body, n: Reply(status=404)) as s:
        [c] = _backend(s).generate([REQ])
    assert c.error == "HTTP 404" and len(s.requests) == 1
    too_long = Reply(status=400, message="This model's maximum context length is 256 tokens")
    with ChatServer(lambda body, n: too_long) as s:
        b = _backend(s)
        [c] = b.generate([REQ])
    assert c.error.startswith("HTTP 400") and len(s.requests) == 1 and b.structured  # not a format refusal


def test_server_refusing_structured_output_falls_back_to_plain_text():
    def reply(body, n):
        if "response_format" in body:
            return Reply(status=400, message="response_format json_schema is not supported")
        return Reply("Label: rate hikes\nDescription: x")

    with ChatServer(reply) as s:
        b = _backend(s)
        cs = b.generate([REQ, REQ, REQ])
    assert all(parse_label(c.text).label == "rate hikes" for c in cs)
    assert not b.structured and sum("response_format" in r for r in s.requests) >= 1


def test_bounded_concurrency():
    with ChatServer(lambda body, n: Reply(GOOD, delay=0.2)) as s:
        cs = _backend(s, concurrency=3).generate([REQ] * 9)
    assert all(c.error is None for c in cs)
    assert s.max_in_flight == 3


def test_garbage_and_refusals_are_asked_again_then_recorded_as_failures(tmp_path):
    answers = {"a": ["asdf qwer", GOOD], "b": ["I'm sorry, I can't help with that."] * 9}

    def reply(body, n):
        which = body["messages"][0]["content"]
        return Reply(answers[which].pop(0))

    cache = AnswerCache(tmp_path)
    items = [(cache_key(k=w), ChatRequest(({"role": "user", "content": w},), LABEL_SCHEMA), _parse)
             for w in ("a", "b")]
    with ChatServer(reply) as s:
        usage = Usage()
        res = ask(_backend(s), items, cache, 2, usage, Progress())
    assert res[0]["ok"] and res[0]["value"]["label"] == "rate hikes" and res[0]["attempts"] == 2
    assert not res[1]["ok"] and res[1]["value"] is None and "refused" in res[1]["error"] and res[1]["attempts"] == 3
    assert usage.requests == 5 and usage.prompt_tokens == 500 and usage.completion_tokens == 100
    retried = [r for r in s.requests if r["messages"][0]["content"] == "a"]
    assert retried[0]["temperature"] == 0.0 and retried[1]["temperature"] == 0.7  # greedy would repeat itself
    # Only the success is cached: a rerun asks nothing for "a" and asks "b" again.
    assert cache.get(items[0][0])["value"]["label"] == "rate hikes" and cache.get(items[1][0]) is None


def _parse(text, prefill):
    return parse_label(text, prefill)._asdict()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_fails_within_seconds_naming_the_url():
    url = f"http://127.0.0.1:{_free_port()}/v1"
    t0 = time.time()
    with pytest.raises(FinsaeError, match=f"the LLM server at {url} is unreachable"):
        make_backend(LabelConfig(backend="openai", model="tiny", base_url=url, connect_timeout_s=2.0))
    assert time.time() - t0 < 5


def test_server_without_the_model_is_refused():
    with ChatServer(oracle, models=("other",)) as s:
        with pytest.raises(FinsaeError, match=r"serves \['other'\], not label.model='tiny'"):
            make_backend(LabelConfig(backend="openai", model="tiny", base_url=s.url))


def test_api_key_comes_from_the_environment_and_is_sent_not_logged(monkeypatch, caplog):
    seen = {}
    monkeypatch.setenv("FINSAE_TEST_LLM_KEY", "sk-test-123")
    with ChatServer(lambda body, n: Reply(GOOD)) as s:
        orig = s.httpd.RequestHandlerClass.do_POST

        def do_post(handler):
            seen["auth"] = handler.headers.get("Authorization")
            orig(handler)

        s.httpd.RequestHandlerClass.do_POST = do_post
        b = make_backend(LabelConfig(backend="openai", model="tiny", base_url=s.url, api_key_env="FINSAE_TEST_LLM_KEY"))
        b.generate([REQ])
    assert seen["auth"] == "Bearer sk-test-123"
    assert "sk-test-123" not in caplog.text


@pytest.mark.parametrize("failure", [Reply(status=500), Reply(status=503), Reply(GOOD, delay=3.0)],
                         ids=["http500", "http503", "timeout"])
def test_the_circuit_breaker_stops_asking_a_server_that_is_down(failure):
    """Three requests in a row found the server down: the remaining ones are not sent (one thread: exact)."""
    with ChatServer(lambda body, n: failure) as s:
        b = _backend(s, concurrency=1, max_retries=3, timeout_s=0.3, breaker_failures=3)
        out = b.generate([REQ] * 10)
    assert len(s.requests) == 3 and b.down is not None and "3 requests in a row" in b.down
    assert all(c.error for c in out) and all(c.error.startswith("not asked: ") for c in out[1:])


@pytest.mark.parametrize("failure", [Reply(status=429), Reply(raw=b"garbage"), Reply(status=404)],
                         ids=["rate_limited", "garbage", "http404"])
def test_a_server_that_answers_is_not_down(failure):
    """429, garbage and 4xx come from a server that is up: every request is tried in full, the breaker stays shut."""
    with ChatServer(lambda body, n: failure) as s:
        b = _backend(s, concurrency=1, max_retries=1, breaker_failures=2)
        out = b.generate([REQ] * 3)
    assert b.down is None and all(c.error and not c.error.startswith("not asked") for c in out)
    assert len(s.requests) == sum(c.attempts for c in out) >= 3


def test_a_llama_cpp_style_server_gets_json_object_with_the_schema():
    """llama-cpp-python's server validates response_format (422 for json_schema) but takes json_object + schema."""
    def reply(body, n):
        fmt = body.get("response_format", {})
        if fmt.get("type") == "json_schema":
            return Reply(status=422, message="response_format.type: Input should be 'text' or 'json_object'")
        assert fmt == {"type": "json_object", "schema": LABEL_SCHEMA}, fmt
        return Reply(GOOD)

    with ChatServer(reply) as s:
        b = _backend(s, concurrency=1)
        cs = b.generate([REQ, REQ])
    assert all(c.error is None and c.attempts == 1 for c in cs) and b.formats == ["json_object"]
    assert [r["response_format"]["type"] for r in s.requests] == ["json_schema", "json_object", "json_object"]


class _HtmlServer:
    """A loopback web server that is not an LLM server: every GET answers an HTML page (``content_type`` as given)."""

    def __init__(self, content_type: str, status: int = 200):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        page = b"<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>"

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/json"])
def test_a_models_endpoint_answering_html_is_named_as_not_an_openai_server(content_type):
    with _HtmlServer(content_type) as s, pytest.raises(FinsaeError) as err:
        make_backend(LabelConfig(backend="openai", model="tiny", base_url=s.url, connect_timeout_s=2.0))
    text = str(err.value)
    assert f"{s.url}/models" in text and "not an OpenAI-compatible server" in text and "\n" not in text, text
    assert "label.base_url" in text
