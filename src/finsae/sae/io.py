"""Saving and loading a trained SAE: one folder with ``sae.safetensors`` and ``cfg.json``.

``sae.safetensors`` tensors (float32 unless the SAE was another dtype)::

    W_enc       [m, d]  encoder rows, one per latent
    b_enc       [m]     encoder bias
    W_dec       [m, d]  decoder rows, unit L2 norm
    b_dec       [d]     decoder bias / pre-encoder centre, in normalised units
    norm_scale  []      multiplier applied to inputs before encoding (1 / sqrt(mean ||x||^2))

``cfg.json`` holds every :class:`~finsae.sae.SaeConfig` field at the top level plus
``norm_scale`` (float, same as the tensor), ``tokens_seen`` (training tokens consumed),
``finsae_version`` (code version that wrote it), ``format`` (this layout, 1) and ``extra``
(the caller's JSON-able dict, e.g. model name, layer, hyper-parameters).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

import finsae
from finsae.atomic import read_json
from finsae.errors import ConfigError, DataMissingError
from finsae.sae.config import SaeConfig
from finsae.sae.sparse_coder.topk import TopKSAE

FORMAT_VERSION = 1
WEIGHTS_FILE = "sae.safetensors"
CONFIG_FILE = "cfg.json"
TENSOR_NAMES = ("W_enc", "b_enc", "W_dec", "b_dec", "norm_scale")


def save(sae: TopKSAE, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``sae`` to the folder ``path`` (created if needed); returns the folder."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {name: getattr(sae, name).detach().cpu().contiguous() for name in TENSOR_NAMES}
    meta = {
        **sae.cfg.to_dict(),
        "norm_scale": float(sae.norm_scale),
        "tokens_seen": int(sae.tokens_seen),
        "finsae_version": finsae.__version__,
        "format": FORMAT_VERSION,
        "extra": dict(extra or {}),
    }
    text = json.dumps(meta, indent=2, sort_keys=True)  # fails before writing anything if extra is not JSON-able
    save_file(state, str(path / WEIGHTS_FILE), metadata={"format": "pt", "finsae_version": finsae.__version__})
    (path / CONFIG_FILE).write_text(text + "\n")
    return path


def is_sae_dir(path: str | Path) -> bool:
    """Whether ``path`` is a saved SAE folder (weights and ``cfg.json``): the one check every stage uses."""
    path = Path(path)
    return (path / WEIGHTS_FILE).is_file() and (path / CONFIG_FILE).is_file()


def sae_identity(path: str | Path, n: int = 16) -> str:
    """The SAE's identity: the first ``n`` hex digits of the sha256 of its weights file. Caches keyed by an SAE
    (tweet encodings, label answers) use this one key, so a retrained SAE never reuses another's results."""
    with open(Path(path) / WEIGHTS_FILE, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()[:n]


def read_meta(path: str | Path) -> dict[str, Any]:
    """The parsed ``cfg.json`` of a saved SAE folder, checked to hold a valid :class:`SaeConfig` (``k`` within
    the latents, positive sizes, ...): every reader of an SAE goes through here, so a damaged or hand-edited file
    is named in one line with its fix, not reported as a bare config error far from it."""
    file = Path(path) / CONFIG_FILE
    meta = read_json(file, "SAE config", "train and save the SAE there (finsae.sae.save; train.py ... overwrite=true)")
    fix = "correct it or retrain the SAE (train.py ... overwrite=true)"
    if not isinstance(meta, dict):
        raise ConfigError(f"SAE config {file} is not a JSON object; {fix}")
    try:
        SaeConfig.from_dict(meta)
    except (ConfigError, TypeError, ValueError) as e:
        raise ConfigError(f"SAE config {file} is invalid: {str(e).splitlines()[0]}; {fix}") from None
    return meta


_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}


