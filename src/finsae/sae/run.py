"""The SAE stage's steps, on typed settings: the checks before any work, the activation store a run trains on,
the SAE's initialisation, and after the fit the evaluation, the summary and the published artifact
(:mod:`finsae.sae.artifact`). What differs between kinds of dictionary (one model, crosscoder, warm start,
affine null) is the run's :class:`~finsae.sae.inputs.DictionaryKind` (``Settings.kind``); these steps never
name a kind. The training loop itself is Lightning's (``finsae.glue.sae_module``); ``finsae.glue.sae_stage``
turns the config into these calls.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from finsae import __version__
from finsae.activations import ActivationBatches, build_activations, split_rows
from finsae.activations.config import ExtractConfig
from finsae.atomic import SPACE_RESERVE_GB, check_writable
from finsae.data.mix import mixed_corpus
from finsae.errors import ConfigError
from finsae.models import check_layer, load_model
from finsae.models.loading import model_config
from finsae.models.patching import sae_downstream_score
from finsae.paths import activations_root, sae_checkpoint_dir, sae_dir
from finsae.sae.artifact import publish_sae
from finsae.summary import is_published
from finsae.sae.config import SaeConfig, SaeTrainConfig
from finsae.sae.dead import DeadLatentTracker
from finsae.sae.evaluate import evaluate
from finsae.sae.inputs import KINDS, AffineFitter, DictionaryKind
from finsae.sae.io import load
from finsae.sae.run_guard import check_no_work_lost, run_lock
from finsae.sae.sparse_coder.topk import TopKSAE
from finsae.sae.summary import SaeSummary, downstream_fields
from finsae.sae.train import uniform_sample_rows


@dataclass(frozen=True)
class Settings:
    """What one SAE (or crosscoder) run reads, trains and writes."""

    artifacts: Path
    data_dir: Path
    run_dir: Path
    """The run's own output folder (Hydra's), which gets a copy of ``summary.json``."""
    sae: SaeTrainConfig
    activations: ExtractConfig
    layer: int
    tag: str
    seed: int
    model: tuple[str, str | None, int | None]
    """``model=``'s name, path and seed (task=sae)."""
    pair: tuple[str, str] | None
    """The pair's base and domain (read by the kinds that train on the pair: a crosscoder); None: none."""
    corpora: tuple[str, ...]
    max_chars_per_corpus: int | None
    max_docs: int | None
    eval_start: str
    sae_eval_frac: float
    world_size: int
    downstream_docs: int
    twin_test_frac: float
    """``test_frac`` of the fine-tune split, whose test sentences the downstream score reads."""
    resume: bool = False
    overwrite: bool = False
    skip_if_done: bool = False
    rescore: bool = False
    rebuild_cache: bool = False
    verify_cache: bool = False
    progress_bar: bool = True
    dictionary: str = "sae"
    """The kind of dictionary: a key of :data:`finsae.sae.inputs.KINDS` (chosen by ``kind_name``)."""
    affine_fit: AffineFitter | None = None
    """How the ``affine_null`` kind fits its map (the glue passes ``finsae.analysis.affine.fit_affine``)."""

    @property
    def kind(self) -> DictionaryKind:
        """The run's kind of dictionary: what it reads, publishes and records."""
        return KINDS[self.dictionary](self)

    def specs(self) -> list:
        """The model(s) whose activation caches a run reads (the kind's)."""
        return self.kind.specs()

    @property
    def name(self) -> str:
        """The name a run publishes under (``artifacts/sae/{name}/``): the model, or ``crosscoder_{base}_{domain}``."""
        return self.kind.published_name()

    @property
    def out_dir(self) -> Path:
        return sae_dir(self.artifacts, self.name, self.layer, self.tag)

    @property
    def ckpt_dir(self) -> Path:
        return sae_checkpoint_dir(self.artifacts, self.name, self.layer, self.tag)

    def sae_config(self, d_model: int) -> SaeConfig:
        """The SaeConfig of this run on ``d_model``-wide activations (one model, or a crosscoder over two)."""
        return self.kind.sae_config(d_model)

    def training_corpus(self):
        return mixed_corpus(list(self.corpora), self.data_dir, "train", self.max_chars_per_corpus, self.max_docs,
                            self.eval_start)


