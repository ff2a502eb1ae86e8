"""Cache keys: a stable hash of everything that changes the stored bytes, behind a readable prefix."""

from __future__ import annotations

import hashlib
import json
import re

# Bump when the on-disk layout or the tokenization/windowing algorithm changes: old entries then miss.
FORMAT_VERSION = 1

TOKENS_DIR = "tokens"


def stable_hash(fields: dict) -> str:
    """sha256 (16 hex) of ``fields`` as canonical JSON: the same inputs give the same key on any machine."""
    blob = json.dumps({"format": FORMAT_VERSION, **fields}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", str(text)).strip("_") or "x"


def table_key(tokenizer_fp: str, corpus_name: str, corpus_hash: str, max_length: int, windowing: str) -> str:
    """Key of a token table: shared by every model whose tokenizer has fingerprint ``tokenizer_fp``."""
    digest = stable_hash({
        "tokenizer": tokenizer_fp, "corpus": corpus_hash, "max_length": max_length, "windowing": windowing,
    })
    return f"{_slug(corpus_name)}-len{max_length}-{windowing}-{digest}"


def layer_key(
    model_name: str, weights_hash: str, corpus_name: str, table_key_: str, layer: int, compute_dtype: str,
    store_special: bool,
) -> str:
    """Key of one layer's activations. The model name and corpus name only make it readable; the weights
    hash and the token-table key (tokenizer, corpus content, tokenization) make it unique."""
    digest = stable_hash({
        "weights": weights_hash, "table": table_key_, "layer": int(layer), "compute_dtype": compute_dtype,
        "special": bool(store_special),
    })
    tag = "emb" if layer == -1 else f"layer{layer}"
    return f"{_slug(model_name)}-{_slug(corpus_name)}-{tag}-{digest}"
