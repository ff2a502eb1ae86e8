"""Glue of `python analyze.py`: find the pair's SAEs, extract held-out activations through the cache, compare
layer by layer (:func:`finsae.analysis.compare.compare_layer`), and write tables, plots, contexts and findings.

Layout (``artifacts/analysis/{pair}/``)::

    layers/layer_{i}/{row,features,curves}.parquet + meta.json   one layer's results (what a multirun job adds)
    layers/layer_{i}/{crosscoder,warmstart}.parquet              when that layer's crosscoder / warm starts exist
    layers.parquet features.parquet curves.parquet               all layers analysed with the same settings
    crosscoder.parquet warmstart.parquet                         all layers that have them
    contexts/{model}/layer_{i}.parquet                           for the labeling stage (model `crosscoder` too)
    plots/*.png  findings.md  summary.json

Beside the independent-SAE comparison, each layer runs the two diffing methods that need no matching when
their SAEs exist (else their columns are absent or NaN and findings.md says "not run"): the pair's crosscoder
(``artifacts/sae/crosscoder_{base}_{domain}/layer_{i}/{tag}``, and ``{seed_tag}`` for its seed stability;
:func:`finsae.analysis.crosscoder.analyze_layer`) and the warm-started runs (``{domain}/layer_{i}/{tag}_warm_domain``
and ``{base}/layer_{i}/{tag}_warm_control``, both continued from ``{base}/layer_{i}/{tag}``;
:func:`finsae.analysis.warmstart.analyze_layer`).

Every run (one layer of a multirun or all layers) recombines the per-layer folders whose settings match its
own, so ``--multirun layer=0,1,...`` and a single run give the same tables.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from finsae.activations import build_activations
from finsae.activations.paired import PairedArray
from finsae.analysis import crosscoder, warmstart
from finsae.analysis.compare import LayerInputs, compare_layer
from finsae.analysis.contexts import contexts_path, write_contexts
from finsae.analysis.evolution import all_figures
from finsae.analysis.findings import findings_markdown
from finsae.analysis.heldout import heldout_set, twin_training_texts
from finsae.analysis.method_plots import method_figures
from finsae.analysis.summary import AnalysisSummary
from finsae.atomic import SPACE_RESERVE_GB, check_writable, locked, write_json
from finsae.errors import ConfigError, DataMissingError
from finsae.glue.app import resolved_config
from finsae.glue.schemas import pair_name
from finsae.glue.tracking import stage_run
from finsae.models import get_spec, load_model
from finsae.models.loading import model_config
from finsae.paths import activations_root, analysis_dir, crosscoder_name, model_dir, sae_dir
from finsae.sae import load, read_meta
from finsae.sae.io import check_weights, is_sae_dir
from finsae.sae.summary import SaeSummary
from finsae.workers import one_thread, one_thread_pool, worker_state

log = logging.getLogger("finsae")
LAYER_FILES = ("row", "features", "curves")
METHOD_TABLES = {"crosscoder": crosscoder.write_crosscoder, "warmstart": warmstart.write_warmstart}
"""Per-layer tables of the crosscoder and warm-start methods (present only for layers whose SAEs exist)."""



def train_command(model: str, layer: int, tag: str) -> str:
    seed = " seed=1" if tag.endswith("_seed1") else ""
    return f"python train.py experiment=demo model={model} layer={layer} tag={tag}{seed}"


def resolve_layers(cfg, artifacts: Path) -> list[int]:
    """The layers to compare; every one must have a finished SAE of ``tag`` for both models (one line naming
    the first missing one and the command that trains it)."""
    base, domain, tag = cfg.pair.base, cfg.pair.domain, cfg.tag
    wanted = cfg.selected_layers
    if wanted is None:
        roots = [Path(artifacts) / "sae" / m for m in (base, domain)]
        found = [{int(p.name.split("_", 1)[1]) for p in r.glob("layer_*") if is_sae_dir(p / tag)} for r in roots]
        wanted = sorted(found[0] & found[1])
        if not wanted:
            raise DataMissingError(f"SAEs tagged {tag!r} for both {base} and {domain}",
                                   Path(artifacts) / "sae", f"Train them: `{train_command(base, 3, tag)}` and "
                                   f"`{train_command(domain, 3, tag)}` (or `make saes` for every layer)")
    n_layers = model_config(get_spec(base), artifacts).num_hidden_layers
    for layer in wanted:
        if not -1 <= layer < n_layers:
            raise ConfigError(f"layer {layer} is out of range for {base} ({n_layers} layers: -1 .. {n_layers - 1})")
        for m in (base, domain):
            d = sae_dir(artifacts, m, layer, tag)
            if not is_sae_dir(d):
                raise DataMissingError(f"SAE {m} layer {layer} [{tag}]", d, f"Train it: `{train_command(m, layer, tag)}`")
        d_base = read_meta(sae_dir(artifacts, base, layer, tag))["d_in"]
        d_dom = read_meta(sae_dir(artifacts, domain, layer, tag))["d_in"]
        if d_base != d_dom:
            raise ConfigError(f"layer {layer}: SAE of {base} reads d_in={d_base} but SAE of {domain} reads d_in={d_dom}; "
                              f"a pair must share the layer width (same architecture)")
    settings = {(m, layer): _setting(sae_dir(artifacts, m, layer, tag)) for layer in wanted for m in (base, domain)}
    if len(set(settings.values())) > 1:
        groups: dict = {}
        for (m, layer), st in settings.items():
            groups.setdefault(st, []).append(f"{m} L{layer}")
        desc = "; ".join(f"{n} latents k={k} {t:,} tokens: {', '.join(v)}" for (n, k, t), v in groups.items())
        raise ConfigError(f"the {tag!r} SAEs differ in setting across the layers asked for ({desc}); compare one "
                          f"setting at a time (layers=[...]) or retrain the odd ones (overwrite=true)")
    for layer in wanted:  # a garbage or cut file named now, not in a worker after the held-out extraction
        for m in (base, domain):
            check_weights(sae_dir(artifacts, m, layer, tag))
            seed = sae_dir(artifacts, m, layer, cfg.seed_tag or f"{tag}_seed1")
            if is_sae_dir(seed):
                check_weights(seed)
    return list(wanted)


def _setting(path: Path) -> tuple[int, int, int]:
    meta = read_meta(path)
    return int(meta["num_latents"]), int(meta["k"]), int(meta.get("extra", {}).get("tokens", meta.get("tokens_seen", 0)))


def _seed_sae(artifacts: Path, model: str, layer: int, tag: str, seed_tag: str, main):
    d = sae_dir(artifacts, model, layer, seed_tag)
    if not is_sae_dir(d):
        return None
    sae = load(d)
    if (sae.num_latents, sae.k) != (main.num_latents, main.k):
        log.warning("seed repeat %s has %d latents / k=%d but %s has %d / k=%d: no seed ceiling from it",
                    d, sae.num_latents, sae.k, tag, main.num_latents, main.k)
        return None
    return sae


def _sae_mix_texts(cfg) -> frozenset[str]:
    """Normalised texts of the SAE training mix (``data:`` as in ``train.py``, which builds it the same way)."""
    from finsae.analysis.heldout import normalize_text
    from finsae.data.mix import mixed_corpus

    d = cfg.data
    mix = mixed_corpus(list(d.corpora), cfg.paths.data_dir, "train", d.max_chars_per_corpus, d.max_docs,
                       d.eval_start)
    return frozenset(normalize_text(t) for t in mix.frame["text"])


def _twin_texts(data_dir, artifacts: Path, domain: str) -> frozenset[str]:
    """The finance twin's fine-tune texts, with its split's ``test_frac`` (the fine-tune schema's, declared
    there once) and the seed its summary records (0 when the twin has no summary: a registry model)."""
    from finsae.glue.schemas import FinetuneSchema

    seed = 0
    summary = model_dir(artifacts, domain) / "summary.json"
    if summary.is_file():
        seed = int(json.loads(summary.read_text()).get("seed", 0))
    return twin_training_texts(data_dir, FinetuneSchema().test_frac, seed)


def _adjacent_sae(artifacts: Path, model: str, layer: int, tag: str):
    """``(layer, SAE)`` of ``model`` at the layer below (else above) ``layer`` with the same tag, or
    ``(None, None)``: the adjacent-layer null dictionary."""
    for other in (layer - 1, layer + 1):
        d = sae_dir(artifacts, model, other, tag)
        if other >= -1 and is_sae_dir(d):
            return other, load(d)
    return None, None


def _meta(cfg, pair: str, layer: int, artifacts: Path, seed_tag: str) -> dict:
    """What makes one layer's result what it is (a recombination only merges layers with equal settings,
    the layer itself and SAE versions aside)."""
    analysis = {k: v for k, v in vars(cfg.analysis).items() if k != "jobs"}  # how it ran, not what it measured
    settings = {"pair": pair, "base": cfg.pair.base, "domain": cfg.pair.domain, "tag": cfg.tag,
                "seed_tag": seed_tag, "analysis": analysis, "eval_start": cfg.data.eval_start,
                "activations": dict(vars(cfg.activations))}
    saes = {}
    for m, t in _method_saes(cfg.pair.base, cfg.pair.domain, cfg.tag, seed_tag):
        d = sae_dir(artifacts, m, layer, t)
        if is_sae_dir(d):
            saes[f"{m}/{t}"] = SaeSummary.read(d).to_dict().get("tokens")
    return {"settings": settings, "layer": layer, "saes": saes}


def _method_saes(base: str, domain: str, tag: str, seed_tag: str) -> list[tuple[str, str]]:
    """(model folder, tag) of every SAE a layer's result reads."""
    xc = crosscoder_name(base, domain)
    return [(base, tag), (base, seed_tag), (domain, tag), (domain, seed_tag), (xc, tag), (xc, seed_tag),
            (domain, tag + warmstart.DOMAIN_SUFFIX), (base, tag + warmstart.CONTROL_SUFFIX)]


