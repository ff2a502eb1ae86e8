"""Wall time and peak memory of one layer of the analysis (finsae.analysis.compare.compare_layer).

    python bench/analyze_layer.py offline            # the offline default: cached MiniLM held-out activations
                                                     # and the demo SAEs of one layer (analyze.py must have
                                                     # extracted them once)
    python bench/analyze_layer.py paper [--tokens N] # random SAEs at paper size (2 x 24,576 latents x 768)
                                                     # on N random held-out rows (default 1,000,000)

Prints one line per phase and a final line with wall seconds and peak RSS (GiB). Each mode runs in its own
process so the peaks do not mix.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from finsae.analysis.compare import LayerInputs, compare_layer  # noqa: E402
from finsae.analysis.config import AnalysisConfig  # noqa: E402
from finsae.analysis.heldout import HeldoutSet  # noqa: E402
from finsae.data.corpus import Corpus  # noqa: E402
from finsae.sae import SaeConfig, TopKSAE  # noqa: E402


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class Phases:
    def __init__(self):
        self.t = self.t0 = time.time()

    def __call__(self, msg: str) -> None:
        now = time.time()
        print(f"  {now - self.t0:7.1f} s  (+{now - self.t:6.1f})  peak {peak_gib():5.2f} GiB  -> {msg}", flush=True)
        self.t = now


def offline(layer: int, tag: str) -> None:
    from finsae.activations import build_activations
    from finsae.analysis.heldout import heldout_set
    from finsae.models import get_spec, load_model
    from finsae.paths import activations_root, default_artifacts_dir, default_data_dir, sae_dir
    from finsae.sae import load

    art = default_artifacts_dir()
    cfg = AnalysisConfig()
    held = heldout_set(default_data_dir(), docs_per_side=cfg.docs_per_side, docs_per_category=cfg.docs_per_category,
                       max_chars=cfg.max_chars)
    stores = {}
    for m in ("minilm", "minilm_fin"):
        loaded = load_model(get_spec(m), art)
        stores[m] = build_activations(loaded, held.corpus, range(6), activations_root(art), progress=False,
                                      align_with=stores.get("minilm"))[layer]
    table = stores["minilm"].table
    doc_of_row = held.corpus.frame.set_index("doc_id").index.get_indexer(table.doc_ids)[table.column("doc")]
    inp = LayerInputs(layer, "minilm", "minilm_fin", load(sae_dir(art, "minilm", layer, tag)),
                      load(sae_dir(art, "minilm_fin", layer, tag)), stores["minilm"].array, stores["minilm_fin"].array,
                      doc_of_row, table.column("char_start"), held)
    print(f"offline default, layer {layer} [{tag}]: {len(doc_of_row):,} held-out tokens, "
          f"{inp.base.num_latents:,} latents per SAE, {torch.get_num_threads()} threads")
    t = time.time()
    compare_layer(inp, cfg, progress=Phases())
    print(f"RESULT offline layer {layer}: {time.time() - t:.1f} s wall, peak RSS {peak_gib():.2f} GiB")


def paper(tokens: int, docs: int, latents: int, d: int, k: int) -> None:
    rng = np.random.default_rng(0)
    print(f"paper size: 2 x {latents:,} latents x {d}, k={k}, {tokens:,} random held-out rows in {docs:,} documents, "
          f"{torch.get_num_threads()} threads")
    saes = []
    for seed in (0, 1):
        sae = TopKSAE(SaeConfig(d_in=d, expansion_factor=latents // d, k=k, seed=seed))
        sae.initialized = True
        saes.append(sae.eval().requires_grad_(False))
    acts = [rng.standard_normal((tokens, d), dtype=np.float32).astype(np.float16) for _ in range(2)]
    doc_of_row = np.sort(rng.integers(0, docs, tokens))
    frame = __import__("pandas").DataFrame({"doc_id": [f"d{i}" for i in range(docs)],
                                            "text": [" ".join(["w"] * 40)] * docs, "source": "bench"})
    half = docs // 2
    quarter = docs // 4
    groups = {"financial": np.arange(0, half), "general": np.arange(half, docs),
              "ag_business": np.arange(0, quarter), "ag_other": np.arange(half, half + quarter)}
    held = HeldoutSet(Corpus("bench", frame), groups)
    char_start = np.zeros(tokens, np.int64)
    inp = LayerInputs(0, "base", "domain", saes[0], saes[1], acts[0], acts[1], doc_of_row, char_start, held)
    print(f"  inputs ready: peak {peak_gib():.2f} GiB")
    t = time.time()
    compare_layer(inp, AnalysisConfig(), progress=Phases())
    print(f"RESULT paper size: {time.time() - t:.1f} s wall, peak RSS {peak_gib():.2f} GiB "
          f"({tokens:,} tokens; encoding is {2 * 2 * tokens * d * latents / 1e12:.1f} TFLOP of it)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["offline", "paper"])
    p.add_argument("--layer", type=int, default=3)
    p.add_argument("--tag", default="demo")
    p.add_argument("--tokens", type=int, default=1_000_000)
    p.add_argument("--docs", type=int, default=20_000)
    p.add_argument("--latents", type=int, default=24_576)
    p.add_argument("--d", type=int, default=768)
    p.add_argument("--k", type=int, default=32)
    a = p.parse_args()
    from finsae.glue.console import quiet_console

    quiet_console()  # no load reports or weight-loading bars between the figures
    if a.mode == "offline":
        offline(a.layer, a.tag)
    else:
        paper(a.tokens, a.docs, a.latents, a.d, a.k)


if __name__ == "__main__":
    main()
