"""Write a trained finsae SAE in the layouts the field's tools load, and read them back.

``python -m finsae.export SAE_FOLDER OUT [--format saelens|sparsify|all] [--hookpoint NAME]``
``python -m finsae.export --from saelens|sparsify SRC OUT``  (back into a finsae SAE folder)

Layouts (each a folder; ``all`` writes ``OUT/saelens/`` and ``OUT/sparsify/``):

* **SAELens** (``sae_lens.SAE.load_from_disk``): ``cfg.json`` + ``sae_weights.safetensors`` with ``W_enc [d_in,
  d_sae]``, ``b_enc [d_sae]``, ``W_dec [d_sae, d_in]``, ``b_dec [d_in]``; architecture ``topk`` (top-k of the
  pre-activations, then ReLU), ``apply_b_dec_to_input`` true, ``normalize_activations`` ``none``.
* **EleutherAI sparsify** (``sparsify.SparseCoder.load_from_disk`` / ``load_many``): one folder per hookpoint,
  ``OUT/<hookpoint>/cfg.json`` (``SparseCoderConfig`` fields plus ``d_in``) + ``sae.safetensors`` with
  ``encoder.weight [m, d_in]``, ``encoder.bias [m]``, ``W_dec [m, d_in]``, ``b_dec [d_in]``.

Neither library has finsae's input scale (``norm_scale``), so it is folded into the weights: with ``s`` the scale,
``W_enc' = s W_enc``, ``b_dec' = b_dec / s``, ``W_dec' = W_dec / s``. The exported SAE maps a token in the
encoder's own units to the same latents (same ids, same activations) and the same reconstruction. Decoder rows
then have norm ``1/s``, so the sparsify config says ``normalize_decoder: false``. The scale is also kept under
``finsae`` in ``cfg.json`` (both libraries ignore extra keys), and import unfolds it, giving back unit-norm
decoder rows.

The hookpoint names the module whose output the SAE reads, in Hugging Face terms: layer ``i`` is
``encoder.layer.{i}`` (``hidden_states[i + 1]``), layer ``-1`` is ``embeddings``. It becomes a folder name, so it
must be a plain name (no ``/``, not ``..``).

Before any work the command refuses (one ``finsae: error:`` line, nothing written): an ``OUT`` that is not empty
or lies inside an artifacts store (the default store, ``SRC``'s, or one ``OUT`` itself names by the SAE layout),
unless ``--force``; a write into a stage's published result (a folder holding ``summary.json``), even with
``--force``; an ``OUT`` that is a file or cannot be written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from finsae.atomic import read_json
from finsae.cli_checks import check_new_output, inside, store_of
from finsae.errors import ConfigError, DataMissingError, FinsaeError
from finsae.paths import default_artifacts_dir, plain_name
from finsae.sae import SaeConfig, TopKSAE, load, read_meta, save

SAELENS_WEIGHTS = "sae_weights.safetensors"
SPARSIFY_WEIGHTS = "sae.safetensors"
CFG = "cfg.json"
FORMATS = ("saelens", "sparsify")


def hookpoint_for_layer(layer: int) -> str:
    """The Hugging Face module whose output finsae's ``layer`` is (BERT-family encoders)."""
    return "embeddings" if int(layer) == -1 else f"encoder.layer.{int(layer)}"


def _folded(sae: TopKSAE) -> dict[str, torch.Tensor]:
    """Weights with ``norm_scale`` folded in, in finsae's orientation (``W_enc``/``W_dec`` both ``[m, d]``)."""
    s = sae.norm_scale.detach().cpu()
    return {
        "W_enc": (sae.W_enc.detach().cpu() * s).contiguous(),
        "b_enc": sae.b_enc.detach().cpu().contiguous(),
        "W_dec": (sae.W_dec.detach().cpu() / s).contiguous(),
        "b_dec": (sae.b_dec.detach().cpu() / s).contiguous(),
    }


def _finsae_block(sae: TopKSAE, extra: dict[str, Any]) -> dict[str, Any]:
    return {"norm_scale": float(sae.norm_scale), "config": sae.cfg.to_dict(), "tokens_seen": int(sae.tokens_seen),
            "extra": extra}