def nothing_to_train(st: Settings) -> bool:
    """True when the run only rescores a finished SAE or skips one (``skip_if_done``); a rescore that cannot
    work fails here."""
    if st.rescore:
        if not st.kind.downstream:
            raise ConfigError(f"rescore=true scores one model's SAE; a {st.dictionary} has no downstream "
                              f"score")
        if not is_published(st.out_dir):
            raise ConfigError(f"rescore=true needs a finished SAE in {st.out_dir}; train it first (drop rescore=true)")
        return True
    return st.skip_if_done and is_published(st.out_dir)


def check_before_work(st: Settings, rank_zero: bool = True) -> None:
    """Without loading weights (the models' config.json only): the layer exists, the pair's models have one
    shape, k fits the latents, a warm start's source fits, the batch divides over the devices, nothing finished
    or resumable would be clobbered, and every folder the run writes takes new files."""
    artifacts = st.artifacts
    specs = st.specs()
    shapes = [model_config(spec, artifacts) for spec in specs]
    if len({(s.hidden_size, s.num_hidden_layers) for s in shapes}) > 1:
        raise ConfigError(f"a {st.dictionary} run reads two models of one shape, got {specs[0].name} "
                          f"({shapes[0].num_hidden_layers} x {shapes[0].hidden_size}) and {specs[1].name} "
                          f"({shapes[1].num_hidden_layers} x {shapes[1].hidden_size})")
    shape = shapes[0]
    check_layer(st.layer, shape.num_hidden_layers)
    st.kind.precheck(st.sae_config(shape.hidden_size))
    if st.sae.batch_size % st.world_size:
        raise ConfigError(f"sae.batch_size={st.sae.batch_size} must divide evenly over {st.world_size} devices")
    check_writable(artifacts, "artifacts folder")
    # every folder the run writes (nothing made here: a sweep's checks leave no empty folders)
    check_writable(st.out_dir, "SAE folder", make=False)
    check_writable(st.ckpt_dir, "checkpoint folder", make=False)
    check_writable(activations_root(artifacts), "activation cache", make=False, reserve_gb=SPACE_RESERVE_GB)
    with run_lock(st.ckpt_dir, rank_zero):  # a run of this tag in flight says so (not that its checkpoint exists)
        check_no_work_lost(st.out_dir, st.ckpt_dir, st.resume, st.overwrite)


def downstream(st: Settings, spec, sae: TopKSAE) -> dict:
    """The downstream fields of the summary (none when ``downstream_docs=0``)."""
    if st.downstream_docs <= 0:
        return {}
    score = sae_downstream_score(spec, st.artifacts, st.data_dir, st.layer, sae, st.downstream_docs,
                                 st.twin_test_frac, st.activations.max_length)
    return downstream_fields(score, st.downstream_docs)


def rescore(st: Settings) -> SaeSummary:
    """Recompute the downstream score of the finished SAE in ``st.out_dir`` and update its summary.json."""
    out_dir = st.out_dir
    scored = downstream(st, st.kind.own_spec(), load(out_dir))
    summary = dataclasses.replace(SaeSummary.read(out_dir), **scored,
                                  rescored_code_version=__version__)
    summary.write(out_dir)
    print(f"sae: rescored {out_dir}: loss_recovered {summary.loss_recovered:.3f} "
          f"(all positions {summary.loss_recovered_all:.3f})")
    return summary


def skip(st: Settings) -> SaeSummary:
    summary = SaeSummary.read(st.out_dir)
    print(f"sae: {st.out_dir} is complete (fvu {summary.fvu:.4f}); skipping")
    return summary


@dataclass
class TrainingData:
    """What a run trains on: the corpus, the activation store, the SAE's config and its init rows."""

    corpus: Any
    store: Any
    """An :class:`~finsae.activations.ActivationStore`, or a crosscoder's :class:`PairedStore`."""
    config: SaeConfig
    init_rows: np.ndarray
    """Uniform sample of the training rows the SAE is initialised from (the same on every rank and on resume)."""
    extra: dict
    """What the published ``cfg.json`` records beside the SAE (weights hash; a crosscoder's block scales)."""
    stores: list
    """Each model's ``(loaded model, store)`` the kind read (:meth:`DictionaryKind.specs` order)."""
    kind: DictionaryKind
    """The run's kind of dictionary (it keeps what it learnt while building the store, e.g. a map's fit)."""


