"""Method 0, the activation lens: where, layer by layer, the twin's activations differ from the base's
(:mod:`finsae.analysis.lens`: relative change, linear CKA, held-out affine R², spectra, window share, the
mean-difference direction), on the held-out financial and general passages, [CLS] apart. It reads no SAE: its
inputs are the held-out activations of both models, so it runs at every analysed layer, first.

[CLS] states come from the held-out activation cache's special store, which the extraction fills in the same
forward pass when ``activations.store_special=true`` (the main store never holds [CLS]); without it the lens
reports the other tokens only and says so (``lens_cls_stored``). Bootstrap unit: the source document (the
passages cut from one document move together)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from finsae.activations import ShardedArray
from finsae.activations.store import ActivationStore, open_store
from finsae.analysis.artifacts import TableSpec
from finsae.analysis.findings import ci_text
from finsae.analysis.heldout import HeldoutSet
from finsae.analysis.lens import TABLE_COLUMNS, LensConfig, TokenIndex, activation_lens
from finsae.analysis.methods.base import DiffingMethod, LayerData, MethodResult, RowFields, Say, number
from finsae.analysis.plotting import column, layer_ticks, panel_grid
from finsae.analysis.selectivity import source_documents
from finsae.errors import ConfigError

log = logging.getLogger("finsae")
NAME = "lens"
"""Method name."""
TABLE = "activation_lens"
"""Table name (``activation_lens.parquet``): layer × text type × position × measure, with intervals."""
TEXT_TYPES = ("financial", "general")
"""The held-out groups the lens splits by (:mod:`finsae.analysis.heldout`); other passages are left out."""
ROW_ESTIMATES: dict[str, tuple[str, str, str]] = {
    "lens_rel_change": ("relative_change", "all", "tokens"),
    "lens_cka": ("cka", "all", "tokens"),
    "lens_affine_r2": ("affine_r2", "all", "tokens"),
    "lens_rel_change_financial": ("relative_change", "financial", "tokens"),
    "lens_rel_change_general": ("relative_change", "general", "tokens"),
    "lens_rel_change_fin_minus_gen": ("relative_change", "difference", "tokens"),
    "lens_cka_fin_minus_gen": ("cka", "difference", "tokens"),
    "lens_affine_r2_fin_minus_gen": ("affine_r2", "difference", "tokens"),
    "lens_top3_share_base": ("top3_share_base", "all", "tokens"),
    "lens_top3_share_twin": ("top3_share_twin", "all", "tokens"),
    "lens_window_share_twin": ("window_share_twin", "all", "tokens"),
    "lens_mean_diff_rel_fin_minus_gen": ("mean_diff_projection_rel", "difference", "tokens"),
    "lens_cls_rel_change": ("relative_change", "all", "cls"),
    "lens_cls_cka": ("cka", "all", "cls"),
    "lens_cls_affine_r2": ("affine_r2", "all", "cls"),
}
"""``layers.parquet`` column -> (measure, text type, position) of the lens table; each with _lo and _hi."""
FIGURE_MEASURES = ("relative_change", "cka", "affine_r2", "top3_share_twin", "window_share_twin",
                   "mean_diff_projection_rel")
"""The panels of ``plots/activation_lens_by_layer.png``."""


class RowView:
    """Chosen rows of one or more ``[n, d]`` arrays (memory maps) seen as one ``[m, d]`` array, read only
    where indexed (what the lens streams: the financial and general token rows, then the [CLS] rows)."""

    def __init__(self, parts: list[tuple[object, np.ndarray]]):
        self.parts = [(array, np.asarray(rows, np.int64)) for array, rows in parts]
        self.starts = np.cumsum([0, *(len(rows) for _, rows in self.parts)])
        self.shape = (int(self.starts[-1]), int(self.parts[0][0].shape[1]))
        self.ndim = 2

    def __getitem__(self, index) -> np.ndarray:
        index = np.asarray(index, np.int64)
        out = np.empty((len(index), self.shape[1]), np.float32)
        part = np.searchsorted(self.starts[1:], index, side="right")
        for p, (array, rows) in enumerate(self.parts):
            sel = part == p
            if sel.any():
                out[sel] = array[rows[index[sel] - self.starts[p]]]
        return out


class LensInputs(NamedTuple):
    h_base: RowView
    """The base's rows: financial and general token rows, then their windows' [CLS] rows (when stored)."""
    h_twin: RowView
    """The twin's, row-aligned with ``h_base``."""
    index: TokenIndex
    """What each row is: source document, window, text type, [CLS]."""
    cls_stored: bool
    """The cache holds both models' [CLS] rows (``activations.store_special=true``)."""


