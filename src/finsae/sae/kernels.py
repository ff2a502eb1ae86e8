"""Sparse forward/backward of the top-k SAE: one autograd function, :class:`TopKSaeFn`.

Notation: n tokens, d = d_in, m latents, k active latents per token. ``W_enc`` and ``W_dec`` are both stored
``[m, d]`` (row i is latent i's encoder / decoder direction).

Forward::

    z      = x - b_dec                                   [n, d]
    pre    = z @ W_enc.T + b_enc                         [rows, m]  row chunks, one reused buffer
    idx    = top-k(pre);  acts = relu(pre[idx])          [n, k]     the only dense matmul is `pre`
    recon  = sum_j acts[:, j] * W_dec[idx[:, j]] + b_dec [n, d]     gather (embedding_bag)

and, when dead latents are given, the AuxK branch: ``aux_idx`` = top-k_aux of ``pre`` among the dead ids,
``aux_acts = relu(...)``, ``aux_recon = sum aux_acts * W_dec[aux_idx]`` (no bias: it models the residual). The
``[n, m]`` pre-activations never exist at once: each chunk of rows is reduced to its top-k (an exact
thresholded top-k, see :func:`_topk_rows`) before the next chunk overwrites the buffer.

Backward (g = dL/d recon, h = dL/d aux_recon). One sort of the selected (token, latent) pairs by latent (main
and AuxK pairs together) gives each latent the run of tokens it fired on; every reduction then walks latent by
latent, so a weight row is read once while the ``[n, d]`` tables (g, h, z: a few MB) stay in cache::

    dacts[t, i] = <g[t], W_dec[i]>          sampled dense-dense product over the pairs (CSR)
    gpre        = dacts * (acts > 0)        (+ any gradient arriving on acts directly)
    dW_dec[i]   = sum_t acts[t, i] * g[t]   embedding_bag over the table g (h for AuxK pairs)
    dW_enc[i]   = sum_t gpre[t, i] * z[t]   embedding_bag over the table z
    db_enc[i]   = sum_t gpre[t, i]
    db_dec      = sum_t g[t] - db_enc @ W_enc   (the encoder path, without an [n, d] gather)

No ``[n, k, d]`` tensor and no dense ``[n, m]`` decoder input is ever built; latents that did not fire get exact
zero rows in ``dW_enc`` / ``dW_dec``. The same ops run in float64, which is how the tests check them against a
dense reference."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

CHUNK_BYTES = 128 * 2**20
"""Target size of the reused pre-activation buffer (one chunk of rows). Large chunks mean few parallel regions
per step, which matters when other processes compete for the cores; small ones keep a chunk in cache. 128 MB
was faster on a loaded 2-core machine (4.5 s vs 6.1 s at 32 MB)."""

THRESHOLD_TOPK = True
"""Use the thresholded top-k on CPU (False: plain ``torch.topk``)."""

_SDDMM_CHUNK_ELEMS = 2**24
"""Fallback (non-CPU) row-dot: gather at most this many weight elements at a time."""

_warned_bf16 = False


class Workspace:
    """Scratch buffers reused across steps (the pre-activation chunk). Not saved, not shared."""

    def __init__(self) -> None:
        self._pre: Tensor | None = None
        self._weight: Tensor | None = None

    def pre(self, rows: int, cols: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        """A ``[rows, cols]`` buffer, reallocated only when the shape, dtype or device changes."""
        buf = self._pre
        if buf is None or buf.shape != (rows, cols) or buf.dtype != dtype or buf.device != device:
            buf = torch.empty(rows, cols, dtype=dtype, device=device)
            self._pre = buf
        return buf

    def rounded_weight(self, W: Tensor) -> Tensor:
        """``W`` rounded to bf16 and stored back in ``W``'s dtype, in a reused buffer."""
        buf = self._weight
        if buf is None or buf.shape != W.shape or buf.dtype != W.dtype or buf.device != W.device:
            buf = torch.empty_like(W)
            self._weight = buf
        return buf.copy_(W.to(torch.bfloat16))


