"""`python label.py`: config into calls. The science is in :mod:`finsae.labeling` (the stage's steps in
``stage``: reading the analysis artifacts, choosing latents, building jobs, the run's summary); this module checks
the analysis artifacts and the explainer (server reachable, package importable, model loadable) before any work,
runs the labeling inside one W&B run (every answer cached under ``artifacts/checkpoints/labels/{pair}/`` as it
arrives, so a killed run resumes), publishes ``artifacts/labels/{pair}/`` (labels.parquet, per_layer.csv,
summary.json) in one rename through the stage's contract (``finsae.labeling.artifacts``), and logs W&B tables.
The analysis stage's ``features.parquet`` is only read: readers join the labels at read time
(``finsae.labeling.artifacts.join_labels``).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from finsae import paths
from finsae.glue.app import resolved_config
from finsae.glue.base_schema import pair_name
from finsae.glue.tracking import stage_run
from finsae.labeling.artifacts import publish_labels, read_summary
from finsae.summary import is_published
from finsae.labeling.backend import make_backend
from finsae.labeling.cache import AnswerCache
from finsae.labeling.run import (
    Analysis,
    build_jobs,
    check_folders,
    label_latents,
    labels_table,
    plan_line,
    read_analysis,
    report_lines,
)
from finsae.labeling.summary import LabelSummary


def _folders(cfg) -> tuple[Path, Path, Path]:
    """(artifacts, analysis folder, labels folder) of the configured pair."""
    artifacts = Path(cfg.paths.artifacts)
    return artifacts, paths.analysis_dir(artifacts, pair_name(cfg)), paths.labels_dir(artifacts, pair_name(cfg))


def _analysis(cfg) -> Analysis:
    _, analysis_dir, _ = _folders(cfg)
    return read_analysis(analysis_dir, pair_name(cfg), cfg.pair.base, cfg.pair.domain)


def precheck(cfg) -> None:
    """What fails before any work: analysis artifacts missing, artifacts folder not writable."""
    _analysis(cfg)
    artifacts, _, out_dir = _folders(cfg)
    check_folders(artifacts, out_dir)


class _Bar:
    def __init__(self, total: int, desc: str, enabled: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=f"label: {desc}", disable=not enabled or total == 0, file=sys.stderr,
                        dynamic_ncols=True, mininterval=1.0)

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


def run(cfg, raw) -> LabelSummary:
    t0 = time.time()
    lc, pair = cfg.label, pair_name(cfg)
    artifacts, _, out_dir = _folders(cfg)
    if cfg.skip_if_done and is_published(out_dir):
        summary = read_summary(out_dir)
        print(f"label: {out_dir} is complete ({summary.n_labelled} labelled); skipping")
        return summary
    analysis = _analysis(cfg)
    check_folders(artifacts, out_dir)
    for name in ("httpx", "httpx2", "openai"):  # a log line per request would bury the progress bar
        logging.getLogger(name).setLevel(logging.WARNING)
    backend = make_backend(lc)  # server reachable / vllm importable / model loadable, before any work

    from finsae.labeling.embed import SentenceEmbedder

    embed = SentenceEmbedder()

    def bar(total: int, desc: str) -> _Bar:
        return _Bar(total, desc, cfg.progress_bar)

    jobs = build_jobs(analysis, artifacts, lc, embed, progress=bar)
    cache = AnswerCache(paths.label_cache_dir(artifacts, pair))
    run_dir = Path(cfg.paths.output_dir)
    print(plan_line(jobs, analysis, lc))
    with stage_run("label", resolved_config(raw), run_dir, cfg.logger, group=cfg.logger.group or "label",
                   tags=list(cfg.logger.tags) + [pair, lc.backend], name=f"label-{pair}-{lc.backend}") as tracker:
        result = label_latents(jobs, lc, backend, cache, embed, pair, cfg.pair.base, cfg.pair.domain,
                               progress=bar, started=t0)
        summary = result.summary
        publish_labels(out_dir, result)
        summary.write(run_dir)
        tracker.log_table("labels", labels_table(result.labels, list(lc.scorers)))
        tracker.log_table("label_scores", result.per_layer)
        tracker.log({k: v for k, v in summary.scalars().items() if not isinstance(v, str)})
        tracker.finish(summary.scalars())
    print("\n".join(report_lines(summary, lc, out_dir)))
    return summary
