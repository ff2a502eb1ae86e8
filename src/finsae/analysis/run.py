"""The analysis stage's steps, on typed settings: build the held-out set, extract its activations through the
cache, compare layer by layer (:mod:`finsae.analysis.layers`), and combine the per-layer folders into the pair's
tables, findings, summary and figures (:mod:`finsae.analysis.artifacts`).

Every run (one layer of a multirun or all layers) recombines the per-layer folders whose settings match its
own, so ``--multirun layer=0,1,...`` and a single run give the same tables.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from finsae.activations import build_activations
from finsae.activations.config import ExtractConfig
from finsae.analysis import artifacts
from finsae.analysis.config import AnalysisConfig
from finsae.analysis.comparison import refresh_comparison
from finsae.analysis.findings import findings_markdown
from finsae.analysis.heldout import HeldoutSet, heldout_set, normalize_text, twin_training_texts
from finsae.analysis.layers import LayerJob
from finsae.analysis.methods import METHODS
from finsae.analysis.saes import PairSaes
from finsae.analysis.summary import AnalysisSummary
from finsae.finetune.summary import FinetuneSummary
from finsae.models import get_spec, load_model
from finsae.paths import activations_root, model_dir
from finsae.provenance import source_fingerprint
from finsae.summary import SUMMARY_FILE

log = logging.getLogger("finsae")


@dataclass(frozen=True)
class SaeMix:
    """The SAE training mix (``data:`` of ``train.py``, which builds it the same way): its texts never enter
    the held-out set's genre contrast twice."""

    corpora: tuple[str, ...]
    max_chars_per_corpus: int | None
    max_docs: int | None


@dataclass(frozen=True)
class Settings:
    """What one analysis run reads and how."""

    pair: str
    saes: PairSaes
    data_dir: Path
    analysis: AnalysisConfig
    activations: ExtractConfig
    eval_start: str
    mix: SaeMix
    twin_test_frac: float
    """``test_frac`` of the twin's fine-tune split (its texts are excluded from the held-out set)."""
    progress_bar: bool = True

    @property
    def artifacts(self) -> Path:
        return Path(self.saes.artifacts)

    def layer_meta(self, layer: int) -> dict:
        """What makes one layer's result what it is (a recombination only merges layers with equal settings,
        the layer itself and SAE versions aside)."""
        s = self.saes
        analysis = {k: v for k, v in asdict(self.analysis).items() if k != "jobs"}  # how it ran, not what it measured
        settings = {"pair": self.pair, "base": s.base, "domain": s.domain, "tag": s.tag, "seed_tag": s.seed_tag,
                    "seed_tags": list(s.seed_tags),
                    "analysis": analysis, "eval_start": self.eval_start, "activations": dict(vars(self.activations))}
        return {"settings": settings, "layer": layer, "saes": s.versions(layer, self.analysis),
                "code": source_fingerprint(), "methods": list(METHODS)}


def reusable_layers(folder: Path, st: Settings, layers: list[int]) -> list[int]:
    """The layers of ``layers`` whose stored result (``layers/layer_i``, its ``meta.json`` written last) was
    made with this run's settings, this code and these SAE versions (:meth:`Settings.layer_meta`): read, not
    recomputed."""
    def current(layer: int) -> dict:
        return json.loads(json.dumps(st.layer_meta(layer)))  # as stored (tuples as lists)

    return [layer for layer in layers
            if artifacts.read_layer_meta(artifacts.layer_dir(folder, layer)) == current(layer)]


def build_heldout(st: Settings) -> HeldoutSet:
    """The held-out passages (:func:`finsae.analysis.heldout.heldout_set`), without the twin's fine-tune texts
    and beside the SAE mix."""
    a = st.analysis
    return heldout_set(st.data_dir, docs_per_side=a.docs_per_side, docs_per_category=a.docs_per_category,
                       genre_docs=a.genre_docs, max_chars=a.max_chars, seed=a.seed, eval_start=st.eval_start,
                       exclude_texts=_twin_texts(st), match_length=a.match_length, sae_mix_texts=_sae_mix_texts(st))


def _sae_mix_texts(st: Settings) -> frozenset[str]:
    """Normalised texts of the SAE training mix."""
    from finsae.data.mix import mixed_corpus

    m = st.mix
    mix = mixed_corpus(list(m.corpora), st.data_dir, "train", m.max_chars_per_corpus, m.max_docs, st.eval_start)
    return frozenset(normalize_text(t) for t in mix.frame["text"])


def _twin_texts(st: Settings) -> frozenset[str]:
    """The finance twin's fine-tune texts, with the data-split seed its summary records (0 when it has no summary:
    a registry model)."""
    seed = 0
    folder = model_dir(st.artifacts, st.saes.domain)
    if (folder / SUMMARY_FILE).is_file():
        seed = FinetuneSummary.read(folder).split_seed
    return twin_training_texts(st.data_dir, st.twin_test_frac, seed)


