"""One causal test (issue 33 §6): does the twin's behaviour live in what no affine map of the base explains?

**Affine patch** (:func:`affine_patch_test`). In the twin (a sequence classifier), layer L's hidden states are
replaced by the affine image ``h_base @ weight + bias`` of the base's states at L on the same input (the maps
fitted on *other* texts: :func:`fit_patch_maps`, or the lens's ``LayerLens.affine``), and the class logits are
compared with the unpatched twin's. References: ``base`` patches the raw base states (what the whole change
at L carries), ``identity`` the twin's own (Δ ≈ 0). ``nonaffine_share`` = Δ(affine) / Δ(base): 0 when an
affine image of the base carries all the twin needs at L. Every non-[PAD] position is patched ([CLS], which
the classifier reads, with the ``cls`` map where one is given).

**Latent ablation** (:func:`latent_ablation_test`). Through the twin's SAE at L with its error term kept,
``h = decode(z) + err`` becomes ``decode(z with the targets zeroed) + err`` (h minus their decoder terms),
against ``n_random_draws`` sets of as many random live latents (firing-matched by default), on the real
tokens the SAE was trained on (or all). Intervals: percentile bootstrap over texts, the same draws for every
layer, condition and latent set (paired).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.special import log_softmax

from finsae.analysis.affine import AffineMap, estimate_columns, fit_affine
from finsae.analysis.config import CAUSAL_CONDITIONS, MIN_FIT_ROWS_PER_DIM, CausalConfig
from finsae.errors import ConfigError, require
from finsae.models.loading import LoadedModel, check_layer, check_tokenizer_pair, hidden_states
from finsae.models.patching import patched_layer
from finsae.sae.kernels import sparse_decode

CONDITIONS = CAUSAL_CONDITIONS
"""Patches of the affine test: the base's affine image, the raw base states, the twin's own states."""
PATCH_MEASURES: dict[str, str] = {
    "accuracy": "share of texts whose largest logit is the label",
    "accuracy_change": "accuracy − the unpatched twin's accuracy (paired over texts)",
    "mean_abs_dlogit": "mean over texts and classes of |logit − the unpatched twin's logit|",
    "kl": "mean over texts of KL(p_twin ‖ p), p = softmax of the logits (nats)",
    "flip_rate": "share of texts whose predicted class differs from the unpatched twin's",
    "nonaffine_share": "mean_abs_dlogit(affine) / mean_abs_dlogit(base) at the layer (condition affine only;"
                       " NaN where the base patch moves nothing: NEGLIGIBLE_DLOGIT)",
}
"""Every measure of the affine-patch table, with its definition."""
ABLATION_MEASURES = ("mean_abs_dlogit", "kl", "flip_rate")
"""Measures of the ablation table (definitions as in :data:`PATCH_MEASURES`, against the unablated twin)."""
PATCH_COLUMNS: dict[str, str] = {
    "layer": "int: the patched layer",
    "condition": "str: affine, base or identity (CONDITIONS)",
    **estimate_columns("PATCH_MEASURES", "analysis.causal.ci", "texts"),
    "n_texts": "int: texts behind the value",
}
"""Columns of :attr:`PatchResult.table`."""
ABLATION_COLUMNS: dict[str, str] = {
    "layer": "int: the SAE's layer",
    "latent_set": "str: target, random (mean over the draws) or difference (target − random, paired by text)",
    **estimate_columns("ABLATION_MEASURES", "analysis.causal.ci", "texts"),
    "n_texts": PATCH_COLUMNS["n_texts"],
    "n_latents": "int: latents per set (the targets that fire on the texts; as many per random draw)",
    "n_draws": "int: random sets drawn",
    "p_random": "float: share of random draws whose value reaches the target's (difference rows; NaN else)",
}
"""Columns of :attr:`AblationResult.table`."""

NEGLIGIBLE_DLOGIT = 1e-5
"""Logit changes below this × the twin's mean |logit| are rounding: no ``nonaffine_share`` (NaN) there."""
DEFAULTS = CausalConfig()
"""``analysis.causal``'s defaults (what a call without settings runs)."""
LayerMaps = AffineMap | Mapping[str, AffineMap]
"""One map for every position, or per position ``{"tokens": ..., "cls": ...}`` (the lens's ``affine``)."""


@dataclass(frozen=True)
class PatchResult:
    """The affine-patch test of every layer."""

    table: pd.DataFrame
    """Long table (:data:`PATCH_COLUMNS`)."""
    twin_logits: np.ndarray
    """[n_texts, n_classes] logits of the unpatched twin."""
    logits: dict[tuple[int, str], np.ndarray]
    """(layer, condition) -> [n_texts, n_classes] logits of the patched twin."""


