"""The SAE stage's artifact: one folder per run, ``artifacts/sae/{model}/layer_{i}/{tag}/`` (:func:`finsae.paths.sae_dir`).

It holds the SAE (``sae.safetensors`` + ``cfg.json``, :mod:`finsae.sae.io`), ``sae_eval_frequency.npy`` (each
latent's firing frequency on the ``sae_eval`` tokens, float32 ``[num_latents]``) and ``summary.json``
(:class:`~finsae.sae.summary.SaeSummary`). :func:`publish_sae` builds it in a staging folder and makes it visible
in one rename, so a folder holding ``summary.json`` is a finished run (:func:`finsae.summary.is_published`) and a crash never
leaves one that ``skip_if_done`` would take as finished.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from finsae.atomic import locked, publish, staging_dir
from finsae.errors import DataMissingError
from finsae.sae.io import save
from finsae.sae.sparse_coder.topk import TopKSAE
from finsae.sae.summary import SaeSummary

FREQUENCY_FILE = "sae_eval_frequency.npy"


def publish_sae(folder: str | Path, sae: TopKSAE, summary: SaeSummary, frequency: np.ndarray,
                extra: dict[str, Any]) -> Path:
    """Write the SAE (with ``extra`` in its ``cfg.json``), its firing frequencies and its summary into ``folder``
    in one rename (replacing an earlier version of the same run only); returns ``folder``."""
    folder = Path(folder)
    with locked([folder]):
        tmp = staging_dir(folder)
        save(sae, tmp, extra=extra)
        np.save(tmp / FREQUENCY_FILE, np.asarray(frequency, dtype=np.float32))
        summary.write(tmp)
        publish(tmp, folder)
    return folder


def read_frequency(folder: str | Path) -> np.ndarray:
    """The firing frequencies a published SAE run stored (one line naming the file when they are missing)."""
    path = Path(folder) / FREQUENCY_FILE
    if not path.is_file():
        raise DataMissingError("SAE firing frequencies", path, "Train the SAE with train.py (it writes them).")
    return np.load(path)


def firing_histogram(frequency: np.ndarray, title: str):
    """Histogram of log10 firing frequency over the latents that fired, the never-fired count in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    pos = frequency[frequency > 0]
    if len(pos):
        ax.hist(np.log10(pos), bins=60, color="#3a6ea5")
    ax.set_xlabel("log10 firing frequency (sae_eval tokens)")
    ax.set_ylabel("latents")
    ax.set_title(f"{title}  ({(frequency == 0).sum()} never fired)", fontsize=9)
    return fig
