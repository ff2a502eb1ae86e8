"""The tweets through the pair's encoders and SAEs: which encodings the feature sets need, the checks that they
can be made (before any work), and the per-tweet encodings (inference only: eval-period tweets are encoded,
never trained on; reduced per tweet and cached)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from finsae.errors import ConfigError, DataMissingError, FinsaeError
from finsae.paths import activations_root, crosscoder_name, model_dir, sae_dir
from finsae.trading.blocks import needed
from finsae.trading.latent_pools import crosscoder_dir, uses_crosscoder
from finsae.trading.text_cache import cached_docs
from finsae.trading.text_features import encode_docs, sentiment_docs


def check_encoders(roles: dict[str, str], fc, artifacts: Path) -> None:
    """Fail in one line, naming what is missing and the command that makes it: the models, the layers, the SAEs
    (``fc``: a ``FeatureConfig``) and a classifier head for the sentiment set, of the roles in ``roles`` (both, or
    the one a ``backtest.py encode_only=ROLE`` run encodes)."""
    from finsae.models import check_layer, get_spec
    from finsae.models.loading import model_config, task_kind
    from finsae.sae.io import check_weights, is_sae_dir

    for role, kinds in role_kinds(fc).items():
        if not kinds or role not in roles:
            continue
        name = roles[role]
        spec = get_spec(name)
        try:
            shape = model_config(spec, artifacts)
        except (OSError, FinsaeError):
            if spec.path:  # the user named the folder: the loader's line says what is wrong with it
                raise
            how = "`python train.py task=finetune`" if name == "minilm_fin" else f"model.path=/dir for {name}"
            raise DataMissingError(f"model {name!r}", model_dir(artifacts, name), f"Make it with {how}.") from None
        for layer in fc.layers:
            check_layer(int(layer), shape.num_hidden_layers)
            if "sae" in kinds:
                d = sae_dir(artifacts, name, int(layer), fc.tag)
                if not is_sae_dir(d):
                    raise DataMissingError(
                        f"SAE of {name} layer {layer} (tag {fc.tag})", d,
                        f"Make it with `python train.py experiment=demo model={name} layer={layer}"
                        + ("" if fc.tag == "demo" else f" tag={fc.tag}") + "`.")
                check_weights(d)  # a garbage or cut file named now, not after the tweet encoding
        if "sentiment" in kinds and task_kind(spec, artifacts) != "classifier":
            raise ConfigError(f"features.sets uses sentiment, but {name} has no classifier head; drop the "
                              f"sentiment set or use a pair whose domain model is a classifier")
    if uses_crosscoder(fc) and set(roles) == {"base", "domain"}:
        for layer in fc.layers:
            d = crosscoder_dir(artifacts, roles, int(layer), fc.tag)
            if not is_sae_dir(d):
                raise DataMissingError(f"crosscoder of layer {layer} (tag {fc.tag})", d,
                                       f"Make it with `python train.py task=crosscoder layer={layer}`.")
            check_weights(d)


class Encoded:
    """Per-tweet encodings of the chosen models and layers."""

    def __init__(self):
        self.docs: dict[tuple[str, int], object] = {}
        self.sentiment: np.ndarray | None = None
        self.labels: list[str] = []
        self.crosscoder: dict[int, object] = {}
        """Per layer, the tweets through the pair's crosscoder (``features.changed=crosscoder``)."""
        self.crosscoder_name = ""
        self.seconds = 0.0
        self.n_tokens = 0


def encode_tweets(roles: dict[str, str], fc, act_cfg, artifacts: Path, cache: Path, eval_start: str, corpus,
                  progress: bool) -> Encoded:
    """Encode ``corpus`` with each role's model at ``fc.layers`` into the activation cache (inference only),
    reduce per tweet through the SAEs (cached under ``cache``). With ``fc.encode_jobs`` > 1 and two models to
    encode, each model's encodings are first made in a one-thread worker process of its own, side by side; this
    process then reads them from the caches."""
    active = [role for role, kinds in role_kinds(fc).items() if kinds and role in roles]
    if fc.encode_jobs > 1 and len(active) > 1:
        from finsae.workers import one_thread_pool

        t0 = time.time()
        state = (roles, fc, act_cfg, Path(artifacts), Path(cache), eval_start, corpus, progress)
        with one_thread_pool(min(fc.encode_jobs, len(active)), state) as pool:
            list(pool.map(_encode_role_in_worker, active))
        enc = _encode(roles, fc, act_cfg, artifacts, cache, eval_start, corpus, progress=False)
        enc.seconds = time.time() - t0
        return enc
    return _encode(roles, fc, act_cfg, artifacts, cache, eval_start, corpus, progress)


