"""One layer's analysis, run layer by layer (here or in one-thread worker processes) and written as each ends.

Per layer: the independent-SAE comparison (:func:`finsae.analysis.compare.compare_layer`) and, where their SAEs
exist (:class:`finsae.analysis.saes.PairSaes`), the pair's crosscoder (:func:`finsae.analysis.crosscoder.analyze_layer`)
and the warm-started runs (:func:`finsae.analysis.warmstart.analyze_layer`); each on one thread, so the result
does not depend on how many layers run at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from finsae.activations.paired import PairedArray
from finsae.analysis import artifacts, crosscoder, warmstart
from finsae.analysis.compare import LayerInputs, LayerResult, compare_layer
from finsae.analysis.config import AnalysisConfig
from finsae.analysis.contexts import write_contexts
from finsae.analysis.heldout import HeldoutSet
from finsae.analysis.saes import PairSaes
from finsae.sae import load
from finsae.workers import one_thread, one_thread_pool, worker_state


class LayerOutcome(NamedTuple):
    """What one layer's analysis produced."""

    result: LayerResult
    """The independent-SAE comparison; its row also holds the methods' ``layers.parquet`` columns and its
    contexts the crosscoder's (model :data:`finsae.analysis.crosscoder.CONTEXT_MODEL`)."""
    methods: dict[str, pd.DataFrame]
    """The tables of the methods that ran here (keys of :data:`finsae.analysis.artifacts.METHODS`)."""


class LayerJob(NamedTuple):
    """What comparing one layer reads; sent once to each worker process (the activation arrays pickle as
    their shard paths, the held-out set as its passages)."""

    saes: PairSaes
    analysis: AnalysisConfig
    arrays: dict
    """(model, layer) -> memory-mapped held-out activations."""
    doc_of_row: np.ndarray
    char_start: np.ndarray
    held: HeldoutSet

    def compare(self, layer: int, progress=None) -> LayerOutcome:
        """One layer's comparison and, where their SAEs exist, its crosscoder and warm-start analyses."""
        res = self._independent(layer, progress)
        say = progress or (lambda msg: None)
        tables = {}
        with one_thread():
            say("crosscoder")
            xc = self._crosscoder(layer)
            if xc is not None:
                res.row.update(xc.summary)
                res.contexts[crosscoder.CONTEXT_MODEL] = xc.contexts
                tables["crosscoder"] = xc.table
            say("warm starts")
            base = res.features[(res.features["model"] == self.saes.base) & (res.features["role"] == "base")]
            ws = self._warmstart(layer, base["n_active_docs"].to_numpy() > 0)
            if ws is not None:
                res.row.update(ws.summary)
                tables["warmstart"] = ws.table
        return LayerOutcome(res, tables)

    def _rows(self, model: str, layer: int):
        return self.arrays[model, layer]

    def _crosscoder(self, layer: int):
        """The layer's crosscoder analysis, or None without a crosscoder of ``tag`` (seed 1: ``seed_tag``)."""
        s = self.saes
        found, seed1 = self.saes.crosscoders(layer, self._rows(s.base, layer).shape[1])
        if found is None:
            return None

        def rows(scales):
            return PairedArray(self._rows(s.base, layer), self._rows(s.domain, layer), scales)

        sae, scales = found
        a = self.analysis
        return crosscoder.analyze_layer(
            layer, sae, rows(scales), self.held, self.doc_of_row, self.char_start,
            sae_seed1=seed1[0] if seed1 else None, paired_rows_seed1=rows(seed1[1]) if seed1 else None,
            tau=a.tau, fdr=a.fdr, min_auroc=a.min_auroc, seed=a.seed)

    def _warmstart(self, layer: int, base_fired: np.ndarray):
        """The layer's warm-start analysis, or None unless both runs exist and start from the base SAE (the
        independent comparison's base SAE, whose latents firing on the held-out tokens are ``base_fired``: a
        latent fires on some token exactly when some document's max is positive)."""
        runs = self.saes.warm_runs(layer)
        if runs is None:
            return None
        s, a = self.saes, self.analysis
        start, domain, control = (load(d) for d in runs)
        return warmstart.analyze_layer(layer, start, domain, control, self._rows(s.base, layer),
                                       self._rows(s.domain, layer), self.held, self.doc_of_row, fdr=a.fdr,
                                       min_auroc=a.min_auroc, seed=a.seed, start_fired=base_fired)

    def _independent(self, layer: int, progress=None) -> LayerResult:
        """The independent-SAE comparison (:func:`finsae.analysis.compare.compare_layer`)."""
        s = self.saes
        saes = {m: load(s.path(m, layer)) for m in (s.base, s.domain)}
        inp = LayerInputs(
            layer=layer, base_name=s.base, domain_name=s.domain, base=saes[s.base], domain=saes[s.domain],
            base_acts=self._rows(s.base, layer), domain_acts=self._rows(s.domain, layer),
            doc_of_row=self.doc_of_row, char_start=self.char_start, heldout=self.held,
            base_seed=s.seed_sae(s.base, layer, saes[s.base]), domain_seed=s.seed_sae(s.domain, layer, saes[s.domain]),
        )
        inp.adjacent_layer, inp.adjacent = s.adjacent_sae(s.base, layer)
        with one_thread():
            return compare_layer(inp, self.analysis, progress=progress)


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
            return -sum(job.saes.has_seed_repeat(m, layer) for m in (job.saes.base, job.saes.domain))

        with one_thread_pool(n_jobs, job) as pool:
            futures = {pool.submit(_compare_in_worker, layer): layer for layer in sorted(layers, key=cost)}
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
                bar.update()
    finally:
        bar.close()


