"""Prompt-processing and generation tokens/s of the ``hf`` backend's path: transformers ``generate`` on the GGUF
dequantised once (transformers' GGUF support + the ``gguf`` package) and run in bf16 or fp32 on this CPU.

    python bench/llm_hf_gguf.py OUT.json --gguf ~/.cache/finsae/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf \
        [--dtype bfloat16] [--threads 2] [--prompts 2] [--max-tokens 96] [--save-dir DIR]

Needs ``gguf`` beside transformers (a side venv, never ``.venv``). The same prompts as ``bench/llm_server.py``
(chat template, about 500 tokens). Per prompt: prompt tokens/s = prompt tokens / a one-token ``generate``
(prefill), generation tokens/s = (new tokens - 1) / (the full greedy ``generate`` minus that prefill time).
``--save-dir`` also writes the dequantised copy (safetensors) that ``label.backend=hf label.model=DIR`` loads.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llm_server import machine, prompt_messages  # noqa: E402  (the same prompts and machine record)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--gguf", type=Path, required=True)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--prompt-words", type=int, default=380)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--save-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    t = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(args.gguf.parent, gguf_file=args.gguf.name)
    lm = AutoModelForCausalLM.from_pretrained(args.gguf.parent, gguf_file=args.gguf.name, dtype=dtype).eval()
    load_s = time.perf_counter() - t
    print(f"dequantised and loaded in {load_s:.0f}s ({args.dtype})", flush=True)
    if args.save_dir:
        lm.save_pretrained(args.save_dir)
        tok.save_pretrained(args.save_dir)
    runs = []
    with torch.inference_mode():
        for i in range(args.prompts):
            text = tok.apply_chat_template(prompt_messages(i, args.prompt_words), tokenize=False,
                                           add_generation_prompt=True)
            enc = tok(text, return_tensors="pt", add_special_tokens=False)
            n_prompt = int(enc["input_ids"].shape[1])
            t = time.perf_counter()
            lm.generate(**enc, max_new_tokens=1, do_sample=False, pad_token_id=tok.eos_token_id)
            prefill_s = time.perf_counter() - t
            t = time.perf_counter()
            out = lm.generate(**enc, max_new_tokens=args.max_tokens, do_sample=False, pad_token_id=tok.eos_token_id)
            full_s = time.perf_counter() - t
            n_gen = int(out.shape[1]) - n_prompt
            run = {"prompt_tokens": n_prompt, "completion_tokens": n_gen, "prefill_s": prefill_s, "full_s": full_s,
                   "prompt_tok_s": n_prompt / prefill_s,
                   "gen_tok_s": (n_gen - 1) / (full_s - prefill_s) if n_gen > 1 and full_s > prefill_s else None}
            runs.append(run)
            print(f"prompt {i}: {n_prompt} tok prefill {prefill_s:.2f}s ({run['prompt_tok_s']:.1f} tok/s), "
                  f"{n_gen} new tok in {full_s:.2f}s ({run['gen_tok_s'] or float('nan'):.2f} tok/s)", flush=True)
    gen = [r["gen_tok_s"] for r in runs if r["gen_tok_s"]]
    result = {"bench": "llm_hf_gguf", "gguf": str(args.gguf), "dtype": args.dtype, "threads": args.threads,
              "load_and_dequantise_s": load_s,
              "prompt_tok_s_median": statistics.median(r["prompt_tok_s"] for r in runs),
              "gen_tok_s_median": statistics.median(gen) if gen else None, "max_tokens": args.max_tokens,
              "runs": runs, "machine": machine(), "torch": torch.__version__,
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join([Path(sys.executable).name, *sys.argv])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"llm_hf_gguf dtype={args.dtype} prompt_tok_s={result['prompt_tok_s_median']:.1f} "
          f"gen_tok_s={result['gen_tok_s_median'] or float('nan'):.2f} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