def _source(sae_or_folder: TopKSAE | str | Path) -> tuple[TopKSAE, dict[str, Any]]:
    if isinstance(sae_or_folder, TopKSAE):
        return sae_or_folder, {}
    return load(sae_or_folder), dict(read_meta(sae_or_folder).get("extra") or {})


def _hookpoint(extra: dict[str, Any], hookpoint: str | None) -> str:
    """The hookpoint name, a plain name: it is a folder of the sparsify layout."""
    if hookpoint is not None:
        return plain_name(hookpoint, "--hookpoint")
    if isinstance(extra.get("layer"), int):
        return hookpoint_for_layer(extra["layer"])
    raise ConfigError("the SAE's cfg.json names no layer: pass --hookpoint (e.g. encoder.layer.3)")


def to_saelens(sae_or_folder: TopKSAE | str | Path, out: str | Path, hookpoint: str | None = None) -> Path:
    """Write ``OUT/cfg.json`` + ``OUT/sae_weights.safetensors``; returns ``OUT``."""
    sae, extra = _source(sae_or_folder)
    hook = _hookpoint(extra, hookpoint)
    w = _folded(sae)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dtype = str(w["W_enc"].dtype).removeprefix("torch.")
    cfg = {
        # SAELens >= 6 reads these ...
        "architecture": "topk", "d_in": sae.d_in, "d_sae": sae.num_latents, "k": sae.k, "dtype": dtype,
        "device": "cpu", "apply_b_dec_to_input": True, "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {"model_name": extra.get("model", ""), "hook_name": hook, "hook_layer": extra.get("layer", 0)},
        # ... and SAELens 5 these.
        "model_name": extra.get("model", ""), "hook_name": hook, "hook_layer": extra.get("layer", 0),
        "hook_head_index": None, "activation_fn_str": "topk", "activation_fn_kwargs": {"k": sae.k},
        "finetuning_scaling_factor": False, "prepend_bos": False, "context_size": None, "dataset_path": "",
        "sae_lens_training_version": None,
        "finsae": _finsae_block(sae, extra),
    }
    tensors = {"W_enc": w["W_enc"].t().contiguous(), "b_enc": w["b_enc"], "W_dec": w["W_dec"], "b_dec": w["b_dec"]}
    save_file(tensors, str(out / SAELENS_WEIGHTS))
    (out / CFG).write_text(json.dumps(cfg, indent=2) + "\n")
    return out


def to_sparsify(sae_or_folder: TopKSAE | str | Path, out: str | Path, hookpoint: str | None = None) -> Path:
    """Write ``OUT/<hookpoint>/cfg.json`` + ``sae.safetensors`` (``OUT`` is then a ``load_many`` folder); returns
    the hookpoint folder."""
    sae, extra = _source(sae_or_folder)
    folder = Path(out) / _hookpoint(extra, hookpoint)
    folder.mkdir(parents=True, exist_ok=True)
    w = _folded(sae)
    cfg = {
        "activation": "topk", "expansion_factor": sae.cfg.expansion_factor, "normalize_decoder": False,
        "num_latents": sae.num_latents, "k": sae.k, "multi_topk": False, "skip_connection": False,
        "transcode": False, "d_in": sae.d_in, "finsae": _finsae_block(sae, extra),
    }
    tensors = {"encoder.weight": w["W_enc"], "encoder.bias": w["b_enc"], "W_dec": w["W_dec"], "b_dec": w["b_dec"]}
    save_file(tensors, str(folder / SPARSIFY_WEIGHTS), metadata={"format": "pt"})
    (folder / CFG).write_text(json.dumps(cfg, indent=2) + "\n")
    return folder


