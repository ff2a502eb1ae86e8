"""Extraction throughput: the activation cache vs a bare forward loop over the very same batches.

    .venv/bin/python bench/extract.py [--docs 2000] [--model minilm] [--repeats 2]

Both runs see identical inputs (the cache's own chunking and length-sorted batching, replayed for the bare
loop). The cache run is a full ``build_activations(rebuild=True)`` of every layer (embeddings + all blocks):
forward, fp16 gather, shard writes with sha256, fsync, manifest, atomic publish.

The dev box is shared and its load swings between runs, so two clocks are kept:

* interleaved (the headline ``ratio_vs_bare``): during the cache run a forward hook re-runs each batch through
  a bare ``model(**batch)`` right after the cache's own forward, and times it. Both see the same batches at
  the same moment; the bare time is then taken out of the cache run's wall time.
* paired runs (printed for reference): a separate bare loop before each cache run; noisy under load.

``tok_s`` is real tokens / the cache run's own wall time (median over ``--repeats``).
Last line: ``extract ratio_vs_bare=<x> tok_s=<n> peak_rss_gb=<g>``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass

import pandas as pd
import torch

from finsae.activations import ExtractConfig, build_activations, ensure_token_table
from finsae.activations.forward_chunks import chunk_batches, plan_chunks, rows_per_chunk
from finsae.models import get_spec, load_model


@dataclass
class BenchCorpus:
    """Fallback corpus (synthetic finance-like sentences) when no real data is on this machine."""

    name: str
    frame: pd.DataFrame

    def content_hash(self) -> str:
        return str(pd.util.hash_pandas_object(self.frame[["doc_id", "text"]]).sum())


def load_sentences(n: int):
    try:
        from finsae.data.corpus import load_corpus

        corpus = load_corpus("phrasebank", max_docs=n)
        print(f"corpus: PhraseBank, {len(corpus)} sentences")
        return corpus
    except Exception as e:  # no shared data here: the figures still mean something on synthetic text
        print(f"corpus: synthetic ({type(e).__name__}: {e})")
    words = "profit sales rose fell quarter EUR mn percent company shares market outlook dividend".split()
    texts = [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(8 + i % 30)) + "." for i in range(n)]
    return BenchCorpus("synthetic", pd.DataFrame({"doc_id": [str(i) for i in range(n)], "text": texts}))


def bare_pass(model, table, cfg, n_layers) -> tuple[float, int]:
    """Seconds for ``model(**batch)`` over the batches extraction makes, and the real tokens they hold."""
    tok = model.tokenizer
    ids = table.column("token_id")
    w = table.windows
    win_row, win_len = w["row_start"].to_numpy(), w["n_tokens"].to_numpy()
    rows = rows_per_chunk(cfg.buffer_mb, n_layers, model.d_model, cfg.max_length)
    batches = [mb for c in plan_chunks(win_row, win_len, rows)
               for mb in chunk_batches(ids, win_row, win_len, c, cfg.batch_size, tok.cls_token_id, tok.sep_token_id,
                                       tok.pad_token_id)]
    start = time.perf_counter()
    with torch.inference_mode():
        for mb in batches:
            model.encoder(input_ids=mb.input_ids, attention_mask=mb.attention_mask)
    return time.perf_counter() - start, sum(mb.n_tokens for mb in batches)


class InterleavedBare:
    """Forward hook: after each forward of ``module``, run the same batch again through a bare forward and
    time it (and the cache's own forward too, for the forward share)."""

    def __init__(self, module: torch.nn.Module):
        self.module, self.bare, self.own, self._t0, self._busy = module, 0.0, 0.0, 0.0, False
        self._hooks = [module.register_forward_pre_hook(self._start),
                       module.register_forward_hook(self._after, with_kwargs=True)]

    def _start(self, *_):
        self._t0 = time.perf_counter()

    def _after(self, module, args, kwargs, output):
        if self._busy:
            return
        self.own += time.perf_counter() - self._t0
        self._busy = True
        start = time.perf_counter()
        module(input_ids=kwargs["input_ids"], attention_mask=kwargs["attention_mask"])
        self.bare += time.perf_counter() - start
        self._busy = False

    def remove(self):
        for h in self._hooks:
            h.remove()


def dtype_probe(model, n_batches: int = 6) -> str:
    """fp32 vs bf16-autocast tokens/s on a few [64, 48] batches (why ``dtype=auto`` is fp32 on CPU)."""
    x = torch.randint(1000, 20000, (64, 48))
    out = []
    for name in ("fp32", "bf16"):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bf16"):
            model.encoder(input_ids=x[:8])
            t = time.perf_counter()
            for _ in range(n_batches):
                model.encoder(input_ids=x)
            out.append(f"{name} {n_batches * x.numel() / (time.perf_counter() - t):.0f} tok/s")
    return ", ".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    from finsae.glue.console import quiet_console

    quiet_console()  # no load reports or weight-loading bars between the figures

    model = load_model(get_spec(args.model))
    corpus = load_sentences(args.docs)
    layers = list(range(-1, model.num_layers))
    cfg = ExtractConfig(batch_size=args.batch_size)
    print(f"model {args.model}: {len(layers)} layers x d={model.d_model}; torch threads {torch.get_num_threads()}")
    print(f"dtype probe: {dtype_probe(model)}")
    with tempfile.TemporaryDirectory(prefix="finsae-bench-") as root:
        table = ensure_token_table(model.tokenizer, corpus, cfg, root)
        print(f"tokens {len(table)} in {table.n_windows} windows")
        bare_pass(model, table, cfg, len(layers))  # warm-up (allocator, kernels, page cache)
        interleaved, paired, cached, shares = [], [], [], []
        for r in range(args.repeats):
            loop, n_tokens = bare_pass(model, table, cfg, len(layers))
            clock = InterleavedBare(model.encoder)
            start = time.perf_counter()
            stores = build_activations(model, corpus, layers, root, cfg, rebuild=True, progress=False)
            cache = time.perf_counter() - start - clock.bare
            clock.remove()
            assert all(len(s) == n_tokens for s in stores.values())
            cached.append(cache)
            interleaved.append(clock.bare / cache)
            paired.append(loop / cache)
            shares.append(clock.own / cache)
            print(f"repeat {r}: cache {n_tokens / cache:.0f} tok/s; interleaved bare {n_tokens / clock.bare:.0f} "
                  f"tok/s (ratio {interleaved[-1]:.3f}); separate bare loop {n_tokens / loop:.0f} tok/s "
                  f"(ratio {paired[-1]:.3f}); forward share of the cache run {shares[-1]:.3f}")
        on_disk = sum(i["bytes"] for s in stores.values() for i in s.manifest["shards"]) / 2**20
        print(f"written per run: {on_disk:.0f} MiB in {len(layers)} layer entries")
        print(f"medians: interleaved ratio {statistics.median(interleaved):.3f}, paired-run ratio "
              f"{statistics.median(paired):.3f}, forward share {statistics.median(shares):.3f}")
    ratio = statistics.median(interleaved)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    tok_s = n_tokens / statistics.median(cached)
    print(f"extract ratio_vs_bare={ratio:.3f} tok_s={tok_s:.0f} peak_rss_gb={peak_gb:.2f}")


if __name__ == "__main__":
    main()