@dataclass
class LensRow(RowFields):
    """The lens's ``layers.parquet`` fields: each of :data:`ROW_ESTIMATES` with ``_lo`` and ``_hi``."""

    estimates: dict[str, float]
    """Column -> value (NaN where not measured: [CLS] not stored, one text type absent)."""
    lens_cls_stored: bool
    """Whether [CLS] rows were measured."""
    lens_n_tokens: int
    """Token rows (no [CLS]) behind the all-text estimates."""

    def columns(self) -> dict:
        return {**self.estimates, "lens_cls_stored": self.lens_cls_stored,
                "lens_n_tokens": self.lens_n_tokens}


def lens_row(table: pd.DataFrame, cls_stored: bool) -> LensRow:
    """The layer's ``layers.parquet`` fields from its lens table."""
    keyed = table.set_index(["measure", "text_type", "position"])
    out = {}
    for col, key in ROW_ESTIMATES.items():
        found = key in keyed.index
        for suffix, field in (("", "value"), ("_lo", "lo"), ("_hi", "hi")):
            out[col + suffix] = float(keyed.loc[key, field]) if found else math.nan
    key = ("relative_change", "all", "tokens")
    n_tokens = int(keyed.loc[key, "n_tokens"]) if key in keyed.index else 0
    return LensRow(out, cls_stored, n_tokens)


def cache_entry(array) -> ActivationStore | None:
    """The activation-cache entry a held-out array was read from (its token table and optional [CLS] store);
    None for an array that is no cache entry's."""
    if not isinstance(array, ShardedArray) or not array.paths:
        return None
    return open_store(array.paths[0].parent, verify=False)


def _text_type(held: HeldoutSet) -> np.ndarray:
    """[n_passages] 1 financial, 0 general, -1 neither (the lens leaves those out)."""
    out = np.full(len(held.corpus.frame), -1)
    for code, group in ((0, "general"), (1, "financial")):
        members = held.groups.get(group, np.array([], np.int64))
        if code == 1 and np.any(out[members] == 0):
            raise ConfigError("held-out passages sit in both the financial and the general group: rebuild "
                              "the held-out set (finsae.analysis.heldout keeps them apart)")
        out[members] = code
    return out


def _drawn_documents(doc: np.ndarray, cfg: LensConfig) -> np.ndarray:
    """Row mask: the rows of ``cfg.docs_per_type`` documents per text type (``doc % 2``), a seeded draw."""
    if cfg.docs_per_type is None:
        return np.ones(len(doc), bool)
    rng = np.random.default_rng([cfg.seed, 3])  # streams 1 and 2 draw the lens's split and bootstrap
    chosen = []
    for text in (0, 1):
        ids = np.unique(doc[doc % 2 == text])
        n = min(len(ids), cfg.docs_per_type)
        chosen.append(rng.choice(ids, n, replace=False) if n < len(ids) else ids)
    return np.isin(doc, np.concatenate(chosen))


def lens_inputs(data: LayerData, base_entry: ActivationStore, twin_entry: ActivationStore) -> LensInputs:
    """The rows the lens reads at ``data.layer``: financial and general tokens, then their [CLS] rows."""
    s = data.saes
    held = data.held
    text = _text_type(held)
    token_rows = np.flatnonzero(text[data.doc_of_row] >= 0)
    windows = base_entry.table.windows
    starts = windows["row_start"].to_numpy()
    order = np.argsort(starts, kind="stable")
    window_of_row = order[np.searchsorted(starts[order], token_rows, side="right") - 1]
    passage_of_window = pd.Index(held.corpus.frame["doc_id"]).get_indexer(base_entry.table.doc_ids)[
        windows["doc"].to_numpy()]
    specials = base_entry.special, twin_entry.special
    cls_stored = all(sp is not None for sp in specials)
    cls_windows = np.flatnonzero(text[passage_of_window] >= 0) if cls_stored else np.array([], np.int64)
    passage = np.r_[data.doc_of_row[token_rows], passage_of_window[cls_windows]]
    source = pd.factorize(source_documents(held))[0]
    # a source document whose passages were drawn into both groups counts as two documents, one per text type
    doc = 2 * source[passage] + text[passage]
    window, keep = np.r_[window_of_row, cls_windows], _drawn_documents(doc, data.analysis.lens)
    token_rows, cls_windows = token_rows[keep[:len(token_rows)]], cls_windows[keep[len(token_rows):]]
    index = TokenIndex(doc=doc[keep], window=window[keep], financial=text[passage[keep]] == 1,
                       is_cls=np.r_[np.zeros(len(token_rows), bool), np.ones(len(cls_windows), bool)])
    views = []
    for array, sp in zip((data.acts(s.base), data.acts(s.domain)), specials, strict=True):
        parts = [(array, token_rows)] + ([(sp.array, 2 * cls_windows)] if cls_stored else [])
        views.append(RowView(parts))
    return LensInputs(views[0], views[1], index, cls_stored)