@dataclass(frozen=True)
class AblationResult:
    """The latent ablation at one layer."""

    table: pd.DataFrame
    """Long table (:data:`ABLATION_COLUMNS`)."""
    targets: np.ndarray
    """Target latents that fire on the texts (the ones ablated)."""
    random_sets: np.ndarray
    """[n_draws, n_latents] the random live latents of each draw."""
    firing: np.ndarray
    """[num_latents] how often each latent fires on the ablated positions of the texts."""
    effects: dict[str, np.ndarray]
    """Per measure: [1 + n_draws, n_texts] per-text effect of the targets (row 0) and of each random set."""


def _batches(tokenizer, texts: Sequence[str], cfg: CausalConfig) -> Iterator:
    for start in range(0, len(texts), cfg.batch_size):
        yield tokenizer(list(texts[start:start + cfg.batch_size]), padding=True, truncation=True,
                        max_length=cfg.max_length, return_tensors="pt")


def _check_inputs(twin: LoadedModel, texts: Sequence[str], layers: Sequence[int], base=None) -> None:
    require(twin.kind == "classifier", f"the causal test needs the twin as a classifier, got {twin.kind!r}")
    require(len(texts) > 0 and all(isinstance(t, str) and t for t in texts),
            "the causal test needs a non-empty list of non-empty texts")
    for layer in layers:
        check_layer(int(layer), twin.num_layers)
    if base is not None:
        check_tokenizer_pair(base.tokenizer, twin.tokenizer, ("base", "twin"))
        require(base.d_model == twin.d_model and base.num_layers == twin.num_layers,
                f"base ({base.num_layers} layers × {base.d_model}) and twin ({twin.num_layers} × "
                f"{twin.d_model}) differ in shape: a state of one cannot be patched into the other")


def _check_fit_rows(n_rows: int, d: int, what: str) -> None:
    need = MIN_FIT_ROWS_PER_DIM * (d + 1)
    require(n_rows >= need, f"{what} is fitted on {n_rows} rows, too few for {d} dimensions (at least "
                            f"{need}): fit it on more texts, or give [CLS] no map of its own")


def fit_patch_maps(base: LoadedModel, twin: LoadedModel, texts: Sequence[str], layers: Sequence[int],
                   cfg: CausalConfig = DEFAULTS, split_cls: bool = True,
                   cls_only: bool = False) -> dict[int, dict[str, AffineMap]]:
    """Per layer, the twin's affine map from the base on every non-[PAD] row of ``texts`` (give texts other
    than the ones the test is scored on); ``split_cls``: [CLS] rows get a map of their own; ``cls_only``:
    only that map (the token map fitted elsewhere, e.g. on the cached held-out activations)."""
    _check_inputs(twin, texts, layers, base)
    parts = ("cls",) if cls_only else ("tokens", "cls") if split_cls else ("tokens",)
    rows: dict[tuple[int, str, str], list[np.ndarray]] = {}
    cls_id = twin.tokenizer.cls_token_id
    for batch in _batches(twin.tokenizer, texts, cfg):
        pos = batch["attention_mask"].bool()
        is_cls = (batch["input_ids"] == cls_id)[pos].numpy() if split_cls else np.zeros(int(pos.sum()), bool)
        masks = {"tokens": ~is_cls, "cls": is_cls}
        for who, model in (("base", base), ("twin", twin)):
            states = hidden_states(model.encoder, batch["input_ids"], batch["attention_mask"], layers).layers
            for layer in layers:
                flat = states[layer][pos].float().numpy()
                for part in parts:
                    rows.setdefault((layer, part, who), []).append(flat[masks[part]])
    maps: dict[int, dict[str, AffineMap]] = {}
    for layer in layers:
        for part in parts:
            x, y = (np.concatenate(rows[(layer, part, who)]) for who in ("base", "twin"))
            _check_fit_rows(len(x), x.shape[1], f"layer {layer}'s {part} map")
            maps.setdefault(layer, {})[part] = fit_affine(x, y, ridge=cfg.ridge)
    return maps


def _mapped(maps: LayerMaps, rows: np.ndarray, is_cls: np.ndarray) -> torch.Tensor:
    parts = {"tokens": maps} if isinstance(maps, AffineMap) else maps
    out = parts["tokens"].apply(rows)
    if "cls" in parts and is_cls.any():
        out[is_cls] = parts["cls"].apply(rows[is_cls])
    return torch.from_numpy(out)


