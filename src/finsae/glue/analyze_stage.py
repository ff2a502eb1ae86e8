"""`python analyze.py`: config into calls. The science is in :mod:`finsae.analysis` (the pair's SAEs in ``saes``,
the stage's steps in ``run``, one layer's job in ``layers``, the files in ``artifacts``); this module checks the
folders, runs the steps inside one W&B run, writes each layer as it ends, recombines the layers under the
folder's lock, and logs the tables, figures and summary.
"""

from __future__ import annotations

import time
from contextlib import closing, contextmanager, nullcontext, suppress
from pathlib import Path

from finsae.analysis import artifacts
from finsae.analysis.layers import compare_layers, describe_layer, write_outcome
from finsae.analysis.run import (SaeMix, Settings, build_heldout, combine, figures, layer_job, layer_metrics,
                                 reusable_layers)
from finsae.analysis.saes import PairSaes
from finsae.analysis.summary import AnalysisSummary
from finsae.atomic import SPACE_RESERVE_GB, check_writable, locked
from finsae.finetune.config import twin_test_frac
from finsae.glue.app import resolved_config
from finsae.glue.base_schema import pair_name
from finsae.glue.tracking import stage_run
from finsae.paths import activations_root, analysis_dir


def settings(cfg) -> Settings:
    """The typed settings of one run, from the validated config."""
    d = cfg.data
    saes = PairSaes(Path(cfg.paths.artifacts), cfg.pair.base, cfg.pair.domain, cfg.tag,
                    tuple(cfg.repeat_tags))
    return Settings(pair=pair_name(cfg), saes=saes, data_dir=Path(cfg.paths.data_dir), analysis=cfg.analysis,
                    activations=cfg.activations, eval_start=d.eval_start,
                    mix=SaeMix(tuple(d.corpora), d.max_chars_per_corpus, d.max_docs),
                    twin_test_frac=twin_test_frac(Path(cfg.paths.artifacts), cfg.pair.domain),
                    progress_bar=cfg.progress_bar)


@contextmanager
def workers_reaped():
    """Every process started inside the block is gone when it ends, by return, error or stop. The pools kill
    their workers on shutdown (:func:`finsae.workers.one_thread_pool`); a descendant that outlives them (a
    worker's own child, a worker of a pool the stop skipped) would otherwise live on under init. Only the
    blocks that start workers are wrapped (the extraction and the layers), so the tracker's service process,
    started before, is left alone, as is loky's shared resource tracker (it ends with this process)."""
    import psutil

    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    try:
        yield
    finally:
        left = []
        for p in me.children(recursive=True):
            with suppress(psutil.Error):
                if p.pid not in before and "resource_tracker" not in " ".join(p.cmdline()):
                    p.kill()
                    left.append(p)
        psutil.wait_procs(left, timeout=10)


def precheck(cfg) -> tuple[Settings, list[int]]:
    """The stage's checks before any work (what ``--multirun`` prechecks run): writable folders, the SAEs of
    every layer asked for, the layer folders already written; the settings and layers to compare."""
    st = settings(cfg)
    art, out = st.artifacts, analysis_dir(st.artifacts, st.pair)
    check_writable(art, "artifacts folder")
    check_writable(out, "analysis folder", make=False)
    check_writable(activations_root(art), "activation cache", make=False, reserve_gb=SPACE_RESERVE_GB)
    layers = st.saes.resolve_layers(cfg.selected_layers)
    artifacts.check_layer_folders(out, rewritten=layers)
    return st, layers


def run(cfg, raw) -> AnalysisSummary:
    t0 = time.time()
    st, layers = precheck(cfg)
    pair, art = st.pair, st.artifacts
    out = analysis_dir(art, pair)
    out.mkdir(parents=True, exist_ok=True)

    reused = reusable_layers(out, st, layers) if cfg.reuse_layers else []
    todo = [layer for layer in layers if layer not in reused]
    if reused:
        print(f"analyze: layers {reused} reused: made with these settings, code and SAEs (reuse_layers=false "
              "recomputes them)")
    held = build_heldout(st)
    counts = held.counts()
    print("analyze: held-out passages " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if todo:
        with workers_reaped():
            job = layer_job(st, held, todo)

    with stage_run("analyze", resolved_config(raw), Path(cfg.paths.output_dir), cfg.logger,
                   group=cfg.logger.group or f"analyze-{pair}", tags=list(cfg.logger.tags) + [pair],
                   name=f"analyze-{pair}-{'-'.join(map(str, layers))}") as tracker:
        rows = {layer: artifacts.read_layer_row(out, layer) for layer in reused}
        method_seconds: dict[str, float] = {}
        # closing: a stop (or an error) while a layer is written shuts the worker pool down here, not when the
        # generator is collected after the process has printed its last line (its workers would outlive it)
        with workers_reaped(), (closing(compare_layers(job, todo, cfg.analysis.jobs, cfg.progress_bar))
                                if todo else nullcontext(())) as done:
            for layer, outcome in done:
                write_outcome(out, outcome, st.layer_meta(layer))  # as each ends
                rows[layer] = outcome.row.to_dict()
                for name, s in outcome.seconds.items():
                    method_seconds[name] = round(method_seconds.get(name, 0.0) + s, 1)
                for line in describe_layer(outcome):
                    print(f"analyze: {line}")
        for layer in sorted(rows):  # W&B steps must increase
            tracker.log(layer_metrics(rows[layer]), step=layer + 1)
        with locked([artifacts.combine_lock(out)]):
            summary, frames = combine(out, st, counts, held.median_chars())
        summary.seed_tags = list(st.saes.seed_tags)
        summary.add_seed_estimates(frames["layers"])
        summary.seconds = round(time.time() - t0, 1)
        summary.method_seconds = method_seconds
        summary.write(out, Path(cfg.paths.output_dir))
        tracker.log_table("analysis_layers", frames["layers"])
        tracker.log_table("analysis_financial_features",
                          frames["features"][frames["features"]["financial"]].head(2000))
        for name, fig in figures(frames, st).items():
            artifacts.write_plot(out, name, fig)
            tracker.log_figure(name, fig)
        tracker.log_artifact(out, f"analysis-{pair}", "analysis", metadata=summary.scalars())
        tracker.finish(summary.scalars())
    print(f"analyze: {pair} layers {summary.layers}: {summary.n_financial} financial / {summary.n_specialized} "
          f"specialized domain latents -> {out} ({summary.seconds:.0f} s)")
    return summary