def _compare_in_worker(layer: int) -> LayerOutcome:
    return worker_state().compare(layer)


def write_outcome(folder: Path, layer: int, outcome: LayerOutcome, meta: dict) -> Path:
    """One layer's folder (:func:`finsae.analysis.artifacts.write_layer`) and its contexts; a crosscoder that is
    gone now leaves no stale contexts for labeling."""
    res = outcome.result
    for model, ctx in res.contexts.items():
        write_contexts(ctx, folder, model, layer)
    if crosscoder.CONTEXT_MODEL not in res.contexts:
        artifacts.contexts_path(folder, crosscoder.CONTEXT_MODEL, layer).unlink(missing_ok=True)
    tables = {artifacts.LAYER_ROW: pd.DataFrame([res.row]), "features": res.features, "curves": res.curves,
              **outcome.methods}
    return artifacts.write_layer(folder, layer, tables, meta)


def describe_layer(layer: int, outcome: LayerOutcome) -> list[str]:
    """The lines the stage prints as a layer ends."""
    r = outcome.result.row
    lines = [f"layer {layer}: overlap {r['overlap']:.3f} (seed ceilings {r['overlap_seed_ceiling_base']:.3f} base / "
             f"{r['overlap_seed_ceiling_domain']:.3f} domain, covariance null {r['overlap_null']:.3f}), financial "
             f"{r['n_financial_base']} base / {r['n_financial']} domain, specialized {r['n_specialized']}; on domain "
             f"seed 1's financial latents {r['n_specialized_seed1']} unmatched in base vs seed floor "
             f"{r['n_specialized_seed_floor']}"]
    if "crosscoder" in outcome.methods:
        lines.append(f"layer {layer}: crosscoder {r['n_shared']} shared / {r['n_base_only']} base-only / "
                     f"{r['n_domain_only']} domain-only (seed stability {r['crosscoder_seed_stability']:.2f})")
    if "warmstart" in outcome.methods:
        lines.append(f"layer {layer}: warm start {r['n_changed']} changed latents vs {r['n_changed_control']} in "
                     f"the control run")
    return lines
