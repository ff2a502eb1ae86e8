"""`python label.py`: config into calls. The science is in :mod:`finsae.labeling` (the stage's steps in
``stage``: reading the analysis artifacts, choosing latents, building jobs, the run's summary); this module checks
the analysis artifacts and the explainer (server reachable, package importable, model loadable) before any work,
runs the labeling inside one W&B run (every answer cached under ``artifacts/checkpoints/labels/{pair}/`` as it
arrives, so a killed run resumes), publishes ``artifacts/labels/{pair}/`` (labels.parquet, per_layer.csv,
summary.json) in one rename, merges the labels into the analysis ``features.parquet``, and logs W&B tables.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from pathlib import Path

import pandas as pd

from finsae import paths
from finsae.atomic import check_writable, locked
from finsae.glue.app import resolved_config
from finsae.glue.schemas import pair_name
from finsae.glue.tracking import stage_run
from finsae.labeling.artifacts import is_published, publish_labels, read_summary
from finsae.labeling.backend import make_backend
from finsae.labeling.cache import AnswerCache
from finsae.labeling.pipeline import METRICS
from finsae.labeling.stage import (
    ANALYSIS_FEATURES_FILE, Analysis, build_jobs, check_folders, label_latents, labels_table, plan_line,
    read_analysis, report_lines,
)
from finsae.labeling.summary import LabelSummary


def _folders(cfg) -> tuple[Path, Path, Path]:
    """(artifacts, analysis folder, labels folder) of the configured pair."""
    artifacts = Path(cfg.paths.artifacts)
    return artifacts, paths.analysis_dir(artifacts, pair_name(cfg)), paths.labels_dir(artifacts, pair_name(cfg))


def _analysis(cfg) -> Analysis:
    _, analysis_dir, _ = _folders(cfg)
    return read_analysis(analysis_dir, pair_name(cfg), cfg.pair.base, cfg.pair.domain)


def _check_folders(cfg) -> None:
    artifacts, analysis_dir, out_dir = _folders(cfg)
    check_folders(artifacts, out_dir)
    check_writable(analysis_dir, "analysis folder")  # the labels are merged into its features table


def precheck(cfg) -> None:
    """What fails before any work: analysis artifacts missing, artifacts folder not writable."""
    _analysis(cfg)
    _check_folders(cfg)


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


def run(cfg, raw) -> LabelSummary:
    t0 = time.time()
    lc, pair = cfg.label, pair_name(cfg)
    artifacts, analysis_dir, out_dir = _folders(cfg)
    if cfg.skip_if_done and is_published(out_dir):
        summary = read_summary(out_dir)
        print(f"label: {out_dir} is complete ({summary.n_labelled} labelled); skipping")
        return summary
    analysis = _analysis(cfg)
    _check_folders(cfg)
    for name in ("httpx", "httpx2", "openai"):  # a log line per request would bury the progress bar
        logging.getLogger(name).setLevel(logging.WARNING)
    backend = make_backend(lc)  # server reachable / vllm importable / model loadable, before any work

    from finsae.labeling.embed import SentenceEmbedder

    embed = SentenceEmbedder()
    jobs = build_jobs(analysis, artifacts, lc, embed)
    cache = AnswerCache(paths.label_cache_dir(artifacts, pair))
    run_dir = Path(cfg.paths.output_dir)
    print(plan_line(jobs, analysis, lc))
    with stage_run("label", resolved_config(raw), run_dir, cfg.logger, group=cfg.logger.group or "label",
                   tags=list(cfg.logger.tags) + [pair, lc.backend], name=f"label-{pair}-{lc.backend}") as tracker:
        result = label_latents(jobs, lc, backend, cache, embed, pair, cfg.pair.base, cfg.pair.domain,
                               progress=lambda total, desc: _Bar(total, desc, cfg.progress_bar), started=t0)
        summary = result.summary
        publish_labels(out_dir, result)
        merge_into_features(analysis_dir / ANALYSIS_FEATURES_FILE, result.labels, list(lc.scorers))
        summary.write(run_dir)
        tracker.log_table("labels", labels_table(result.labels, list(lc.scorers)))
        tracker.log_table("label_scores", result.per_layer)
        tracker.log({k: v for k, v in summary.scalars().items() if not isinstance(v, str)})
        tracker.finish(summary.scalars())
    print("\n".join(report_lines(summary, lc, out_dir)))
    return summary