def _encode_role_in_worker(role: str) -> None:
    """One role's encodings into the caches (run by a worker of :func:`encode_tweets`)."""
    from finsae.workers import worker_state

    roles, fc, act_cfg, artifacts, cache, eval_start, corpus, progress = worker_state()
    _encode({role: roles[role]}, fc, act_cfg, artifacts, cache, eval_start, corpus, progress)


ACTIVATIONS = "activations"
"""A role's activations alone: the crosscoder's paired input."""


def role_kinds(fc) -> dict[str, set[str]]:
    """Per role, what its model must give: its blocks' encodings (:func:`finsae.trading.blocks.needed`), and
    its activations when the pooled blocks read the pair's crosscoder."""
    out = needed(fc.blocks)
    if uses_crosscoder(fc):
        out = {role: kinds | {ACTIVATIONS} for role, kinds in out.items()}
    return out


def _encode(roles: dict[str, str], fc, act_cfg, artifacts: Path, cache: Path, eval_start: str, corpus,
            progress: bool) -> Encoded:
    import torch

    from finsae.activations import build_activations
    from finsae.models import get_spec, load_model
    from finsae.sae import load, read_meta
    from finsae.sae.io import sae_identity

    enc = Encoded()
    t0 = time.time()
    kept = {}
    for role, kinds in role_kinds(fc).items():
        if not kinds or role not in roles:
            continue
        name = roles[role]
        loaded = load_model(get_spec(name), artifacts, kind="classifier" if "sentiment" in kinds else "encoder")
        layers = [int(i) for i in fc.layers]
        if "sentiment" in kinds:
            layers = sorted(set(layers) | {loaded.num_layers - 1})
        ecfg = dataclasses.replace(act_cfg, store_special=act_cfg.store_special or "sentiment" in kinds)
        torch.set_num_threads(max(1, torch.get_num_threads()))
        stores = build_activations(loaded, corpus, layers, activations_root(artifacts), ecfg, progress=progress,
                                   eval_start=eval_start, inference_only=True)
        for layer in fc.layers:
            store = stores[int(layer)]
            enc.n_tokens = len(store)
            kept[role, int(layer)] = store
            if kinds == {ACTIVATIONS}:
                continue
            sae, key = None, f"{store.key}-dense"
            if "sae" in kinds:
                d = sae_dir(artifacts, name, int(layer), fc.tag)
                sae = load(d, expected_d_in=store.d)
                key = f"{store.key}-sae{read_meta(d)['num_latents']}-{sae_identity(d)}"
            bar = tqdm(total=len(store), desc=f"encode {name} L{layer}", unit="tok", disable=not progress,
                       leave=False, mininterval=5)

            def compute(store=store, sae=sae, bar=bar):
                return encode_docs(store, sae, fc.encode_batch_tokens, progress=bar.update)

            enc.docs[(role, int(layer))], _ = cached_docs(cache, key, compute)
            bar.close()
        if "sentiment" in kinds:
            special = stores[loaded.num_layers - 1].special
            enc.sentiment = sentiment_docs(special, loaded)
            id2label = loaded.model.config.id2label
            enc.labels = [str(id2label[i]) for i in range(len(id2label))]
    if uses_crosscoder(fc) and set(roles) == {"base", "domain"}:
        enc.crosscoder_name = crosscoder_name(roles["base"], roles["domain"])
        enc.crosscoder = {int(layer): _crosscoder_docs(roles, fc, int(layer), kept, artifacts, cache)
                          for layer in fc.layers}
    enc.seconds = time.time() - t0
    return enc


def _crosscoder_docs(roles, fc, layer: int, stores, artifacts: Path, cache: Path):
    """The tweets of one layer through the pair's crosscoder: both models' token rows, each block scaled as
    the crosscoder was trained (its cfg.json), reduced per tweet like an SAE's latents (cached)."""
    from finsae.activations import PairedStore
    from finsae.analysis.crosscoder import load_crosscoder
    from finsae.sae import read_meta
    from finsae.sae.io import sae_identity

    d = crosscoder_dir(artifacts, roles, layer, fc.tag)
    xc, scales = load_crosscoder(d)
    paired = PairedStore(stores["base", layer], stores["domain", layer], scales)
    key = f"{paired.key}-xc{read_meta(d)['num_latents']}-{sae_identity(d)}"
    docs, _ = cached_docs(cache, key, lambda: encode_docs(paired, xc, fc.encode_batch_tokens))
    return docs
