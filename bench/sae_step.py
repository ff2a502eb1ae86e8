"""Benchmark one top-k SAE training step: finsae's sparse kernels vs EleutherAI sparsify vs naive dense.

A step = forward, loss, backward, decoder-gradient projection, Adam (fused, same settings for
all), decoder renorm, dead counters. Default size: d_in=768, 24,576 latents, k=192, batch of
4,096 random Gaussian tokens. All contenders live in one process and are timed round-robin
(one step of each per round, plus the bare encoder-shaped fp32 GEMM), so load from other
processes hits them alike; figures are medians over rounds after warm-up. The FLOP limit is
that GEMM's rate from the same rounds (only the encoder forward counts: 2*d*m FLOP/token).
Also: torch's native bf16 GEMM rate, peak RSS of finsae's step (taken before the other
contenders exist), a round set with half the latents dead (AuxK on), and held-out FVU after
200 steps for encoder_dtype fp32 vs bf16 on a small structured synthetic set.

Process-wide settings, applied to every contender alike: ``--threads`` (default: all cores)
and glibc's malloc keeping freed memory (``finsae.sae.keep_freed_memory``; off with
``--no-malloc-tuning``). sparsify is ``pip install eai-sparsify --no-deps`` plus its pure-Python
deps; if it cannot be imported the reason is printed and its ratios are nan.

    .venv/bin/python bench/sae_step.py            # full size (~15 min on a busy 2-core box)
    .venv/bin/python bench/sae_step.py --quick    # small sizes, under a minute

The contenders and the round-robin timer run on any device (``bench/gpu_check.py`` uses them on CUDA).

The last line is machine-readable:
``sae_step fp32_vs_sparsify=<x> bf16_vs_sparsify=<y> fp32_tok_s=<n> bf16_tok_s=<n> peak_rss_gb=<g>``.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import sys
import time
import warnings
from collections.abc import Callable

import torch

from finsae.sae import (
    DeadLatentTracker,
    SaeConfig,
    SaeTrainConfig,
    TopKSAE,
    build_optimizer,
    dense_reference_forward,
    encoder_matmul_mode,
    keep_freed_memory,
    remove_parallel_decoder_grad,
    renorm_decoder,
    train_step,
)

TRAIN = SaeTrainConfig()  # loss weights, Adam eps and dead threshold of the shipped runs (defaults)

warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True to a scalar")


def peak_rss_gb() -> float:
    """Peak resident set size of this process so far (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def gemm_gflops(n: int, d: int, m: int, dtype: torch.dtype, reps: int) -> float:
    """GFLOP/s of an [n, d] @ [d, m] product (the encoder's shape, weight stored [m, d])."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, d, generator=g).to(dtype)
    w = torch.randn(m, d, generator=g).to(dtype)
    out = torch.empty(n, m, dtype=dtype)
    torch.mm(a, w.t(), out=out)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, w.t(), out=out)
        times.append(time.perf_counter() - t)
    return 2.0 * n * d * m / statistics.median(times) / 1e9


# ----------------------------------------------------------------------------- contenders


class Ours:
    """``finsae.sae.train_step``: the step the Lightning module runs to train the shipped SAEs (it calls the same
    forward_loss / before_optimizer_step / optimizer / after_optimizer_step pieces; a test checks the weights).
    Any :class:`SaeConfig` (an SAE, or a crosscoder: ``SaeTrainConfig.crosscoder_config``), on ``x``'s device."""

    def __init__(self, name: str, cfg: SaeConfig, lr: float, x: torch.Tensor):
        self.name = name
        self.sae = TopKSAE(cfg, device=x.device)
        self.sae.init_from_sample(x)
        self.opt = build_optimizer(self.sae, TRAIN, lr)
        self.tracker = DeadLatentTracker(cfg.num_latents, TRAIN.dead_token_threshold, device=x.device)

    @classmethod
    def of_shape(cls, name: str, d: int, m: int, k: int, dtype: str, lr: float, x: torch.Tensor) -> Ours:
        """An SAE of ``d`` inputs, ``m`` latents, top-``k``, encoder matmul in ``dtype`` (fp32 or bf16)."""
        return cls(name, SaeConfig(d_in=d, num_latents=m, k=k, encoder_dtype=dtype), lr, x)

    def step(self, x: torch.Tensor) -> float:
        return train_step(self.sae, self.opt, x, self.tracker, TRAIN).fvu


class Dense:
    """Same parameters and optimiser as ours, but the naive dense forward/backward."""

    def __init__(self, d: int, m: int, k: int, lr: float, x: torch.Tensor):
        self.name = "naive dense"
        cfg = SaeConfig(d_in=d, num_latents=m, k=k)
        self.sae = TopKSAE(cfg)
        self.sae.init_from_sample(x)
        self.opt = build_optimizer(self.sae, TRAIN, lr)
        self.tracker = DeadLatentTracker(m, TRAIN.dead_token_threshold)

    def step(self, x: torch.Tensor) -> float:
        out = dense_reference_forward(self.sae, x, self.tracker.dead_mask())
        loss = out.fvu + TRAIN.auxk_coef * out.auxk_loss
        loss.backward()
        remove_parallel_decoder_grad(self.sae)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        renorm_decoder(self.sae)
        self.tracker.update(out.latent_indices, x.shape[0], out.latent_acts)
        return float(out.fvu)


class Sparsify:
    """EleutherAI sparsify's SparseCoder with its own trainer's step logic and our Adam settings, on ``x``'s
    device (on CUDA its forward runs under its own bf16 autocast)."""

    def __init__(self, d: int, m: int, k: int, lr: float, x: torch.Tensor, dead_tokens: int, auxk_coef: float):
        from sparsify import SparseCoder, SparseCoderConfig

        self.name = "sparsify"
        torch.manual_seed(0)
        self.sc = SparseCoder(d, SparseCoderConfig(num_latents=m, k=k), device=x.device)
        with torch.no_grad():
            self.sc.b_dec.copy_(x.mean(0))  # what sparsify's trainer does on step 0
        params = list(self.sc.parameters())
        try:
            self.opt = torch.optim.Adam(params, lr=lr, eps=6.25e-10, fused=True)
        except (RuntimeError, TypeError, ValueError):
            self.opt = torch.optim.Adam(params, lr=lr, eps=6.25e-10, foreach=True)
        self.counts = torch.zeros(m, dtype=torch.long, device=x.device)
        self.dead_tokens = dead_tokens
        self.auxk_coef = auxk_coef

    def step(self, x: torch.Tensor) -> float:
        dead = self.counts > self.dead_tokens
        out = self.sc(x, dead_mask=dead)
        loss = out.fvu + self.auxk_coef * out.auxk_loss
        loss.backward()
        self.sc.remove_gradient_parallel_to_decoder_directions()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.sc.set_decoder_norm_to_unit_norm()
        with torch.no_grad():
            fired = torch.zeros_like(self.counts, dtype=torch.bool)
            fired[out.latent_indices.flatten()] = True
            self.counts += x.shape[0]
            self.counts[fired] = 0
        return float(out.fvu)


class Gemm:
    """Not a contender: the encoder-shaped fp32 GEMM alone, timed in the same rounds so the
    FLOP limit is measured under the same load as the steps."""

    def __init__(self, n: int, d: int, m: int):
        self.name = "fp32 GEMM"
        g = torch.Generator().manual_seed(0)
        self.a = torch.randn(n, d, generator=g)
        self.w = torch.randn(m, d, generator=g)
        self.out = torch.empty(n, m)

    def step(self, x: torch.Tensor) -> float:
        torch.mm(self.a, self.w.t(), out=self.out)
        return 0.0


def time_round_robin(contenders: list, x: torch.Tensor, warmup: int, steps: int,
                     sync: Callable[[], None] | None = None) -> dict[str, list[float]]:
    """Seconds per step of each contender, one step of each per round; ``sync`` (``torch.cuda.synchronize``)
    runs before and after every timed step so that asynchronous devices are timed to completion."""
    wait = sync or (lambda: None)
    for c in contenders:
        for _ in range(warmup):
            c.step(x)
    times: dict[str, list[float]] = {c.name: [] for c in contenders}
    for _ in range(steps):
        for c in contenders:
            wait()
            t = time.perf_counter()
            c.step(x)
            wait()
            times[c.name].append(time.perf_counter() - t)
    return times


# ----------------------------------------------------------------------------- FVU check


def synthetic_sparse_data(n: int, d: int, atoms: int, active: int, seed: int) -> torch.Tensor:
    """Tokens that are sparse positive combinations of a fixed unit-norm dictionary, plus noise and an offset."""
    g = torch.Generator().manual_seed(seed)
    dictionary = torch.randn(atoms, d, generator=torch.Generator().manual_seed(1234))
    dictionary /= dictionary.norm(dim=1, keepdim=True)
    offset = 0.5 * torch.randn(d, generator=torch.Generator().manual_seed(4321))
    # Zipf-like atom frequencies, as in real activations.
    probs = 1.0 / torch.arange(1, atoms + 1, dtype=torch.float64) ** 0.7
    ids = torch.multinomial(probs.expand(n, -1), active, replacement=False, generator=g)
    coef = torch.rand(n, active, generator=g) * 2 + 0.5
    x = torch.zeros(n, d).index_add_(0, torch.arange(n).repeat_interleave(active), coef.reshape(-1, 1) * dictionary[ids.reshape(-1)])
    return x + offset + 0.05 * torch.randn(n, d, generator=g)


def held_out_fvu(sae: TopKSAE, x: torch.Tensor) -> float:
    with torch.no_grad():
        out = sae(x)
    return float(out.fvu)


def fvu_check(steps: int, quick: bool) -> tuple[float, float]:
    d, m, k, batch = (64, 512, 8, 256) if quick else (128, 2048, 16, 1024)
    atoms, active = (256, 6) if quick else (1024, 12)
    train = synthetic_sparse_data(steps * batch, d, atoms, active, seed=1)
    test = synthetic_sparse_data(4096, d, atoms, active, seed=2)
    res = []
    for dt in ("fp32", "bf16"):
        sae = TopKSAE(SaeConfig(d_in=d, num_latents=m, k=k, encoder_dtype=dt, seed=0))
        sae.init_from_sample(train[:8192])
        opt = build_optimizer(sae, TRAIN, 2e-3)
        tracker = DeadLatentTracker(m, TRAIN.dead_token_threshold)
        for s in range(steps):
            lr = 2e-3 * min(1.0, (s + 1) / 10)
            train_step(sae, opt, train[s * batch:(s + 1) * batch], tracker, TRAIN, lr)
        res.append(held_out_fvu(sae, test))
    return res[0], res[1]


# ----------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes for a fast smoke run")
    ap.add_argument("--d", type=int, default=None)
    ap.add_argument("--latents", type=int, default=None)
    ap.add_argument("--k", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None, help="timed rounds (median reported)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--fvu-steps", type=int, default=200)
    ap.add_argument("--no-sparsify", action="store_true")
    ap.add_argument("--no-dense", action="store_true")
    ap.add_argument("--no-fvu", action="store_true")
    ap.add_argument("--auxk-rounds", type=int, default=3, help="rounds timed with half the latents dead (0: skip)")
    ap.add_argument("--no-malloc-tuning", action="store_true",
                    help="leave glibc malloc as is (default: finsae.sae.alloc.keep_freed_memory(), for all contenders)")
    args = ap.parse_args()

    q = args.quick
    d = args.d or (256 if q else 768)
    m = args.latents or (8192 if q else 24576)
    k = args.k or (64 if q else 192)
    n = args.batch or (1024 if q else 4096)
    steps = args.steps or (5 if q else 10)
    torch.set_num_threads(args.threads)
    lr = 1e-4
    tuned = False if args.no_malloc_tuning else keep_freed_memory()

    print(f"torch {torch.__version__}  threads={torch.get_num_threads()}  cpu={torch.backends.cpu.get_cpu_capability()}")
    print(f"glibc malloc keeps freed memory (no mmap/trim, process-wide): {tuned}")
    print(f"shape: d_in={d} latents={m} k={k} batch={n}  timed rounds={steps} (+{args.warmup} warm-up)")
    load1 = os.getloadavg()[0]
    print(f"load average at start: {load1:.2f} (other processes share these cores; rounds are interleaved)")

    gf16 = gemm_gflops(min(n, 512), d, m, torch.bfloat16, 2)
    print(f"bf16 GEMM (torch native, [{min(n, 512)}, {d}] @ [{d}, {m}]): {gf16:.1f} GFLOP/s")
    flop_per_tok = 2.0 * d * m

    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)

    # Our step alone first, so the RSS peak is ours.
    ours32 = Ours.of_shape("finsae fp32", d, m, k, "fp32", lr, x)
    for _ in range(args.warmup):
        ours32.step(x)
    rss = peak_rss_gb()
    print(f"peak RSS after finsae fp32 steps (SAE + Adam + data + torch): {rss:.3f} GB")
    ours16 = Ours.of_shape("finsae bf16", d, m, k, "bf16", lr, x)
    mode16 = encoder_matmul_mode("bf16", ours16.sae.W_enc)
    print(f"finsae bf16 encoder path on this machine: {mode16}")

    contenders = [ours32, ours16]
    sparsify_err = None
    if not args.no_sparsify:
        try:
            contenders.append(Sparsify(d, m, k, lr, x, TRAIN.dead_token_threshold, TRAIN.auxk_coef))
        except Exception as err:  # noqa: BLE001 - report why and go on
            sparsify_err = f"{type(err).__name__}: {err}"
            print(f"sparsify unavailable: {sparsify_err}")
    if not args.no_dense:
        contenders.append(Dense(d, m, k, lr, x))

    gemm = Gemm(n, d, m)
    times = time_round_robin([gemm, *contenders], x, args.warmup, steps)
    gemm_times = times.pop(gemm.name)
    gf32 = 2.0 * n * d * m / statistics.median(gemm_times) / 1e9
    limit32 = gf32 * 1e9 / flop_per_tok
    med = {name: statistics.median(ts) for name, ts in times.items()}
    tok = {name: n / s for name, s in med.items()}
    ref = tok.get("sparsify")

    print()
    print(f"{'contender':<14} {'s/step':>8} {'min':>8} {'tok/s':>9} {'vs sparsify':>12} {'vs fp32 FLOP limit':>19}")
    for name, ts in times.items():
        vs = f"{tok[name] / ref:.2f}x" if ref else "n/a"
        print(f"{name:<14} {med[name]:>8.3f} {min(ts):>8.3f} {tok[name]:>9.0f} {vs:>12} {tok[name] / limit32:>18.1%}")
    print(f"fp32 GEMM at the encoder shape, same rounds: {gf32:.1f} GFLOP/s (median; best "
          f"{2.0 * n * d * m / min(gemm_times) / 1e9:.1f})")
    print(f"FLOP limit (encoder fwd only, 2*d*m = {flop_per_tok / 1e6:.1f} MFLOP/token): "
          f"fp32 {limit32:.0f} tok/s, native bf16 {gf16 * 1e9 / flop_per_tok:.0f} tok/s")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")

    if args.auxk_rounds and ref:
        # Half the latents dead: AuxK on for both finsae fp32 and sparsify.
        ours32.tracker.tokens_since_fired[::2] = 10 * TRAIN.dead_token_threshold
        sp = next(c for c in contenders if c.name == "sparsify")
        sp.counts[::2] = 10 * sp.dead_tokens
        aux_times = time_round_robin([ours32, sp], x, 1, args.auxk_rounds)
        a_ours, a_sp = (statistics.median(aux_times[c]) for c in ("finsae fp32", "sparsify"))
        print(f"with AuxK (half the latents dead, k_aux={ours32.sae.cfg.k_aux}): finsae fp32 {a_ours:.3f} s/step, "
              f"sparsify {a_sp:.3f} s/step, ratio {a_sp / a_ours:.2f}x")

    if not args.no_fvu:
        t = time.perf_counter()
        f32, f16 = fvu_check(args.fvu_steps, q)
        rel = abs(f16 - f32) / max(f32, 1e-12)
        print(f"held-out FVU after {args.fvu_steps} steps (structured synthetic): fp32 {f32:.4f}  bf16 {f16:.4f}  "
              f"rel diff {rel:.2%} (target <= 1%)  [{time.perf_counter() - t:.0f}s]")

    def fmt(v):
        return "nan" if v is None or not math.isfinite(v) else f"{v:.2f}"

    r32 = tok["finsae fp32"] / ref if ref else None
    r16 = tok["finsae bf16"] / ref if ref else None
    if sparsify_err:
        print(f"(ratios are nan: sparsify could not run here: {sparsify_err})")
    print(f"sae_step fp32_vs_sparsify={fmt(r32)} bf16_vs_sparsify={fmt(r16)} fp32_tok_s={tok['finsae fp32']:.0f} "
          f"bf16_tok_s={tok['finsae bf16']:.0f} peak_rss_gb={rss:.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
