"""``label=qwen_cpu`` (the local Qwen2.5-Coder-1.5B behind llama.cpp's server) composes as documented, and its
whole run path -- every scorer with its controls, published outputs -- works against a loopback server that
speaks like llama-cpp-python 0.3.36's (json_object + schema; json_schema refused with HTTP 500 and its
validation error, as the real server answers)."""

import json

import pandas as pd
import pytest

from .chat_server import ChatServer, Reply, oracle
from .fixtures import write_analysis
from .test_label_stage import compose_label, label_stage_run

pytestmark = pytest.mark.slow
SERVED = "qwen2.5-coder-1.5b-instruct"


def llama_cpp_like(body, n):
    fmt = body.get("response_format", {})
    if fmt.get("type") == "json_schema":
        return Reply(status=500, message="1 validation error:\n  {'type': 'literal_error', 'loc': ('body', "
                     "'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\", "
                     "'input': 'json_schema'}")
    if "Find the intruder" in body["messages"][0]["content"]:
        return Reply(json.dumps({"intruder": 2}))
    return oracle(body, n)


def test_qwen_cpu_composes_to_a_loopback_llama_cpp_server(project_root):
    cfg = compose_label(project_root, "label=qwen_cpu")
    lc = cfg.label
    assert (lc.backend, lc.model, lc.base_url) == ("openai", SERVED, "http://127.0.0.1:8012/v1")
    assert list(lc.scorers) == ["embedding", "detection", "fuzzing", "intruder"] and lc.concurrency == 1
    script = (project_root / "sweeps" / "llama_cpp_server.sh").read_text()
    assert f"--model_alias {SERVED}" in script and "--host 127.0.0.1 --port \"$PORT\"" in script
    assert "PORT=${PORT:-8012}" in script


def test_qwen_cpu_run_path_end_to_end(project_root, tmp_path):
    art = tmp_path / "art"
    write_analysis(art, keywords={0: "dividend", 1: "merger"}, controls=[10, 11])
    with ChatServer(llama_cpp_like, models=(SERVED,)) as s:
        summary = label_stage_run(project_root, art, tmp_path, "label=qwen_cpu", f"label.base_url={s.url}",
                                  "label.max_latents=2",  # both fixture targets: each is the other's shuffle
                                  "label.timeout_s=20", "logger=none")
    out = art / "labels" / "minilm_fin"
    labels = pd.read_parquet(out / "labels.parquet")
    done = labels[labels["status"] == "labelled"]
    assert summary.n_failed == 0 and summary.n_labelled == len(done) > 0 and summary.llm == SERVED
    assert set(labels["explainer"]) == {f"openai:{SERVED}"}
    targets = done[done["role"] == "target"]
    for m in ("detection_balanced_accuracy", "fuzzing_balanced_accuracy", "embedding_auroc"):
        assert targets[m].notna().all() and targets[f"{m}_control"].notna().all()
        assert targets[f"generic_{m}"].notna().all()
    assert done["intruder_accuracy"].notna().all() and (done["intruder_accuracy_control"] == 0.2).all()
    assert summary.intruder_accuracy_control == pytest.approx(0.2, abs=1e-12)
    per_layer = pd.read_csv(out / "per_layer.csv")
    assert set(per_layer["metric"]) == {"embedding_auroc", "detection_balanced_accuracy",
                                        "fuzzing_balanced_accuracy", "intruder_accuracy"}
    sent = [r.get("response_format", {}).get("type") for r in s.requests]
    assert sent[0] == "json_schema" and set(sent[1:]) == {"json_object"}  # one refusal, then llama.cpp's style
