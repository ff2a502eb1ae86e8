"""Run a model once over a corpus and cache the hidden states of every requested layer.

Per layer the entry is ``root/<layer key>/`` (see ``finsae.activations``). A layer whose entry exists is
reused without a forward pass; the missing ones are computed together in one pass per batch, under their
locks, so concurrent processes asking for the same key build it once and the others wait and reuse it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import torch
from tqdm.auto import tqdm

import finsae
from finsae.activations.atomic import is_complete
from finsae.atomic import locked, publish, staging_dir, write_json
from finsae.activations.forward_chunks import chunk_batches, plan_chunks, rows_per_chunk
from finsae.activations.config import ExtractConfig, resolve_dtype, torch_dtype
from finsae.activations.guard import INFERENCE_SUFFIX, check_eval_period
from finsae.activations.keys import TOKENS_DIR, layer_key
from finsae.activations.shards import BackgroundWriter, ShardWriter, rows_per_shard
from finsae.activations.store import ActivationStore, open_store
from finsae.activations.token_table import TokenTable, ensure_token_table
from finsae.data.corpus import EVAL_START
from finsae.errors import ConfigError, FinsaeError
from finsae.models import LoadedModel, check_layer, hidden_states
from finsae.workers import one_thread

log = logging.getLogger(__name__)


def build_activations(
    model: LoadedModel,
    corpus,
    layers,
    root: str | Path,
    cfg: ExtractConfig | None = None,
    rebuild: bool = False,
    progress: bool = True,
    align_with=None,
    eval_start: str = EVAL_START,
    allow_eval_period: bool = False,
    verify: bool = False,
    inference_only: bool = False,
) -> dict[int, ActivationStore]:
    """Cached activations of ``layers`` of ``model`` over ``corpus`` (``.name``, ``.frame`` with ``doc_id``,
    ``text`` and optionally ``date``, ``.content_hash()``), computed only where no entry exists yet.

    ``rebuild``: recompute the layers (and the token table if it fails its checksums).
    ``align_with``: a store, token table or ``{layer: store}`` of the other model of a pair; raises unless
    both sit on the same token rows.
    ``eval_start``: first day of the evaluation period; a corpus with text dated on/after it is refused unless
    ``allow_eval_period`` (inference-only features of the trading stage: an SAE trained on them leaks the test).
    ``inference_only``: the explicit mode for features that are only ever encoded, never trained on (the
    trading stage's evaluation-period tweets): eval-period text passes, the entry gets its own key and is marked
    ``"inference_only": true`` in its manifest, and SAE training readers (``split_rows``, ``ActivationBatches``)
    refuse it.
    ``verify``: re-hash every shard of the reused entries now (by default a reused entry is hashed on its first
    open after the build and size-checked on every open after that).
    """
    cfg = cfg or ExtractConfig()
    layers = [check_layer(int(i), model.num_layers) for i in dict.fromkeys(layers)]
    check_eval_period(corpus, eval_start, allow_eval_period or inference_only)
    max_positions = getattr(model.encoder.config, "max_position_embeddings", None)
    if max_positions is not None and cfg.max_length > max_positions:
        raise ConfigError(f"activations max_length={cfg.max_length} exceeds the model's {max_positions} positions")
    root = Path(root)
    table = ensure_token_table(model.tokenizer, corpus, cfg, root, rebuild=rebuild)
    if align_with is not None:
        check_aligned(table, align_with)
    compute = resolve_dtype(cfg.dtype, _device(model))
    entries = {
        i: root / (layer_key(model.spec.name, model.weights_hash, corpus.name, table.key, i, compute,
                             cfg.store_special) + (INFERENCE_SUFFIX if inference_only else ""))
        for i in layers
    }
    todo = [i for i in layers if rebuild or not is_complete(entries[i])]
    if todo:
        with locked(entries[i] for i in todo):
            # Whatever another process finished while we waited for its lock is reused, not rebuilt.
            todo = [i for i in todo if rebuild or not is_complete(entries[i])]
            if todo:
                _extract(model, table, {i: entries[i] for i in todo}, cfg, compute, progress)
    reused = [i for i in layers if i not in todo]
    if reused:  # one line per model and corpus, not one per layer
        log.info("reusing activations of %s over %s, layers %s (%s)", model.spec.name, corpus.name, reused,
                 entries[reused[0]].parent)
    return {i: open_store(entries[i], verify=False if i in todo else (True if verify else None), fresh=i in todo,
                          table=table)
            for i in layers}


def check_aligned(a, b) -> None:
    """Raise unless ``a`` and ``b`` (stores, token tables or ``{layer: store}``) share their token rows."""
    ha, hb = _table_hash(a), _table_hash(b)
    if ha != hb:
        raise FinsaeError(
            f"token rows differ (token table {ha} vs {hb}): the two models must share one tokenizer, corpus and "
            f"tokenization config for their features to be compared row by row"
        )


def _table_hash(x) -> str:
    if isinstance(x, Mapping):
        hashes = {_table_hash(v) for v in x.values()}
        if len(hashes) != 1:
            raise FinsaeError(f"the stores given sit on {len(hashes)} different token tables")
        return hashes.pop()
    table = x if isinstance(x, TokenTable) else x.table
    return table.content_hash


def _device(model: LoadedModel) -> torch.device:
    return next(model.encoder.parameters()).device


def _extract(
    model: LoadedModel, table: TokenTable, entries: dict[int, Path], cfg: ExtractConfig, compute: str, progress: bool
) -> None:
    encoder, tok, device = model.encoder, model.tokenizer, _device(model)
    layers, d, n_rows = list(entries), model.d_model, len(table)
    token_ids = table.column("token_id")
    windows = table.windows
    win_row, win_len = windows["row_start"].to_numpy(), windows["n_tokens"].to_numpy()
    n_windows = len(win_row)
    shard_rows = rows_per_shard(d, cfg.shard_mb)
    max_rows = rows_per_chunk(cfg.buffer_mb, len(layers), d, cfg.max_length)
    specials = (tok.cls_token_id, tok.sep_token_id, tok.pad_token_id)

    tmps: dict[int, Path] = {}
    was_training = encoder.training
    encoder.eval()  # dropout off, whatever mode the caller left the model in
    try:
        tmps = {i: staging_dir(entries[i]) for i in layers}
        main = {i: ShardWriter(tmps[i], "shard", n_rows, d, shard_rows) for i in layers}
        extra = {i: ShardWriter(tmps[i], "special", 2 * n_windows, d, shard_rows) for i in layers} \
            if cfg.store_special else {}
        autocast = (torch.autocast(device.type, dtype=torch_dtype(compute)) if compute != "fp32"
                    else contextlib.nullcontext())
        start = time.perf_counter()
        # One chunk's writes may queue while the next chunk is computed: RAM stays near 2 chunk buffers.
        with BackgroundWriter(max_pending=len(main) + len(extra)) as writer, \
                tqdm(total=n_rows, unit="tok", disable=not progress, desc=f"{model.spec.name} layers {layers}") as bar:
            for chunk in plan_chunks(win_row, win_len, max_rows):
                out = {i: torch.empty((chunk.r1 - chunk.r0, d), dtype=torch.float16) for i in layers}
                out_sp = {i: torch.empty((2 * (chunk.w1 - chunk.w0), d), dtype=torch.float16) for i in extra}
                for mb in chunk_batches(token_ids, win_row, win_len, chunk, cfg.batch_size, *specials):
                    with autocast:
                        hs = hidden_states(encoder, mb.input_ids.to(device), mb.attention_mask.to(device), layers)
                    # the copies are memory-bound and tiny (a few MB per batch): with 2 intra-op threads on a busy
                    # 2-core machine each op waits on an OpenMP barrier (150-250 ms per 7-layer batch vs ~9 ms on
                    # one thread, measured: ~9% of the forward time)
                    with one_thread(blas=False) if device.type == "cpu" else contextlib.nullcontext():
                        for i in layers:
                            _gather(hs.layers[i], mb.src, mb.dst, out[i])
                            if i in out_sp:
                                _gather(hs.layers[i], mb.special_src, mb.special_dst, out_sp[i])
                    bar.update(mb.n_tokens)
                for i in layers:
                    writer.submit(main[i].write, out[i].numpy())
                    if i in extra:
                        writer.submit(extra[i].write, out_sp[i].numpy())
        seconds = time.perf_counter() - start
        for i in layers:
            manifest = _manifest(model, table, i, entries[i].name, cfg, compute, d, main[i].close(),
                                 extra[i].close() if i in extra else None, specials, seconds)
            write_json(tmps[i] / "manifest.json", manifest)
            publish(tmps[i], entries[i], marker=None)  # a content-hash key: only a (damaged) entry of it is replaced
        log.info("extracted %d tokens x %d layers in %.1fs (%.0f tok/s)", n_rows, len(layers), seconds,
                 n_rows / max(seconds, 1e-9))
    finally:
        encoder.train(was_training)
        for tmp in tmps.values():
            shutil.rmtree(tmp, ignore_errors=True)


def _gather(hidden: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, out: torch.Tensor) -> None:
    """``out[dst] = fp16(hidden.flat[src])``: real-token rows of one batch into the chunk buffer."""
    flat = hidden.reshape(-1, hidden.shape[-1])
    out.index_copy_(0, dst, torch.index_select(flat, 0, src.to(flat.device)).to(torch.float16).cpu())


def _manifest(model, table, layer, key, cfg, compute, d, shards, special_shards, specials, seconds) -> dict:
    n = len(table)
    return {
        "key": key,
        "finsae_version": finsae.__version__,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {"name": model.spec.name, "weights_hash": model.weights_hash, "kind": model.kind,
                  "num_layers": model.num_layers, "d_model": d},
        "layer": layer,
        "corpus": dict(table.manifest["corpus"]),
        "token_table": {"key": table.key, "path": f"{TOKENS_DIR}/{table.key}", "content_hash": table.content_hash},
        "n_tokens": n,
        "d": d,
        "dtype": "float16",
        "shape": [n, d],
        "compute_dtype": compute,
        "extract_config": dataclasses.asdict(cfg),
        "shards": [s._asdict() for s in shards],
        "special": None if special_shards is None else {
            "n_tokens": 2 * table.n_windows, "cls_id": int(specials[0]), "sep_id": int(specials[1]),
            "shards": [s._asdict() for s in special_shards],
        },
        "inference_only": key.endswith(INFERENCE_SUFFIX),
        "extract_seconds": round(seconds, 3),
        "tokens_per_s": round(n / max(seconds, 1e-9), 1),
    }
