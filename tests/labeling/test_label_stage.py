"""`python label.py` end to end on analysis artifacts written in the analysis stage's schema: the offline
default, bad inputs in one line, resume from the cache after a kill, and the hf backend with a tiny random LM."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

from finsae.labeling.artifacts import join_labels, read_labels

from .chat_server import ChatServer, oracle
from .fixtures import CONTROLS, FEW, KEYWORDS, NO_CONTEXT, write_analysis

pytestmark = pytest.mark.slow
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def label(root, art, *overrides, timeout=300, **kw):
    cmd = [sys.executable, "label.py", f"paths.artifacts={art}", "progress_bar=false", *overrides]
    return subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout, env=ENV, check=False, **kw)


def compose_label(root, *overrides):
    """The label.py config as the entry point composes it (in-process; the pair named explicitly, as no Hydra
    run is active to say which pair= option was chosen)."""
    from hydra import compose, initialize_config_dir

    from finsae.glue.schemas import register_schemas

    register_schemas()
    with initialize_config_dir(config_dir=str(root / "conf"), version_base="1.3"):
        return compose("label", overrides=["pair_name=minilm_fin", "progress_bar=false", *overrides])


def run_stage_inprocess(root, *overrides):
    """``run_stage`` exactly as label.py calls it, in this process (what fails exits 2 with one line)."""
    from finsae.glue.app import run_stage

    return run_stage(compose_label(root, *overrides), "finsae.glue.label_stage")


def read_summary(art):
    from finsae.labeling import LabelSummary

    return LabelSummary.read(art / "labels" / "minilm_fin")


def test_offline_default_end_to_end(project_root, tmp_path):
    art = tmp_path / "art"
    features_path = write_analysis(art) / "features.parquet"
    features_before = features_path.read_bytes()
    run_dir = tmp_path / "run"
    r = label(project_root, art, "logger=wandb_offline", f"hydra.run.dir={run_dir}")
    assert r.returncode == 0, r.stderr[-3000:]
    out = art / "labels" / "minilm_fin"
    summary = json.loads((out / "summary.json").read_text())
    n_targets = 2 * (len(KEYWORDS) + 2)  # + the latent with few examples + the one without contexts, per model
    assert summary["n_selected"] == 2 * (len(KEYWORDS) + 2 + len(KEYWORDS) + 2)  # as many controls as targets
    assert summary["n_targets"] == n_targets and summary["n_skipped"] == 4 and summary["n_failed"] == 0
    assert summary["n_labelled"] == summary["n_selected"] - 4
    assert summary["backend"] == "lexical" and summary["scorers"] == ["embedding"]
    assert "the pair's base model minilm" in summary["embedder"] and "embeds with all-MiniLM-L6-v2" in r.stdout
    # the shuffled labels are other financial latents' labels (sharing the fixture's template words): a hard control
    assert summary["embedding_auroc"] > 0.9 and summary["embedding_auroc_diff_lo"] > 0.1
    assert summary["embedding_auroc_generic_diff_lo"] > 0 and 0 < summary["embedding_auroc_generic"] < 1
    assert 0.3 < summary["embedding_auroc_random"] < 0.7
    assert summary["embedding_auroc"] > summary["embedding_auroc_control"]
    assert {row["model"] for row in summary["per_layer"]} == {"minilm", "minilm_fin", "all"}

    labels = pd.read_parquet(out / "labels.parquet")
    assert set(labels["status"]) == {"labelled", "skipped"} and set(labels["explainer"]) == {"lexical"}
    per_layer = pd.read_csv(out / "per_layer.csv")
    assert {"generic", "diff_generic", "diff_generic_lo", "diff_generic_hi", "beats_generic"} <= set(per_layer.columns)
    targets = labels[(labels["role"] == "target") & (labels["status"] == "labelled")]
    assert targets["generic_embedding_auroc"].notna().all()
    skipped = labels[labels["status"] == "skipped"].set_index(["model", "latent"])
    assert set(skipped.index.get_level_values("latent")) == {FEW, NO_CONTEXT}
    assert "no stored contexts" in skipped.loc[("minilm", NO_CONTEXT), "skip_reason"]
    good = labels[(labels["latent"] < len(KEYWORDS))].set_index(["model", "latent"])
    for (_, lat), row in good.iterrows():
        assert row["label"].split(" / ")[0] == KEYWORDS[lat]
        assert len(row["explain_ids"]) == 10 and not set(row["explain_ids"]) & set(row["score_activating_ids"])
        assert len(row["score_hard_negative_ids"]) == 5
    assert set(labels[labels["role"] == "control"]["latent"]) <= set(CONTROLS)

    # the analysis stage's table is never rewritten; a reader joins the labels at read time
    assert features_path.read_bytes() == features_before
    assert not list(features_path.parent.glob(".*")), "no temporary file left beside the analysis table"
    feats = join_labels(pd.read_parquet(features_path), read_labels(out))
    assert {"label", "label_description", "label_status", "label_embedding_auroc",
            "label_embedding_auroc_control", "auroc_broad"} <= set(feats.columns)
    dividend = feats[(feats["model"] == "minilm_fin") & (feats["latent"] == 0)].iloc[0]
    assert dividend["label"].startswith("dividend") and dividend["label_embedding_auroc"] > 0.9
    assert feats["label"].notna().sum() == summary["n_labelled"] and len(feats) == 40

    assert json.loads((run_dir / "summary.json").read_text())["n_labelled"] == summary["n_labelled"]
    assert list(run_dir.glob("wandb/offline-run-*/*.wandb"))
    assert (run_dir / "tables" / "labels.csv").is_file() and (run_dir / "tables" / "label_scores.csv").is_file()
    assert "embedding_auroc" in r.stdout and "4 skipped" in r.stdout



def test_skip_if_done_returns_the_stored_summary(project_root, tmp_path, capsys):
    art = tmp_path / "art"
    write_analysis(art)
    out = art / "labels" / "minilm_fin"
    out.mkdir(parents=True)
    (out / "summary.json").write_text(json.dumps({
        "pair": "minilm_fin", "backend": "lexical", "llm": "lexical", "prompt_version": "lexical-v1",
        "scorers": ["embedding"], "n_selected": 3, "n_targets": 2, "n_controls": 1, "n_labelled": 3, "n_skipped": 0,
        "n_failed": 0}))
    run_stage_inprocess(project_root, f"paths.artifacts={art}", f"paths.output_dir={tmp_path / 'run'}",
                        "logger=none", "skip_if_done=true")
    assert "is complete (3 labelled); skipping" in capsys.readouterr().out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_missing_analysis_is_one_line_exit_2(project_root, tmp_path):
    """Through label.py itself (the other bad inputs run the same ``run_stage`` in-process, below)."""
    r = label(project_root, tmp_path / "empty", "logger=none")
    lines = [line for line in r.stderr.splitlines() if line.startswith("finsae: error:")]
    assert r.returncode == 2, r.stderr[-2000:]
    assert len(lines) == 1 and "Make it with `python analyze.py`" in lines[0], r.stderr[-2000:]
    assert "analysis summary not found at" in lines[0] and "Traceback" not in r.stderr


def test_a_secret_on_the_command_line_is_refused(monkeypatch, capsys):
    from finsae.glue.app import cli

    ran = []
    monkeypatch.setattr(sys, "argv", ["label.py", "label.api_key=sk-abc"])
    with pytest.raises(SystemExit) as exit_:
        cli(lambda: ran.append(1))
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and not ran and "secrets come from the environment only" in err
    assert "sk-abc" not in err


BAD = [
    ("label.backend=gpt9", "label.backend='gpt9' is unknown"),
    ("label.scorers=[detection]", "need an LLM but label.backend=lexical"),
    ("label.scorers=[embedding,judge]", "label.scorers has unknown ['judge']"),
    ("label.backend=vllm", "label.backend=vllm needs label.model"),
    ("label.min_activating=1", "label.min_activating must be >= 2"),
    ("label.base_url=127.0.0.1:8000", "must start with http:// or https://"),
    ("label.api_key_env=sk-abc", "must name an environment variable"),
    ("+label.kk=3", "unknown config key(s) ['label.kk']"),
    ("pair_name=../x", "must be a plain name"),
    ("pair=bert_finbert", "Run `python analyze.py pair=minilm_fin` first"),  # pair_name=minilm_fin, other pair
    ("label.base_url=UNREACHABLE", "is unreachable"),
]


@pytest.mark.parametrize("override, message", BAD, ids=[b[0] for b in BAD])
def test_bad_inputs_are_one_line_exit_2(project_root, tmp_path, capsys, override, message):
    art = tmp_path / "art"
    extra = []
    if override.startswith("pair="):
        write_analysis(art, pair="minilm_fin")  # holds minilm vs minilm_fin
        message = "holds the analysis of minilm vs minilm_fin, not of the pair bert_base vs finbert"
    if "UNREACHABLE" in override:
        write_analysis(art)
        url = f"http://127.0.0.1:{_free_port()}/v1"
        override, message = f"label.base_url={url}", f"the LLM server at {url} is unreachable"
        extra = ["label.backend=openai", "label.model=tiny"]
    t0 = time.time()
    with pytest.raises(SystemExit) as exit_:
        run_stage_inprocess(project_root, f"paths.artifacts={art}", f"paths.output_dir={tmp_path / 'run'}",
                            "logger=none", override, *extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and message in err[0], err
    assert time.time() - t0 < 10 and not (art / "labels").exists()


def test_no_financial_latent_is_one_line(project_root, tmp_path, capsys):
    art = tmp_path / "art"
    folder = write_analysis(art)
    feats = pd.read_parquet(folder / "features.parquet")
    feats["financial"] = False
    feats["specialized"] = False
    feats.to_parquet(folder / "features.parquet", index=False)
    with pytest.raises(SystemExit) as exit_:
        run_stage_inprocess(project_root, f"paths.artifacts={art}", f"paths.output_dir={tmp_path / 'run'}",
                            "logger=none")
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and "marks no latent financial or specialized" in err[0]


def test_vllm_missing_is_one_line_before_any_work(project_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # absent, whatever this environment holds
    art = tmp_path / "art"
    write_analysis(art)
    with pytest.raises(SystemExit) as exit_:
        run_stage_inprocess(project_root, f"paths.artifacts={art}", f"paths.output_dir={tmp_path / 'run'}",
                            "logger=none", "label.backend=vllm", "label.model=Qwen/Qwen2.5-7B-Instruct")
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and "needs the vllm package" in err[0]
    assert "requirements-vllm.txt" in err[0] and "label.backend=openai" in err[0]
    assert not (art / "labels").exists()


def label_stage_run(root, art, tmp_path, *overrides):
    """The stage's ``run`` in this process (saves a second interpreter start on 2 busy cores)."""
    from finsae.glue.label_stage import run
    from finsae.glue.schemas import validate

    cfg = compose_label(root, f"paths.artifacts={art}", f"paths.output_dir={tmp_path / 'run'}", *overrides)
    return run(validate(cfg), cfg)


