"""Latent Scaling of a crosscoder (the analysis' crosscoder step): seconds per 100k rows, both ways of summing.

    .venv/bin/python bench/latent_scaling.py [--d 384] [--latents 768] [--k 32] [--rows 100000] [--threads 1]

A random crosscoder of the demo's shape (two blocks of ``--d``, ``--latents`` latents, top ``--k``) initialised on
random rows, its codes computed once (as the analysis does), then :func:`finsae.analysis.crosscoder.latent_scaling`
over the rows twice: with the ``[m, m]`` co-activation table (what the demo's 768 latents use) and from each token's
reconstruction (what crosscoders wider than ``COACT_MAX_LATENTS`` use). Reports CPU seconds per 100k rows and how far the two
agree (largest relative difference of the four betas).
Last line: ``latent_scaling rows=<n> coact_s=<s> recon_s=<s> max_rel_diff=<e>``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from finsae.analysis import crosscoder
from finsae.analysis.doc_scores import encode_rows
from finsae.sae import SaeConfig, TopKSAE


def _run(sae, x, codes, coact_max: int) -> tuple[float, np.ndarray]:
    crosscoder.COACT_MAX_LATENTS = coact_max
    t = time.process_time()
    s = crosscoder.latent_scaling(sae, x.split(20_000), codes=codes)
    seconds = time.process_time() - t
    return seconds, np.stack([s.beta_eps_own, s.beta_eps_other, s.beta_r_own, s.beta_r_other])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--latents", type=int, default=768)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    sae = TopKSAE(SaeConfig(d_in=2 * a.d, num_latents=a.latents, k=a.k, seed=0))
    x = torch.randn(a.rows, 2 * a.d)
    sae.init_from_sample(x[:4096])
    codes = encode_rows(sae, x)
    table_s, table = _run(sae, x, codes, a.latents)
    recon_s, recon = _run(sae, x, codes, 0)
    per = 100_000 / a.rows
    both = np.isfinite(table)
    diff = float(np.max(np.abs(table[both] - recon[both]) / np.maximum(np.abs(table[both]), 1e-12)))
    print(f"latent_scaling rows={a.rows} coact_s={table_s * per:.2f} recon_s={recon_s * per:.2f} max_rel_diff={diff:.1e}")


if __name__ == "__main__":
    main()
