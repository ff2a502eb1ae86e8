"""The parts of ``bench/gpu_check.py``: what it measures (its docstring says what and why), each a function of
the :class:`Plan` that returns a JSON-able dict."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from sae_step import TRAIN, Ours, Sparsify, time_round_robin  # noqa: E402  (the SAE step's contenders)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What this run measures, where, and at which shapes."""

    device: str
    """``cuda`` or ``cpu``."""
    tiny: bool
    """Tiny shapes (the CPU fallback) instead of the paper's."""
    gpus: int
    """CUDA devices visible (0 on CPU)."""
    d_in: int
    """SAE input width (the encoder's hidden size)."""
    latents: int
    """SAE dictionary size."""
    k: int
    """Active latents per token."""
    batch: int
    """Tokens per optimizer step (the paper's global batch)."""
    per_rank_batch: int
    """One DDP rank's share of ``batch`` on the paper's GPU count."""
    rounds: int
    """Timed rounds per contender (medians reported)."""
    warmup: int
    """Untimed steps per contender first."""
    fit_steps: int
    """Optimizer steps of the Lightning fit."""
    extract_docs: int
    """Synthetic sentences through the encoder."""
    bert: dict
    """BertConfig overrides (empty: bert-base's own shape)."""


class PaperSetup(NamedTuple):
    """The paper experiment as its config composes (``python train.py experiment=paper``)."""

    sae: object
    """Its ``SaeTrainConfig`` (tokens, batch, k, expansion, encoder dtype)."""
    trainer: object
    """Its ``TrainerSchema`` (devices, strategy, precision)."""
    gpus: int
    """GPUs one SAE trains on (devices x nodes)."""