def _check_maps(maps: Mapping[int, LayerMaps], layers: Sequence[int], d_model: int) -> None:
    for layer in layers:
        require(layer in maps, f"no affine map for layer {layer}: fit one (fit_patch_maps) or drop the layer")
        parts = {"tokens": maps[layer]} if isinstance(maps[layer], AffineMap) else maps[layer]
        require("tokens" in parts, f"layer {layer}'s maps need a 'tokens' entry")
        for part, m in parts.items():
            require(m.weight.shape == (d_model, d_model),
                    f"layer {layer}'s affine map is {m.weight.shape}, the models are {d_model} wide")
            _check_fit_rows(m.n_fit, d_model, f"layer {layer}'s {part} map")


@torch.inference_mode()
def patched_logits(base: LoadedModel, twin: LoadedModel, texts: Sequence[str], maps: Mapping[int, LayerMaps],
                   cfg: CausalConfig = DEFAULTS
                   ) -> tuple[np.ndarray, dict[tuple[int, str], np.ndarray]]:
    """The unpatched twin's logits and, per (layer, condition), the patched twin's (:data:`CONDITIONS`)."""
    layers = sorted(int(k) for k in maps)
    _check_inputs(twin, texts, layers, base)
    _check_maps(maps, layers, twin.d_model)
    clean, out = [], {(layer, c): [] for layer in layers for c in cfg.conditions}
    cls_id = twin.tokenizer.cls_token_id
    for batch in _batches(twin.tokenizer, texts, cfg):
        pos = batch["attention_mask"].bool()
        is_cls = (batch["input_ids"] == cls_id)[pos].numpy()
        states = hidden_states(base.encoder, batch["input_ids"], batch["attention_mask"], layers).layers
        clean.append(twin.model(**batch).logits.float().numpy())
        for layer in layers:
            h_base = states[layer][pos].float()
            patches = {"affine": _mapped(maps[layer], h_base.numpy(), is_cls), "base": h_base}
            for condition in cfg.conditions:
                new = patches.get(condition)  # None: identity
                with patched_layer(twin.model, layer, lambda r, new=new: r if new is None else new, pos):
                    out[(layer, condition)].append(twin.model(**batch).logits.float().numpy())
    return np.concatenate(clean), {k: np.concatenate(v) for k, v in out.items()}


