"""Prompt-processing and generation tokens/s of an OpenAI-compatible chat server on loopback.

    python bench/llm_server.py OUT.json [--base-url http://127.0.0.1:8012/v1] [--prompts 3] [--max-tokens 96]

Sends ``--prompts`` fixed prompts of about ``--prompt-words`` words (a financial news digest, each opening with
its own number so no server reuses one prompt's cached prefix for the next), streamed, greedy, one at a time.
Per prompt: prompt tokens/s = prompt tokens / time to the first streamed token (prompt processing, plus the first
token and the HTTP round trip, so a slight underestimate), generation tokens/s = (completion tokens - 1) / time
from the first to the last token. Token counts are the server's ``usage`` (a final streamed chunk, or else a
one-token non-streamed call with the same prompt); a server whose stream has no usage is counted by chunks.
The JSON says the model, the machine (``finsae.provenance.machine_record``: CPU model, bf16 / AVX-512 / AMX flags,
cores), the date and the command. Only loopback servers: the script refuses any other host. Stdlib and the
repository's ``src/`` only (runs from any Python).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # finsae.provenance is stdlib only
from finsae import provenance  # noqa: E402

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
SENTENCES = (
    "Shares of the regional lender fell 4% after it cut its full-year net interest income guidance.",
    "The central bank held its policy rate at 5.25% and signalled one more hike before year end.",
    "Quarterly revenue rose 12% to $3.4 billion, beating analyst estimates, while margins narrowed.",
    "The chipmaker announced a $10 billion buyback and raised its dividend by 8 cents a share.",
    "Crude oil futures climbed above $85 a barrel as inventories drew down for a third week.",
    "The retailer's same-store sales declined 2.1%, its first drop in eleven quarters.",
    "Bond yields jumped after payrolls grew by 336,000, far above the consensus forecast.",
    "The merger values the target at $27 per share in cash, a 31% premium to its last close.",
    "Moody's downgraded the utility to Baa3, citing wildfire liabilities and negative free cash flow.",
    "The airline expects fuel costs to weigh on second-quarter earnings despite record bookings.",
)


def machine() -> dict:
    """finsae's machine record (CPU model, cores, bf16 and AVX-512/AMX flags), with this run's load, OS and Python."""
    return {**provenance.machine_record(), "load_avg_1m": os.getloadavg()[0], "platform": platform.platform(),
            "python": platform.python_version()}


def prompt_messages(i: int, words: int) -> list[dict]:
    """Prompt ``i``: a numbered digest of about ``words`` words and a request for a long summary."""
    lines, n = [], 0
    j = i
    while n < words:
        s = SENTENCES[j % len(SENTENCES)]
        lines.append(f"{len(lines) + 1}. {s}")
        n += len(s.split()) + 1
        j += 3
    return [{"role": "system", "content": f"Digest {i}. You are a financial analyst who writes plain prose."},
            {"role": "user", "content": "Headlines:\n" + "\n".join(lines)
             + "\n\nWrite a detailed summary of at least 150 words of what these headlines say about markets."}]


def _post(url: str, body: dict, timeout: float):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (loopback only, checked in main)


def stream_once(base_url: str, model: str, messages: list[dict], max_tokens: int, timeout: float) -> dict:
    """One streamed greedy completion: first-token and last-token times, chunks, and the server's usage."""
    body = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0.0,
            "stream": True, "stream_options": {"include_usage": True}}
    url = base_url.rstrip("/") + "/chat/completions"
    t0 = time.perf_counter()
    try:
        resp = _post(url, body, timeout)
    except urllib.error.HTTPError as e:  # a server without stream_options
        if e.code not in (400, 422):
            raise
        body.pop("stream_options")
        t0 = time.perf_counter()
        resp = _post(url, body, timeout)
    first = last = None
    chunks, usage, served = 0, None, None
    with resp:
        for raw in resp:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            served = chunk.get("model", served)
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices", []):
                if (choice.get("delta") or {}).get("content"):
                    now = time.perf_counter()
                    first = first if first is not None else now
                    last = now
                    chunks += 1
    if first is None:
        raise RuntimeError("the server streamed no content")
    return {"t_first_s": first - t0, "t_last_s": last - t0, "chunks": chunks, "usage": usage, "model": served}


