"""A server that fails does not produce a result (issue 18.3): ``label.py`` against loopback servers answering
500, 429, garbage, ``choices: []`` or never fails in one line with the count and the first error, stops early
when the server is down (circuit breaker), and leaves earlier labels and the analysis table untouched."""

import json

import pandas as pd
import pytest

from .chat_server import ChatServer, Reply, oracle
from .fixtures import write_analysis
from .test_label_stage import run_stage_inprocess

pytestmark = pytest.mark.slow
NO_CHOICES = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "tiny", "choices": [],
                         "usage": {"prompt_tokens": 1, "completion_tokens": 0, "total_tokens": 1}}).encode()
FAST = {"label.backend": "openai", "label.model": "tiny", "label.timeout_s": 0.5, "label.connect_timeout_s": 2,
        "label.max_retries": 1, "label.backoff_s": 0.01, "label.breaker_failures": 3, "label.concurrency": 2,
        "label.max_latents": 2, "logger": "none"}


def fast(**changes):
    return [f"{k}={v}" for k, v in {**FAST, **{k.replace("__", "."): v for k, v in changes.items()}}.items()]


FAILING = [
    # id, reply, what the one line says, most requests the server may see (None: no bound)
    ("http500", lambda body, n: Reply(status=500), "HTTP 500", 6),  # 5xx in a row: down
    ("rate_limited", lambda body, n: Reply(status=429), "HTTP 429", None),
    ("garbage_body", lambda body, n: Reply(raw=b"<html>502 Bad Gateway</html>"), "bad response", None),
    ("garbage_answer", lambda body, n: Reply("lorem ipsum dolor sit amet"), "unparsable answer", None),
    ("no_choices", lambda body, n: Reply(raw=NO_CHOICES), "bad response (IndexError)", None),
    ("never_answers", lambda body, n: Reply("{}", delay=8.0), "looks down", 6),
]


def _earlier_result(art):
    """A published labels folder and the analysis features table, as bytes, to check they survive."""
    out = art / "labels" / "minilm_fin"
    out.mkdir(parents=True)
    (out / "labels.parquet").write_bytes(b"earlier good labels")
    (out / "summary.json").write_text('{"n_labelled": 11}')
    feats = art / "analysis" / "minilm_fin" / "features.parquet"
    return {p: p.read_bytes() for p in (out / "labels.parquet", out / "summary.json", feats)}


@pytest.mark.parametrize("reply, message, max_requests", [r[1:] for r in FAILING], ids=[r[0] for r in FAILING])
def test_a_failing_server_fails_the_run_and_keeps_earlier_labels(project_root, tmp_path, capsys, reply, message,
                                                                  max_requests):
    art = tmp_path / "art"
    write_analysis(art, keywords={0: "dividend", 1: "merger"}, controls=[10, 11])
    before = _earlier_result(art)
    with ChatServer(reply) as s, pytest.raises(SystemExit) as exit_:
        run_stage_inprocess(project_root, f"paths.artifacts={art}", f"paths.output_dir={tmp_path / 'run'}",
                            f"label.base_url={s.url}", "label.scorers=[embedding,detection]", *fast())
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1, err
    assert message in err[0] and "Nothing published" in err[0], err
    if max_requests is None:
        assert " LLM answers failed (more than label.max_failure_share=0.1); first error: " in err[0], err
    else:  # the breaker stopped the run: not (retries + 1) x timeout for every request
        assert "requests in a row" in err[0] and len(s.requests) <= max_requests, (err, len(s.requests))
    assert {p: p.read_bytes() for p in before} == before
    assert not list((art / "labels").glob(".*")), "no staging folder left behind"


def test_failures_within_the_stated_share_publish(project_root, tmp_path):
    """A few garbage answers (retried, some failing) under ``max_failure_share`` still publish, counting them."""
    from .test_label_stage import read_summary

    art = tmp_path / "art"
    write_analysis(art, keywords={0: "dividend", 1: "merger"}, controls=[10, 11])
    with ChatServer(lambda body, n: Reply("lorem ipsum") if n in (1, 2) else oracle(body, n)) as s:
        run_stage_inprocess(project_root, f"paths.artifacts={art}", f"paths.output_dir={tmp_path / 'run'}",
                            f"label.base_url={s.url}",
                            *fast(label__max_failure_share=0.5, label__max_retries=0, label__max_latents="null"))
    summary = read_summary(art)
    labels = pd.read_parquet(art / "labels" / "minilm_fin" / "labels.parquet")
    assert summary.n_failed == 2 and summary.n_labelled == (labels["status"] == "labelled").sum() > 0
    assert labels.loc[labels["status"] == "failed", "error"].str.startswith("unparsable answer").all()


@pytest.mark.parametrize("model", ["MISSING/lm_folder", "./lm_folder", "../no/such/lm", "~/no_such_lm_folder"])
def test_a_missing_local_lm_folder_is_called_a_missing_folder(tmp_path, model):
    """``label.backend=hf`` with a folder that does not exist: said as such, not as a malformed hub id."""
    from finsae.errors import FinsaeError
    from finsae.labeling.backend import make_backend
    from finsae.labeling.config import LabelConfig

    model = model.replace("MISSING", str(tmp_path / "missing"))
    with pytest.raises(FinsaeError) as err:
        make_backend(LabelConfig(backend="hf", model=model))
    text = str(err.value)
    assert f"the folder label.model={model!r} does not exist" in text and "\n" not in text, text
    assert "repo" not in text.lower() and "hub id" in text  # the fix names both ways to give a model


def test_a_file_given_as_the_lm_folder_is_named(tmp_path):
    from finsae.errors import FinsaeError
    from finsae.labeling.hf_backend import HFBackend, check_model_source

    check_model_source(str(tmp_path))  # a folder that exists, and a hub id, go on to transformers
    check_model_source("Qwen/Qwen2.5-0.5B-Instruct")
    (tmp_path / "model.bin").write_bytes(b"not a folder")
    with pytest.raises(FinsaeError, match="is a file, not the folder of a causal LM"):
        HFBackend(str(tmp_path / "model.bin"))