def check_weights(path: str | Path) -> dict[str, Any]:
    """Read only the header of ``path``'s ``sae.safetensors`` and check it against ``cfg.json`` (tensor names,
    shapes, and a file long enough for them): a garbage or cut file is named in one line before any work, not
    when it is loaded after minutes of it. Returns the parsed ``cfg.json``."""
    import struct

    path = Path(path)
    meta = read_meta(path)
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise DataMissingError("SAE weights", weights, "The folder has cfg.json but no weights; save the SAE again.")
    damaged = f"SAE weights {weights} are damaged or cut"
    size = weights.stat().st_size
    try:
        with open(weights, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > min(size - 8, 1 << 24):
                raise ValueError(f"header length {n} beyond the file's {size} bytes")
            header = json.loads(fh.read(n))
        end = 8 + n + max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
        shapes = {k: tuple(t["shape"]) for k, t in header.items() if k != "__metadata__"}
        for k, t in header.items():
            if k != "__metadata__" and t["dtype"] in _DTYPE_BYTES:
                want = _DTYPE_BYTES[t["dtype"]] * int(torch.Size(t["shape"]).numel())
                if t["data_offsets"][1] - t["data_offsets"][0] != want:
                    raise ValueError(f"{k} holds {t['data_offsets'][1] - t['data_offsets'][0]} bytes, not {want}")
    except (ValueError, KeyError, TypeError, IndexError, struct.error) as e:  # JSONDecodeError is a ValueError
        raise ConfigError(f"{damaged} (unreadable header: {str(e).splitlines()[0][:120]}); retrain it "
                          f"(train.py ... overwrite=true)") from None
    if end != size:
        raise ConfigError(f"{damaged} ({size} bytes, its header needs {end}); retrain it (train.py ... overwrite=true)")
    missing = [name for name in TENSOR_NAMES if name not in shapes]
    if missing:
        raise ConfigError(f"SAE weights {weights} lack tensors {missing}")
    cfg = SaeConfig.from_dict(meta)
    m, d = cfg.num_latents, cfg.d_in
    want = {"W_enc": (m, d), "b_enc": (m,), "W_dec": (m, d), "b_dec": (d,), "norm_scale": ()}
    for name, shape in want.items():
        if shapes[name] != shape:
            raise ConfigError(f"SAE weights {weights}: {name} has shape {shapes[name]}, cfg.json implies {shape}")
    return meta


def load(
    path: str | Path,
    expected_d_in: int | None = None,
    device: torch.device | str = "cpu",
) -> TopKSAE:
    """Load the SAE saved in folder ``path``; ``expected_d_in`` guards against a wrong layer/model."""
    path = Path(path)
    meta = read_meta(path)
    cfg = SaeConfig.from_dict(meta)
    if expected_d_in is not None and cfg.d_in != expected_d_in:
        raise ConfigError(f"SAE at {path} has d_in={cfg.d_in} but d_in={expected_d_in} was expected (wrong model or layer?)")
    weights = path / WEIGHTS_FILE
    check_weights(path)
    state = load_file(str(weights), device="cpu")
    missing = [n for n in TENSOR_NAMES if n not in state]
    if missing:
        raise ConfigError(f"SAE weights {weights} lack tensors {missing}")
    m, d = cfg.num_latents, cfg.d_in
    shapes = {"W_enc": (m, d), "b_enc": (m,), "W_dec": (m, d), "b_dec": (d,), "norm_scale": ()}
    for name, shape in shapes.items():
        if tuple(state[name].shape) != shape:
            raise ConfigError(f"SAE weights {weights}: {name} has shape {tuple(state[name].shape)}, cfg.json implies {shape}")
    sae = TopKSAE(cfg, device="meta", dtype=state["W_enc"].dtype)
    sae = sae.to_empty(device=device)
    with torch.no_grad():
        for name in TENSOR_NAMES:
            getattr(sae, name).copy_(state[name])
    sae.initialized = True
    sae.tokens_seen = int(meta.get("tokens_seen", 0))
    return sae
