"""The kinds of dictionary an SAE run trains, each an input spec behind one interface
(:class:`DictionaryKind`): which models' activation caches it reads, the store it trains on, the name it
publishes under, how its SAE starts, its checks before any work and what it adds to its summary and
``cfg.json``.

* ``sae`` (:class:`OneModel`): one model's layer (``model=``), initialised from a sample of its rows;
* ``crosscoder`` (:class:`Crosscoder`): the pair's two models, row-aligned and concatenated
  (:class:`~finsae.activations.PairedStore`), published as ``crosscoder_{base}_{domain}``;
* ``warm_start`` (:class:`WarmStart`): continues the SAE in ``sae.init_from`` on ``model=``'s layer, with its
  input scale and ``b_dec`` refitted to them first (``sae.init_refit``);
* ``affine_null`` (:class:`AffineNull`): continues ``sae.init_from`` on ``A·h + c``, the affine image of its
  own model's activations fitted to ``model=``'s on training documents: a latent is changed by fine-tuning
  only beyond the drift of this run.

:func:`kind_name` picks the kind from the config in one place (``sae.dictionary``, else from ``task=`` and
``sae.init_from``); :data:`KINDS` is the registry. A new kind is one subclass and one line in :data:`KINDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import torch

from finsae.activations import PairedStore, block_scales, split_rows
from finsae.activations.mapped import MappedStore
from finsae.errors import ConfigError, DataMissingError
from finsae.models import get_spec
from finsae.paths import crosscoder_name
from finsae.sae.artifact import read_frequency
from finsae.sae.config import SaeConfig, SaeTrainConfig
from finsae.sae.io import load, read_meta
from finsae.sae.sparse_coder.topk import TopKSAE
from finsae.sae.train import uniform_sample_rows
from finsae.sae.warm_start import (MOMENT_CHUNK_ROWS, check_warm_start_source, refit_input_stats, row_moments,
                                   warm_start)

if TYPE_CHECKING:
    from finsae.sae.run import Settings, TrainingData


class AffineFit(Protocol):
    """A fitted map of the base's rows onto the twin's (``finsae.analysis.affine.AffineMap`` is one)."""

    n_fit: int

    def apply(self, rows: np.ndarray) -> np.ndarray: ...

    def residual_sq(self, x: np.ndarray, y: np.ndarray) -> np.ndarray: ...


AffineFitter = Callable[[Any, Any, np.ndarray], AffineFit]
"""``fit(h_base, h_twin, rows) -> map``: how the affine null fits its map (the glue passes
``finsae.analysis.affine.fit_affine``; the SAE core sits below the analysis and does not import it)."""


class DictionaryKind:
    """One kind of dictionary: the defaults are those of one model's SAE (:class:`OneModel`)."""

    name: ClassVar[str] = "sae"
    task: ClassVar[str] = "sae"
    """The ``train.py task=`` that trains it."""
    reads_pair: ClassVar[bool] = False
    """Its models come from ``pair=`` (else from ``model=``): what the train schema refuses to override."""
    downstream: ClassVar[bool] = True
    """Scored downstream (loss recovered) by patching its first model, and so ``rescore=true`` works."""
    needs_init_from: ClassVar[bool] = False
    takes_init_from: ClassVar[bool] = False
    """``sae.init_from`` continues a trained dictionary of this kind (as it is: no refit)."""

    def __init__(self, st: Settings):
        self.st = st

    def own_spec(self):
        """``model=``'s spec (name, path, seed)."""
        name, path, seed = self.st.model
        return get_spec(name, path=path, seed=seed)

    def own_provenance(self) -> dict:
        """What ``cfg.json`` records of ``model=`` beyond its name, where set: the spec a warm start finds the
        activations it was trained on by (``model.path``, a tiny model's ``model.seed``)."""
        _, path, seed = self.st.model
        return {**({"model_path": str(path)} if path else {}), **({"model_seed": seed} if seed else {})}

    def specs(self) -> list:
        """The models whose activation caches the run reads (the first one's rows set the init sample)."""
        return [self.own_spec()]

    def published_name(self) -> str:
        """``artifacts/sae/{name}/``: ``model=``'s."""
        return self.own_spec().name

    def sae_config(self, d_model: int) -> SaeConfig:
        return self.st.sae.sae_config(d_model, self.st.seed)

    def precheck(self, scfg: SaeConfig) -> None:
        """Checks of this kind before any work (the models' config.json and the start SAE's cfg.json only)."""
        s = self.st.sae
        if s.init_from:
            check_warm_start_source(s.init_from, scfg, self.st.layer, s.init_from_any_layer)

    def training_store(self, stores: list, init_rows: np.ndarray) -> tuple[Any, dict]:
        """The store the run trains on from each model's ``(loaded, store)``, and its ``cfg.json`` extras."""
        loaded, store = stores[0]
        return store, {"weights_hash": loaded.weights_hash, **self.own_provenance()}

    def initialize(self, sae: TopKSAE, data: TrainingData) -> None:
        """Continue ``sae.init_from`` as it is, else a fresh SAE from the run's init sample."""
        if self.st.sae.init_from:
            warm_start(sae, load(self.st.sae.init_from, expected_d_in=data.config.d_in))
            print(f"sae: warm start from {self.st.sae.init_from}")
        else:
            rows = np.asarray(data.store.array[data.init_rows], dtype=np.float32)
            sae.init_from_sample(torch.from_numpy(rows))

    def summary_fields(self, data: TrainingData, frequency: np.ndarray) -> dict:
        """This kind's fields of :class:`~finsae.sae.summary.SaeSummary` (none for a fresh SAE)."""
        return {}


