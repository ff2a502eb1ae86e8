"""bf16 vs fp32 for the demo's model forwards and the SAE's GEMM, on this CPU, one thread.

    .venv/bin/python bench/model_dtype.py [--model minilm] [--batches 8] [--batch 64] [--length 128]

What ``activations.dtype=auto`` (``finsae.precision``) chooses here, then per batch an fp32 forward and a
``torch.autocast("cpu", bfloat16)`` forward of the same input, interleaved so load swings on a shared machine hit
both alike; and the SAE encoder GEMM at the demo shape (512 x 384 @ 384 x 768). On a CPU without bf16 units
(no ``amx_bf16``/``avx512_bf16``) bf16 is emulated and slower: the ratio says so rather than being assumed.
Last line: ``model_dtype auto=<dtype> forward_speedup=<x> gemm_speedup=<x> max_rel_err=<e>``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from finsae import precision
from finsae.models import get_spec, hidden_states, load_model


def _timed(fn, *args):
    """(seconds, result) of ``fn(*args)``."""
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--length", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"cpu bf16 flags {precision.bf16_flags()}; torch capability {torch.backends.cpu.get_cpu_capability()}; "
          f"auto -> {precision.resolve('auto', 'cpu')}")
    loaded = load_model(get_spec(args.model))
    enc = loaded.encoder.eval()
    layers = list(range(loaded.num_layers))
    g = torch.Generator().manual_seed(0)
    t32, t16, rel = [], [], []
    with torch.no_grad():
        for b in range(args.batches + 1):  # the first batch warms both paths up and is not counted
            ids = torch.randint(1000, loaded.tokenizer.vocab_size, (args.batch, args.length), generator=g)
            mask = torch.ones_like(ids)
            a, full = _timed(hidden_states, enc, ids, mask, layers)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                c, low = _timed(hidden_states, enc, ids, mask, layers)
            if b:
                t32.append(a)
                t16.append(c)
                for i in layers:
                    x, y = full.layers[i].float(), low.layers[i].float()
                    rel.append(float((x - y).norm() / x.norm()))
    tokens = args.batch * args.length
    f32, f16 = statistics.median(t32), statistics.median(t16)
    print(f"forward {args.model} {args.batch}x{args.length}: fp32 {tokens / f32:,.0f} tok/s, bf16 {tokens / f16:,.0f} "
          f"tok/s ({f32 / f16:.2f}x); relative error per layer max {max(rel):.2e}")
    x, w = torch.randn(512, 384), torch.randn(384, 768)
    xb, wb = x.bfloat16(), w.bfloat16()
    g32 = statistics.median(_timed(lambda: [x @ w for _ in range(20)])[0] for _ in range(5))
    g16 = statistics.median(_timed(lambda: [xb @ wb for _ in range(20)])[0] for _ in range(5))
    print(f"gemm 512x384 @ 384x768: fp32 {g32 / 20 * 1e3:.2f} ms, bf16 {g16 / 20 * 1e3:.2f} ms ({g32 / g16:.2f}x)")
    print(f"model_dtype auto={precision.resolve('auto', 'cpu')} forward_speedup={f32 / f16:.2f} "
          f"gemm_speedup={g32 / g16:.2f} max_rel_err={max(rel):.2e}")


if __name__ == "__main__":
    main()
