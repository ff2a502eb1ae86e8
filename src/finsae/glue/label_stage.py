"""`python label.py`: label the financial and specialized latents the analysis stage chose, and score the
labels beside their controls.

Steps: check the analysis artifacts (``artifacts/analysis/{pair}/``: summary.json, features.parquet, contexts)
and the explainer (server reachable, package importable, model loadable) before any work; per (model, layer)
choose the latents (``finsae.labeling.selection``) and split their stored held-out examples between explainer
and scorers (hard negatives by the packaged MiniLM sentence embedder); explain and score
(``finsae.labeling.pipeline``; every answer cached under ``artifacts/checkpoints/labels/{pair}/`` as it
arrives, so a killed run resumes); publish ``artifacts/labels/{pair}/`` (labels.parquet, per_layer.csv,
summary.json) in one rename, merge the labels into the analysis ``features.parquet``, and log a W&B table.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid
from pathlib import Path

import pandas as pd

from finsae import paths
from finsae.glue.schemas import pair_name
from finsae.analysis.contexts import check_contexts, read_contexts
from finsae.atomic import check_writable, locked, publish, staging_dir
from finsae.errors import DataMissingError, FinsaeError
from finsae.glue.app import resolved_config
from finsae.glue.tracking import stage_run
from finsae.labeling.backend import make_backend
from finsae.labeling.cache import AnswerCache
from finsae.labeling.examples import examples_of, latent_rng, split_examples
from finsae.labeling.lexical import LEXICAL_VERSION
from finsae.labeling.pipeline import METRICS, LatentJob, run_labeling
from finsae.labeling.prompts import PROMPT_VERSION
from finsae.labeling.selection import check_features, select_latents
from finsae.labeling.summary import LabelSummary, overall_fields, score_table
from finsae.sae.io import is_sae_dir, sae_identity
from finsae.paths import sae_dir
from finsae.summary import SUMMARY_FILE

LABELS_FILE = "labels.parquet"
PER_LAYER_FILE = "per_layer.csv"
FEATURES_FILE = "features.parquet"
TABLE_COLUMNS = ("model", "layer", "latent", "role", "status", "label", "description", "n_activating", "error")


def analysis_dir(cfg) -> Path:
    return paths.analysis_dir(Path(cfg.paths.artifacts), pair_name(cfg))


def labels_dir(cfg) -> Path:
    return paths.labels_dir(Path(cfg.paths.artifacts), pair_name(cfg))


def read_analysis(cfg) -> tuple[dict, pd.DataFrame]:
    """The analysis stage's summary and features table; one line naming ``python analyze.py`` when absent."""
    folder = analysis_dir(cfg)
    how = f"Run `python analyze.py pair={pair_name(cfg)}` first (the analysis stage writes it)."
    summary_path, features_path = folder / SUMMARY_FILE, folder / FEATURES_FILE
    for what, path in (("analysis summary", summary_path), ("analysis features table", features_path)):
        if not path.is_file():
            raise DataMissingError(what, path, how)
    try:
        summary = json.loads(summary_path.read_text())
        features = pd.read_parquet(features_path)
    except (OSError, ValueError) as e:
        raise FinsaeError(f"the analysis artifacts in {folder} are unreadable ({type(e).__name__}); rerun "
                          f"`python analyze.py pair={pair_name(cfg)}`") from None
    if not isinstance(summary, dict):
        raise FinsaeError(f"{summary_path} is not a summary (a JSON {type(summary).__name__}); rerun "
                          f"`python analyze.py pair={pair_name(cfg)}`")
    for key in ("base", "domain", "layers"):
        if key not in summary:
            raise FinsaeError(f"{summary_path} lacks {key!r}; rerun `python analyze.py pair={pair_name(cfg)}`")
    layers = summary["layers"]
    if not isinstance(layers, list) or not all(type(x) is int for x in layers):
        raise FinsaeError(f"{summary_path}: 'layers' is {layers!r}, not a list of layer numbers; rerun "
                          f"`python analyze.py pair={pair_name(cfg)}`")
    if (summary["base"], summary["domain"]) != (cfg.pair.base, cfg.pair.domain):
        raise FinsaeError(f"{folder} holds the analysis of {summary['base']} vs {summary['domain']}, not of the pair "
                          f"{cfg.pair.base} vs {cfg.pair.domain}; choose the matching pair= or pair_name=")
    check_features(features, features_path)
    for model in (summary["base"], summary["domain"]):
        for layer in layers:  # every contexts file build_jobs reads, checked before any labelling
            check_contexts(folder, model, layer)
    return summary, features


def precheck(cfg) -> None:
    """What fails before any work: analysis artifacts missing, artifacts folder not writable."""
    read_analysis(cfg)
    check_folders(cfg)