def prompt_tokens(base_url: str, model: str, messages: list[dict], timeout: float) -> int:
    """The server's prompt token count of ``messages`` (a one-token non-streamed call)."""
    body = {"model": model, "messages": messages, "max_tokens": 1, "temperature": 0.0}
    with _post(base_url.rstrip("/") + "/chat/completions", body, timeout) as resp:
        return int(json.loads(resp.read())["usage"]["prompt_tokens"])


def served_model(base_url: str, timeout: float) -> str:
    with urllib.request.urlopen(base_url.rstrip("/") + "/models", timeout=timeout) as resp:  # noqa: S310
        return json.loads(resp.read())["data"][0]["id"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="where to write the JSON")
    ap.add_argument("--base-url", default="http://127.0.0.1:8012/v1")
    ap.add_argument("--model", default=None, help="default: the first model the server lists")
    ap.add_argument("--prompts", type=int, default=3)
    ap.add_argument("--prompt-words", type=int, default=380, help="about 500 tokens with the chat template")
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--timeout-s", type=float, default=900.0)
    ap.add_argument("--note", default="", help="free text stored in the JSON (e.g. the server command)")
    args = ap.parse_args(argv)
    host = urlparse(args.base_url).hostname
    if host not in LOOPBACK:
        print(f"llm_server: error: {host} is not a loopback host; this bench only talks to local servers",
              file=sys.stderr)
        return 2
    model = args.model or served_model(args.base_url, args.timeout_s)
    runs = []
    for i in range(args.prompts):
        msgs = prompt_messages(i, args.prompt_words)
        r = stream_once(args.base_url, model, msgs, args.max_tokens, args.timeout_s)
        usage = r.pop("usage")
        if usage and usage.get("prompt_tokens"):
            n_prompt, n_gen, counted = int(usage["prompt_tokens"]), int(usage["completion_tokens"]), "usage"
        else:
            n_prompt, n_gen, counted = prompt_tokens(args.base_url, model, msgs, args.timeout_s), r["chunks"], "chunks"
        gen_s = r["t_last_s"] - r["t_first_s"]
        run = {**r, "prompt_tokens": n_prompt, "completion_tokens": n_gen, "counted_by": counted,
               "prompt_tok_s": n_prompt / r["t_first_s"],
               "gen_tok_s": (n_gen - 1) / gen_s if n_gen > 1 and gen_s > 0 else None}
        runs.append(run)
        print(f"prompt {i}: {n_prompt} prompt tok in {r['t_first_s']:.2f}s ({run['prompt_tok_s']:.1f} tok/s), "
              f"{n_gen} new tok in {r['t_last_s']:.2f}s total"
              + (f" ({run['gen_tok_s']:.2f} tok/s)" if run["gen_tok_s"] else ""), flush=True)
    gen = [r["gen_tok_s"] for r in runs if r["gen_tok_s"]]
    result = {
        "bench": "llm_server", "base_url": args.base_url, "model": model,
        "served_model": runs[0]["model"] if runs else None,
        "prompt_tok_s_median": statistics.median(r["prompt_tok_s"] for r in runs),
        "gen_tok_s_median": statistics.median(gen) if gen else None,
        "prompt_tokens_median": statistics.median(r["prompt_tokens"] for r in runs),
        "max_tokens": args.max_tokens, "runs": runs, "machine": machine(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "note": args.note,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"llm_server model={model} prompt_tok_s={result['prompt_tok_s_median']:.1f} "
          f"gen_tok_s={result['gen_tok_s_median'] or float('nan'):.2f} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
