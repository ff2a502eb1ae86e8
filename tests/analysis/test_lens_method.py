"""The lens as method 0 of the analysis stage, on planted truth laid out as the activation cache lays it out
(token rows, windows, a [CLS]/[SEP] store, passages cut from source documents, groups of the held-out set): a
twin that is an affine image of the base at every layer but one, where a new direction fires on financial
text. The rows the method selects are checked against a dense computation on the same rows."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from finsae.analysis.config import AnalysisConfig
from finsae.analysis.heldout import HeldoutSet
from finsae.analysis.lens import LensConfig
from finsae.analysis.methods import METHODS
from finsae.analysis.methods.base import LayerData
from finsae.analysis.methods.lens import ROW_ESTIMATES, TABLE, ActivationLens, lens_inputs
from finsae.data.corpus import Corpus

D, N_LAYERS, PLANTED, WINDOW = 16, 3, 1, 12


def _layout(rng, n_sources: int = 60):
    """Held-out passages (source documents cut into 1-2 passages; a third financial, a third general, a third
    in another group) and their token rows in windows of at most WINDOW tokens, in a token-table order that
    differs from the held-out frame's."""
    ids, kinds = [], []
    for src in range(n_sources):
        kind = ("financial", "general", "ag_other")[src % 3]
        for j in range(1 + src % 2):
            ids.append(f"s{src}#{j}")
            kinds.append(kind)
    frame = pd.DataFrame({"doc_id": ids, "text": "x", "source": kinds})
    groups = {g: np.flatnonzero(np.array(kinds) == g) for g in ("financial", "general", "ag_other")}
    table_order = rng.permutation(len(ids))  # token-table doc index -> held-out passage
    windows, doc_of_row, start = [], [], 0
    for tdoc, passage in enumerate(table_order):
        n = int(rng.integers(5, 30))
        for w, lo in enumerate(range(0, n, WINDOW)):
            k = min(WINDOW, n - lo)
            windows.append((tdoc, w, start, k))
            doc_of_row += [passage] * k
            start += k
    windows = pd.DataFrame(windows, columns=["doc", "window_id", "row_start", "n_tokens"])
    held = HeldoutSet(Corpus(name="planted", frame=frame), groups)
    return held, windows, pd.Index(np.array(ids)[table_order]), np.array(doc_of_row)


def _planted(seed: int = 0):
    """Per layer (base, twin, base specials, twin specials); the planted direction fires on half the rows of
    financial passages at layer PLANTED (tokens and [CLS] alike)."""
    rng = np.random.default_rng(seed)
    held, windows, table_docs, doc_of_row = _layout(rng)
    fin_passage = np.zeros(len(held.corpus.frame), bool)
    fin_passage[held.groups["financial"]] = True
    passage_of_window = pd.Index(held.corpus.frame["doc_id"]).get_indexer(table_docs)[windows["doc"]]
    direction = rng.normal(size=D)
    direction /= np.linalg.norm(direction)
    layers = []
    for layer in range(N_LAYERS):
        pair = []
        for fin in (fin_passage[doc_of_row], np.repeat(fin_passage[passage_of_window], 2)):
            x = rng.normal(size=(len(fin), D)) @ rng.normal(size=(D, D)) / np.sqrt(D) + 0.5
            q = np.linalg.qr(rng.normal(size=(D, D)))[0]
            y = 1.3 * x @ q + 0.2
            if layer == PLANTED:
                y += np.outer(fin * (rng.random(len(x)) < 0.5) * rng.exponential(5.0, len(x)), direction)
            pair.append((x.astype(np.float16), y.astype(np.float16)))
        layers.append(pair)
    return held, windows, table_docs, doc_of_row, layers