def paper_setup() -> PaperSetup:
    """The paper experiment's config, or a one-line FinsaeError (every figure here is sized from it)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    from finsae.errors import FinsaeError
    from finsae.glue.schemas import register_schemas, validate

    register_schemas()
    try:
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            overrides = ["experiment=paper", f"paths.output_dir={tempfile.gettempdir()}"]
            raw = compose("train", overrides=overrides)
    except HydraException as e:
        raise FinsaeError(f"conf/experiment/paper.yaml does not compose: {str(e).splitlines()[0]}") from None
    cfg = validate(raw)
    return PaperSetup(cfg.sae, cfg.trainer, cfg.trainer.devices * cfg.trainer.num_nodes)


def make_plan(paper: PaperSetup, tiny: bool, rounds: int | None, fit_steps: int | None) -> Plan:
    cuda = torch.cuda.is_available()
    gpus = torch.cuda.device_count() if cuda else 0
    tiny = tiny or not cuda
    if tiny:
        d, m, k, batch = 32, 256, 8, 256
        bert = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128}
    else:
        d = 768  # bert-base's hidden size (transformers' BertConfig() is bert-base-uncased's shape)
        m, k, batch, bert = paper.sae.expansion_factor * d, paper.sae.k, paper.sae.batch_size, {}
    return Plan("cuda" if cuda else "cpu", tiny, gpus, d, m, k, batch, math.ceil(batch / paper.gpus),
                rounds or (3 if tiny else 20), 1 if tiny else 3, fit_steps or (12 if tiny else 300),
                12 if tiny else 2000, bert)


# ----------------------------------------------------------------------------- helpers


def _sync(plan: Plan) -> Callable[[], None]:
    return torch.cuda.synchronize if plan.device == "cuda" else (lambda: None)


def reset_peak(plan: Plan) -> int:
    if plan.device != "cuda":
        return 0
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated()


def import_sparsify() -> str:
    """Where sparsify imports from; the loaders folder (``$FINSAE_LOADER_LIBS``, else ``.test-libs``) is
    appended to ``sys.path`` when .venv lacks it, so nothing in .venv is shadowed."""
    try:
        import sparsify
    except ImportError:
        for libs in (os.environ.get("FINSAE_LOADER_LIBS"), str(REPO / ".test-libs")):
            if libs and Path(libs).is_dir() and libs not in sys.path:
                sys.path.append(libs)
        import sparsify
    return str(Path(sparsify.__file__).parent)


def build_warm(makers: dict, x: torch.Tensor, plan: Plan, optional: tuple[str, ...] = ()):
    """Build and warm each contender alone (so its peak GPU memory is its own); an optional one that fails
    is left out with its reason."""
    built, peaks, missing = [], {}, {}
    for name, make in makers.items():
        base = reset_peak(plan)
        try:
            c = make()
            for _ in range(plan.warmup):
                c.step(x)
            _sync(plan)()
        except Exception as e:  # noqa: BLE001 - the comparison is optional; ours is not
            if name not in optional:
                raise
            missing[name] = f"{type(e).__name__}: {e}".splitlines()[0][:300]
            continue
        peaks[name] = (torch.cuda.max_memory_allocated() - base) / 1e9 if plan.device == "cuda" else None
        built.append(c)
    return built, peaks, missing


def timings(times: dict[str, list[float]], tokens: int, peaks: dict) -> dict:
    out = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        out[name] = {"seconds_per_step": med, "seconds_per_step_min": min(ts), "tokens_per_s": tokens / med,
                     "rounds": len(ts), "peak_gpu_memory_gb_own": peaks.get(name)}
    return out


# ----------------------------------------------------------------------------- parts


def part_sae_step(plan: Plan, paper: PaperSetup) -> dict:
    d, m, k, n = plan.d_in, plan.latents, plan.k, plan.batch
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(0)).to(plan.device)
    lr = paper.sae.peak_lr(m)
    sparsify_from = sparsify_why = None
    try:
        sparsify_from = import_sparsify()
    except ImportError as e:
        sparsify_why = f"sparsify is not importable ({e}); `make test` installs it into .test-libs/"
    makers = {f"finsae {dt_}": (lambda dt_=dt_: Ours.of_shape(f"finsae {dt_}", d, m, k, dt_, lr, x))
              for dt_ in ("fp32", "bf16")}
    if sparsify_from:
        makers["sparsify"] = lambda: Sparsify(d, m, k, lr, x, TRAIN.dead_token_threshold, TRAIN.auxk_coef)
    built, peaks, missing = build_warm(makers, x, plan, optional=("sparsify",))
    res = timings(time_round_robin(built, x, 0, plan.rounds, _sync(plan)), n, peaks)
    ref = res.get("sparsify", {}).get("tokens_per_s")
    if ref:
        import sparsify.utils as su

        sparsify = {"from": sparsify_from, "decoder": su.decoder_impl.__name__,
                    "note": "on CUDA sparsify's forward runs under its own bf16 autocast"}
    else:
        sparsify = {"why_not": missing.get("sparsify") or sparsify_why}
    ratios = {f"{name}_vs_sparsify": res[name]["tokens_per_s"] / ref
              for name in ("finsae fp32", "finsae bf16")} if ref else None
    enc = paper.sae.encoder_dtype
    xr = x[: plan.per_rank_batch]
    one_rank = {"rank": lambda: Ours.of_shape(f"finsae {enc}, one rank", d, m, k, enc, lr, xr)}
    rank = build_warm(one_rank, xr, plan)[0]
    per_rank = timings(time_round_robin(rank, xr, 0, plan.rounds, _sync(plan)), len(xr), {})
    ours = next(c for c in built if c.name == f"finsae {enc}")
    ours.tracker.tokens_since_fired[::2] = 10 * TRAIN.dead_token_threshold  # half the latents dead: AuxK on
    auxk = timings(time_round_robin([ours], x, 1, max(3, plan.rounds // 4), _sync(plan)), n, {})
    return {"shape": {"d_in": d, "latents": m, "k": k, "batch": n, "per_rank_batch": len(xr), "lr": lr},
            "contenders": res, "vs_sparsify": ratios, "sparsify": sparsify,
            "per_rank_batch": next(iter(per_rank.values())) | {"encoder_dtype": enc},
            "auxk_half_dead": next(iter(auxk.values())) | {"encoder_dtype": enc}}


def part_crosscoder(plan: Plan, paper: PaperSetup) -> dict:
    from finsae.sae import decoder_blocks, paired_input

    d, n = plan.d_in, plan.batch
    g = torch.Generator().manual_seed(1)
    h_base = torch.randn(n, d, generator=g)
    h_domain = 0.8 * h_base + 0.6 * torch.randn(n, d, generator=g)  # a fine-tuned twin: correlated
    scales = tuple(float(h.pow(2).sum(1).mean().rsqrt()) for h in (h_base, h_domain))
    x = paired_input(h_base, h_domain, scales).to(plan.device)
    arch = {"expansion_factor": plan.latents // d, "k": plan.k}
    cfgs = {dt_: dataclasses.replace(paper.sae, **arch, encoder_dtype=dt_).crosscoder_config(d)
            for dt_ in ("fp32", "bf16")}
    lr = paper.sae.peak_lr(plan.latents)
    makers = {f"crosscoder {dt_}": (lambda dt_=dt_: Ours(f"crosscoder {dt_}", cfgs[dt_], lr, x))
              for dt_ in cfgs}
    built, peaks, _ = build_warm(makers, x, plan)
    res = timings(time_round_robin(built, x, 0, plan.rounds, _sync(plan)), n, peaks)
    blocks = decoder_blocks(built[0].sae)
    cfg = cfgs["fp32"]
    shape = {"d_in": cfg.d_in, "latents": cfg.num_latents, "k": cfg.k, "k_aux": cfg.k_aux, "batch": n}
    return {"shape": shape,
            "decoder_block_shapes": [list(blocks.base.shape), list(blocks.domain.shape)], "contenders": res}


def part_lightning_fit(plan: Plan, paper: PaperSetup, work_dir: Path) -> dict:
    """``fit_steps`` steps of ``SaeLitModule`` under ``sae_trainer`` (the SAE stage's own trainer:
    checkpoints, signal stop) on random Gaussian batches; with several GPUs this runs inside the DDP child."""
    import lightning as L
    from torch.utils.data import DataLoader

    from finsae.glue.sae_module import SaeLitModule
    from finsae.glue.sae_trainer import fit, sae_trainer

    cuda, world, steps = plan.device == "cuda", max(plan.gpus, 1), plan.fit_steps
    train = dataclasses.replace(paper.sae, expansion_factor=plan.latents // plan.d_in, k=plan.k,
                                batch_size=plan.batch, tokens=steps * plan.batch)
    module = SaeLitModule(train.sae_config(plan.d_in).to_dict(), dataclasses.asdict(train), {"bench": "gpu"})
    init = torch.randn(plan.batch, plan.d_in, generator=torch.Generator().manual_seed(7))  # same on all ranks
    module.sae.init_from_sample(init)
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    pool = torch.randn(4, plan.batch // world, plan.d_in, generator=torch.Generator().manual_seed(100 + rank))
    batches = [pool[i % len(pool)] for i in range(steps)]  # views: one rank's share per step

    class Batches(L.LightningDataModule):
        def train_dataloader(self):
            return DataLoader(batches, batch_size=None, shuffle=False, pin_memory=cuda)

    skip = max(1, steps // 10)  # steps left out of the steady rate (start-up, first kernels)

    class Clock(L.Callback):
        def __init__(self):
            self.at, self.fvu = {}, {}

        def on_train_batch_end(self, trainer, *_):
            if trainer.global_step in (skip, steps):
                _sync(plan)()
                self.at[trainer.global_step] = time.perf_counter()
                self.fvu[trainer.global_step] = float(trainer.callback_metrics.get("train/fvu", math.nan))

    t = dataclasses.replace(paper.trainer, accelerator="gpu" if cuda else "cpu", devices=world, num_nodes=1,
                            strategy="ddp" if world > 1 else "auto", checkpoint_every=steps, val_checks=0,
                            precision=paper.trainer.precision if cuda else "32-true", progress_bar=False)
    ckpt_dir = work_dir / "checkpoints"
    trainer, stopper = sae_trainer(t, steps, False, ckpt_dir, "gpu_check")
    clock = Clock()
    trainer.callbacks.append(clock)
    fit_seconds = fit(trainer, stopper, module, Batches(), None)
    if trainer.global_rank != 0:
        return {"rank": trainer.global_rank}
    steady = (clock.at[steps] - clock.at[skip]) / (steps - skip)
    per_rank = plan.batch // world
    return {"strategy": t.strategy, "accelerator": t.accelerator, "world_size": trainer.world_size,
            "precision": t.precision, "encoder_dtype": train.encoder_dtype, "steps": trainer.global_step,
            "batch_per_rank": per_rank, "tokens_per_step": per_rank * world, "fit_seconds": fit_seconds,
            "steady_from_step": skip, "steady_seconds_per_step": steady,
            "tokens_per_s": per_rank * world / steady,
            "fvu_at_steady_start": clock.fvu[skip], "fvu_last": clock.fvu[steps],
            "dead_fraction": module.dead.dead_fraction(),
            "checkpoint_written": (ckpt_dir / "last.ckpt").is_file()}


def part_lightning_fit_ddp(plan: Plan, fit_timeout: int) -> dict:
    """The fit in a child process, so that Lightning's ``ddp`` launcher can start one rank per GPU by
    re-running the child's command line (never this whole check)."""
    with tempfile.TemporaryDirectory(prefix="finsae-gpucheck-") as tmp:
        out = Path(tmp) / "fit.json"
        cmd = [sys.executable, str(REPO / "bench" / "gpu_check.py"), "--parts", "lightning_fit", "--fit-here",
               "--fit-steps", str(plan.fit_steps), "--out", str(out), *(["--tiny"] if plan.tiny else [])]
        try:
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=fit_timeout)
            why = f"exited {proc.returncode}: {proc.stderr.strip()[-800:]}"
        except subprocess.TimeoutExpired:
            why = f"did not finish in --fit-timeout {fit_timeout} s"
        if not out.is_file():  # rank 0 writes it before its ranks close; a hang after that loses nothing
            raise RuntimeError(f"the DDP child {why}")
        return json.loads(out.read_text())["parts"]["lightning_fit"]