def _layer_store(st: Settings, spec, corpus):
    """One model's activation store at ``st.layer`` (the cache is built for all its layers in one pass)."""
    loaded = load_model(spec, st.artifacts)
    check_layer(st.layer, loaded.num_layers)
    layers = sorted(set(range(loaded.num_layers)) | {st.layer})
    stores = build_activations(loaded, corpus, layers, activations_root(st.artifacts), st.activations,
                               rebuild=st.rebuild_cache, progress=st.progress_bar, eval_start=st.eval_start,
                               verify=st.verify_cache)
    return loaded, stores[st.layer]


def training_data(st: Settings) -> TrainingData:
    """Build (or reuse) the activation cache of each model and the run's store, config and init sample."""
    corpus, kind = st.training_corpus(), st.kind
    stores = [_layer_store(st, spec, corpus) for spec in kind.specs()]
    loaded, first = stores[0]
    scfg = kind.sae_config(loaded.d_model)
    init_rows = uniform_sample_rows(split_rows(first, "train", st.sae_eval_frac), st.sae.init_sample, st.seed)
    store, extra = kind.training_store(stores, init_rows)
    return TrainingData(corpus, store, scfg, init_rows, extra, stores, kind)


def init_sae(st: Settings, sae: TopKSAE, data: TrainingData) -> None:
    """The kind's start: a trained SAE continued (warm start), else one initialised from the init sample."""
    data.kind.initialize(sae, data)


def finish(st: Settings, sae: TopKSAE, dead: DeadLatentTracker, data: TrainingData, fit_seconds: float,
           fit_start_step: int, t0: float) -> tuple[SaeSummary, np.ndarray]:
    """Evaluate the trained SAE on every ``sae_eval`` token (and downstream), publish its artifact, copy the
    summary into the run folder; returns the summary and the latents' firing frequencies."""
    s, scfg, store, corpus = st.sae, data.config, data.store, data.corpus
    steps, tokens = int(dead.updates), int(dead.tokens)
    sae.tokens_seen = tokens
    ev = evaluate(sae, ActivationBatches(store, 4096, split="sae_eval", sae_eval_frac=st.sae_eval_frac))
    freq = ev.frequency.numpy()
    summary = SaeSummary(
        model=st.name, layer=st.layer, tag=st.tag, seed=st.seed, d_in=scfg.d_in,
        num_latents=scfg.num_latents, k=scfg.k, lr=s.peak_lr(scfg.num_latents), batch_size=s.batch_size,
        steps=steps, tokens=tokens, dead_fraction=dead.dead_fraction(), dead_tokens=dead.dead_tokens,
        fvu=ev.fvu, nmse=ev.nmse, l0=ev.l0, sae_eval_tokens=ev.tokens,
        sae_eval_never_fired_fraction=ev.never_fired_fraction, corpus=corpus.name,
        corpus_hash=corpus.content_hash()[:16], activation_tokens=len(store), code_version=__version__,
        fit_seconds=round(fit_seconds, 1), activation_dtype=str(store.manifest.get("compute_dtype", "")),
        tokens_per_second_train=round((steps - int(fit_start_step)) * s.batch_size / max(fit_seconds, 1e-9)),
        **(downstream(st, data.kind.own_spec(), sae) if data.kind.downstream else {}),
        **data.kind.summary_fields(data, freq),
    )
    summary.seconds = round(time.time() - t0, 1)
    publish_sae(st.out_dir, sae, summary, freq, extra={
        "tokens": tokens, "model": st.name, "layer": st.layer, "corpus": corpus.name,
        **({"init_from": str(s.init_from)} if s.init_from else {}), **data.extra})
    summary.write(st.run_dir)
    return summary, freq


def describe(st: Settings, summary: SaeSummary) -> str:
    """The run's last console line."""
    return (f"sae: {st.name} layer {st.layer} [{st.tag}] fvu {summary.fvu:.4f} l0 {summary.l0:.1f} "
            f"dead {summary.dead_fraction:.2%} loss_recovered {summary.loss_recovered:.3f} -> {st.out_dir}")