def layer_job(st: Settings, held: HeldoutSet, layers: list[int]) -> LayerJob:
    """Extract both models' held-out activations (every layer in the one forward pass, so that a later run or a
    multirun job of another layer reuses the cache) and bundle what each layer's comparison reads. With
    ``analysis.jobs`` > 1 each model's extraction runs first in a one-thread worker process of its own, side by
    side; this process then opens the cached entries."""
    s = st.saes
    models = (s.base, s.domain)
    if st.analysis.jobs > 1:
        from finsae.workers import one_thread_pool

        with one_thread_pool(min(st.analysis.jobs, len(models)), (st, held.corpus, layers)) as pool:
            list(pool.map(_extract_in_worker, models))
    stores = {}
    for m in models:
        stores[m] = _heldout_stores(st, m, held.corpus, layers, align_with=stores.get(s.base))
    table = stores[s.base][layers[0]].table
    doc_of_row = pd.Index(held.corpus.frame["doc_id"]).get_indexer(table.doc_ids)[table.column("doc")]
    arrays = {(m, layer): stores[m][layer].array for m in models for layer in layers}
    return LayerJob(s, st.analysis, arrays, doc_of_row, table.column("char_start"), held)


def _heldout_stores(st: Settings, model: str, corpus, layers: list[int], align_with=None):
    """``model``'s held-out activation stores at every layer (built where the cache has none)."""
    loaded = load_model(get_spec(model), st.artifacts)
    every = sorted(set(range(loaded.num_layers)) | set(layers))
    return build_activations(loaded, corpus, every, activations_root(st.artifacts), st.activations,
                             progress=st.progress_bar, align_with=align_with,
                             eval_start=st.eval_start)


def _extract_in_worker(model: str) -> None:
    """One model's held-out activations into the cache (run by a worker of :func:`layer_job`)."""
    from finsae.workers import worker_state

    st, corpus, layers = worker_state()
    _heldout_stores(st, model, corpus, layers)


def combine(folder: Path, st: Settings, counts: dict,
            median_chars: dict | None = None) -> tuple[AnalysisSummary, dict[str, pd.DataFrame]]:
    """Merge every ``layers/layer_i`` whose settings equal this run's into the pair's tables and findings; the
    summary (its ``seconds`` left to the caller) and the combined frames."""
    a, s = st.analysis, st.saes
    parts: dict[str, list] = {artifacts.LAYER_ROW: []}
    layers = []
    for meta, tables in artifacts.layer_folders(folder):
        layer = int(meta["layer"])
        if meta["settings"] != st.layer_meta(layer)["settings"]:
            log.warning("skipping %s: analysed with other settings (rerun analyze.py for that layer)",
                        artifacts.layer_dir(folder, layer))
            continue
        layers.append(layer)
        for n, frame in tables().items():
            parts.setdefault(n, []).append(frame)
    frames = {n: pd.concat(p, ignore_index=True) for n, p in parts.items()}
    frames[artifacts.LAYERS_TABLE] = frames.pop(artifacts.LAYER_ROW)
    artifacts.write_tables(folder, frames)
    L = frames["layers"]
    comparison = refresh_comparison(st.artifacts, st.pair, a.lens, (s.base, s.domain))
    artifacts.write_findings(folder, findings_markdown(L, st.pair, s.base, s.domain, a.tau, a.min_auroc, a.fdr,
                                                       counts, median_chars, comparison=comparison))
    floor = L["n_specialized_seed_floor"].notna()
    summary = AnalysisSummary(
        pair=st.pair, base=s.base, domain=s.domain, tag=s.tag, seed_tag=s.seed_tag, layers=layers,
        tau=a.tau, fdr=a.fdr, min_auroc=a.min_auroc, n_financial=int(L["n_financial"].sum()),
        n_financial_base=int(L["n_financial_base"].sum()), n_specialized=int(L["n_specialized"].sum()),
        n_specialized_seed_floor=int(L.loc[floor, "n_specialized_seed_floor"].sum()),
        n_specialized_at_floor_layers=int(L.loc[floor, "n_specialized"].sum()),
        n_specialized_seed1=int(L.loc[floor, "n_specialized_seed1"].sum()),
        mean_overlap=float(L["overlap"].mean()), mean_overlap_seed_ceiling=float(L["overlap_seed_ceiling"].mean()),
        docs=counts,
    )
    return summary, frames


def figures(frames: dict[str, pd.DataFrame], st: Settings) -> dict:
    """Every figure of the combined tables, by name (the file name under ``plots/``): each method's."""
    figs = {}
    for method in METHODS.values():
        figs.update(method.figures(frames, st.analysis, st.pair))
    return figs


def layer_metrics(row: dict) -> dict[str, float]:
    """The finite numbers of a layer's ``layers.parquet`` row (what the tracker logs per layer)."""
    return {f"layer/{k}": v for k, v in row.items() if isinstance(v, (int, float)) and np.isfinite(v)}