def part_extraction(plan: Plan) -> dict:
    """``build_activations`` (tokenize, forward, fp16 shards of every layer with checksums) of a randomly
    initialised BERT of bert-base's shape on synthetic finance-like sentences."""
    import pandas as pd
    from extract import BenchCorpus
    from transformers import BertConfig, BertModel

    from finsae.activations import ExtractConfig, build_activations
    from finsae.models import LoadedModel, get_spec, load_tokenizer

    cfg = BertConfig(**plan.bert)  # no overrides: bert-base-uncased's shape (12 x 768, 12 heads, 3072)
    torch.manual_seed(0)
    model = BertModel(cfg).eval().to(plan.device)
    # the registry's random spec: its tokenizer is bert-base-uncased's vocabulary
    spec = get_spec("tiny", tiny_hidden=cfg.hidden_size, tiny_layers=cfg.num_hidden_layers)
    name = f"random-bert-{cfg.hidden_size}x{cfg.num_hidden_layers}"
    loaded = LoadedModel(spec, model, load_tokenizer(spec), name, "encoder")
    words = "profit sales rose fell quarter EUR mn percent company shares market outlook dividend".split()
    texts = [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(8 + i % 30)) + "."
             for i in range(plan.extract_docs)]
    frame = pd.DataFrame({"doc_id": [str(i) for i in range(len(texts))], "text": texts})
    corpus = BenchCorpus("gpucheck", frame)
    layers = list(range(-1, cfg.num_hidden_layers))
    with torch.inference_mode():  # warm-up: kernels and allocator, outside the clock
        model(input_ids=torch.randint(1000, 2000, (8, 32), device=plan.device))
    with tempfile.TemporaryDirectory(prefix="finsae-gpucheck-") as root:
        _sync(plan)()
        start = time.perf_counter()
        stores = build_activations(loaded, corpus, layers, root, ExtractConfig(), progress=False)
        seconds = time.perf_counter() - start
        tokens = len(stores[layers[0]])
        written = sum(i["bytes"] for s in stores.values() for i in s.manifest["shards"])
        dtype = stores[layers[0]].manifest.get("compute_dtype")
    shape = {"hidden": cfg.hidden_size, "layers": cfg.num_hidden_layers, "heads": cfg.num_attention_heads,
             "intermediate": cfg.intermediate_size, "weights": "random (seed 0)"}
    return {"model": shape,
            "docs": len(texts), "tokens": tokens, "layers_stored": len(layers), "compute_dtype": dtype,
            "seconds": seconds, "tokens_per_s": tokens / seconds, "bytes_written": written}


