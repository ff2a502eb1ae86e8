"""Peak memory of the analysis' latent-by-latent steps at the paper width (24,576 latents), on a few rows.

    python bench/analysis_memory.py [--latents 24576] [--rows 4096] [--out bench_analysis_memory.json]

Each step runs in a fresh process; its peak resident memory above what its inputs already took (``ru_maxrss``
after the step minus after building the inputs) is the step's own working memory. Steps:

* ``match_decoders``: base vs twin decoder matching (chunked cosine; the sparse solver above 4,096^2 entries).
* ``max_matching_at``: the maximum-cardinality count at tau (chunked threshold graph).
* ``latent_scaling`` on a crosscoder of that width (2 x 768 inputs, k = 192): the ``[m, m]`` co-activation
  table only up to ``COACT_MAX_LATENTS``, the per-token rebuild above it (both measured: the table at its
  cap).
* ``class_stability`` of the crosscoder's two seeds: ``[a, b]`` cosines of the two seeds' specific latents,
  a latents^2 table when most latents are specific (measured with every latent specific, at a quarter width,
  and scaled: the worst case).

Where a step's memory grows as latents^2, the JSON says so (``grows``), from a second run at half the width.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time

import numpy as np
import torch

D_MODEL = 768
K = 192


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _decoders(m: int, seed: int) -> torch.Tensor:
    return torch.randn(m, D_MODEL, generator=torch.Generator().manual_seed(seed))


def _step(name: str, m: int, rows: int, queue) -> None:
    from finsae.analysis import crosscoder, matching
    from finsae.sae import SaeConfig, TopKSAE

    torch.set_num_threads(1)
    if name in ("match_decoders", "max_matching_at"):
        a, b = _decoders(m, 0), _decoders(m, 1)
        run = (lambda: matching.match_decoders(a, b)) if name == "match_decoders" else \
            (lambda: matching.max_matching_at(a, b))
    elif name == "latent_scaling":
        sae = TopKSAE(SaeConfig(d_in=2 * D_MODEL, num_latents=m, k=K, seed=0))
        x = torch.randn(rows, 2 * D_MODEL, generator=torch.Generator().manual_seed(2))
        run = lambda: crosscoder.latent_scaling(sae, [x])  # noqa: E731
    elif name == "class_stability":
        w0, w1 = _decoders(m, 0), _decoders(m, 1)
        cls = np.full(m, "domain_only", dtype=object)  # the worst case: every latent specific in both seeds
        run = lambda: crosscoder.class_stability(w0, cls, w1, cls)  # noqa: E731
    else:
        raise ValueError(name)
    before = _rss_mib()
    t0 = time.perf_counter()
    run()
    queue.put({"step": name, "latents": m, "rows": rows, "inputs_mib": round(before, 1),
               "working_mib": round(_rss_mib() - before, 1), "seconds": round(time.perf_counter() - t0, 2)})


def measure(name: str, m: int, rows: int) -> dict:
    """One step in a fresh (spawned) process: its peak memory is its own."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_step, args=(name, m, rows, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latents", type=int, default=24576)
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--out", default="bench_analysis_memory.json")
    a = ap.parse_args(argv)
    from finsae.analysis.crosscoder import COACT_MAX_LATENTS

    plan = [("match_decoders", a.latents), ("max_matching_at", a.latents), ("latent_scaling", a.latents),
            ("latent_scaling", COACT_MAX_LATENTS), ("class_stability", a.latents // 4)]
    results = []
    for name, m in plan:
        full, half = measure(name, m, a.rows), measure(name, m // 2, a.rows)
        ratio = full["working_mib"] / max(half["working_mib"], 1.0)
        full["grows"] = "latents^2" if ratio > 3.0 else "about linear"  # 4x per doubling vs 2x
        full["working_mib_at_half"] = half["working_mib"]
        if name == "class_stability":  # the worst case scaled to the full width (latents^2)
            full["extrapolated_mib_at_full"] = round(full["working_mib"] * (a.latents / m) ** 2, 1)
        results.append(full)
        print(json.dumps(full), flush=True)
    record = {"latents": a.latents, "rows": a.rows, "date": time.strftime("%Y-%m-%d"),
              "torch": torch.__version__, "steps": results}
    with open(a.out, "w") as fh:
        json.dump(record, fh, indent=1)
    print(f"analysis_memory: wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