def _read(folder: Path, weights: str, kind: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    for f in (folder / CFG, folder / weights):
        if not f.is_file():
            raise DataMissingError(f"{kind} SAE file", f, "Write it with `python -m finsae.export SAE_FOLDER OUT`.")
    cfg = read_json(folder / CFG, f"{kind} config", "write it with `python -m finsae.export SAE_FOLDER OUT`")
    try:
        tensors = load_file(str(folder / weights))
    except Exception as err:  # safetensors raises its own error types for a truncated or foreign file
        raise ConfigError(f"{kind} weights {folder / weights} cannot be read: {err}") from err
    return cfg, tensors


def _build(cfg_block: dict[str, Any] | None, d_in: int, m: int, k: int, w: dict[str, torch.Tensor]) -> TopKSAE:
    """A TopKSAE from folded weights (``[m, d]`` orientation), unfolding finsae's scale when it was recorded."""
    block = cfg_block or {}
    scale = float(block.get("norm_scale", 1.0))
    if block.get("config"):
        cfg = SaeConfig.from_dict(block["config"])
    else:
        cfg = SaeConfig(d_in=d_in, num_latents=m, k=k, expansion_factor=max(1, m // d_in), normalize_input=False)
    if (cfg.d_in, cfg.num_latents, cfg.k) != (d_in, m, k):
        raise ConfigError(f"exported config (d_in={d_in}, latents={m}, k={k}) disagrees with its finsae block "
                          f"(d_in={cfg.d_in}, latents={cfg.num_latents}, k={cfg.k})")
    shapes = {"W_enc": (m, d_in), "b_enc": (m,), "W_dec": (m, d_in), "b_dec": (d_in,)}
    for name, shape in shapes.items():
        if tuple(w[name].shape) != shape:
            raise ConfigError(f"exported tensor {name} has shape {tuple(w[name].shape)}, the config implies {shape}")
    sae = TopKSAE(cfg, device="meta", dtype=w["W_enc"].dtype).to_empty(device="cpu")
    with torch.no_grad():
        sae.W_enc.copy_(w["W_enc"] / scale)
        sae.b_enc.copy_(w["b_enc"])
        sae.W_dec.copy_(w["W_dec"] * scale)
        sae.b_dec.copy_(w["b_dec"] * scale)
        sae.norm_scale.fill_(scale)
    sae.initialized = True
    sae.tokens_seen = int(block.get("tokens_seen", 0))
    return sae


def _need(tensors: dict[str, torch.Tensor], names: tuple[str, ...], where: Path) -> None:
    missing = [n for n in names if n not in tensors]
    if missing:
        raise ConfigError(f"{where} lacks tensors {missing}")


def from_saelens(folder: str | Path) -> TopKSAE:
    """Read a SAELens top-k SAE folder (as written by :func:`to_saelens`, or any SAELens ``topk`` SAE without
    input normalisation)."""
    folder = Path(folder)
    cfg, t = _read(folder, SAELENS_WEIGHTS, "SAELens")
    _need(t, ("W_enc", "b_enc", "W_dec", "b_dec"), folder / SAELENS_WEIGHTS)
    arch = cfg.get("architecture", cfg.get("activation_fn_str"))
    if arch != "topk":
        raise ConfigError(f"{folder / CFG}: architecture {arch!r} is not a top-k SAE; finsae reads topk only")
    if cfg.get("normalize_activations", "none") != "none":
        raise ConfigError(f"{folder / CFG}: normalize_activations={cfg['normalize_activations']!r} is not supported "
                          "(fold the scale into the weights first)")
    k = cfg.get("k", (cfg.get("activation_fn_kwargs") or {}).get("k"))
    w = {"W_enc": t["W_enc"].t().contiguous(), "b_enc": t["b_enc"], "W_dec": t["W_dec"], "b_dec": t["b_dec"]}
    return _build(cfg.get("finsae"), int(cfg["d_in"]), int(cfg["d_sae"]), int(k), w)


def from_sparsify(folder: str | Path) -> TopKSAE:
    """Read one sparsify hookpoint folder (``cfg.json`` + ``sae.safetensors``) of a top-k SAE without skip."""
    folder = Path(folder)
    cfg, t = _read(folder, SPARSIFY_WEIGHTS, "sparsify")
    _need(t, ("encoder.weight", "encoder.bias", "W_dec", "b_dec"), folder / SPARSIFY_WEIGHTS)
    if cfg.get("activation", "topk") != "topk" or cfg.get("skip_connection") or cfg.get("transcode"):
        raise ConfigError(f"{folder / CFG}: finsae reads plain top-k autoencoders only (no groupmax, skip or transcoder)")
    d_in = int(cfg["d_in"])
    m = int(cfg.get("num_latents") or d_in * int(cfg.get("expansion_factor", 32)))
    w = {"W_enc": t["encoder.weight"], "b_enc": t["encoder.bias"], "W_dec": t["W_dec"], "b_dec": t["b_dec"]}
    return _build(cfg.get("finsae"), d_in, m, int(cfg["k"]), w)


def export(src: str | Path, out: str | Path, fmt: str = "all", hookpoint: str | None = None) -> list[Path]:
    """Export the finsae SAE folder ``src`` in ``fmt`` (``saelens``, ``sparsify`` or ``all``); returns the folders."""
    if fmt not in (*FORMATS, "all"):
        raise ConfigError(f"--format must be one of {(*FORMATS, 'all')}, got {fmt!r}")
    out = Path(out)
    written = []
    if fmt in ("saelens", "all"):
        written.append(to_saelens(src, out / "saelens" if fmt == "all" else out, hookpoint))
    if fmt in ("sparsify", "all"):
        written.append(to_sparsify(src, out / "sparsify" if fmt == "all" else out, hookpoint))
    return written


def _targets(src: Path, out: Path, fmt: str, hookpoint: str | None, importing: bool) -> list[Path]:
    """The folders the command writes: ``OUT`` itself, or its per-layout folders."""
    if importing:
        return [out]
    hook = _hookpoint(dict(read_meta(src).get("extra") or {}), hookpoint)
    folders = {"saelens": [out], "sparsify": [out / hook], "all": [out / "saelens", out / "sparsify" / hook]}
    return folders[fmt]


def check_before_work(src: str | Path, out: str | Path, fmt: str = "all", hookpoint: str | None = None,
                      importing: bool = False, force: bool = False) -> None:
    """Refuse, in one line and before anything is written, what would lose or misplace something the user had:
    a path-like hookpoint, an ``OUT`` that is not empty or lies in an artifacts store (unless ``force``), a write
    into a published result or over ``SRC`` itself (never), an ``OUT`` that cannot be written."""
    src, out = Path(src), Path(out)
    if hookpoint is not None:
        plain_name(hookpoint, "--hookpoint")
    if not importing and not src.is_dir():
        raise DataMissingError("SAE folder", src, "Pass a finsae SAE folder (artifacts/sae/MODEL/layer_I/TAG).")
    targets = _targets(src, out, fmt, hookpoint, importing)
    if any(inside(src, t) for t in targets):
        raise ConfigError(f"OUT {out} would write over SRC {src}; choose another folder")
    stores = [s for s in (default_artifacts_dir(), store_of(src), store_of(out)) if s is not None]
    check_new_output(out, "OUT", stores, force, targets)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m finsae.export", description=__doc__.split("\n\n")[0])
    p.add_argument("src", help="a finsae SAE folder (artifacts/sae/MODEL/layer_I/TAG), or with --from an exported one")
    p.add_argument("out", help="output folder: new or empty, outside the artifacts store (unless --force)")
    p.add_argument("--format", default="all", choices=(*FORMATS, "all"), help="layout to write (default: all)")
    p.add_argument("--hookpoint", default=None, help="module name (default: from the SAE's layer)")
    p.add_argument("--from", dest="source_format", choices=FORMATS, default=None,
                   help="import: read SRC in this layout and write a finsae SAE folder to OUT")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty OUT or one inside the store (never into a published result)")
    a = p.parse_args(argv)
    try:
        check_before_work(a.src, a.out, a.format, a.hookpoint, importing=bool(a.source_format), force=a.force)
        if a.source_format:
            sae = (from_saelens if a.source_format == "saelens" else from_sparsify)(a.src)
            extra = (read_json(Path(a.src) / CFG, f"{a.source_format} config", "export it again").get("finsae")
                     or {}).get("extra")
            print(f"finsae.export: imported {a.src} -> {save(sae, a.out, extra=extra)}")
        else:
            for folder in export(a.src, a.out, a.format, a.hookpoint):
                print(f"finsae.export: wrote {folder}")
    except FinsaeError as e:
        print(f"finsae: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