def _data(layer: int, planted, lens: LensConfig, cls: bool = True):
    held, windows, table_docs, doc_of_row, layers = planted
    (x, y), (sx, sy) = layers[layer]

    def entry(special):
        return SimpleNamespace(table=SimpleNamespace(windows=windows, doc_ids=table_docs),
                               special=SimpleNamespace(array=special) if cls else None)

    data = LayerData(saes=SimpleNamespace(base="base", domain="twin"), analysis=AnalysisConfig(lens=lens),
                     arrays={("base", layer): x, ("twin", layer): y}, doc_of_row=doc_of_row,
                     char_start=np.zeros(len(x), np.int32), held=held, layer=layer)
    return data, entry(sx), entry(sy)


@pytest.fixture(scope="module")
def planted():
    return _planted()


@pytest.fixture(scope="module")
def results(planted):
    method, lens = ActivationLens(), LensConfig(n_boot=100)
    out = {}
    for layer in range(N_LAYERS):
        data, base_entry, twin_entry = _data(layer, planted, lens)
        res = method.analyze(lens_inputs(data, base_entry, twin_entry), data, {}, lambda msg: None)
        out[layer] = (res.row.columns(), res.tables[TABLE])
    return out


def test_the_lens_is_method_zero():
    assert next(iter(METHODS)) == ActivationLens.name


def test_the_row_shows_the_planted_layer(results):
    rows = {layer: row for layer, (row, _) in results.items()}
    for layer, row in rows.items():
        for col in ROW_ESTIMATES:
            assert row[f"{col}_lo"] <= row[col] <= row[f"{col}_hi"], (layer, col)
        assert row["lens_cls_stored"]
        if layer == PLANTED:
            # the new direction fires on financial text only: the twin leaves the base's affine image there
            assert row["lens_affine_r2"] < 0.95 and row["lens_cls_affine_r2"] < 0.95
            assert row["lens_rel_change_fin_minus_gen_lo"] > 0
            assert row["lens_affine_r2_fin_minus_gen_hi"] < 0
        else:
            assert row["lens_affine_r2"] > 0.999 and row["lens_cls_affine_r2"] > 0.999
            assert row["lens_affine_r2_fin_minus_gen_lo"] < 0.001
    signal = ActivationLens().signal(pd.DataFrame([{"layer": k, **v} for k, v in rows.items()]))
    assert int(signal.idxmax()) == PLANTED


def test_the_method_reads_exactly_the_financial_and_general_rows(planted, results):
    held, windows, table_docs, doc_of_row, layers = planted
    keep = np.zeros(len(held.corpus.frame), bool)
    keep[np.r_[held.groups["financial"], held.groups["general"]]] = True
    passage_of_window = pd.Index(held.corpus.frame["doc_id"]).get_indexer(table_docs)[windows["doc"]]
    for layer, (_, table) in results.items():
        (x, y), (sx, sy) = layers[layer]
        picks = {"tokens": (x, y, keep[doc_of_row]),
                 "cls": (sx[0::2], sy[0::2], keep[passage_of_window])}  # the store holds [CLS] then [SEP]
        for position, (bx, tx, rows) in picks.items():
            b, t = bx[rows].astype(np.float32), tx[rows].astype(np.float32)
            dense = np.square(t - b).sum() / np.square(b).sum()
            got = table[(table["measure"] == "relative_change") & (table["text_type"] == "all")
                        & (table["position"] == position)]
            assert got["n_tokens"].item() == rows.sum()
            np.testing.assert_allclose(got["value"].item(), dense, rtol=1e-4)
        # the window of each token row, from the windows table: the window share's between-window variance
        window = np.repeat(np.arange(len(windows)), windows["n_tokens"])[keep[doc_of_row]]
        b = x[keep[doc_of_row]].astype(np.float64)
        means = pd.DataFrame(b).groupby(window).transform("mean").to_numpy()
        dense = np.square(means - b.mean(0)).sum() / np.square(b - b.mean(0)).sum()
        got = table.query("measure == 'window_share_base' and text_type == 'all'")
        np.testing.assert_allclose(got["value"].item(), dense, rtol=1e-4)


