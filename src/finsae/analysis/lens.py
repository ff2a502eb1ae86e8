"""The activation lens: where, layer by layer, the twin's activations differ from the base's (issue 33 §2).

Inputs: one layer's paired held-out activations ``h_base``, ``h_twin`` (row-aligned ``[n_tokens, d]`` arrays
or memory maps) and a :class:`TokenIndex`. [CLS] rows (``position="cls"``) are measured apart from the others
(``"tokens"``); each measure (:data:`MEASURES`) is given on financial, general and all text, and their
``difference`` (financial − general, from the same bootstrap draws). Documents are split at random within each
text type into *fit* documents (the affine map and the mean-difference direction are fitted there) and *score*
documents (where those two are scored); the other measures use every document.

Intervals: percentile bootstrap over documents, stratified by text type and fit/score, by reweighting
per-document sums (no rows are copied; the fitted map and direction are held fixed). Measures made of
per-document scalars and vectors are recomputed exactly per draw (``bootstrap="exact"``); those of the d×d
covariances (``cka``, ``participation_ratio_*``, ``top3_share_*``; per-document d×d moments would not fit in
memory) use the bootstrap of their expansion ``T + Σ_i (w_i − 1) ∂T/∂w_i``, whose derivatives are sums of
per-token quadratic forms (``bootstrap="linearised"``, clipped to the measure's range). Two streamed passes
per layer and position, each O(n·d²) in float32 chunk products accumulated in float64.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from finsae.analysis.affine import (
    CHUNK_ROWS,
    AffineMap,
    AffineStudyConfig,
    PairMoments,
    PairSpectrum,
    estimate_columns,
    fit_affine_from_moments,
    read_rows,
    row_chunks,
    row_dot,
    sample_mean,
    scatter_rows,
)
from finsae.errors import ConfigError, require

TEXT_TYPES = ("financial", "general", "all", "difference")
POSITIONS = ("tokens", "cls")
MEASURES: dict[str, str] = {
    "relative_change": "E||h_twin − h_base||² / E||h_base||² over the tokens (raw, uncentred norms)",
    "cka": "linear CKA of base and twin, centred on the text type's tokens",
    "affine_r2": "pooled R² of the twin from the base's affine image (fit documents) on score documents",
    **{f"participation_ratio_{m}": f"(Σλ)² / Σλ² of the {m}'s covariance eigenvalues"
       for m in ("base", "twin")},
    **{f"top3_share_{m}": f"share of the {m}'s variance in its 3 largest principal components"
       for m in ("base", "twin")},
    **{f"window_share_{m}": f"share of the {m}'s token variance explained by per-window means (tokens only)"
       for m in ("base", "twin")},
    "mean_diff_projection": "mean u·(h_twin − h_base) on score documents, u the unit mean difference"
                            " on fit documents",
    "mean_diff_projection_rel": "mean_diff_projection / RMS ||h_base|| on the same tokens",
}
"""Every measure of the table, with its definition."""
TABLE_COLUMNS: dict[str, str] = {
    "layer": "int: layer index",
    "text_type": "str: financial, general, all or difference (financial − general)",
    "position": "str: cls ([CLS] rows) or tokens (every other row)",
    **estimate_columns("MEASURES", "LensConfig.ci", "documents"),
    "n_docs": "int: documents behind the value (score documents for affine_r2 and mean_diff_*)",
    "n_tokens": "int: token rows behind the value",
    "bootstrap": "str: exact (recomputed per draw) or linearised (first-order in the document weights)",
}
"""Columns of the long table that :func:`activation_lens` returns."""
_RANGE = {"cka": (0.0, 1.0), "top3_share_base": (0.0, 1.0), "top3_share_twin": (0.0, 1.0),
          "participation_ratio_base": (1.0, np.inf), "participation_ratio_twin": (1.0, np.inf)}
_SCORE_MEASURES = ("affine_r2", "mean_diff_projection", "mean_diff_projection_rel")
"""Measures taken on the score documents only (their ``n_docs`` and ``n_tokens`` count those)."""


@dataclass
class LensConfig(AffineStudyConfig):
    """Knobs of the activation lens (``analysis.lens.*``; the bootstrap draws the documents, stratified by
    text type and fit/score; the seed also draws the fit/score split), and the three pairs its comparison
    reads (:mod:`finsae.analysis.comparison`)."""

    study: ClassVar[str] = "analysis.lens"
    fit_fraction: float = 0.5
    """Share of each text type's documents on which the affine map and the mean difference are fitted."""
    chunk_rows: int = CHUNK_ROWS
    """Token rows read and multiplied at a time."""
    finance_pair: str = "minilm_fin"
    """Analysis folder of the finance pair (base vs finance twin): ``comparison.md`` is written there."""
    control_pair: str = "minilm_sst2"
    """Analysis folder of the control pair: the same base vs a twin of the same recipe on general text."""
    seed_pair: str = "minilm_fin_seed"
    """Analysis folder of the fine-tune seed spread: like for like when it holds the same base vs the finance
    recipe at another seed (one of the two twins against each other is shown, not used as the spread)."""
    docs_per_type: int | None = None
    """Source documents per text type the stage's lens reads (seeded draw; None: all; cost ∝ token rows)."""

    def __post_init__(self):
        super().__post_init__()
        require(0 < self.fit_fraction < 1,
                f"analysis.lens.fit_fraction must be in (0, 1), got {self.fit_fraction}")
        require(self.chunk_rows >= 1, f"analysis.lens.chunk_rows must be >= 1, got {self.chunk_rows}")
        require(self.docs_per_type is None or self.docs_per_type >= 2,
                f"analysis.lens.docs_per_type must be >= 2 or null, got {self.docs_per_type}")
        for name in ("finance_pair", "control_pair", "seed_pair"):
            require(getattr(self, name) not in ("", ".", "..") and "/" not in getattr(self, name),
                    f"analysis.lens.{name} must name an analysis folder, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class TokenIndex:
    """What each activation row is (all arrays ``[n_tokens]``, row-aligned with the activations)."""

    doc: np.ndarray
    """Document id (any integers)."""
    window: np.ndarray
    """Window id (model input) of the row; a window lies inside one document."""
    financial: np.ndarray
    """True on financial text, False on general text; constant within a document."""
    is_cls: np.ndarray
    """True on [CLS] rows."""


@dataclass(frozen=True)
class LayerLens:
    """The lens of one layer: its rows of the table and what was fitted on the fit documents."""

    layer: int
    """Layer index."""
    table: pd.DataFrame
    """This layer's rows (:data:`TABLE_COLUMNS`)."""
    affine: dict[str, AffineMap]
    """Per position (cls, tokens): the twin's affine map from the base, fitted on the fit documents."""
    mean_diff_direction: dict[str, np.ndarray]
    """Per position: unit vector along mean(h_twin − h_base) over the fit documents' rows."""


@dataclass(frozen=True)
class LensResult:
    """The lens of every layer."""

    table: pd.DataFrame
    """Every layer's rows (:data:`TABLE_COLUMNS`)."""
    layers: tuple[LayerLens, ...]
    """Per layer, in input order."""
    fit_docs: np.ndarray
    """Ids of the fit documents (the rest are score documents)."""


@dataclass(frozen=True)
class _Layout:
    doc_ids: np.ndarray       # [n_docs] sorted original ids
    doc_code: np.ndarray      # [n] row -> document 0..n_docs-1
    window_code: np.ndarray   # [n] row -> window 0..n_windows-1
    window_doc: np.ndarray    # [n_windows] window -> document
    fin: np.ndarray           # [n_docs] bool
    fit: np.ndarray           # [n_docs] bool
    weights: np.ndarray       # [1 + n_boot, n_docs] float64; row 0 = ones (the point estimate)
    rows: dict[str, np.ndarray]


def _layout(index: TokenIndex, cfg: LensConfig, fit_docs) -> _Layout:
    arrays = [np.asarray(a) for a in (index.doc, index.window, index.financial, index.is_cls)]
    n = len(arrays[0])
    if any(a.ndim != 1 or len(a) != n for a in arrays) or n == 0:
        raise ConfigError(f"TokenIndex arrays must be 1-D, non-empty and of one length, got "
                          f"{[a.shape for a in arrays]}")
    doc_ids, doc_code = np.unique(arrays[0], return_inverse=True)
    counts = np.bincount(doc_code)
    fin_rows = np.bincount(doc_code, weights=arrays[2].astype(bool))
    if not np.all((fin_rows == 0) | (fin_rows == counts)):
        raise ConfigError("TokenIndex.financial differs within a document: the text type is per document")
    windows, window_code = np.unique(np.stack([doc_code, arrays[1].astype(np.int64)]), axis=1,
                                     return_inverse=True)
    fin = fin_rows > 0
    split_rng, boot_rng = (np.random.default_rng([cfg.seed, stream]) for stream in (1, 2))
    if fit_docs is None:
        fit = np.zeros(len(doc_ids), bool)
        for members in (np.flatnonzero(fin), np.flatnonzero(~fin)):
            fit[split_rng.permutation(members)[:int(round(cfg.fit_fraction * len(members)))]] = True
    else:
        fit = np.isin(doc_ids, np.asarray(fit_docs))
    if fit.sum() < 2 or (~fit).sum() < 2:
        raise ConfigError(f"the lens needs >= 2 fit and >= 2 score documents, has {fit.sum()} and "
                          f"{(~fit).sum()} of {len(doc_ids)}: give more documents or another fit_fraction")
    weights = np.ones((1 + cfg.n_boot, len(doc_ids)))
    for stratum in (fin & fit, fin & ~fit, ~fin & fit, ~fin & ~fit):
        members = np.flatnonzero(stratum)
        if len(members):
            weights[1:, members] = boot_rng.multinomial(len(members), np.full(len(members), 1 / len(members)),
                                                        size=cfg.n_boot)
    is_cls = arrays[3].astype(bool)
    rows = {"cls": np.flatnonzero(is_cls), "tokens": np.flatnonzero(~is_cls)}
    return _Layout(doc_ids, doc_code, window_code.ravel(), windows[0], fin, fit, weights, rows)


class _DocSums:
    """Per-document sums of one position's rows (shifted by the layer's sample means); per-group moments."""

    def __init__(self, n_docs: int, n_windows: int, shift_x: np.ndarray, shift_y: np.ndarray):
        d = len(shift_x)
        self.shift_x, self.shift_y = shift_x, shift_y
        self.n, self.sq_base, self.sq_diff = np.zeros(n_docs), np.zeros(n_docs), np.zeros(n_docs)
        self.sz_x, self.sz_y = np.zeros(n_docs), np.zeros(n_docs)
        self.s_x, self.s_y = np.zeros((n_docs, d)), np.zeros((n_docs, d))
        self.win_n = np.zeros(n_windows)
        self.win_x, self.win_y = np.zeros((n_windows, d)), np.zeros((n_windows, d))
        self.groups = [PairMoments(shift_x, shift_y) for _ in range(4)]  # group = 2 * financial + fit

    def add(self, x, y, codes, window_codes, group) -> None:
        zx, zy = (x - self.shift_x.astype(np.float32)), (y - self.shift_y.astype(np.float32))
        n_docs = len(self.n)
        diff = y - x
        per_row = ((self.n, None), (self.sq_base, row_dot(x, x)), (self.sq_diff, row_dot(diff, diff)),
                   (self.sz_x, row_dot(zx, zx)), (self.sz_y, row_dot(zy, zy)))
        for total, vals in per_row:
            total += np.bincount(codes, weights=vals, minlength=n_docs)
        self.win_n += np.bincount(window_codes, minlength=len(self.win_n))
        for where, out_x, out_y in ((codes, self.s_x, self.s_y), (window_codes, self.win_x, self.win_y)):
            scatter_rows(where, zx, out_x)
            scatter_rows(where, zy, out_y)
        for g, moments in enumerate(self.groups):
            sel = group == g
            moments.add_shifted(zx[sel], zy[sel])

    def window_between(self, window_doc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per document, Σ over its windows of ||window sum||² / window size, for base and twin."""
        keep = self.win_n > 0
        out = []
        for win in (self.win_x, self.win_y):
            per_window = np.where(keep, row_dot(win, win) / np.maximum(self.win_n, 1), 0.0)
            out.append(np.bincount(window_doc, weights=per_window, minlength=len(self.n)))
        return out[0], out[1]


def _quadratic_forms(zx: np.ndarray, zy: np.ndarray, sp: PairSpectrum) -> list[np.ndarray]:
    """Per row, centred on ``sp``: x'C_xx x, y'C_yy y, x'C_xy y, |x|², |y|², |top3_x'x|², |top3_y'y|²."""
    xc, yc = zx - sp.delta[0], zy - sp.delta[1]
    c_xx, c_yy, c_xy, top_x, top_y = sp.mats
    return [row_dot(xc @ c_xx, xc), row_dot(yc @ c_yy, yc), row_dot(xc @ c_xy, yc), row_dot(xc, xc),
            row_dot(yc, yc), np.square(xc @ top_x).sum(1, dtype=np.float64),
            np.square(yc @ top_y).sum(1, dtype=np.float64)]


def _second_pass(h_base, h_twin, rows, layout: _Layout, sums: _DocSums, spectra: dict, affine: AffineMap,
                 chunk_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Per document: the affine residual ||y - ŷ||² (score documents) and the 7 quadratic forms, summed, for
    the document's own text type (slot 0) and for all text (slot 1)."""
    n_docs = len(layout.doc_ids)
    rss, quad = np.zeros(n_docs), np.zeros((2, 7, n_docs))
    shift_x, shift_y = sums.shift_x.astype(np.float32), sums.shift_y.astype(np.float32)
    for piece in row_chunks(rows, chunk_rows):
        x, y = read_rows(h_base, piece), read_rows(h_twin, piece)
        codes = layout.doc_code[piece]
        score = ~layout.fit[codes]
        rss += np.bincount(codes[score], weights=affine.residual_sq(x[score], y[score]), minlength=n_docs)
        zx, zy = x - shift_x, y - shift_y
        fin = layout.fin[codes]
        for slot, name, sel in ((0, "financial", fin), (0, "general", ~fin), (1, "all", np.ones_like(fin))):
            if spectra[name] is None or not sel.any():
                continue
            for k, vals in enumerate(_quadratic_forms(zx[sel], zy[sel], spectra[name])):
                quad[slot, k] += np.bincount(codes[sel], weights=vals, minlength=n_docs)
    return rss, quad


def _linearised(sp: PairSpectrum, quad: np.ndarray, mask: np.ndarray, weights: np.ndarray) -> dict:
    """Point estimate (row 0) and linearised bootstrap replicates of the covariance measures.

    Each measure is homogeneous of degree 0 in the covariances (⟨∇f, C⟩ = 0), so ∂f/∂w_i is the sum over
    document i's rows of the quadratic form of ∇f, divided by the row count n."""
    a_x, a_y, c_xy, b_x, b_y, e_x, e_y = quad[:, mask]
    (tr_x, tr_y), (f_xx, f_yy), (l_x, l_y) = sp.trace, sp.frob, sp.top3
    cka = sp.f_xy2 / (f_xx * f_yy)
    grads = {
        "cka": (cka, 2 * c_xy / (f_xx * f_yy) - cka * a_x / f_xx ** 2 - cka * a_y / f_yy ** 2),
        "participation_ratio_base": (tr_x ** 2 / f_xx ** 2,
                                     2 * tr_x / f_xx ** 2 * b_x - 2 * tr_x ** 2 / f_xx ** 4 * a_x),
        "participation_ratio_twin": (tr_y ** 2 / f_yy ** 2,
                                     2 * tr_y / f_yy ** 2 * b_y - 2 * tr_y ** 2 / f_yy ** 4 * a_y),
        "top3_share_base": (l_x / tr_x, e_x / tr_x - l_x / tr_x ** 2 * b_x),
        "top3_share_twin": (l_y / tr_y, e_y / tr_y - l_y / tr_y ** 2 * b_y),
    }
    shift = weights[:, mask] - 1.0
    return {name: value + shift @ (grad / sp.n) for name, (value, grad) in grads.items()}


def _exact(sums: _DocSums, between: tuple, extra: tuple, mask, score_mask, weights, position: str) -> dict:
    """Point estimate (row 0) and exact bootstrap replicates of the measures built from per-document sums."""
    rss, proj = extra
    w = weights * mask
    n = w @ sums.n
    out = {"relative_change": (w @ sums.sq_diff) / (w @ sums.sq_base)}
    if position == "tokens":  # a [CLS] row is its window's only one: its window share is 1 by definition
        models = (("base", sums.sz_x, sums.s_x, between[0]), ("twin", sums.sz_y, sums.s_y, between[1]))
        for model, sz, s, btw in models:
            total = w @ s
            mean_sq = row_dot(total, total) / n
            out[f"window_share_{model}"] = (w @ btw - mean_sq) / (w @ sz - mean_sq)
    w = weights * score_mask
    n = w @ sums.n
    total_y = w @ sums.s_y
    out["affine_r2"] = 1 - (w @ rss) / (w @ sums.sz_y - row_dot(total_y, total_y) / n)
    out["mean_diff_projection"] = (w @ proj) / n
    out["mean_diff_projection_rel"] = out["mean_diff_projection"] / np.sqrt((w @ sums.sq_base) / n)
    return out


def _position_lens(h_base, h_twin, layout: _Layout, position: str, cfg: LensConfig):
    """(values per text type and measure, docs and tokens per text type, affine map, direction)."""
    rows = layout.rows[position]
    sums = _DocSums(len(layout.doc_ids), len(layout.window_doc), sample_mean(h_base, rows),
                    sample_mean(h_twin, rows))
    group_of_doc = 2 * layout.fin + layout.fit
    for piece in row_chunks(rows, cfg.chunk_rows):
        codes = layout.doc_code[piece]
        sums.add(read_rows(h_base, piece), read_rows(h_twin, piece), codes, layout.window_code[piece],
                 group_of_doc[codes])
    g = sums.groups
    moments = {"financial": g[2] + g[3], "general": g[0] + g[1]}
    moments["all"] = moments["financial"] + moments["general"]
    fit_moments = g[1] + g[3]
    if fit_moments.n < 2 or (g[0] + g[2]).n < 1:
        raise ConfigError(f"the {position} rows hold {fit_moments.n} fit and {(g[0] + g[2]).n} score rows: "
                          "the affine map needs >= 2 fit rows and a score row; give more documents")
    affine = fit_affine_from_moments(fit_moments, cfg.ridge)
    mean_diff = fit_moments.mean_y - fit_moments.mean_x
    norm = float(np.linalg.norm(mean_diff))
    direction = mean_diff / norm if norm > 0 else np.zeros_like(mean_diff)
    proj = (sums.s_y - sums.s_x) @ direction + sums.n * float(direction @ (sums.shift_y - sums.shift_x))
    spectra = {name: m.spectrum() for name, m in moments.items()}
    rss, quad = _second_pass(h_base, h_twin, rows, layout, sums, spectra, affine, cfg.chunk_rows)
    between = sums.window_between(layout.window_doc)
    has_rows = sums.n > 0
    values, counts = {}, {}
    every = np.ones_like(layout.fin)
    for name, docs in (("financial", layout.fin), ("general", ~layout.fin), ("all", every)):
        mask, score_mask = docs & has_rows, docs & has_rows & ~layout.fit
        if spectra[name] is None or score_mask.sum() == 0:
            continue
        values[name] = _exact(sums, between, (rss, proj), mask, score_mask, layout.weights, position)
        values[name] |= _linearised(spectra[name], quad[int(name == "all")], mask, layout.weights)
        counts[name] = {False: (int(mask.sum()), int(sums.n[mask].sum())),
                        True: (int(score_mask.sum()), int(sums.n[score_mask].sum()))}
    return values, counts, affine, direction


def _table_rows(layer: int, position: str, values: dict, counts: dict, ci: float) -> list[dict]:
    """Table rows of one position: point, percentile interval, counts; the difference from paired draws."""
    for measures in values.values():  # a linearised replicate (or rounding: CKA = 1 + 1e-8) can step outside
        for name, (lo, hi) in _RANGE.items():
            measures[name] = np.clip(measures[name], lo, hi)
    if "financial" in values and "general" in values:
        values["difference"] = {m: values["financial"][m] - values["general"][m] for m in values["financial"]}
        fin, gen = counts["financial"], counts["general"]
        counts["difference"] = {k: (fin[k][0] + gen[k][0], fin[k][1] + gen[k][1]) for k in (False, True)}
    q = [(1 - ci) / 2, 1 - (1 - ci) / 2]
    out = []
    for text_type in (t for t in TEXT_TYPES if t in values):
        for measure, reps in values[text_type].items():
            lo, hi = np.quantile(reps[1:], q)
            n_docs, n_tokens = counts[text_type][measure in _SCORE_MEASURES]
            out.append({"layer": layer, "text_type": text_type, "position": position, "measure": measure,
                        "value": float(reps[0]), "lo": float(lo), "hi": float(hi), "n_docs": n_docs,
                        "n_tokens": n_tokens, "bootstrap": "linearised" if measure in _RANGE else "exact"})
    return out


def _lens_layer(layer: int, h_base, h_twin, layout: _Layout, cfg: LensConfig) -> LayerLens:
    n_rows = len(layout.doc_code)
    for name, h in (("h_base", h_base), ("h_twin", h_twin)):
        if getattr(h, "ndim", 0) != 2 or h.shape[0] != n_rows or h.shape != h_base.shape:
            raise ConfigError(f"layer {layer}: {name} must be [n_tokens={n_rows}, d] like h_base, got "
                              f"{getattr(h, 'shape', type(h).__name__)}")
    rows, affine, directions = [], {}, {}
    for position in POSITIONS:
        if len(layout.rows[position]) < 2:
            continue
        values, counts, affine[position], directions[position] = _position_lens(h_base, h_twin, layout,
                                                                                position, cfg)
        rows += _table_rows(layer, position, values, counts, cfg.ci)
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    return LayerLens(layer=layer, table=table, affine=affine, mean_diff_direction=directions)


def activation_lens(layers: Iterable[tuple[int, object, object]], index: TokenIndex,
                    cfg: LensConfig | None = None, fit_docs=None) -> LensResult:
    """The lens of every ``(layer, h_base, h_twin)`` (an iterable, so a caller can load one layer at a time).

    ``fit_docs``: ids of the documents to fit the affine map and mean difference on (default: a seeded random
    ``cfg.fit_fraction`` of each text type). Returns the long table (:data:`TABLE_COLUMNS`) and the per-layer
    fits.
    """
    cfg = cfg or LensConfig()
    layout = _layout(index, cfg, fit_docs)
    per_layer = tuple(_lens_layer(int(layer), base, twin, layout, cfg) for layer, base, twin in layers)
    tables = [lens.table for lens in per_layer] or [pd.DataFrame(columns=list(TABLE_COLUMNS))]
    table = pd.concat(tables, ignore_index=True)
    return LensResult(table=table, layers=per_layer, fit_docs=layout.doc_ids[layout.fit])
