"""GPU check: what the first lent GPU should measure, in one command and one JSON file.

    python bench/gpu_check.py                         # one H100/H200: sized for under 8 minutes
    python bench/gpu_check.py --tiny --out x.json     # tiny shapes on the CPU (automatic without CUDA)
    python bench/gpu_check.py --parts labels_vllm --label-model PATH   # one part, e.g. inside .venv-vllm

Parts, each guarded (a failing part records its error and the rest still run):

* ``sae_step``: the paper-shape top-k SAE step (768 -> 24,576 latents, k = 192, batch 8,192, from
  conf/experiment/paper.yaml) with finsae's kernels in fp32 and bf16 against EleutherAI sparsify on the
  same device (``bench/sae_step.py``'s contenders), the step at one DDP rank's share of the batch, and with
  half the latents dead (AuxK on); tokens/s and peak GPU memory of each.
* ``crosscoder_step``: the crosscoder over two 768-wide models (input 1,536, same latents and k).
* ``lightning_fit``: a few hundred steps through the real ``SaeLitModule`` and ``sae_trainer`` (DDP over the
  GPUs present, in a child process; one device: in this process).
* ``extraction``: the activation cache of a bert-base-shaped encoder (12 x 768, random weights), every layer.
* ``labels_vllm``: one explain request through the ``vllm`` backend when vllm imports and a model is on disk.
* ``predicted_wall_time``: the paper study's SAE training (200M tokens per SAE, 12 layers x 2 models, 7 GPUs)
  from the measured step times, beside the seed's "8 hours on 7 GPUs".

Without CUDA every part runs on tiny shapes and ``not_measured_without_gpu`` says what a GPU is needed for.
sparsify comes from ``$FINSAE_LOADER_LIBS`` or ``.test-libs/`` when .venv lacks it (as ``make bench`` does).
Exit status 0 when no part failed, 1 when one did (the JSON is written either way, after every part).
Not yet run on a GPU (no session has had one): the CUDA paths here are written, the CPU fallback is tested
(tests/test_gpu_check.py). On a GPU machine without .git, ``git.commit`` is null with the reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_check_parts import (  # noqa: E402
    REPO,
    PaperSetup,
    Plan,
    label_model,
    labels_unavailable,
    make_plan,
    paper_setup,
    part_crosscoder,
    part_extraction,
    part_labels,
    part_lightning_fit,
    part_lightning_fit_ddp,
    part_sae_step,
    reset_peak,
)

from finsae.errors import FinsaeError  # noqa: E402

PARTS = ("sae_step", "crosscoder_step", "lightning_fit", "extraction", "labels_vllm")
SEED_CLAIM_HOURS = 8.0
"""The seed's estimate for the paper study's SAE training: "8 hours on 7 GPUs"."""
SCHEMA = "finsae-gpu-check/1"


# ----------------------------------------------------------------------------- records


def machine_record() -> dict:
    cuda = torch.cuda.is_available()
    props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())] if cuda else []
    return {"hostname": socket.gethostname(), "platform": platform.platform(),
            "cpu": platform.processor() or platform.machine(), "cpu_cores": os.cpu_count(),
            "gpu_count": len(props), "gpu_names": [p.name for p in props],
            "gpu_memory_gb": [round(p.total_memory / 1e9, 1) for p in props],
            "gpu_capability": [f"{p.major}.{p.minor}" for p in props]}


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _nccl_version() -> str | None:
    try:  # a tuple in recent torch, an int in older ones; absent in CPU builds
        v = torch.cuda.nccl.version()
    except (AttributeError, RuntimeError):
        return None
    return ".".join(map(str, v)) if isinstance(v, tuple) else str(v)


def versions() -> dict:
    cuda = torch.cuda.is_available()
    return {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if cuda else None,
            "nccl": _nccl_version() if cuda else None,
            **{name: _dist_version(name) for name in ("lightning", "transformers", "eai-sparsify", "vllm")},
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32}


def git_commit() -> dict:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "-uno"))}
    except (OSError, subprocess.CalledProcessError) as e:
        return {"commit": None, "dirty": None, "why": f"not a git checkout here ({type(e).__name__})"}


def not_measured_without_gpu(plan: Plan, label_reason: str | None) -> dict:
    """What a CPU run could not measure, one reason each (empty on a GPU)."""
    if plan.device == "cuda":
        return {}
    return {
        "paper_shapes": f"no CUDA device: every part ran on tiny shapes (d_in {plan.d_in} -> {plan.latents} "
                        f"latents, k {plan.k}, batch {plan.batch}); the paper shapes (768 -> 24,576, k 192, "
                        f"batch 8,192) need a GPU",
        "cuda_kernels": "the SAE step's CUDA path (bf16 encoder GEMM on tensor cores, sparse kernels on "
                        "CUDA) and sparsify's Triton decoder were not run",
        "peak_gpu_memory": "torch.cuda.max_memory_allocated needs a CUDA device (peak_gpu_memory_gb: null)",
        "ddp_nccl": "Lightning DDP over GPUs (NCCL) was not run: the fit ran as one CPU process",
        "bf16_autocast": "the GPU trainers' bf16-mixed precision was not run: the CPU fit used 32-true",
        "labels_vllm": label_reason or "vLLM runs on a GPU",
        "predicted_wall_time": "computed from the tiny CPU step times: it checks the arithmetic and predicts "
                               "nothing about the paper study",
    }


def predicted_wall_time(parts: dict, plan: Plan, paper: PaperSetup) -> dict:
    """Hours of the paper study's SAE training on its GPUs: the tokens all its SAEs train on over (the
    measured tokens/s per GPU x the GPU count); one estimate per measured rate, each with its assumption."""
    from transformers import BertConfig

    step = parts.get("sae_step", {})
    if step.get("status") != "ok":
        raise RuntimeError("needs the sae_step part's measured step times")
    layers, models, g, enc = BertConfig().num_hidden_layers, 2, paper.gpus, paper.sae.encoder_dtype
    steps = paper.sae.total_steps
    tokens_all = layers * models * steps * paper.sae.batch_size
    rates = {"ideal_data_parallel": (step["contenders"][f"finsae {enc}"]["tokens_per_s"], f"finsae {enc} at "
                                     f"the full batch on one device; {g} devices scale perfectly"),
             "ddp_one_rank": (step["per_rank_batch"]["tokens_per_s"],
                              f"one rank's step at batch/{g} ({plan.per_rank_batch} tokens); the gradient "
                              f"all-reduce between ranks not counted")}
    fit = parts.get("lightning_fit", {})
    if fit.get("status") == "ok":
        rates["lightning_fit"] = (fit["tokens_per_s"] / fit["world_size"], f"the Lightning fit's steady rate "
                                  f"on {fit['world_size']} device(s), per device")
    estimates = {}
    for name, (per_gpu, assumes) in rates.items():
        hours = tokens_all / (per_gpu * g) / 3600
        estimates[name] = {"tokens_per_s_per_gpu": per_gpu, "hours": hours,
                           "vs_seed_claim": hours / SEED_CLAIM_HOURS, "assumes": assumes}
    basis = ("tiny CPU shapes: the arithmetic only, no prediction of the paper study" if plan.tiny
             else f"paper shapes measured on {torch.cuda.get_device_name(0)}")
    return {"layers": layers, "models": models, "saes": layers * models, "tokens_per_sae": paper.sae.tokens,
            "batch_size": paper.sae.batch_size, "steps_per_sae": steps, "tokens_trained": tokens_all,
            "gpus": g, "encoder_dtype": enc, "seed_claim_hours": SEED_CLAIM_HOURS, "basis": basis,
            "estimates": estimates,
            "not_counted": "activation extraction, data loading from the cache, evaluation, checkpoints"}


# ----------------------------------------------------------------------------- the run


def guarded(run, plan: Plan) -> dict:
    """One part; an exception becomes its recorded error and the check goes on. Adds the part's wall time and
    the process's peak GPU memory during it (``torch.cuda.max_memory_allocated``; null without CUDA)."""
    reset_peak(plan)
    start = time.perf_counter()
    try:
        res = {"status": "ok", **run()}
    except Exception as e:  # noqa: BLE001 - recorded, and the other parts still run
        res = {"status": "error", "error": f"{type(e).__name__}: {e}"[:1000],
               "traceback": traceback.format_exc(limit=-8)[-3000:]}
    res.setdefault("part_seconds", time.perf_counter() - start)
    cuda = plan.device == "cuda"
    res.setdefault("peak_gpu_memory_gb", torch.cuda.max_memory_allocated() / 1e9 if cuda else None)
    if plan.device == "cuda":
        torch.cuda.empty_cache()
    return res


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None,
                    help="the JSON to write (default: artifacts/bench/gpu_check-<UTC time>.json)")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes (automatic without a GPU)")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of: {', '.join(PARTS)}")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds each (default 20, tiny 3)")
    ap.add_argument("--fit-steps", type=int, default=None, help="Lightning fit steps (default 300, tiny 12)")
    ap.add_argument("--fit-timeout", type=int, default=300, help="seconds the DDP fit's child may take")
    ap.add_argument("--label-model", default=None, help="the vLLM smoke's model, a folder or a .gguf "
                                                         "(default: sweeps/fetch_qwen_gguf.py's, if fetched)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    ap.add_argument("--fit-here", action="store_true", help=argparse.SUPPRESS)  # the DDP child
    return ap.parse_args(argv)


def check_args(args: argparse.Namespace) -> tuple[list[str], Path]:
    """The parts to run and the output path, or a one-line FinsaeError before any work."""
    from finsae.paths import default_artifacts_dir

    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise FinsaeError(f"--parts {args.parts!r}: unknown or empty ({unknown}); "
                          f"choose from {', '.join(PARTS)}")
    for flag, value, least in (("--rounds", args.rounds, 1), ("--fit-steps", args.fit_steps, 2),
                               ("--fit-timeout", args.fit_timeout, 1), ("--threads", args.threads, 1)):
        if value is not None and value < least:
            raise FinsaeError(f"{flag} {value}: must be at least {least}")
    if args.label_model and not Path(args.label_model).exists():
        raise FinsaeError(f"--label-model {args.label_model}: no such file or folder")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or default_artifacts_dir() / "bench" / f"gpu_check-{stamp}.json"
    if out.is_dir():
        raise FinsaeError(f"--out {out} is a folder; give the path of a .json file")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FinsaeError(f"--out {out}: cannot create its folder ({e.strerror})") from None
    if not os.access(out.parent, os.W_OK):
        raise FinsaeError(f"--out {out}: its folder is not writable")
    return parts, out


def write_json(path: Path, report: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, path)


def header(command: list[str], plan: Plan, paper: PaperSetup) -> dict:
    s, t = paper.sae, paper.trainer
    return {"schema": SCHEMA, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": ["bench/gpu_check.py", *command], "git": git_commit(), "machine": machine_record(),
            "versions": versions(), "device": plan.device, "shapes": "tiny" if plan.tiny else "paper",
            "tiny_because": ("no CUDA device" if plan.device == "cpu" else "--tiny") if plan.tiny else None,
            "plan": dataclasses.asdict(plan),
            "paper": {"expansion_factor": s.expansion_factor, "k": s.k, "tokens_per_sae": s.tokens,
                      "batch_size": s.batch_size, "encoder_dtype": s.encoder_dtype, "gpus": paper.gpus,
                      "strategy": t.strategy, "precision": t.precision},
            "parts": {}}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rank_zero = os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"
    try:
        parts, out = check_args(args)
        paper = paper_setup()
    except FinsaeError as e:
        print(f"gpu_check: error: {e}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    from finsae.glue.console import quiet_console

    quiet_console()  # library chatter off: the lines printed are the check's
    plan = make_plan(paper, args.tiny, args.rounds, args.fit_steps)
    model = label_model(args.label_model)

    def fit() -> dict:
        if plan.gpus > 1 and not args.fit_here:
            return part_lightning_fit_ddp(plan, args.fit_timeout)
        if args.fit_here:  # every rank of the DDP child sees the same folder
            return part_lightning_fit(plan, paper, out.parent / "fit")
        with tempfile.TemporaryDirectory(prefix="finsae-gpucheck-") as tmp:
            return part_lightning_fit(plan, paper, Path(tmp))

    runs = {"sae_step": lambda: part_sae_step(plan, paper),
            "crosscoder_step": lambda: part_crosscoder(plan, paper), "lightning_fit": fit,
            "extraction": lambda: part_extraction(plan),
            "labels_vllm": lambda: part_labels(plan, model)}
    report = header(sys.argv[1:] if argv is None else argv, plan, paper)
    say = print if rank_zero else (lambda *a, **k: None)
    say(f"gpu_check: {report['shapes']} shapes on {plan.device} ({', '.join(parts)}) -> {out}", flush=True)
    for name in parts:
        r = report["parts"][name] = guarded(runs[name], plan)
        if rank_zero:
            write_json(out, report)  # after every part: what finished survives a kill
        say(f"gpu_check: {name}: {r['status']} ({r['part_seconds']:.1f} s) {r.get('error', '')}", flush=True)
    if "sae_step" in parts:
        predict = lambda: predicted_wall_time(report["parts"], plan, paper)  # noqa: E731
        report["parts"]["predicted_wall_time"] = guarded(predict, plan)
    report["not_measured_without_gpu"] = not_measured_without_gpu(plan, labels_unavailable(plan, model))
    report["versions"] = versions()  # again: sparsify may have come from the loaders folder meanwhile
    if not rank_zero:
        return 0
    write_json(out, report)
    for name, e in report["parts"].get("predicted_wall_time", {}).get("estimates", {}).items():
        say(f"gpu_check: paper SAE training on {paper.gpus} GPUs, {name}: {e['hours']:.2f} h "
            f"(seed: {SEED_CLAIM_HOURS:g} h)")
    say(f"gpu_check: wrote {out}")
    return 1 if any(p["status"] == "error" for p in report["parts"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