def test_resume_from_the_cache_after_a_kill(project_root, tmp_path):
    """SIGKILL a run mid-way through the explainer requests; the rerun asks only for the latents not answered."""
    art = tmp_path / "art"
    write_analysis(art)
    slow = {"delay": 0.4}

    def reply(body, n):
        r = oracle(body, n)
        r.delay = slow["delay"]
        return r

    args = ["label.backend=openai", "label.model=tiny", "label.max_latents=3", "label.concurrency=1",
            "label.backoff_s=0.01", "logger=none"]
    with ChatServer(reply) as s:
        args.append(f"label.base_url={s.url}")
        cmd = [sys.executable, "label.py", f"paths.artifacts={art}", "progress_bar=false", *args]
        proc = subprocess.Popen(cmd, cwd=project_root, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 240

        def n_cached():
            return sum(1 for _ in (art / "checkpoints" / "labels" / "minilm_fin").glob("*/*.json"))

        # wait for four answers in the cache (not for the server's request count: the client may send its next
        # request before the previous answer's callback has written it, which a loaded machine makes visible)
        while n_cached() < 4 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed mid-way"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        first = list(s.requests)
        assert not (art / "labels").exists()
        cached = n_cached()
        assert 4 <= cached <= len(first)
        slow["delay"] = 0.0
        summary = label_stage_run(project_root, art, tmp_path, *args)
        second = s.requests[len(first):]
    n_jobs = summary.n_labelled + summary.n_failed
    assert summary.n_cached == cached and summary.n_failed == 0
    assert len(second) == n_jobs - cached  # nothing answered before the kill is asked again
    answered = {json.dumps(b["messages"]) for b in first[:cached]}
    assert not answered & {json.dumps(b["messages"]) for b in second}
    assert summary.requests == len(second) and summary.prompt_tokens == 100 * len(second)


def test_hf_backend_end_to_end_with_a_tiny_random_lm(project_root, tmp_path):
    from .tiny_lm import save_tiny_chat_lm

    lm = save_tiny_chat_lm(tmp_path / "lm")
    art = tmp_path / "art"
    write_analysis(art, keywords={0: "dividend", 1: "merger"}, controls=[10, 11])
    label_stage_run(project_root, art, tmp_path, "label.backend=hf", f"label.model={lm}", "label.max_new_tokens=12",
                    "label.max_retries=1", "label.scorers=[embedding,detection]", "logger=csv",
                    "label.max_failure_share=1")  # gibberish from a random model: its failures are the point
    summary = json.loads((art / "labels" / "minilm_fin" / "summary.json").read_text())
    labels = pd.read_parquet(art / "labels" / "minilm_fin" / "labels.parquet")
    asked = labels[labels["status"] != "skipped"]
    assert summary["n_labelled"] + summary["n_failed"] == len(asked) > 0
    assert summary["completion_tokens"] > 0 and summary["prompt_tokens"] > summary["completion_tokens"]
    # A random model writes gibberish: each answer is a parsed label or a recorded failure, never a fake label.
    failed = asked[asked["status"] == "failed"]
    assert failed["label"].isna().all() and failed["error"].str.startswith("unparsable answer").all()
    assert (failed["attempts"] == 2).all() and failed["raw_answer"].notna().all()
    ok = asked[asked["status"] == "labelled"]
    assert ok["label"].str.len().gt(0).all()


def test_the_example_split_counts_every_latent_on_its_progress(tmp_path):
    """The split (hard negatives: the long, embedding-bound part of a run) reports one step per latent, in one bar."""
    from finsae.labeling.config import LabelConfig
    from finsae.labeling.embed import SentenceEmbedder
    from finsae.labeling.run import build_jobs, read_analysis

    art = tmp_path / "art"
    folder = write_analysis(art)
    bars = []

    class Bar:
        def __init__(self, total, desc):
            self.total, self.desc, self.n, self.closed = total, desc, 0, False
            bars.append(self)

        def update(self, n=1):
            self.n += n

        def close(self):
            self.closed = True

    jobs = build_jobs(read_analysis(folder, "minilm_fin", "minilm", "minilm_fin"), art, LabelConfig(),
                      SentenceEmbedder(), progress=Bar)
    assert [(b.desc, b.total, b.n, b.closed) for b in bars] == [("examples", len(jobs), len(jobs), True)]
    assert any(j.examples is not None and j.examples.score_hard_negatives for j in jobs)