GGUF_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
"""The label stage's offline model (``sweeps/fetch_qwen_gguf.py``)."""


def label_model(arg: str | None) -> str | None:
    if arg:
        return arg
    cache = Path(os.environ.get("FINSAE_MODEL_CACHE", Path.home() / ".cache" / "finsae" / "models"))
    return str(cache / GGUF_NAME) if (cache / GGUF_NAME).is_file() else None


def labels_unavailable(plan: Plan, model: str | None) -> str | None:
    """Why the vLLM smoke cannot run here (None: it can)."""
    import importlib.util

    if plan.device != "cuda":
        return "vLLM runs on a GPU and no CUDA device is visible here"
    if importlib.util.find_spec("vllm") is None:
        return ("vllm is not installed in this environment; it lives in its own (requirements-vllm.txt, "
                ".venv-vllm): rerun there with --parts labels_vllm")
    if model is None:
        return (f"no label model on disk: pass --label-model (a model folder or a .gguf; `python "
                f"sweeps/fetch_qwen_gguf.py` puts {GGUF_NAME} in $FINSAE_MODEL_CACHE or "
                f"~/.cache/finsae/models)")
    return None


def part_labels(plan: Plan, model: str | None) -> dict:
    """One explain request (the label stage's prompt and schema), eight times in one batch, through
    ``VllmBackend``."""
    why = labels_unavailable(plan, model)
    if why:
        return {"status": "not_measured", "reason": why}
    from finsae.labeling.backend import ChatRequest
    from finsae.labeling.examples import Example
    from finsae.labeling.parsing import parse_label
    from finsae.labeling.prompts import LABEL_SCHEMA, explain_messages
    from finsae.labeling.vllm_backend import VllmBackend

    start = time.perf_counter()
    backend = VllmBackend(model, gpu_memory_utilization=0.5)
    load_seconds = time.perf_counter() - start
    texts = ["Operating profit rose to EUR 13.1 mn", "Net sales fell 5 percent in the quarter",
             "The company raised its dividend outlook to 2 EUR"]
    split = [tuple(t.split()) for t in texts]
    examples = [Example(f"d{i}", ws, tuple(2.0 if w[0].isdigit() else 0.0 for w in ws), 2.0, "top", i)
                for i, ws in enumerate(split)]  # the latent fires on the numbers
    req = ChatRequest(tuple(explain_messages(examples)), LABEL_SCHEMA, "label", max_tokens=96)
    start = time.perf_counter()
    done = backend.generate([req] * 8)
    seconds = time.perf_counter() - start
    parsed = parse_label(done[0].text, req.prefill if backend.prefilled(req) else "")
    generated = sum(c.completion_tokens for c in done)
    return {"model": model, "load_seconds": load_seconds, "requests": len(done),
            "generated_tokens": generated,
            "seconds": seconds, "tokens_per_s": generated / seconds, "label": parsed.label,
            "description": parsed.description}