def check_folders(cfg) -> None:
    """Every folder the stage writes takes new files: the artifacts folder, the labels folder, and the analysis
    folder whose features table the labels are merged into (else the labels publish and the merge fails)."""
    check_writable(Path(cfg.paths.artifacts), "artifacts folder")
    check_writable(analysis_dir(cfg), "analysis folder")
    check_writable(labels_dir(cfg), "labels folder", make=False)


def _sae_id(artifacts: Path, model: str, layer: int, tag: str) -> str:
    d = sae_dir(artifacts, model, layer, tag)
    return f"{model}/layer_{layer}/{tag}/{sae_identity(d) if is_sae_dir(d) else 'no-sae'}"


def build_jobs(cfg, summary: dict, features: pd.DataFrame, embed) -> list[LatentJob]:
    """The latents to label, per model and layer of the analysis, with their examples split."""
    lc = cfg.label
    artifacts = Path(cfg.paths.artifacts)
    tag = str(summary.get("tag", "default"))
    jobs = []
    for model in (summary["base"], summary["domain"]):
        for layer in summary["layers"]:
            by_latent = examples_of(read_contexts(analysis_dir(cfg), model, int(layer)))
            chosen = select_latents(features, model, int(layer), by_latent, lc.max_latents, lc.control_latents,
                                    lc.seed, matched=lc.matched_controls)
            sae_id = _sae_id(artifacts, model, int(layer), tag)
            for c in chosen:
                job = LatentJob(model, int(layer), c.latent, c.role, c.financial, c.specialized, c.n_active_docs,
                                sae_id, matched_to=c.matched_to)
                stored = by_latent.get(c.latent, [])
                n_act = len({e.doc_id for e in stored if e.activating})
                if not stored:
                    job.skip_reason = "no stored contexts"
                elif min(n_act, c.n_active_docs) < lc.min_activating:
                    job.skip_reason = f"{min(n_act, c.n_active_docs)} activating held-out examples < {lc.min_activating}"
                rng = latent_rng(lc.seed, "split", model, int(layer), c.latent)
                if stored:
                    job.examples = split_examples(
                        stored, n_explain=lc.n_explain, n_explain_negatives=lc.n_explain_negatives,
                        n_score_activating=lc.n_score_activating,
                        n_score_random_negatives=lc.n_score_random_negatives,
                        n_score_hard_negatives=lc.n_score_hard_negatives, rng=rng,
                        embed=embed if job.skip_reason is None else None)
                    if job.skip_reason is None and not (job.examples.score_activating and job.examples.score_negatives):
                        job.skip_reason = "no held-out examples left to score on"
                jobs.append(job)
    return jobs


class _Bar:
    def __init__(self, total: int, desc: str, enabled: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=f"label: {desc}", disable=not enabled or total == 0, file=sys.stderr,
                        dynamic_ncols=True, mininterval=1.0)

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


LABEL_COLUMN_PREFIX = "label_"


def merge_into_features(features_path: Path, labels: pd.DataFrame, scorers: list[str]) -> None:
    """Add (replacing an earlier run's) ``label``, ``label_description``, ``label_status``, ``label_role`` and
    every ``label_<score>`` / ``label_<score>_control`` / ``label_generic_<score>`` column to the analysis features table, in place."""
    cols = {"label": "label", "description": "label_description", "status": "label_status", "role": "label_role"}
    for s in scorers:
        for m in METRICS[s]:
            for c in (m, f"{m}_control", f"generic_{m}"):
                if c in labels.columns:
                    cols[c] = f"{LABEL_COLUMN_PREFIX}{c}"
    add = labels[["model", "layer", "latent", *cols]].rename(columns=cols)
    with locked([features_path.with_name("combined")]):  # the lock analyze.py holds while it rewrites the table
        features = pd.read_parquet(features_path)
        keep = [c for c in features.columns if c != "label" and not c.startswith(LABEL_COLUMN_PREFIX)]
        merged = features[keep].merge(add, on=["model", "layer", "latent"], how="left")
        tmp = features_path.with_name(f".{features_path.name}.{uuid.uuid4().hex[:8]}")
        merged.to_parquet(tmp, index=False)
        os.replace(tmp, features_path)


def embedder_note(name: str, base: str, domain: str) -> str:
    """The embedder's name, and the caveat when it is one of the compared models."""
    if "minilm" in name.lower() and "minilm" in (base.lower(), domain.lower()):
        return f"{name} (= the pair's base model {base}: embedding scores may favour it over {domain})"
    return f"{name} (neither model of the pair)"