class OneModel(DictionaryKind):
    """One top-k SAE on one model's layer (``train.py model=M layer=i``)."""


class Crosscoder(DictionaryKind):
    """One crosscoder on the row-aligned activations of the pair's two models (``task=crosscoder``)."""

    name = "crosscoder"
    task = "crosscoder"
    reads_pair = True
    downstream = False
    takes_init_from = True

    def specs(self) -> list:
        return [get_spec(self.st.pair[0]), get_spec(self.st.pair[1])]

    def published_name(self) -> str:
        return crosscoder_name(*self.st.pair)

    def sae_config(self, d_model: int) -> SaeConfig:
        return self.st.sae.crosscoder_config(d_model, self.st.seed)

    def training_store(self, stores: list, init_rows: np.ndarray) -> tuple[Any, dict]:
        (loaded, base), (dom_loaded, dom) = stores
        scales = block_scales(base, dom, init_rows)
        return PairedStore(base, dom, scales), {
            "weights_hash": f"{loaded.weights_hash}+{dom_loaded.weights_hash}",
            "crosscoder": {"base": self.st.pair[0], "domain": self.st.pair[1], "d_model": loaded.d_model,
                           "block_scales": list(scales)}}


class WarmStart(OneModel):
    """Continue the SAE in ``sae.init_from`` on ``model=``'s layer; latent i stays latent i. With
    ``sae.init_refit`` (default) its input scale and ``b_dec`` are refitted first to these activations against
    the ones it was trained on (so the run also reads the start SAE's model's cache, when that is another)."""

    name = "warm_start"
    needs_init_from = True
    takes_init_from = True

    def source_meta(self) -> dict:
        meta = read_meta(self.st.sae.init_from)
        return meta.get("extra") if isinstance(meta.get("extra"), dict) else {}

    def source_spec(self):
        """The model the start SAE was trained on (its ``cfg.json`` ``extra.model``, ``model_path``,
        ``model_seed``)."""
        extra = self.source_meta()
        if extra.get("model") is None:
            raise ConfigError(f"sae.init_from={self.st.sae.init_from}: its cfg.json records no model, so the "
                              f"activations it was trained on are unknown; set sae.init_refit=false")
        return get_spec(extra["model"], path=extra.get("model_path"), seed=extra.get("model_seed"))

    def reads_source(self) -> bool:
        return self.st.sae.init_refit

    def specs(self) -> list:
        own = super().specs()
        if not self.reads_source() or self.source_meta().get("model") is None:
            return own  # nothing more to read (precheck names what is missing, after the start SAE's shape)
        source = self.source_spec()
        return own if source == own[0] else [*own, source]

    def precheck(self, scfg: SaeConfig) -> None:
        super().precheck(scfg)
        if self.reads_source():
            self.source_spec()

    def source_store(self, stores: list):
        """The start SAE's model's store (checked to be the weights it was trained on)."""
        loaded, store = stores[-1]
        recorded = self.source_meta().get("weights_hash")
        if recorded and recorded != loaded.weights_hash:
            raise ConfigError(f"sae.init_from={self.st.sae.init_from} was trained on {loaded.spec.name} "
                              f"weights {recorded}, the model found now has {loaded.weights_hash}: its "
                              f"activations are not the ones to refit against; set sae.init_refit=false")
        return store

    def initialize(self, sae: TopKSAE, data: TrainingData) -> None:
        s = self.st.sae
        warm_start(sae, load(s.init_from, expected_d_in=data.config.d_in))
        if s.init_refit:
            source = self.source_store(data.stores)
            refit_input_stats(sae, row_moments(data.store.array, data.init_rows),
                              row_moments(source.array, data.init_rows).mean)
        refitted = " (norm_scale and b_dec refitted)" if s.init_refit else ""
        print(f"sae: warm start from {s.init_from}{refitted}")

    def summary_fields(self, data: TrainingData, frequency: np.ndarray) -> dict:
        """``died``: latents that fired on the ``sae_eval`` tokens in the start SAE and fire on none now (None
        when the start SAE's folder has no firing frequencies: not trained by train.py)."""
        try:
            start = read_frequency(self.st.sae.init_from)
        except DataMissingError:
            start = None
        died = None if start is None or len(start) != len(frequency) else int(
            ((start > 0) & (np.asarray(frequency) <= 0)).sum())
        return {"init_from": str(self.st.sae.init_from), "init_refit": self.st.sae.init_refit, "died": died}


