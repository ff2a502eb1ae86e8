"""The labels' sentence embeddings (hard negatives, embedding scorer): one thread vs two, and bf16 autocast.

    .venv/bin/python bench/label_embed.py [--artifacts artifacts] [--pair minilm_fin] [--model minilm_fin]
                                          [--layer 3] [--texts 1500]

Embeds ``--texts`` distinct held-out contexts that the analysis stored for one model and layer (what
``label.py`` embeds) with the packaged all-MiniLM-L6-v2, once per setting, each with a fresh embedder (it caches
by text): fp32 on one thread, fp32 on two, bf16 autocast on one. Reports seconds, the speedups and how far the
vectors move (max abs difference; least cosine for bf16). ``make demo`` runs the labels on two threads; bf16 is
not used (measured, not taken: CHANGELOG.md, 2026-12-03).
Last line: ``label_embed texts=<n> two_threads=<x> bf16=<x> two_threads_max_diff=<e> bf16_min_cos=<c>``.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import numpy as np
import torch

from finsae.analysis.contexts import read_contexts
from finsae.labeling.embed import SentenceEmbedder
from finsae.labeling.examples import examples_of
from finsae.paths import analysis_dir, default_artifacts_dir


def _embed(texts: list[str], threads: int, bf16: bool) -> tuple[float, np.ndarray]:
    torch.set_num_threads(threads)
    embed = SentenceEmbedder()
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    t = time.perf_counter()
    with ctx:
        out = embed(texts)
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", default=str(default_artifacts_dir()))
    ap.add_argument("--pair", default="minilm_fin")
    ap.add_argument("--model", default="minilm_fin")
    ap.add_argument("--layer", type=int, default=3)
    ap.add_argument("--texts", type=int, default=1500)
    args = ap.parse_args()
    contexts = read_contexts(analysis_dir(Path(args.artifacts), args.pair), args.model, args.layer)
    texts = sorted({e.text for v in examples_of(contexts).values() for e in v})
    rng = np.random.default_rng(0)
    texts = [texts[i] for i in rng.choice(len(texts), min(args.texts, len(texts)), replace=False)]
    s1, a = _embed(texts, 1, False)
    s2, b = _embed(texts, 2, False)
    sb, c = _embed(texts, 1, True)
    print(f"{len(texts)} contexts of {args.model} layer {args.layer}: fp32 1 thread {s1:.1f} s, 2 threads {s2:.1f} s, "
          f"bf16 1 thread {sb:.1f} s")
    print(f"label_embed texts={len(texts)} two_threads={s1 / s2:.2f} bf16={s1 / sb:.2f} "
          f"two_threads_max_diff={float(np.abs(a - b).max()):.2e} bf16_min_cos={float((a * c).sum(1).min()):.5f}")


if __name__ == "__main__":
    main()