class ActivationLens(DiffingMethod):
    name = NAME
    tables = (TableSpec(TABLE, "activation_lens.parquet", tuple(TABLE_COLUMNS), "activation lens table",
                        exact=True),)
    findings_header = "lens: relative change / CKA / affine R² (tokens, all text)"
    signal_label = "activation lens (relative change E‖h_twin − h_base‖² / E‖h_base‖²)"
    report_columns = ("lens_rel_change", "lens_cka", "lens_affine_r2", "lens_rel_change_fin_minus_gen",
                      "lens_cls_rel_change")

    def inputs(self, data: LayerData) -> LensInputs | None:
        s = data.saes
        entries = [cache_entry(data.acts(m)) for m in (s.base, s.domain)]
        if any(e is None for e in entries):
            log.warning("layer %d: the held-out activations are not activation-cache entries: no lens",
                        data.layer)
            return None
        if entries[0].table.content_hash != entries[1].table.content_hash:
            raise ConfigError(f"layer {data.layer}: {s.base} and {s.domain} held-out activations sit on "
                              "different token tables: the lens needs row-aligned activations (one "
                              "tokenizer)")
        return lens_inputs(data, *entries)

    def analyze(self, inputs: LensInputs, data: LayerData, earlier: dict[str, MethodResult],
                say: Say) -> MethodResult:
        layer = (data.layer, inputs.h_base, inputs.h_twin)
        result = activation_lens([layer], inputs.index, data.analysis.lens)
        return MethodResult(lens_row(result.table, inputs.cls_stored), {TABLE: result.table})

    def figures(self, frames: dict[str, pd.DataFrame], cfg, pair: str) -> dict:
        table = frames.get(TABLE)
        if table is None or not len(table):
            return {}
        return {"activation_lens_by_layer": plot_lens(table, f"{pair}: activation lens by layer "
                                                             f"({cfg.lens.ci:.0%} document bootstrap)")}

    def findings_cell(self, row: pd.Series) -> str | None:
        if not math.isfinite(number(row, "lens_rel_change")):
            return None
        return " / ".join(ci_text(row, f"lens_{c}", "{:.2f}") for c in ("rel_change", "cka", "affine_r2"))

    def signal(self, layers: pd.DataFrame) -> pd.Series:
        return column(layers, "lens_rel_change")

    def describe(self, r: dict) -> str:
        cls = (f"; [CLS] relative change {r['lens_cls_rel_change']:.3f}" if r["lens_cls_stored"]
               else "; [CLS] not stored")
        return (f"lens relative change {r['lens_rel_change']:.3f} (financial − general "
                f"{r['lens_rel_change_fin_minus_gen']:+.3f}), CKA {r['lens_cka']:.3f}, affine R² "
                f"{r['lens_affine_r2']:.3f}{cls}")


_STYLE = {"financial": ("#b5562b", "-"), "general": ("#3a6ea5", "-"), "all": ("#444444", ":")}


def plot_lens(table: pd.DataFrame, title: str):
    """One panel per measure of :data:`FIGURE_MEASURES` against the layer: financial, general and all text
    (tokens) with their intervals, and [CLS] on all text as hollow points."""
    fig, axes = panel_grid(len(FIGURE_MEASURES))
    layers = pd.DataFrame({"layer": sorted(table["layer"].unique())})
    for ax, measure in zip(axes, FIGURE_MEASURES, strict=False):
        t = table[table["measure"] == measure]
        series = [(tt, "tokens", *_STYLE[tt], "o") for tt in _STYLE]
        series.append(("all", "cls", "#222222", "none", "s"))
        for text_type, position, color, ls, marker in series:
            s = t[(t["text_type"] == text_type) & (t["position"] == position)].sort_values("layer")
            if not len(s):
                continue
            err = np.abs(np.stack([s["value"] - s["lo"], s["hi"] - s["value"]]))
            label = text_type if position == "tokens" else "[CLS], all text"
            ax.errorbar(s["layer"], s["value"], yerr=np.nan_to_num(err), color=color, ls=ls, capsize=2,
                        marker=marker, ms=4, mfc="none" if position == "cls" else color, label=label)
        layer_ticks(ax, layers)
        ax.set_title(measure.replace("_", " "), fontsize=9)
        ax.set_xlabel("layer", fontsize=7)
    axes[0].legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