class AffineNull(WarmStart):
    """The warm start's null: continue ``sae.init_from`` on ``A·h_source + c``, the affine image of its own
    model's activations fitted to ``model=``'s (the twin's) per layer on a sample of training documents,
    mapped on the fly. Published under ``model=`` like the domain run; records the map's held-out R²."""

    name = "affine_null"

    def reads_source(self) -> bool:
        return True

    def precheck(self, scfg: SaeConfig) -> None:
        super().precheck(scfg)
        if self.st.affine_fit is None:
            raise ConfigError("sae.dictionary=affine_null needs an affine fitter (train.py passes one)")

    def training_store(self, stores: list, init_rows: np.ndarray) -> tuple[Any, dict]:
        (twin_loaded, twin), source = stores[0], self.source_store(stores)
        st = self.st
        fit_rows = uniform_sample_rows(split_rows(twin, "train", st.sae_eval_frac), st.sae.affine_fit_tokens,
                                       st.seed)
        fitted = st.affine_fit(source.array, twin.array, fit_rows)
        self.fit_info = affine_fit_info(fitted, source, twin, fit_rows, st)
        print(f"sae: affine null: map fitted on {self.fit_info['affine_fit_rows']} tokens of "
              f"{self.fit_info['affine_fit_docs']} documents, held-out R2 {self.fit_info['affine_r2']:.3f}")
        return MappedStore(source, fitted, twin.d, "affine"), {"weights_hash": twin_loaded.weights_hash,
                                                                **self.own_provenance()}

    def summary_fields(self, data: TrainingData, frequency: np.ndarray) -> dict:
        return {**super().summary_fields(data, frequency), **self.fit_info}


def affine_fit_info(fitted: AffineFit, source, twin, fit_rows: np.ndarray, st: Settings) -> dict:
    """The summary fields of the map's fit: its rows and documents, and R² of the twin from the base on the
    ``sae_eval`` documents (held out from the fit; at most ``affine_fit_tokens`` of their rows, in chunks)."""
    docs = np.asarray(twin.table.column("doc"))
    held = uniform_sample_rows(split_rows(twin, "sae_eval", st.sae_eval_frac), st.sae.affine_fit_tokens,
                               st.seed)
    residual, total_sq, total = 0.0, 0.0, np.zeros(twin.d)
    for start in range(0, len(held), MOMENT_CHUNK_ROWS):
        piece = held[start:start + MOMENT_CHUNK_ROWS]
        x, y = (np.asarray(a.array[piece], np.float32) for a in (source, twin))
        residual += float(fitted.residual_sq(x, y).sum())
        total_sq += float(np.einsum("ij,ij->", y, y, dtype=np.float64))
        total += y.sum(axis=0, dtype=np.float64)
    variance = total_sq - float(total @ total) / len(held)  # sum of ||y - mean y||^2
    r2 = 1.0 - residual / variance if variance > 0 else float("nan")
    return {"affine_r2": r2, "affine_fit_rows": len(fit_rows),
            "affine_fit_docs": len(np.unique(docs[fit_rows])), "affine_eval_docs": len(np.unique(docs[held]))}


KINDS: dict[str, type[DictionaryKind]] = {
    "sae": OneModel,
    "crosscoder": Crosscoder,
    "warm_start": WarmStart,
    "affine_null": AffineNull,
}
"""Every kind of dictionary by its name (``sae.dictionary``)."""


def kind_name(task: str, sae: SaeTrainConfig) -> str:
    """The kind a run trains: ``sae.dictionary``, else ``crosscoder`` for task=crosscoder, ``warm_start`` when
    ``sae.init_from`` is set, else ``sae``; refused when it does not fit the task or lacks ``init_from``."""
    default = "crosscoder" if task == "crosscoder" else "warm_start" if sae.init_from else "sae"
    name = sae.dictionary or default
    if name not in KINDS:
        raise ConfigError(f"sae.dictionary={name!r} is not a kind of dictionary; choose one of "
                          f"{sorted(KINDS)}")
    kind = KINDS[name]
    if kind.task != task:
        raise ConfigError(f"sae.dictionary={name} is trained by task={kind.task}, this run is task={task}")
    if kind.needs_init_from and not sae.init_from:
        raise ConfigError(f"sae.dictionary={name} continues a trained SAE: set sae.init_from=<its folder>")
    if sae.init_from and not kind.takes_init_from:
        raise ConfigError(f"sae.init_from is set but sae.dictionary={name} starts from scratch; drop one of "
                          f"them")
    return name
