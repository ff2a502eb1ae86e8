"""A damaged answer-cache entry (``{}``, a list, a failure, a torn file) is ignored with a warning naming the
file, asked again and rewritten, never a KeyError later in the run (issue 37)."""

import json
import logging

import pytest

from finsae.labeling.backend import ChatRequest
from finsae.labeling.cache import AnswerCache, cache_key
from finsae.labeling.openai_backend import OpenAIBackend
from finsae.labeling.parsing import parse_label
from finsae.labeling.pipeline import Progress, Usage, ask
from finsae.labeling.prompts import LABEL_SCHEMA

from .chat_server import ChatServer, Reply

GOOD = json.dumps({"label": "rate hikes", "description": "Fires on rate moves."})
DAMAGED = [("{}", "no answer in it"), ("[]", "a JSON list, not an object"), ("null", "a JSON NoneType"),
           ('{"ok": false, "value": null, "error": "x"}', "no answer in it: ok=False"),
           ('{"ok": true, "value": {"label": "a"}, "attempts": "two"}', "['attempts'] not counts"),
           ('{"ok": tr', "unreadable: JSONDecodeError"), (b"\xff\xfe", "unreadable: UnicodeDecodeError")]


@pytest.mark.parametrize("text, why", DAMAGED, ids=[str(d[0])[:20] for d in DAMAGED])
def test_a_damaged_entry_is_a_miss_with_a_warning_naming_the_file(tmp_path, caplog, text, why):
    cache = AnswerCache(tmp_path)
    key = cache_key(x=1)
    cache.put(key, {"ok": True, "value": {"label": "a"}})
    path = tmp_path / key[:2] / f"{key}.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with caplog.at_level(logging.WARNING, logger="finsae.labeling.cache"):
        assert cache.get(key) is None
    assert cache.hits == 0
    [record] = caplog.records
    assert str(path) in record.getMessage() and why in record.getMessage() and "asking again" in record.getMessage()


def test_an_absent_entry_is_a_quiet_miss_and_a_good_one_a_hit(tmp_path, caplog):
    cache = AnswerCache(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert cache.get(cache_key(x=2)) is None
    assert not caplog.records
    cache.put(cache_key(x=2), {"ok": True, "value": {"label": "a"}, "error": None, "attempts": 2,
                               "prompt_tokens": 5, "completion_tokens": 3, "raw": "r"})
    hit = cache.get(cache_key(x=2))
    assert hit["value"] == {"label": "a"} and hit["attempts"] == 2 and cache.hits == 1


def test_an_empty_object_in_the_cache_is_asked_again_and_rewritten(tmp_path, caplog):
    """The probe's case: ``{}`` in an answer's cache file gave a KeyError traceback; now the answer is asked again
    from the server and the entry rewritten."""
    cache = AnswerCache(tmp_path)
    key = cache_key(k="a")
    cache.put(key, {})
    items = [(key, ChatRequest(({"role": "user", "content": "a"},), LABEL_SCHEMA), lambda t, p: parse_label(t, p)._asdict())]
    with ChatServer(lambda body, n: Reply(GOOD)) as s, caplog.at_level(logging.WARNING):
        backend = OpenAIBackend(s.url, "tiny", concurrency=1, timeout_s=2.0, connect_timeout_s=2.0, max_retries=0,
                                backoff_s=0.01)
        [res] = ask(backend, items, cache, 0, Usage(), Progress())
    assert res["ok"] and res["value"]["label"] == "rate hikes" and not res["cached"] and len(s.requests) == 1
    assert "is damaged" in caplog.text
    assert cache.get(key)["value"]["label"] == "rate hikes"  # rewritten: the next run reads it
