"""One layer's analysis, run layer by layer (here or in one-thread worker processes) and written as each ends.

Per layer, every registered diffing method (:data:`finsae.analysis.methods.METHODS`, in order) finds its inputs
and, where they exist, analyses the layer; each on one thread, so the result does not depend on how many layers
run at a time. Its statistics at every seed (its own per-seed samples, or the method run again on each seed
repeat for the columns it names: :attr:`~finsae.analysis.methods.base.DiffingMethod.seed_statistics`) become
mean ± seed SD with a hierarchical bootstrap over (seed, source document) (:mod:`finsae.analysis.seeds`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple


import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from finsae.analysis import artifacts
from finsae.analysis.contexts import write_contexts
from finsae.analysis.methods import METHODS
from finsae.analysis.methods.base import AnalysisReads, DiffingMethod, LayerData, LayerRow, MethodResult, Say
from finsae.analysis.seeds import SeedBootstrapConfig, SeedEstimate, SeedSample
from finsae.workers import one_thread, one_thread_pool, worker_state

def seed_bootstrap(analysis) -> SeedBootstrapConfig:
    """The hierarchical bootstrap of every layer (``analysis.seeds.*``, seeded by ``analysis.seed``):
    documents drawn once per replicate for all seeds, as every SAE of a layer is scored on the same held-out
    documents under the same draws."""
    return SeedBootstrapConfig(n_boot=analysis.seeds.n_boot, ci=analysis.seeds.ci, seed=analysis.seed,
                               documents="shared")


class LayerOutcome(NamedTuple):
    """What one layer's analysis produced."""

    layer: int
    results: dict[str, MethodResult]
    """Method name -> its result, for the methods that ran here (registry order)."""
    seeds: dict[str, SeedEstimate] = {}
    """Statistic -> its estimate over the layer's seeds (every method's)."""
    seconds: dict[str, float] = {}
    """Method name -> the wall seconds it took at this layer (its runs at the seed repeats included)."""

    @property
    def row(self) -> LayerRow:
        """The layer's ``layers.parquet`` row."""
        return LayerRow(self.layer, {name: r.row for name, r in self.results.items()}, dict(self.seeds))


class LayerJob(AnalysisReads):
    """What comparing one layer reads, with the comparison itself (sent once to each worker process)."""

    def compare(self, layer: int, progress=None) -> LayerOutcome:
        """Every registered method whose inputs exist at ``layer``, in registry order."""
        data, say = self.at(layer), progress or (lambda msg: None)
        results: dict[str, MethodResult] = {}
        seeds: dict[str, SeedEstimate] = {}
        seconds: dict[str, float] = {}
        boot = seed_bootstrap(self.analysis)
        for name, method in METHODS.items():
            t0 = time.perf_counter()
            with one_thread():
                say(name)
                inputs = method.inputs(data)
                if inputs is not None:
                    results[name] = res = method.analyze(inputs, data, results, say)
                    samples = res.seeds or rerun_at_seeds(method, data, res, say)
                    seeds.update({k: sample.estimate(boot) for k, sample in samples.items()})
                    seconds[name] = round(time.perf_counter() - t0, 1)
        return LayerOutcome(layer, results, seeds, seconds)


def rerun_at_seeds(method: DiffingMethod, data: LayerData, result: MethodResult,
                   say: Say) -> dict[str, SeedSample]:
    """The method's :attr:`~DiffingMethod.seed_statistics` at seed 0 (``result``) and at each seed repeat
    whose SAEs it finds (:meth:`~DiffingMethod.seed_inputs`), the method run again there (seed-only samples:
    what varies between the runs is the seed; their document term stays in the method's own intervals)."""
    if not method.seed_statistics:
        return {}
    first = result.row.columns()
    values = {k: [first[k]] for k in method.seed_statistics}
    for tag in data.saes.seed_tags:
        inputs = method.seed_inputs(data, tag)
        if inputs is None:
            continue
        say(f"{method.name} at {tag}")
        columns = method.analyze(inputs, data.with_tag(tag), {}, say).row.columns()
        for k, v in values.items():
            v.append(columns[k])
    return {k: SeedSample(np.asarray(v, np.float64)) for k, v in values.items()}


def compare_layers(job: LayerJob, layers: list[int], jobs: int,
                   progress_bar: bool) -> Iterator[tuple[int, LayerOutcome]]:
    """Yield ``(layer, LayerOutcome)`` as each layer finishes: here when ``jobs`` is 1 or one layer is asked
    for, else ``jobs`` layers at a time in loky worker processes (layers with seed repeats, the costly ones,
    first)."""
    bar = tqdm(total=len(layers), desc="analyze", unit="layer", disable=not progress_bar)
    n_jobs = max(1, min(jobs, len(layers)))
    try:
        if n_jobs == 1:
            for layer in layers:
                yield layer, job.compare(
                    layer, progress=lambda msg, layer=layer: bar.set_postfix_str(f"L{layer}: {msg}"))
                bar.update()
            return
        from concurrent.futures import as_completed

        def cost(layer):
            s = job.saes
            return -sum(s.has_seed_repeat(m, layer, t) for m in (s.base, s.domain) for t in s.seed_tags)

        with one_thread_pool(n_jobs, job) as pool:
            futures = {pool.submit(_compare_in_worker, layer): layer for layer in sorted(layers, key=cost)}
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
                bar.update()
    finally:
        bar.close()


def _compare_in_worker(layer: int) -> LayerOutcome:
    return worker_state().compare(layer)


def write_outcome(folder: Path, outcome: LayerOutcome, meta: dict) -> Path:
    """One layer's folder (:func:`finsae.analysis.artifacts.write_layer`) and its contexts; a method that did not
    run now leaves no stale contexts for labeling."""
    written = set()
    for res in outcome.results.values():
        for model, ctx in res.contexts.items():
            write_contexts(ctx, folder, model, outcome.layer)
            written.add(model)
    for model in set(artifacts.context_models()) - written:
        artifacts.contexts_path(folder, model, outcome.layer).unlink(missing_ok=True)
    tables = {artifacts.LAYER_ROW: pd.DataFrame([outcome.row.to_dict()])}
    for res in outcome.results.values():
        tables.update(res.tables)
    return artifacts.write_layer(folder, outcome.layer, tables, meta)


def describe_layer(outcome: LayerOutcome) -> list[str]:
    """The lines the stage prints as a layer ends (one per method that ran and has one)."""
    row = outcome.row.to_dict()
    lines = [METHODS[name].describe(row) for name in outcome.results if name in METHODS]
    if outcome.seconds:
        lines.append("took " + ", ".join(f"{name} {s:.0f} s" for name, s in outcome.seconds.items()))
    return [f"layer {outcome.layer}: {line}" for line in lines if line]