def text_effects(ref: np.ndarray, logits: np.ndarray,
                 labels: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-text effects of ``logits`` against the reference ``ref`` (both ``[n, classes]``); with ``labels``
    also ``accuracy`` and ``accuracy_change`` (per text: correct, and its change)."""
    lp_ref, lp = log_softmax(ref.astype(np.float64), 1), log_softmax(logits.astype(np.float64), 1)
    pred, pred_ref = logits.argmax(1), ref.argmax(1)
    out = {"mean_abs_dlogit": np.abs(logits.astype(np.float64) - ref).mean(1),
           "kl": (np.exp(lp_ref) * (lp_ref - lp)).sum(1).clip(min=0.0),
           "flip_rate": (pred != pred_ref).astype(np.float64)}
    if labels is not None:
        out["accuracy"] = (pred == labels).astype(np.float64)
        out["accuracy_change"] = out["accuracy"] - (pred_ref == labels)
    return out


def text_weights(n: int, cfg: CausalConfig) -> np.ndarray:
    """[n_boot, n] resampling counts of the texts divided by n (a row times a per-text array is its mean)."""
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(2)[0])
    return rng.multinomial(n, np.full(n, 1.0 / n), size=cfg.n_boot) / n


def _interval(reps: np.ndarray, ci: float) -> tuple[float, float]:
    reps = reps[np.isfinite(reps)]
    lo, hi = np.quantile(reps, [(1 - ci) / 2, (1 + ci) / 2]) if len(reps) else (np.nan, np.nan)
    return float(lo), float(hi)


def estimate_row(weights: np.ndarray, cfg: CausalConfig, per_text: np.ndarray, **keys) -> dict:
    lo, hi = _interval(weights @ per_text, cfg.ci)
    return {**keys, "value": float(per_text.mean()), "lo": lo, "hi": hi, "n_texts": len(per_text)}


def _nonaffine_share(effects: dict, weights: np.ndarray, twin_logits: np.ndarray, cfg: CausalConfig,
                     layer: int) -> dict:
    num, den = effects["affine"]["mean_abs_dlogit"], effects["base"]["mean_abs_dlogit"]
    share, lo, hi = np.nan, np.nan, np.nan
    if den.mean() > NEGLIGIBLE_DLOGIT * np.abs(twin_logits).mean():
        with np.errstate(divide="ignore", invalid="ignore"):
            share, (lo, hi) = num.mean() / den.mean(), _interval((weights @ num) / (weights @ den), cfg.ci)
    return {"layer": layer, "condition": "affine", "measure": "nonaffine_share", "value": float(share),
            "lo": lo, "hi": hi, "n_texts": len(num)}


def affine_patch_test(base: LoadedModel, twin: LoadedModel, texts: Sequence[str], labels: Sequence[int],
                      maps: Mapping[int, LayerMaps], cfg: CausalConfig = DEFAULTS) -> PatchResult:
    """Per layer of ``maps``: accuracy and logit change of the twin patched with the base's affine image, the
    raw base states and its own states (module doc), with percentile intervals over the texts."""
    labels = np.asarray(labels)
    require(labels.shape == (len(texts),), f"{len(texts)} texts but labels of shape {labels.shape}")
    n_classes = int(twin.model.config.num_labels)
    require(np.issubdtype(labels.dtype, np.integer) and labels.min() >= 0 and labels.max() < n_classes,
            f"labels must be class ids in 0..{n_classes - 1} (the twin's head), got {np.unique(labels)[:5]}")
    twin_logits, logits = patched_logits(base, twin, texts, maps, cfg)
    weights = text_weights(len(texts), cfg)
    rows = []
    for layer in sorted({k[0] for k in logits}):
        effects = {c: text_effects(twin_logits, logits[(layer, c)], labels) for c in cfg.conditions}
        for c in cfg.conditions:
            rows += [estimate_row(weights, cfg, effects[c][m], layer=layer, condition=c, measure=m)
                     for m in PATCH_MEASURES if m != "nonaffine_share"]
        if "base" in effects:
            rows.append(_nonaffine_share(effects, weights, twin_logits, cfg, layer=layer))
    return PatchResult(pd.DataFrame(rows, columns=list(PATCH_COLUMNS)), twin_logits, logits)


def ablate_latents(sae, latents) -> Callable[[torch.Tensor], torch.Tensor]:
    """Rows -> rows with ``latents``' decoder contributions removed: ``decode(z without them) + err``."""
    drop_ids = torch.as_tensor(np.asarray(latents, np.int64), device=sae.W_dec.device)

    def fn(rows: torch.Tensor) -> torch.Tensor:
        x = rows.to(sae.W_dec.dtype)
        code = sae.encode(x)
        removed = code.latent_acts * torch.isin(code.latent_indices, drop_ids)
        return (x - sparse_decode(removed, code.latent_indices, sae.W_dec) / sae.norm_scale).to(rows.dtype)

    return fn


def _positions(batch, twin: LoadedModel, cfg: CausalConfig) -> torch.Tensor:
    """Where latents are ablated: every non-[PAD] position, or only the real (non-special) tokens."""
    pos = batch["attention_mask"].bool()
    special = torch.tensor(list(twin.tokenizer.all_special_ids))
    return pos if cfg.ablate_all_positions else pos & ~torch.isin(batch["input_ids"], special)


@torch.inference_mode()
def firing_counts(twin: LoadedModel, sae, layer: int, texts: Sequence[str], cfg: CausalConfig) -> np.ndarray:
    """How often each latent of ``sae`` fires (activation > 0) on the ablated positions of ``texts``."""
    counts = torch.zeros(sae.num_latents, dtype=torch.int64)
    for batch in _batches(twin.tokenizer, texts, cfg):
        hs = hidden_states(twin.encoder, batch["input_ids"], batch["attention_mask"], [layer]).layers[layer]
        code = sae.encode(hs[_positions(batch, twin, cfg)].to(sae.W_dec.dtype))
        counts += torch.bincount(code.latent_indices[code.latent_acts > 0].cpu(), minlength=sae.num_latents)
    return counts.numpy()


def draw_random_latents(firing: np.ndarray, targets: np.ndarray, n_draws: int, seed: int,
                        match_firing: bool = True) -> np.ndarray:
    """[n_draws, len(targets)] live latents outside ``targets``, each draw without repeats; ``match_firing``:
    the j-th drawn latent is among the pool latents nearest in firing count to the j-th target."""
    pool = np.setdiff1d(np.flatnonzero(firing > 0), targets)
    n = len(targets)
    if len(pool) < n:
        raise ConfigError(f"only {len(pool)} live latents outside the {n} targets: too few for a random "
                          "control; give fewer targets or more texts")
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])
    if not match_firing:
        return np.stack([rng.choice(pool, n, replace=False) for _ in range(n_draws)])
    pool = pool[np.argsort(firing[pool], kind="stable")]
    width = max(3, len(pool) // (2 * n))  # candidates per target: the pool's nearest ranks, about half of it
    at = np.searchsorted(firing[pool], firing[targets])
    draws = np.empty((n_draws, n), np.int64)
    for d in range(n_draws):
        free = np.ones(len(pool), bool)
        for j in rng.permutation(n):
            near = np.flatnonzero(free)
            pick = rng.choice(near[np.argsort(np.abs(near - at[j]), kind="stable")[:width]])
            free[pick] = False
            draws[d, j] = pool[pick]
    return draws


@torch.inference_mode()
def _ablated_logits(twin: LoadedModel, sae, layer: int, texts, latent_sets, cfg,
                    with_clean: bool = True) -> list[np.ndarray | None]:
    """The unablated logits (first; None without ``with_clean``) and the logits with each set ablated."""
    out: list[list[np.ndarray]] = [[] for _ in range(1 + len(latent_sets))]
    fns = [ablate_latents(sae, s) for s in latent_sets]
    for batch in _batches(twin.tokenizer, texts, cfg):
        pos = _positions(batch, twin, cfg)
        if with_clean:
            out[0].append(twin.model(**batch).logits.float().numpy())
        for i, fn in enumerate(fns, start=1):
            with patched_layer(twin.model, layer, fn, pos):
                out[i].append(twin.model(**batch).logits.float().numpy())
    return [np.concatenate(o) if o else None for o in out]


def latent_ablation_test(twin: LoadedModel, sae, layer: int, texts: Sequence[str], targets: Sequence[int],
                         cfg: CausalConfig = DEFAULTS, firing: np.ndarray | None = None,
                         clean: np.ndarray | None = None) -> AblationResult:
    """Logit change when the target latents of the twin's ``sae`` at ``layer`` are ablated (error term kept),
    against as many random live latents, ``cfg.n_random_draws`` times, with paired intervals over texts;
    ``firing`` (:func:`firing_counts`) and ``clean`` (the twin's logits) on the same texts when the caller
    has them (the affine test's ``twin_logits``: one forward pass less)."""
    _check_inputs(twin, texts, [layer])
    require(sae.d_in == twin.d_model, f"the SAE reads {sae.d_in}-wide rows, the twin is {twin.d_model} wide")
    targets = np.unique(np.asarray(targets, np.int64))
    require(len(targets) > 0 and targets.min() >= 0 and targets.max() < sae.num_latents,
            f"targets must be latent ids in 0..{sae.num_latents - 1}, got {len(targets)} ids")
    if firing is None:
        firing = firing_counts(twin, sae, layer, texts, cfg)
    live_targets = targets[firing[targets] > 0]
    require(len(live_targets) > 0, f"none of the {len(targets)} target latents fires on the texts at "
                                   f"layer {layer}: ablating them cannot change anything")
    randoms = draw_random_latents(firing, live_targets, cfg.n_random_draws, cfg.seed, cfg.match_firing)
    sets = [live_targets, *randoms]
    computed, *ablated = _ablated_logits(twin, sae, layer, texts, sets, cfg, with_clean=clean is None)
    clean = computed if clean is None else np.asarray(clean)
    require(clean.shape == ablated[0].shape, f"clean logits {clean.shape}, ablated {ablated[0].shape}")
    effects = {m: np.stack([text_effects(clean, lg)[m] for lg in ablated]) for m in ABLATION_MEASURES}
    weights = text_weights(len(texts), cfg)
    keys = {"layer": layer, "n_latents": len(live_targets), "n_draws": cfg.n_random_draws}
    rows = []
    for m, per_set in effects.items():
        target, random = per_set[0], per_set[1:].mean(0)
        p_random = float((per_set[1:].mean(1) >= target.mean()).mean())
        for name, per_text, p in (("target", target, np.nan), ("random", random, np.nan),
                                  ("difference", target - random, p_random)):
            row = estimate_row(weights, cfg, per_text, latent_set=name, measure=m)
            rows.append({**row, **keys, "p_random": p})
    table = pd.DataFrame(rows, columns=list(ABLATION_COLUMNS))
    return AblationResult(table, live_targets, randoms, firing, effects)
