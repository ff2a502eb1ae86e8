"""The SAEs one pair's analysis reads, found and checked before any work.

Under ``artifacts/sae/`` (:func:`finsae.paths.sae_dir`), per layer i: the independent SAEs
``{base,domain}/layer_{i}/{tag}`` (required) and their seed repeats ``{seed_tag}`` (seed ceilings, when present);
the pair's crosscoder ``crosscoder_{base}_{domain}/layer_{i}/{tag}`` (and ``{seed_tag}`` for its seed stability;
:mod:`finsae.analysis.crosscoder`); the warm-started runs ``{domain}/layer_{i}/{tag}_warm_domain`` and
``{base}/layer_{i}/{tag}_warm_control``, both continued from ``{base}/layer_{i}/{tag}``
(:mod:`finsae.analysis.warmstart`). A method whose SAEs are absent, or are not what they claim to be (a
crosscoder of another pair or width, a warm run started elsewhere), is logged and reads "not run", never fails.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from finsae.analysis import crosscoder, warmstart
from finsae.errors import ConfigError, DataMissingError
from finsae.models import get_spec
from finsae.models.loading import model_config
from finsae.paths import crosscoder_name, sae_dir, sae_layers, sae_root
from finsae.sae import TopKSAE, load, read_meta
from finsae.sae.io import check_weights, is_sae_dir
from finsae.sae.summary import SaeSummary

log = logging.getLogger("finsae")


def train_command(model: str, layer: int, tag: str) -> str:
    """The command that trains the SAE of ``model`` at ``layer`` tagged ``tag`` (named when it is missing)."""
    seed = " seed=1" if tag.endswith("_seed1") else ""
    return f"python train.py experiment=demo model={model} layer={layer} tag={tag}{seed}"


@dataclass(frozen=True)
class PairSaes:
    """Where a pair's SAEs of one tag live."""

    artifacts: Path
    base: str
    domain: str
    tag: str
    seed_tag: str
    """Tag of the seed repeats (``{tag}_seed1`` by default)."""

    def path(self, model: str, layer: int, tag: str | None = None) -> Path:
        return sae_dir(self.artifacts, model, layer, tag or self.tag)

    def resolve_layers(self, wanted: list[int] | None) -> list[int]:
        """The layers to compare (``None``: every layer with an SAE of ``tag`` for both models); every one must
        have a finished SAE of ``tag`` for both models of one width and, at each layer, one setting (latents, k,
        tokens; layers may differ, e.g. a denser last layer); one line names the first missing one and the command
        that trains it, or the mismatch."""
        base, domain, tag = self.base, self.domain, self.tag
        if wanted is None:
            found = [{i for i in sae_layers(self.artifacts, m, tag) if is_sae_dir(self.path(m, i))}
                     for m in (base, domain)]
            wanted = sorted(found[0] & found[1])
            if not wanted:
                raise DataMissingError(f"SAEs tagged {tag!r} for both {base} and {domain}",
                                       sae_root(self.artifacts), f"Train them: `{train_command(base, 3, tag)}` "
                                       f"and `{train_command(domain, 3, tag)}` (or `make saes` for every layer)")
        n_layers = model_config(get_spec(base), self.artifacts).num_hidden_layers
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
                if self.has_seed_repeat(m, layer):
                    check_weights(self.path(m, layer, self.seed_tag))
        return list(wanted)

    def has_seed_repeat(self, model: str, layer: int) -> bool:
        return is_sae_dir(self.path(model, layer, self.seed_tag))

    def seed_sae(self, model: str, layer: int, main: TopKSAE) -> TopKSAE | None:
        """The seed repeat of ``model`` at ``layer`` when it exists in the setting of ``main`` (else None)."""
        d = self.path(model, layer, self.seed_tag)
        if not is_sae_dir(d):
            return None
        sae = load(d)
        if (sae.num_latents, sae.k) != (main.num_latents, main.k):
            log.warning("seed repeat %s has %d latents / k=%d but %s has %d / k=%d: no seed ceiling from it",
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

    def crosscoders(self, layer: int, d_model: int) -> list:
        """``[(crosscoder, block scales) or None]`` for ``tag`` and ``seed_tag``: each only when it is a crosscoder
        of this pair at this width (a mismatch is logged, never fatal: the method then reads "not run")."""
        name = crosscoder_name(self.base, self.domain)
        return [_pair_crosscoder(self.path(name, layer, t), self.base, self.domain, d_model)
                for t in (self.tag, self.seed_tag)]

    def warm_runs(self, layer: int) -> tuple[Path, Path, Path] | None:
        """``(start, domain run, control run)`` folders when both warm runs exist and continue the base SAE."""
        start = self.path(self.base, layer)
        runs = (self.path(self.domain, layer, self.tag + warmstart.DOMAIN_SUFFIX),
                self.path(self.base, layer, self.tag + warmstart.CONTROL_SUFFIX))
        if not all(is_sae_dir(d) and _started_from(d, start) for d in runs):
            return None
        return start, *runs

    def method_saes(self) -> list[tuple[str, str]]:
        """(model folder, tag) of every SAE a layer's result reads."""
        xc = crosscoder_name(self.base, self.domain)
        tag, seed = self.tag, self.seed_tag
        return [(self.base, tag), (self.base, seed), (self.domain, tag), (self.domain, seed), (xc, tag), (xc, seed),
                (self.domain, tag + warmstart.DOMAIN_SUFFIX), (self.base, tag + warmstart.CONTROL_SUFFIX)]

    def versions(self, layer: int) -> dict:
        """``{model/tag: tokens}`` of the SAEs of :meth:`method_saes` present at ``layer``."""
        out = {}
        for m, t in self.method_saes():
            d = self.path(m, layer, t)
            if is_sae_dir(d):
                out[f"{m}/{t}"] = SaeSummary.read(d).to_dict().get("tokens")
        return out


def _setting(path: Path) -> tuple[int, int, int]:
    meta = read_meta(path)
    return int(meta["num_latents"]), int(meta["k"]), int(meta.get("extra", {}).get("tokens", meta.get("tokens_seen", 0)))


def _pair_crosscoder(path: Path, base: str, domain: str, d_model: int):
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