def bf16_matmul_is_native(device: torch.device | str) -> bool:
    """Whether a bf16 GEMM on ``device`` runs on bf16 hardware (CUDA, or a CPU with AVX512-BF16/AMX).

    On other CPUs (e.g. AVX2-only) torch's bf16 GEMM is a slow fallback, ~8x slower than fp32.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return True
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
            return False
    return False


def encoder_matmul_mode(encoder_dtype: str, weight: Tensor) -> str:
    """How the encoder product runs: "fp32" (weights' own dtype), "bf16" or "bf16-emulated".

    "bf16-emulated" (bf16 asked for, no bf16 hardware): operands are rounded to bf16 and
    multiplied by the fp32 GEMM. Products of bf16 numbers are exact in fp32, so this gives the
    numerics of a bf16 GEMM with fp32 accumulation at fp32 speed (a native bf16 fallback would
    be several times slower than fp32).
    """
    if encoder_dtype != "bf16" or weight.dtype != torch.float32:
        return "fp32"
    if bf16_matmul_is_native(weight.device):
        return "bf16"
    global _warned_bf16
    if not _warned_bf16:
        _warned_bf16 = True
        warnings.warn(
            "encoder_dtype='bf16' on a device without bf16 matmul hardware: the encoder rounds its "
            "operands to bf16 but multiplies in fp32 (same numerics, no speed-up).",
            stacklevel=3,
        )
    return "bf16-emulated"


def latent_chunk_rows(num_latents: int, elem_bytes: int) -> int:
    """Rows of pre-activations per chunk so that one chunk is about :data:`CHUNK_BYTES`."""
    rows = CHUNK_BYTES // max(1, num_latents * elem_bytes)
    return int(max(64, min(4096, rows)))


def _group_size(num_cols: int, k: int) -> int:
    """Group size g for :func:`_topk_rows`' threshold (0: use plain ``torch.topk``).

    About 4k groups of g strided columns each; g must divide the row length.
    """
    target = num_cols // (4 * k)
    for g in range(min(target, 256), 3, -1):
        if num_cols % g == 0:
            return g
    return 0


def _flat_true(mask: Tensor) -> Tensor:
    """Flat positions of the True entries of a sparse bool tensor, in row-major order."""
    flat = mask.reshape(-1)
    if flat.numel() % 8 == 0 and flat.is_contiguous():
        # Scan 8 flags at a time, then expand only the words that hold a True.
        words = flat.view(torch.int64).nonzero().reshape(-1)
        cand = (words.unsqueeze(1) * 8 + torch.arange(8, device=flat.device)).reshape(-1)
        return cand[flat[cand]]
    return flat.nonzero().reshape(-1)


def _topk_rows(pre: Tensor, k: int, out_vals: Tensor, out_idx: Tensor) -> None:
    """Exact row-wise top-k of ``pre [B, M]`` (unsorted) into ``out_vals`` / ``out_idx``.

    ``torch.topk`` on CPU pays a few ns for every element. Instead: split each row into G
    groups of g strided columns and take the group maxima (one vectorised pass). The k-th
    largest group maximum t is a lower bound on the row's k-th largest value (k groups each
    hold an element >= t), so the top-k lie among the few entries >= t (about 1.1-1.3 k per
    row on Gaussian-like rows). Those are compacted into a small padded matrix and handed to
    ``torch.topk``. Ties or NaNs that would leave fewer than k candidates fall back to
    ``torch.topk``.
    """
    B, M = pre.shape
    g = _group_size(M, k) if (pre.device.type == "cpu" and THRESHOLD_TOPK) else 0
    if g == 0 or B == 0:
        torch.topk(pre, k, dim=1, sorted=False, out=(out_vals, out_idx))
        return
    G = M // g
    thresh = pre.view(B, g, G).amax(1).topk(k, dim=1, sorted=False).values.amin(1, keepdim=True)
    pos = _flat_true(pre >= thresh)
    rows = torch.div(pos, M, rounding_mode="floor")
    counts = torch.bincount(rows, minlength=B)
    lo, hi = (int(v) for v in torch.aminmax(counts))
    if lo < k:
        torch.topk(pre, k, dim=1, sorted=False, out=(out_vals, out_idx))
        return
    width = hi
    start = torch.cumsum(counts, 0) - counts
    slot = rows * width + (torch.arange(pos.numel(), device=pos.device) - start[rows])
    cand_vals = torch.full((B * width,), float("-inf"), dtype=pre.dtype, device=pre.device)
    cand_vals[slot] = pre.reshape(-1)[pos]
    cand_cols = torch.zeros(B * width, dtype=torch.long, device=pre.device)
    cand_cols[slot] = pos - rows * M
    vals, j = cand_vals.view(B, width).topk(k, dim=1, sorted=False)
    out_vals.copy_(vals)
    torch.gather(cand_cols.view(B, width), 1, j, out=out_idx)


@torch.no_grad()
def topk_encode(
    z: Tensor,
    W_enc: Tensor,
    b_enc: Tensor,
    k: int,
    *,
    encoder_dtype: str = "fp32",
    dead_idx: Tensor | None = None,
    k_aux: int = 0,
    workspace: Workspace | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Top-k (and optional AuxK top-k over ``dead_idx``) of ``relu(z @ W_enc.T + b_enc)``, by row chunks.

    Returns ``acts [n, k], idx [n, k], aux_acts [n, ka], aux_idx [n, ka]`` with
    ``ka = min(k_aux, len(dead_idx))`` (0 when there is no AuxK). Activations come back in
    ``W_enc``'s dtype. Selection is over the raw pre-activations and ReLU is applied to the
    selected values, which equals top-k after ReLU (ReLU is monotone) while sparing a full pass.
    """
    n = z.shape[0]
    m = W_enc.shape[0]
    device, out_dtype = W_enc.device, W_enc.dtype
    mode = encoder_matmul_mode(encoder_dtype, W_enc)
    ws = workspace if workspace is not None else Workspace()
    if mode == "bf16":
        W_mm, b_mm, mm_dtype = W_enc.to(torch.bfloat16), b_enc.to(torch.bfloat16), torch.bfloat16
    elif mode == "bf16-emulated":
        W_mm, b_mm, mm_dtype = ws.rounded_weight(W_enc), b_enc, out_dtype
    else:
        W_mm, b_mm, mm_dtype = W_enc, b_enc, out_dtype

    ka = 0
    if dead_idx is not None and k_aux > 0:
        ka = min(int(k_aux), int(dead_idx.numel()))
    acts, aux_acts = (torch.empty(n, w, dtype=out_dtype, device=device) for w in (k, ka))
    idx, aux_idx = (torch.empty(n, w, dtype=torch.long, device=device) for w in (k, ka))
    if n == 0:
        return acts, idx, aux_acts, aux_idx

    rows = min(n, latent_chunk_rows(m, torch.finfo(mm_dtype).bits // 8))
    rows = -(-n // -(-n // rows))  # equal chunks, no tiny remainder
    buf = ws.pre(rows, m, mm_dtype, device)
    for s in range(0, n, rows):
        e = min(n, s + rows)
        zc = z[s:e]
        if mode == "bf16":
            zc = zc.to(torch.bfloat16)
        elif mode == "bf16-emulated":
            zc = zc.to(torch.bfloat16).to(out_dtype)
        pre = buf[: e - s]
        torch.addmm(b_mm, zc, W_mm.t(), out=pre)
        if mode == "bf16":
            vals = torch.empty(e - s, k, dtype=mm_dtype, device=device)
            _topk_rows(pre, k, vals, idx[s:e])
            acts[s:e] = vals
        else:
            _topk_rows(pre, k, acts[s:e], idx[s:e])
        if ka:
            dvals, dpos = pre.index_select(1, dead_idx).topk(ka, dim=1, sorted=False)
            aux_acts[s:e] = dvals
            aux_idx[s:e] = dead_idx[dpos]
    acts.clamp_min_(0)  # ReLU of the selected values
    aux_acts.clamp_min_(0)
    return acts, idx, aux_acts, aux_idx


def sparse_decode(acts: Tensor, idx: Tensor, W_dec: Tensor) -> Tensor:
    """``sum_j acts[:, j] * W_dec[idx[:, j]]`` as an ``[n, d]`` tensor (no bias, no autograd)."""
    if idx.shape[1] == 0:
        return acts.new_zeros(acts.shape[0], W_dec.shape[1])
    return F.embedding_bag(idx, W_dec, per_sample_weights=acts.to(W_dec.dtype), mode="sum")


def _latent_major(pairs: Tensor, num_latents: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Group the (token, latent) pairs ``pairs [n, kk]`` by latent.

    Returns ``latent`` (sorted latent ids), ``order`` (positions into ``pairs.reshape(-1)``
    in that order), ``token`` (the token of each sorted pair) and ``bounds [m + 1]`` (latent
    i's pairs are ``bounds[i]:bounds[i+1]``). Every per-latent reduction below walks one
    latent's tokens at a time, so its weight row stays in cache and only the small ``[n, d]``
    tables are read at random.
    """
    kk = pairs.shape[1]
    flat = pairs.reshape(-1)
    key = flat.to(torch.int32) if num_latents < 2**31 else flat
    latent, order = torch.sort(key)
    counts = torch.bincount(flat, minlength=num_latents)
    bounds = torch.zeros(num_latents + 1, dtype=torch.long, device=flat.device)
    torch.cumsum(counts, 0, out=bounds[1:])
    token = torch.div(order, kk, rounding_mode="floor")
    return latent, order, token, bounds


def _segment_weighted_sum(token: Tensor, bounds: Tensor, table: Tensor, weights: Tensor) -> Tensor:
    """``out[i] = sum_{r in latent i's run} weights[r] * table[token[r]]``, an ``[m, d]`` tensor."""
    return F.embedding_bag(token, table, bounds[:-1], mode="sum", per_sample_weights=weights)


def _segment_dot(latent: Tensor, token: Tensor, bounds: Tensor, W: Tensor, table: Tensor) -> Tensor:
    """``out[r] = <W[latent[r]], table[token[r]]>`` for every sorted pair r."""
    nnz = token.numel()
    if nnz == 0:
        return table.new_zeros(0)
    if W.device.type == "cpu":
        # Sampled dense-dense product with the latent-major pattern as a CSR [m, rows(table)].
        with warnings.catch_warnings():  # torch's one-off "CSR support is in beta" notice
            warnings.simplefilter("ignore", UserWarning)
            pattern = torch.sparse_csr_tensor(
                bounds, token, table.new_zeros(nnz), size=(W.shape[0], table.shape[0]), check_invariants=False
            )
        return torch.sparse.sampled_addmm(pattern, W, table.t(), beta=0.0).values()
    out = table.new_empty(nnz)
    step = max(1, _SDDMM_CHUNK_ELEMS // max(1, W.shape[1]))
    for s in range(0, nnz, step):
        e = min(nnz, s + step)
        out[s:e] = (W[latent[s:e].long()] * table[token[s:e]]).sum(1)
    return out


def latent_sums(idx: Tensor, acts: Tensor, table: Tensor, num_latents: int) -> Tensor:
    """``out[j] = sum over tokens t, slots s with idx[t, s] == j of acts[t, s] * table[t]``: the codes' transpose
    times ``table [n, d]`` (``F^T table`` for the sparse ``F [n, m]``), an ``[m, d]`` tensor in ``table``'s dtype,
    at k/m of the dense product's work."""
    _, order, token, bounds = _latent_major(idx, num_latents)
    return _segment_weighted_sum(token, bounds, table, acts.reshape(-1)[order].to(table.dtype))


class TopKSaeFn(torch.autograd.Function):
    """Top-k SAE forward with a sparse backward. See the module docstring for the maths.

    ``apply(x, b_dec, W_enc, b_enc, W_dec, k, dead_idx, k_aux, encoder_dtype, workspace)``
    returns ``(recon, acts, idx, aux_recon, aux_acts, aux_idx)``; ``x`` is the (normalised)
    input ``[n, d]``, ``recon`` includes ``b_dec``, ``aux_*`` have zero width without AuxK.
    Gradients flow to ``x, b_dec, W_enc, b_enc, W_dec`` from ``recon``, ``acts``,
    ``aux_recon`` and ``aux_acts``.
    """

    @staticmethod
    def forward(ctx, x, b_dec, W_enc, b_enc, W_dec, k, dead_idx, k_aux, encoder_dtype, workspace):
        z = x.to(W_enc.dtype) - b_dec
        acts, idx, aux_acts, aux_idx = topk_encode(
            z, W_enc, b_enc, k, encoder_dtype=encoder_dtype, dead_idx=dead_idx, k_aux=k_aux, workspace=workspace
        )
        recon = sparse_decode(acts, idx, W_dec).add_(b_dec)
        aux_recon = sparse_decode(aux_acts, aux_idx, W_dec) if aux_idx.shape[1] else z.new_zeros(z.shape[0], 0)
        ctx.save_for_backward(z, W_enc, W_dec, acts, idx, aux_acts, aux_idx)
        ctx.mark_non_differentiable(idx, aux_idx)
        ctx.set_materialize_grads(False)
        return recon, acts, idx, aux_recon, aux_acts, aux_idx

    @staticmethod
    @once_differentiable
    def backward(ctx, g_recon, g_acts, _g_idx, g_aux_recon, g_aux_acts, _g_aux_idx):
        z, W_enc, W_dec, acts, idx, aux_acts, aux_idx = ctx.saved_tensors
        need_x, need_bdec, need_Wenc, need_benc, need_Wdec = ctx.needs_input_grad[:5]
        n = z.shape[0]
        m = W_enc.shape[0]
        k = idx.shape[1]
        none = (None,) * 10
        use_aux = aux_idx.shape[1] > 0 and (g_aux_recon is not None or g_aux_acts is not None)
        if g_recon is None and g_acts is None and not use_aux:
            return none

        def zeros_like_or(t, like):
            return t if t is not None else torch.zeros_like(like)

        # All selected (token, latent) pairs: main top-k, then AuxK's.
        if use_aux:
            pairs = torch.cat([idx, aux_idx], dim=1)
            pair_acts = torch.cat([acts, aux_acts], dim=1)
        else:
            pairs, pair_acts = idx, acts
        kk = pairs.shape[1]
        latent, order, token, bounds = _latent_major(pairs, m)
        acts_s = pair_acts.reshape(-1)[order]

        # Gradient table for the decoder: row t = dL/d recon[t]; rows n + t = dL/d aux_recon[t].
        if use_aux:
            table = torch.cat([zeros_like_or(g_recon, z), zeros_like_or(g_aux_recon, z)])
            dec_token = token + (torch.remainder(order, kk) >= k).long() * n
        else:
            table, dec_token = g_recon, token

        grad_x = grad_bdec = grad_Wenc = grad_benc = grad_Wdec = None
        if need_Wdec and table is not None:
            grad_Wdec = _segment_weighted_sum(dec_token, bounds, table, acts_s)

        if need_x or need_bdec or need_Wenc or need_benc:
            # dL/d acts for each sorted pair, then through the ReLU.
            if table is not None:
                gact_s = _segment_dot(latent, dec_token, bounds, W_dec, table)
            else:
                gact_s = acts_s.new_zeros(acts_s.shape)
            if g_acts is not None or (use_aux and g_aux_acts is not None):
                if use_aux:
                    g_in = torch.cat([zeros_like_or(g_acts, acts), zeros_like_or(g_aux_acts, aux_acts)], dim=1)
                else:
                    g_in = g_acts
                gact_s.add_(g_in.reshape(-1)[order])
            gpre_s = gact_s.mul_(acts_s > 0)
            if need_Wenc:
                grad_Wenc = _segment_weighted_sum(token, bounds, z, gpre_s)
            if need_benc or need_bdec:
                grad_benc = torch.zeros(m, dtype=z.dtype, device=z.device).index_add_(0, latent, gpre_s)
            if need_x:
                gpre = torch.empty_like(gpre_s)
                gpre[order] = gpre_s
                grad_x = F.embedding_bag(pairs, W_enc, per_sample_weights=gpre.view(n, kk), mode="sum")
        if need_bdec:
            grad_bdec = g_recon.sum(0) if g_recon is not None else z.new_zeros(z.shape[1])
            if grad_benc is not None:
                grad_bdec.sub_(grad_benc @ W_enc)
        if not need_benc:
            grad_benc = None
        return grad_x, grad_bdec, grad_Wenc, grad_benc, grad_Wdec, None, None, None, None, None