def run(cfg, raw) -> AnalysisSummary:
    t0 = time.time()
    artifacts = Path(cfg.paths.artifacts)
    pair = pair_name(cfg)
    base, domain = cfg.pair.base, cfg.pair.domain
    seed_tag = cfg.seed_tag or f"{cfg.tag}_seed1"
    a = cfg.analysis
    out = analysis_dir(artifacts, pair)
    check_writable(artifacts, "artifacts folder")
    check_writable(out, "analysis folder", make=False)
    check_writable(activations_root(artifacts), "activation cache", make=False, reserve_gb=SPACE_RESERVE_GB)
    layers = resolve_layers(cfg, artifacts)
    out.mkdir(parents=True, exist_ok=True)

    held = heldout_set(cfg.paths.data_dir, docs_per_side=a.docs_per_side, docs_per_category=a.docs_per_category,
                       max_chars=a.max_chars, seed=a.seed, eval_start=cfg.data.eval_start,
                       exclude_texts=_twin_texts(cfg.paths.data_dir, artifacts, domain), match_length=a.match_length,
                       sae_mix_texts=_sae_mix_texts(cfg))
    counts = held.counts()
    print("analyze: held-out passages " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    root = activations_root(artifacts)
    stores = {}
    for m in (base, domain):
        loaded = load_model(get_spec(m), artifacts)
        # every layer in the one forward pass, so that a later run (or a multirun job) of another layer reuses it
        every = sorted(set(range(loaded.num_layers)) | set(layers))
        stores[m] = build_activations(loaded, held.corpus, every, root, cfg.activations, progress=cfg.progress_bar,
                                      align_with=stores.get(base), eval_start=cfg.data.eval_start)
        del loaded
    frame = held.corpus.frame
    some = stores[base][layers[0]]
    table = some.table
    doc_of_row = pd.Index(frame["doc_id"]).get_indexer(table.doc_ids)[table.column("doc")]
    char_start = table.column("char_start")

    with stage_run("analyze", resolved_config(raw), Path(cfg.paths.output_dir), cfg.logger,
                   group=cfg.logger.group or f"analyze-{pair}", tags=list(cfg.logger.tags) + [pair],
                   name=f"analyze-{pair}-{'-'.join(map(str, layers))}") as tracker:
        job = _LayerJob(artifacts, base, domain, cfg.tag, seed_tag, a,
                        {(m, layer): stores[m][layer].array for m in (base, domain) for layer in layers},
                        doc_of_row, char_start, held)
        rows = {}
        for layer, (res, tables) in _compare_layers(job, layers, a.jobs, cfg.progress_bar):
            _write_layer(out, layer, res, tables, _meta(cfg, pair, layer, artifacts, seed_tag))  # as each ends
            rows[layer] = r = res.row
            print(f"analyze: layer {layer}: overlap {r['overlap']:.3f} (seed ceilings {r['overlap_seed_ceiling_base']:.3f}"
                  f" base / {r['overlap_seed_ceiling_domain']:.3f} domain, covariance null {r['overlap_null']:.3f}), "
                  f"financial {r['n_financial_base']} base / {r['n_financial']} domain, specialized "
                  f"{r['n_specialized']}; on domain seed 1's financial latents {r['n_specialized_seed1']} unmatched in "
                  f"base vs seed floor {r['n_specialized_seed_floor']}")
            if "crosscoder" in tables:
                print(f"analyze: layer {layer}: crosscoder {r['n_shared']} shared / {r['n_base_only']} base-only / "
                      f"{r['n_domain_only']} domain-only (seed stability {r['crosscoder_seed_stability']:.2f})")
            if "warmstart" in tables:
                print(f"analyze: layer {layer}: warm start {r['n_changed']} changed latents vs "
                      f"{r['n_changed_control']} in the control run")
        for layer in sorted(rows):  # W&B steps must increase
            tracker.log({f"layer/{k}": v for k, v in rows[layer].items()
                         if isinstance(v, (int, float)) and np.isfinite(v)}, step=layer + 1)
        with locked([out / "combined"]):
            summary, frames = combine(out, cfg, pair, seed_tag, counts, artifacts, held.median_chars())
        summary.seconds = round(time.time() - t0, 1)
        summary.write(out, Path(cfg.paths.output_dir))
        tracker.log_table("analysis_layers", frames["layers"])
        tracker.log_table("analysis_financial_features",
                          frames["features"][frames["features"]["financial"]].head(2000))
        figs = all_figures(frames["layers"], frames["features"], a.tau, a.min_auroc, pair)
        figs.update(method_figures(frames["layers"], frames.get("crosscoder"), frames.get("warmstart"), pair))
        for name, fig in figs.items():
            fig.savefig(out / "plots" / f"{name}.png", dpi=120)
            tracker.log_figure(name, fig)
        tracker.log_artifact(out, f"analysis-{pair}", "analysis", metadata=summary.scalars())
        tracker.finish(summary.scalars())
    print(f"analyze: {pair} layers {summary.layers}: {summary.n_financial} financial / {summary.n_specialized} "
          f"specialized domain latents -> {out} ({summary.seconds:.0f} s)")
    return summary


class _LayerJob(NamedTuple):
    """What comparing one layer reads; sent once to each worker process (the activation arrays pickle as
    their shard paths, the held-out set as its passages)."""

    artifacts: Path
    base: str
    domain: str
    tag: str
    seed_tag: str
    analysis: object
    arrays: dict
    """(model, layer) -> memory-mapped held-out activations."""
    doc_of_row: np.ndarray
    char_start: np.ndarray
    held: object

    def compare(self, layer: int, progress=None):
        """One layer's comparison and, where their SAEs exist, its crosscoder and warm-start analyses, on one
        thread (so the result does not depend on ``analysis.jobs``): ``(LayerResult, {table name: frame})``,
        the methods' ``layers.parquet`` columns added to the result's row."""
        res = self._independent(layer, progress)
        tables = {}
        with one_thread():
            xc = self._crosscoder(layer)
            if xc is not None:
                res.row.update(xc.summary)
                res.contexts[crosscoder.CONTEXT_MODEL] = xc.contexts
                tables["crosscoder"] = xc.table
            ws = self._warmstart(layer)
            if ws is not None:
                res.row.update(ws.summary)
                tables["warmstart"] = ws.table
        return res, tables

    def _crosscoder(self, layer: int):
        """The layer's crosscoder analysis, or None without a crosscoder of ``tag`` (seed 1: ``seed_tag``)."""
        name = crosscoder_name(self.base, self.domain)
        found = [_pair_crosscoder(sae_dir(self.artifacts, name, layer, t), self.base, self.domain,
                                  self.arrays[self.base, layer].shape[1]) for t in (self.tag, self.seed_tag)]
        if found[0] is None:
            return None

        def rows(scales):
            return PairedArray(self.arrays[self.base, layer], self.arrays[self.domain, layer], scales)

        (sae, scales), seed1 = found[0], found[1]
        a = self.analysis
        return crosscoder.analyze_layer(
            layer, sae, rows(scales), self.held, self.doc_of_row, self.char_start,
            sae_seed1=seed1[0] if seed1 else None, paired_rows_seed1=rows(seed1[1]) if seed1 else None,
            tau=a.tau, fdr=a.fdr, min_auroc=a.min_auroc, seed=a.seed)

    def _warmstart(self, layer: int):
        """The layer's warm-start analysis, or None unless both runs exist and start from the base SAE."""
        start = sae_dir(self.artifacts, self.base, layer, self.tag)
        runs = [sae_dir(self.artifacts, self.domain, layer, self.tag + warmstart.DOMAIN_SUFFIX),
                sae_dir(self.artifacts, self.base, layer, self.tag + warmstart.CONTROL_SUFFIX)]
        if not all(is_sae_dir(d) and _started_from(d, start) for d in runs):
            return None
        a = self.analysis
        return warmstart.analyze_layer(layer, load(start), load(runs[0]), load(runs[1]),
                                       self.arrays[self.base, layer], self.arrays[self.domain, layer], self.held,
                                       self.doc_of_row, fdr=a.fdr, min_auroc=a.min_auroc, seed=a.seed)

    def _independent(self, layer: int, progress=None):
        """The independent-SAE comparison (:func:`finsae.analysis.compare.compare_layer`)."""
        saes = {m: load(sae_dir(self.artifacts, m, layer, self.tag)) for m in (self.base, self.domain)}
        inp = LayerInputs(
            layer=layer, base_name=self.base, domain_name=self.domain, base=saes[self.base],
            domain=saes[self.domain], base_acts=self.arrays[self.base, layer],
            domain_acts=self.arrays[self.domain, layer], doc_of_row=self.doc_of_row, char_start=self.char_start,
            heldout=self.held,
            base_seed=_seed_sae(self.artifacts, self.base, layer, self.tag, self.seed_tag, saes[self.base]),
            domain_seed=_seed_sae(self.artifacts, self.domain, layer, self.tag, self.seed_tag, saes[self.domain]),
        )
        inp.adjacent_layer, inp.adjacent = _adjacent_sae(self.artifacts, self.base, layer, self.tag)
        with one_thread():
            return compare_layer(inp, self.analysis, progress=progress)


def _compare_layers(job: _LayerJob, layers: list[int], jobs: int, progress_bar: bool):
    """Yield ``(layer, LayerResult)`` as each layer finishes: here when ``jobs`` is 1 or one layer is asked
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
            return -sum(is_sae_dir(sae_dir(job.artifacts, m, layer, job.seed_tag)) for m in (job.base, job.domain))

        with one_thread_pool(n_jobs, job) as pool:
            futures = {pool.submit(_compare_in_worker, layer): layer for layer in sorted(layers, key=cost)}
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
                bar.update()
    finally:
        bar.close()


def _pair_crosscoder(path: Path, base: str, domain: str, d_model: int):
    """``(crosscoder, block scales)`` in ``path`` when it is one of this pair at this width, else None (a
    mismatch is logged, never fatal: the method then reads "not run")."""
    if not is_sae_dir(path):
        return None
    info = (read_meta(path).get("extra") or {}).get("crosscoder") or {}
    if (info.get("base"), info.get("domain"), info.get("d_model")) != (base, domain, d_model):
        log.warning("%s is not a crosscoder of %s vs %s at width %d (cfg.json extra.crosscoder %s): skipped",
                    path, base, domain, d_model, info)
        return None
    return crosscoder.load_crosscoder(path)


def _started_from(run: Path, start: Path) -> bool:
    """The warm-started SAE in ``run`` was continued from the SAE in ``start`` (its cfg.json init_from)."""
    init = (read_meta(run).get("extra") or {}).get("init_from")
    ok = init is not None and Path(init).parts[-3:] == start.parts[-3:]
    if not ok:
        log.warning("%s was not warm-started from %s (cfg.json extra.init_from=%s): no warm-start analysis",
                    run, start, init)
    return ok


def _compare_in_worker(layer: int):
    return worker_state().compare(layer)


def _write_layer(out: Path, layer: int, res, tables: dict, meta: dict) -> None:
    d = out / "layers" / f"layer_{layer}"
    d.mkdir(parents=True, exist_ok=True)
    for model, ctx in res.contexts.items():
        write_contexts(ctx, out, model, layer)
    if crosscoder.CONTEXT_MODEL not in res.contexts:  # no crosscoder here now: no stale contexts for labeling
        contexts_path(out, crosscoder.CONTEXT_MODEL, layer).unlink(missing_ok=True)
    frames = {"row": pd.DataFrame([res.row]), "features": res.features, "curves": res.curves, **tables}
    for name in (*LAYER_FILES, *METHOD_TABLES):
        if name not in frames:  # a method that did not run here: no stale table of an earlier run
            (d / f"{name}.parquet").unlink(missing_ok=True)
            continue
        tmp = d / f"{name}.parquet.tmp"
        frames[name].to_parquet(tmp, index=False)
        tmp.replace(d / f"{name}.parquet")
    write_json(d / "meta.json", meta)


def combine(out: Path, cfg, pair: str, seed_tag: str, counts: dict, artifacts: Path,
            median_chars: dict | None = None):
    """Merge every ``layers/layer_i`` whose settings equal this run's into the pair's tables and findings."""
    a = cfg.analysis
    parts = {n: [] for n in LAYER_FILES}
    layers = []
    for d in sorted((out / "layers").glob("layer_*"), key=lambda p: int(p.name.split("_", 1)[1])):
        try:
            meta = json.loads((d / "meta.json").read_text())
        except (OSError, ValueError):
            continue
        layer = int(meta["layer"])
        if meta["settings"] != _meta(cfg, pair, layer, artifacts, seed_tag)["settings"]:
            log.warning("skipping %s: analysed with other settings (rerun analyze.py for that layer)", d)
            continue
        layers.append(layer)
        for n in LAYER_FILES:
            parts[n].append(pd.read_parquet(d / f"{n}.parquet"))
        for n in METHOD_TABLES:
            if (d / f"{n}.parquet").is_file():
                parts.setdefault(n, []).append(pd.read_parquet(d / f"{n}.parquet"))
    frames = {n: pd.concat(p, ignore_index=True) for n, p in parts.items()}
    for n in LAYER_FILES:
        tmp = out / f"{'layers' if n == 'row' else n}.parquet.tmp"
        frames[n].to_parquet(tmp, index=False)
        tmp.replace(tmp.with_suffix(""))
    for n, write in METHOD_TABLES.items():
        if n in frames:
            write(frames[n], out)
        else:  # no layer has it now: drop an earlier run's table
            (out / f"{n}.parquet").unlink(missing_ok=True)
    frames["layers"] = frames.pop("row")
    L = frames["layers"]
    (out / "plots").mkdir(exist_ok=True)
    (out / "findings.md").write_text(findings_markdown(L, pair, cfg.pair.base, cfg.pair.domain, a.tau,
                                                       a.min_auroc, a.fdr, counts, median_chars))
    floor = L["n_specialized_seed_floor"].notna()
    summary = AnalysisSummary(
        pair=pair, base=cfg.pair.base, domain=cfg.pair.domain, tag=cfg.tag, seed_tag=seed_tag, layers=layers,
        tau=a.tau, fdr=a.fdr, min_auroc=a.min_auroc, n_financial=int(L["n_financial"].sum()),
        n_financial_base=int(L["n_financial_base"].sum()), n_specialized=int(L["n_specialized"].sum()),
        n_specialized_seed_floor=int(L.loc[floor, "n_specialized_seed_floor"].sum()),
        n_specialized_at_floor_layers=int(L.loc[floor, "n_specialized"].sum()),
        n_specialized_seed1=int(L.loc[floor, "n_specialized_seed1"].sum()),
        mean_overlap=float(L["overlap"].mean()), mean_overlap_seed_ceiling=float(L["overlap_seed_ceiling"].mean()),
        docs=counts,
    )
    return summary, frames
