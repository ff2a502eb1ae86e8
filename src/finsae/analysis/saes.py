"""The SAEs one pair's analysis reads, found and checked before any work.

Under ``artifacts/sae/`` (:func:`finsae.paths.sae_dir`), per layer i: the independent SAEs
``{base,domain}/layer_{i}/{tag}`` (required) and their seed repeats, one tag per seed (``seed_tags``, by
default ``{tag}_seed1`` and ``{tag}_seed2``: seed ceilings, the seed floor and the seed SDs where present; a
layer reports the seeds it has); each other diffing method finds its own
(:meth:`finsae.analysis.methods.base.DiffingMethod.inputs`: the crosscoder, the warm-started runs); a method
whose SAEs are absent, or are not what they claim to be, is logged and reads "not run", never fails.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path

from finsae.errors import ConfigError, DataMissingError
from finsae.models import get_spec
from finsae.models.loading import model_config
from finsae.paths import sae_dir, sae_layers, sae_root
from finsae.sae import TopKSAE, load, read_meta
from finsae.sae.io import check_weights, is_sae_dir
from finsae.summary import SUMMARY_FILE

log = logging.getLogger("finsae")


def train_command(model: str, layer: int | str, tag: str, multirun: bool = False) -> str:
    """The command that trains the SAE of ``model`` at ``layer`` (``multirun``: a comma-separated sweep) tagged
    ``tag`` (named when it is missing)."""
    repeat = re.search(r"_seed(\d+)$", tag)
    seed = f" seed={int(repeat.group(1))}" if repeat else ""
    sweep = " --multirun" if multirun else ""
    return f"python train.py{sweep} experiment=demo model={model} layer={layer} tag={tag}{seed}"


@dataclass(frozen=True)
class PairSaes:
    """Where a pair's SAEs of one tag live."""

    artifacts: Path
    base: str
    domain: str
    tag: str
    seed_tags: tuple[str, ...] = ()
    """Tags of the seed repeats in seed order (``{tag}_seed1``, ``{tag}_seed2`` by default)."""

    def __post_init__(self):
        if isinstance(self.seed_tags, str):
            raise ConfigError(f"seed_tags must be a list of tags, got the string {self.seed_tags!r}")
        object.__setattr__(self, "seed_tags", tuple(self.seed_tags))
        if self.tag in self.seed_tags or len(set(self.seed_tags)) != len(self.seed_tags):
            raise ConfigError(f"seed_tags {list(self.seed_tags)} must name distinct tags other than tag "
                              f"{self.tag!r}: each is one more seed of the SAEs compared")

    @property
    def seed_tag(self) -> str:
        """The first seed repeat (seed 1): what the single-repeat columns read (seed ceilings, the seed floor,
        the crosscoder's seed stability); ``{tag}_seed1`` where none is named."""
        return self.seed_tags[0] if self.seed_tags else f"{self.tag}_seed1"

    def with_tag(self, tag: str) -> PairSaes:
        """The same pair read at seed repeat ``tag`` in place of ``tag`` (no repeats of its own): where a
        method finds the SAEs of one more seed, named like seed 0's with ``tag`` in place of the pair's."""
        return replace(self, tag=tag, seed_tags=())

    def repeats(self, layer: int) -> list[str]:
        """The seed tags with SAEs of both models at ``layer`` (in seed order)."""
        return [t for t in self.seed_tags
                if all(is_sae_dir(self.path(m, layer, t)) for m in (self.base, self.domain))]

    def path(self, model: str, layer: int, tag: str | None = None) -> Path:
        return sae_dir(self.artifacts, model, layer, tag or self.tag)

    def resolve_layers(self, wanted: list[int] | None) -> list[int]:
        """The layers to compare (``None``: every layer with an SAE of ``tag`` for both models); every one must
        have a finished SAE of ``tag`` for both models of one width and, at each layer, one setting (latents, k,
        tokens; layers may differ, e.g. a denser last layer); one line names the first missing one and the command
        that trains it, or the mismatch."""
        base, domain, tag = self.base, self.domain, self.tag
        n_layers = model_config(get_spec(base), self.artifacts).num_hidden_layers
        if wanted is None:
            found = [{i for i in sae_layers(self.artifacts, m, tag) if is_sae_dir(self.path(m, i))}
                     for m in (base, domain)]
            wanted = sorted(found[0] & found[1])
            if not wanted:  # the hint names layers the model has (0 .. n_layers - 1)
                every = ",".join(map(str, range(n_layers)))
                raise DataMissingError(f"SAEs tagged {tag!r} for both {base} and {domain}",
                                       sae_root(self.artifacts), f"Train them at the layers to compare "
                                       f"({base} has {n_layers}: 0 .. {n_layers - 1}), e.g. "
                                       f"`{train_command(base, every, tag, multirun=True)}` and "
                                       f"`{train_command(domain, every, tag, multirun=True)}`")
        for layer in wanted:
            if not -1 <= layer < n_layers:
                raise ConfigError(f"layer {layer} is out of range for {base} ({n_layers} layers: -1 .. {n_layers - 1})")
            for m in (base, domain):
                d = self.path(m, layer)
                if not is_sae_dir(d):
                    raise DataMissingError(f"SAE {m} layer {layer} [{tag}]", d,
                                           f"Train it: `{train_command(m, layer, tag)}`")
            d_base, d_dom = (read_meta(self.path(m, layer))["d_in"] for m in (base, domain))
            if d_base != d_dom:
                raise ConfigError(f"layer {layer}: SAE of {base} reads d_in={d_base} but SAE of {domain} reads "
                                  f"d_in={d_dom}; a pair must share the layer width (same architecture)")
        for layer in wanted:  # base and twin compared at one setting; layers may differ (each is read on its own)
            settings = {m: _setting(self.path(m, layer)) for m in (base, domain)}
            if settings[base] != settings[domain]:
                desc = "; ".join(f"{m}: {n} latents k={k} {t:,} tokens" for m, (n, k, t) in settings.items())
                raise ConfigError(f"layer {layer}: the {tag!r} SAEs of the two models differ in setting ({desc}); "
                                  f"train both alike (overwrite=true on the odd one)")
        for layer in wanted:  # a garbage or cut file named now, not in a worker after the held-out extraction
            for m in (base, domain):
                check_weights(self.path(m, layer))
                for t in self.seed_tags:
                    if is_sae_dir(self.path(m, layer, t)):
                        check_weights(self.path(m, layer, t))
        return list(wanted)

    def has_seed_repeat(self, model: str, layer: int, tag: str | None = None) -> bool:
        """Whether ``model`` has the seed repeat ``tag`` (default: the first) at ``layer``."""
        return is_sae_dir(self.path(model, layer, tag or self.seed_tag))

    def seed_sae(self, model: str, layer: int, main: TopKSAE, tag: str | None = None) -> TopKSAE | None:
        """The seed repeat ``tag`` (default: the first) of ``model`` at ``layer`` when it exists in the
        setting of ``main`` (else None)."""
        d = self.path(model, layer, tag or self.seed_tag)
        if not is_sae_dir(d):
            return None
        sae = load(d)
        if (sae.num_latents, sae.k) != (main.num_latents, main.k):
            log.warning("seed repeat %s has %d latents / k=%d but %s has %d / k=%d: not a seed of it",
                        d, sae.num_latents, sae.k, self.tag, main.num_latents, main.k)
            return None
        return sae

    def adjacent_sae(self, model: str, layer: int) -> tuple[int | None, TopKSAE | None]:
        """``(layer, SAE)`` of ``model`` at the layer below (else above) ``layer`` with the same tag, or
        ``(None, None)``: the adjacent-layer null dictionary."""
        for other in (layer - 1, layer + 1):
            d = self.path(model, other)
            if other >= -1 and is_sae_dir(d):
                return other, load(d)
        return None, None

    def method_saes(self, cfg) -> list[tuple[str, str]]:
        """(model folder, tag) of every SAE a layer's result reads under ``cfg`` (an ``AnalysisConfig``; each
        registered method's), each once."""
        from finsae.analysis.methods import METHODS

        folders = (folder for method in METHODS.values() for folder in method.sae_folders(self, cfg))
        return list(dict.fromkeys(folders))

    def versions(self, layer: int, cfg) -> dict:
        """``{model/tag: fingerprint}`` of the SAEs of :meth:`method_saes` present at ``layer``: 16 hex digits
        of the summary each training run publishes last (a retrained SAE has another)."""
        out = {}
        for m, t in self.method_saes(cfg):
            d = self.path(m, layer, t)
            if is_sae_dir(d):
                out[f"{m}/{t}"] = hashlib.sha256((d / SUMMARY_FILE).read_bytes()).hexdigest()[:16]
        return out


def _setting(path: Path) -> tuple[int, int, int]:
    meta = read_meta(path)
    return int(meta["num_latents"]), int(meta["k"]), int(meta.get("extra", {}).get("tokens", meta.get("tokens_seen", 0)))