def run(cfg, raw) -> LabelSummary:
    t0 = time.time()
    lc = cfg.label
    out_dir = labels_dir(cfg)
    if cfg.skip_if_done and (out_dir / SUMMARY_FILE).is_file():
        summary = LabelSummary.read(out_dir)
        print(f"label: {out_dir} is complete ({summary.n_labelled} labelled); skipping")
        return summary
    analysis, features = read_analysis(cfg)
    artifacts = Path(cfg.paths.artifacts)
    check_folders(cfg)
    for name in ("httpx", "httpx2", "openai"):  # a log line per request would bury the progress bar
        logging.getLogger(name).setLevel(logging.WARNING)
    backend = make_backend(lc)  # server reachable / vllm importable / model loadable, before any work

    from finsae.labeling.embed import SentenceEmbedder

    embed = SentenceEmbedder()
    jobs = build_jobs(cfg, analysis, features, embed)
    if not jobs:
        raise FinsaeError(f"{analysis_dir(cfg) / FEATURES_FILE} marks no latent financial or specialized: nothing to "
                          f"label (the analysis stage decides which latents are financial)")
    cache = AnswerCache(artifacts / "checkpoints" / "labels" / pair_name(cfg))
    run_dir = Path(cfg.paths.output_dir)
    n_targets = sum(j.role == "target" for j in jobs)
    print(f"label: {len(jobs)} latents ({n_targets} financial/specialized, {len(jobs) - n_targets} random "
          f"controls) of {analysis['base']} and {analysis['domain']}, layers {list(analysis['layers'])}; "
          f"explainer {lc.backend} ({lc.llm_name}); scorers {list(lc.scorers)}")
    with stage_run("label", resolved_config(raw), run_dir, cfg.logger, group=cfg.logger.group or "label",
                   tags=list(cfg.logger.tags) + [pair_name(cfg), lc.backend], name=f"label-{pair_name(cfg)}-{lc.backend}") as tracker:
        labels, usage = run_labeling(jobs, lc, backend, cache, embed,
                                     progress=lambda total, desc: _Bar(total, desc, cfg.progress_bar))
        table = score_table(labels, list(lc.scorers), lc.n_bootstrap, lc.seed)
        priced = lc.price_in_per_mtok > 0 or lc.price_out_per_mtok > 0
        summary = LabelSummary(
            pair=pair_name(cfg), backend=lc.backend, llm=lc.llm_name,
            prompt_version=LEXICAL_VERSION if lc.backend == "lexical" else PROMPT_VERSION, scorers=list(lc.scorers),
            n_selected=len(jobs), n_targets=n_targets, n_controls=len(jobs) - n_targets,
            n_labelled=int((labels["status"] == "labelled").sum()), n_skipped=int((labels["status"] == "skipped").sum()),
            n_failed=int((labels["status"] == "failed").sum()), n_cached=usage.cached,
            embedder=embedder_note(embed.name, cfg.pair.base, cfg.pair.domain), requests=usage.requests,
            prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
            cost_usd=usage.cost(lc) if priced else float("nan"),
            per_layer=json.loads(table.to_json(orient="records")), **overall_fields(table))
        summary.seconds = round(time.time() - t0, 1)
        with locked([out_dir]):
            tmp = staging_dir(out_dir)
            labels.to_parquet(tmp / LABELS_FILE, index=False)
            table.to_csv(tmp / PER_LAYER_FILE, index=False)
            summary.write(tmp)
            publish(tmp, out_dir)
        merge_into_features(analysis_dir(cfg) / FEATURES_FILE, labels, list(lc.scorers))
        summary.write(run_dir)
        score_cols = [c for c in labels.columns
                      if any(c.startswith((m, f"generic_{m}")) for s in lc.scorers for m in METRICS[s])]
        tracker.log_table("labels", labels[[*TABLE_COLUMNS, "explainer", *score_cols]])
        tracker.log_table("label_scores", table)
        tracker.log({k: v for k, v in summary.scalars().items() if not isinstance(v, str)})
        tracker.finish(summary.scalars())
    cost = f", ${summary.cost_usd:.4f}" if priced else ""
    print(f"label: {usage.requests} LLM requests, {usage.prompt_tokens} prompt + {usage.completion_tokens} completion "
          f"tokens{cost}; {usage.cached} answers from the cache")
    for s in lc.scorers:
        m = METRICS[s][0]
        v = summary.to_dict()
        what = "chance" if s == "intruder" else "shuffled-label control"
        if s == "embedding":
            print(f"label: embedding scorer embeds with {summary.embedder}")
        line = (f"label: {m} {v[m]:.3f} vs {what} {v[m + '_control']:.3f} (diff {v[m + '_diff']:+.3f}, 95% CI "
                f"[{v[m + '_diff_lo']:+.3f}, {v[m + '_diff_hi']:+.3f}]); random latents {v[m + '_random']:.3f}")
        if m + "_generic" in v:
            line += (f"; generic label {v[m + '_generic']:.3f} (diff {v[m + '_generic_diff']:+.3f}, 95% CI "
                     f"[{v[m + '_generic_diff_lo']:+.3f}, {v[m + '_generic_diff_hi']:+.3f}])")
        print(line)
    print(f"label: {summary.n_labelled} labelled, {summary.n_skipped} skipped, {summary.n_failed} failed in "
          f"{summary.seconds:.0f} s -> {out_dir}")
    return summary