def test_passages_of_one_source_document_move_together(planted, results):
    _, table = results[0]
    held = planted[0]
    sources = held.corpus.frame["doc_id"].str.split("#").str[0]
    in_lens = np.r_[held.groups["financial"], held.groups["general"]]
    n_docs = table.query("measure == 'relative_change' and text_type == 'all' and position == 'tokens'")
    assert n_docs["n_docs"].item() == sources.iloc[in_lens].nunique() < len(in_lens)


def test_without_a_cls_store_the_other_tokens_are_measured(planted):
    data, base_entry, twin_entry = _data(0, planted, LensConfig(n_boot=20), cls=False)
    inputs = lens_inputs(data, base_entry, twin_entry)
    res = ActivationLens().analyze(inputs, data, {}, lambda msg: None)
    row = res.row.columns()
    assert not inputs.cls_stored and set(res.tables[TABLE]["position"]) == {"tokens"}
    assert np.isnan(row["lens_cls_rel_change"]) and np.isfinite(row["lens_rel_change"])
    assert "[CLS] not stored" in ActivationLens().describe(row)


def test_the_figure_and_findings_cell(results):
    method = ActivationLens()
    table = pd.concat([t for _, t in results.values()], ignore_index=True)
    layers = pd.DataFrame([{"layer": k, **row} for k, (row, _) in results.items()])
    figs = method.figures({TABLE: table, "layers": layers}, AnalysisConfig(), "planted")
    assert list(figs) == ["activation_lens_by_layer"]
    cell = method.findings_cell(layers.iloc[PLANTED])
    assert cell.count("[") == 3 and method.findings_cell(pd.Series({"layer": 0})) is None


def test_the_lens_knobs_are_analysis_lens_overrides(project_root):
    from hydra import compose, initialize_config_dir

    from finsae.glue.schemas import register_schemas, validate

    register_schemas()
    with initialize_config_dir(str(project_root / "conf"), version_base="1.3"):
        raw = compose("analyze", ["paths.output_dir=.", "pair.base=tiny", "pair.domain=tiny",
                                  "analysis.lens.n_boot=50", "analysis.lens.fit_fraction=0.3",
                                  "analysis.lens.control_pair=ctl"])
    lens = validate(raw).analysis.lens
    assert isinstance(lens, LensConfig)
    assert (lens.n_boot, lens.fit_fraction, lens.control_pair) == (50, 0.3, "ctl")
    assert (lens.seed_pair, lens.ci) == (LensConfig.seed_pair, LensConfig.ci)


def test_a_document_budget_draws_whole_documents_per_text_type(planted):
    data, base_entry, twin_entry = _data(0, planted, LensConfig(n_boot=20, docs_per_type=6))
    inputs = lens_inputs(data, base_entry, twin_entry)
    index = inputs.index
    for fin in (True, False):
        assert len(np.unique(index.doc[index.financial == fin])) == 6
    # every row of a drawn document is kept, tokens and [CLS] alike, and the draw is seeded
    full = lens_inputs(*_data(0, planted, LensConfig(n_boot=20))).index
    drawn = np.isin(full.doc, index.doc)
    assert drawn.sum() == len(index.doc) and (full.is_cls[drawn] == index.is_cls).all()
    again = lens_inputs(*_data(0, planted, LensConfig(n_boot=20, docs_per_type=6))).index
    np.testing.assert_array_equal(again.doc, index.doc)
    held, doc_of_row = planted[0], planted[3]
    in_lens = np.zeros(len(held.corpus.frame), bool)
    in_lens[np.r_[held.groups["financial"], held.groups["general"]]] = True
    rows = np.flatnonzero(in_lens[doc_of_row])[np.flatnonzero(drawn[~full.is_cls])]
    expected = data.acts("base")[rows].astype(np.float32)
    np.testing.assert_array_equal(inputs.h_base[np.arange(len(rows))], expected)
