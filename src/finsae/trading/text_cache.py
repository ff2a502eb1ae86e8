"""Per-tweet encodings cached on disk, keyed by the activation entry and the SAE weights, published atomically:
encoding all StockNet tweets runs once per (model, layer, SAE)."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from finsae.atomic import locked, publish, staging_dir
from finsae.trading.text_features import DocFeatures

DOC_FILE = "docs.npz"
log = logging.getLogger(__name__)


def _save(path: Path, docs: DocFeatures) -> None:
    arrays = {"n_tokens": docs.n_tokens, "dense_sum": docs.dense_sum}
    for name in ("sae_sum", "sae_max"):
        m = getattr(docs, name)
        if m is not None:
            arrays.update({f"{name}_data": m.data, f"{name}_indices": m.indices, f"{name}_indptr": m.indptr,
                           f"{name}_shape": np.array(m.shape)})
    np.savez(path, **arrays)


def _load(path: Path) -> DocFeatures:
    z = np.load(path)
    mats = {}
    for name in ("sae_sum", "sae_max"):
        mats[name] = (sp.csr_matrix((z[f"{name}_data"], z[f"{name}_indices"], z[f"{name}_indptr"]),
                                    shape=tuple(z[f"{name}_shape"])) if f"{name}_data" in z else None)
    return DocFeatures(z["n_tokens"], mats["sae_sum"], mats["sae_max"], z["dense_sum"])


def _load_whole(path: Path) -> DocFeatures | None:
    """The stored features, or None when the file is absent or damaged (cut by a kill or a full disk): a damaged
    entry is rebuilt, as the activation cache does, not fatal on every later run."""
    if not path.is_file():
        return None
    try:
        return _load(path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        log.warning("per-tweet cache %s is damaged (%s: %s); rebuilding it", path, type(e).__name__, e)
        return None


def cached_docs(root: Path, key: str, compute) -> tuple[DocFeatures, bool]:
    """The DocFeatures under ``root/key`` or ``compute()`` them and publish; (features, computed now)."""
    entry = Path(root) / key
    if (docs := _load_whole(entry / DOC_FILE)) is not None:
        return docs, False
    with locked([entry]):
        if (docs := _load_whole(entry / DOC_FILE)) is not None:
            return docs, False
        docs = compute()
        tmp = staging_dir(entry)
        _save(tmp / DOC_FILE, docs)
        publish(tmp, entry, marker=None)  # a content-hash key: only a (damaged) entry of it is replaced
    return docs, True
