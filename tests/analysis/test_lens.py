"""The activation lens on planted truth (a twin that is an exact affine map of the base at every layer but
one, where a new direction fires on part of the financial documents) and against a dense computation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from finsae.analysis import lens as lens_mod
from finsae.analysis.affine import fit_affine
from finsae.analysis.lens import MEASURES, TABLE_COLUMNS, LensConfig, TokenIndex, activation_lens
from finsae.errors import ConfigError

D, N_LAYERS, PLANTED, WINDOW = 24, 4, 2, 16


def _corpus(n_docs: int, rng) -> TokenIndex:
    """Documents of 20-60 rows in windows of WINDOW rows, each opened by a [CLS] row; half financial."""
    lengths = rng.integers(20, 60, n_docs)
    doc_code = np.repeat(np.arange(n_docs), lengths)
    pos = np.concatenate([np.arange(k) for k in lengths])
    financial = (np.arange(n_docs) % 2 == 0)[doc_code]
    return TokenIndex(doc=doc_code * 7 + 3, window=pos // WINDOW, financial=financial,
                      is_cls=pos % WINDOW == 0)


def _base(index: TokenIndex, rng, d: int = D) -> np.ndarray:
    """Correlated Gaussian rows with a per-window offset (so windows explain part of the variance)."""
    n = len(index.doc)
    window_key = np.unique(np.stack([index.doc, index.window]), axis=1, return_inverse=True)[1].ravel()
    offsets = rng.normal(size=(window_key.max() + 1, d))
    z = rng.normal(size=(n, d)) + 0.7 * offsets[window_key]
    return (z @ rng.normal(size=(d, d)) / np.sqrt(d) + rng.normal(size=d) * 0.3).astype(np.float32)


def _orthogonal(rng, d: int = D) -> np.ndarray:
    return np.linalg.qr(rng.normal(size=(d, d)))[0]


def _planted_pair(n_docs: int, seed: int = 0, strength: float = 6.0):
    """(index, [(layer, base, twin)], direction): twin = 1.5 · base @ Q + c at every layer; at PLANTED a unit
    direction also fires (exponential amplitude) on half the rows of two thirds of the financial documents."""
    rng = np.random.default_rng(seed)
    index = _corpus(n_docs, rng)
    direction = rng.normal(size=D)
    direction /= np.linalg.norm(direction)
    layers = []
    for layer in range(N_LAYERS):
        x = _base(index, rng)
        y = 1.5 * x @ _orthogonal(rng) + rng.normal(size=D) * 0.1
        if layer == PLANTED:
            firing_doc = index.financial & (index.doc % 3 != 0)
            fires = firing_doc & (rng.random(len(x)) < 0.5)
            y = y + np.outer(fires * rng.exponential(strength, len(x)), direction)
        layers.append((layer, x, y.astype(np.float32)))
    return index, layers, direction


def _pick(table: pd.DataFrame, measure: str, text_type: str = "all", position: str = "tokens"):
    rows = table[(table.measure == measure) & (table.text_type == text_type) & (table.position == position)]
    return rows.set_index("layer")


@pytest.fixture(scope="module")
def planted():
    index, layers, direction = _planted_pair(n_docs=240)
    return activation_lens(layers, index, LensConfig(n_boot=200, chunk_rows=500)), direction


def test_lens_finds_the_planted_layer(planted):
    result, direction = planted
    table = result.table
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert set(table.measure) == set(MEASURES)
    r2 = _pick(table, "affine_r2")["value"]
    others = [layer for layer in range(N_LAYERS) if layer != PLANTED]
    assert (r2[others] > 0.9999).all()  # the affine part is absorbed
    assert r2[PLANTED] < 0.95 and r2.idxmin() == PLANTED
    fin_r2 = _pick(table, "affine_r2", "financial")["value"]
    gen_r2 = _pick(table, "affine_r2", "general")["value"]
    assert fin_r2[PLANTED] < 0.9 < gen_r2[PLANTED]  # the residual lives on financial text
    proj = _pick(table, "mean_diff_projection", "difference")
    assert proj.loc[PLANTED, "lo"] > 0  # larger on financial than on general text, beyond the interval
    assert proj.loc[PLANTED, "value"] > 2 * proj.loc[others, "value"].abs().max()
    cosines = [abs(lens.mean_diff_direction["tokens"] @ direction) for lens in result.layers]
    assert cosines[PLANTED] > 0.5 and cosines[PLANTED] > max(np.delete(cosines, PLANTED)) + 0.2
    cka = _pick(table, "cka")["value"]
    assert np.allclose(cka[others], 1.0, atol=1e-5) and cka[PLANTED] < 0.99


def test_cka_and_spectra_are_blind_to_an_orthogonal_map_and_scaling(planted):
    table = planted[0].table
    layer = 0
    for text_type in ("financial", "general", "all"):
        for position in ("tokens", "cls"):
            assert _pick(table, "cka", text_type, position).loc[layer, "value"] == pytest.approx(1, abs=1e-5)
            for measure in ("participation_ratio", "top3_share"):
                base = _pick(table, f"{measure}_base", text_type, position).loc[layer, "value"]
                twin = _pick(table, f"{measure}_twin", text_type, position).loc[layer, "value"]
                assert twin == pytest.approx(base, rel=1e-4)
        base = _pick(table, "window_share_base", text_type).loc[layer, "value"]
        twin = _pick(table, "window_share_twin", text_type).loc[layer, "value"]
        assert twin == pytest.approx(base, rel=1e-4)
        assert 0.1 < base < 0.9
    # relative change of y = 1.5 x Q + c is about |1.5 Q - I|^2 ≈ 1 + 1.5^2 = 3.25 on average directions
    assert 2 < _pick(table, "relative_change").loc[layer, "value"] < 5
    assert not (table.position.eq("cls") & table.measure.str.startswith("window_share")).any()


def test_every_interval_holds_its_point_estimate(planted):
    table = planted[0].table
    assert (table.lo <= table.value + 1e-9).all() and (table.value <= table.hi + 1e-9).all()
    assert set(table.text_type) == {"financial", "general", "all", "difference"}
    assert set(table.bootstrap) == {"exact", "linearised"}


def test_intervals_shrink_with_more_documents():
    widths = []
    for n_docs in (80, 640):
        index, layers, _ = _planted_pair(n_docs, seed=1)
        table = activation_lens(layers[PLANTED:PLANTED + 1], index, LensConfig(n_boot=200)).table
        tokens = table[table.position == "tokens"]  # [CLS]: 80 documents give the affine fit too few rows
        widths.append((tokens.hi - tokens.lo).to_numpy())
    small, large = widths
    live = small > 1e-6  # CKA of general text is 1 at every size (an exact affine image there)
    assert live.sum() >= 40
    ratio = large[live] / small[live]
    assert (ratio < 0.8).all() and np.median(ratio) < 0.5  # 1/√8 ≈ 0.35 in expectation


def _dense_reference(x: np.ndarray, y: np.ndarray, windows: np.ndarray, fit: tuple, score: np.ndarray):
    """Every measure of one position and text type straight from its rows, in float64; ``fit`` holds the
    least-squares coefficients ([x, 1] -> y) and the unit mean difference fitted on every fit row."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    xc, yc = x - x.mean(0), y - y.mean(0)
    out = {"relative_change": ((y - x) ** 2).sum() / (x ** 2).sum(),
           "cka": np.sum((xc.T @ yc) ** 2) / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))}
    for model, h, hc in (("base", x, xc), ("twin", y, yc)):
        ev = np.linalg.eigvalsh(hc.T @ hc / len(h))
        out[f"participation_ratio_{model}"] = ev.sum() ** 2 / (ev ** 2).sum()
        out[f"top3_share_{model}"] = ev[-3:].sum() / ev.sum()
        window_means = pd.DataFrame(h).groupby(windows).transform("mean").to_numpy()
        out[f"window_share_{model}"] = ((window_means - h.mean(0)) ** 2).sum() / (hc ** 2).sum()
    coef, u = fit
    y_score = y[score]
    residual = y_score - np.column_stack([x[score], np.ones(score.sum())]) @ coef
    out["affine_r2"] = 1 - (residual ** 2).sum() / ((y_score - y_score.mean(0)) ** 2).sum()
    out["mean_diff_projection"] = ((y - x)[score] @ u).mean()
    out["mean_diff_projection_rel"] = out["mean_diff_projection"] / np.sqrt((x[score] ** 2).sum(1).mean())
    return out


def test_streamed_statistics_equal_a_dense_computation():
    rng = np.random.default_rng(5)
    index = _corpus(60, rng)
    x = _base(index, rng)
    y = (np.tanh(x @ _orthogonal(rng)) * 2 + x ** 2 * 0.1).astype(np.float32)  # not affine
    # a prime chunk size splits documents and windows across chunks; ridge 0 is the plain least-squares fit
    result = activation_lens([(7, x, y)], index, LensConfig(n_boot=20, chunk_rows=97, ridge=0.0))
    assert sorted(set(result.table.layer)) == [7]
    score = ~np.isin(index.doc, result.fit_docs)
    tokens = ~index.is_cls
    fit_rows = tokens & ~score
    coef = np.linalg.lstsq(np.column_stack([x[fit_rows], np.ones(fit_rows.sum())]).astype(np.float64),
                           y[fit_rows].astype(np.float64), rcond=None)[0]
    u = (y - x)[fit_rows].astype(np.float64).mean(0)
    windows = index.doc * 1000 + index.window
    for text_type, rows in (("all", tokens), ("financial", tokens & index.financial),
                            ("general", tokens & ~index.financial)):
        fitted = (coef, u / np.linalg.norm(u))
        expected = _dense_reference(x[rows], y[rows], windows[rows], fitted, score[rows])
        for measure, value in expected.items():
            got = _pick(result.table, measure, text_type).loc[7, "value"]
            assert got == pytest.approx(value, rel=2e-4, abs=1e-6), (measure, text_type)
    assert _pick(result.table, "cka", "all", "cls").loc[7, "n_docs"] == 60
    assert _pick(result.table, "affine_r2", "all").loc[7, "n_docs"] == len(np.unique(index.doc[score]))
    assert _pick(result.table, "affine_r2", "all").loc[7, "n_tokens"] == (score & tokens).sum()


def _weighted_cka(x, y, w):
    mx, my = (w @ x) / w.sum(), (w @ y) / w.sum()
    xc, yc = x - mx, y - my
    cxy, cxx, cyy = (xc * w[:, None]).T @ yc, (xc * w[:, None]).T @ xc, (yc * w[:, None]).T @ yc
    return np.sum(cxy ** 2) / (np.linalg.norm(cxx) * np.linalg.norm(cyy))


def test_linearised_interval_matches_an_exact_document_bootstrap():
    index, layers, _ = _planted_pair(n_docs=200, seed=3)
    _, x, y = layers[PLANTED]
    table = activation_lens([layers[PLANTED]], index, LensConfig(n_boot=400, seed=4)).table
    lens_row = _pick(table, "cka").loc[PLANTED]
    rows = ~index.is_cls
    x64, y64, doc = x[rows].astype(np.float64), y[rows].astype(np.float64), index.doc[rows]
    docs, code = np.unique(doc, return_inverse=True)
    fin_docs = np.unique(doc[index.financial[rows]])
    rng = np.random.default_rng(9)
    reps = []
    for _ in range(400):  # stratified by text type, like the lens (fit/score strata do not matter for CKA)
        counts = np.zeros(len(docs))
        for stratum in (np.isin(docs, fin_docs), ~np.isin(docs, fin_docs)):
            members = np.flatnonzero(stratum)
            np.add.at(counts, rng.choice(members, len(members)), 1)
        reps.append(_weighted_cka(x64, y64, counts[code]))
    lo, hi = np.quantile(reps, [0.025, 0.975])
    assert lens_row["value"] == pytest.approx(_weighted_cka(x64, y64, np.ones(len(x64))), rel=1e-5)
    assert (lens_row["hi"] - lens_row["lo"]) == pytest.approx(hi - lo, rel=0.15)


def _weighted_spectrum(h, w):
    hc = h - (w @ h) / w.sum()
    ev = np.linalg.eigvalsh((hc * w[:, None]).T @ hc / w.sum())
    return ev.sum() ** 2 / (ev ** 2).sum(), ev[-3:].sum() / ev.sum()


def _weighted_window_share(h, w, windows):
    window_means = pd.DataFrame(h).groupby(windows).transform("mean").to_numpy()  # w is constant in a window
    mean = (w @ h) / w.sum()
    return (w @ ((window_means - mean) ** 2).sum(1)) / (w @ ((h - mean) ** 2).sum(1))


def test_document_reweighting_equals_recomputation(monkeypatch):
    """A draw is a vector of document weights: exact measures must equal the measure recomputed on weighted
    rows, linearised ones must move by the derivative (central finite difference of the weighted measure)."""
    index, layers, _ = _planted_pair(n_docs=40, seed=12)
    _, x, y = layers[PLANTED]
    cfg = LensConfig(n_boot=2)
    layout = lens_mod._layout(index, cfg, None)
    eps, bumped = 1e-4, [0, 7, 22]  # documents 0 and 22 are financial, 7 is general
    weights = np.ones((2 + 2 * len(bumped), len(layout.doc_ids)))
    weights[1, [3, 4, 9]], weights[1, [5, 30]] = 0, 3  # one integer draw for the exact measures
    for j, doc in enumerate(bumped):
        weights[2 + 2 * j, doc], weights[3 + 2 * j, doc] = 1 + eps, 1 - eps
    # a shift far from the mean: every statistic must centre itself (real shifts come from a row sample)
    far_shift = lambda h, rows: np.asarray(h[rows], np.float64).mean(0) + 3.0  # noqa: E731
    monkeypatch.setattr(lens_mod, "sample_mean", far_shift)
    by_type = lens_mod._position_lens(x, y, replace(layout, weights=weights), "tokens", cfg)[0]
    values = by_type["all"]
    rows = ~index.is_cls
    x64, y64, code = x[rows].astype(np.float64), y[rows].astype(np.float64), layout.doc_code[rows]
    windows = (index.doc * 1000 + index.window)[rows]
    drawn = weights[1][code]
    relative_change = drawn @ ((y64 - x64) ** 2).sum(1) / (drawn @ (x64 ** 2).sum(1))
    assert values["relative_change"][1] == pytest.approx(relative_change, rel=1e-5)
    window_share = _weighted_window_share(y64, drawn, windows)
    assert values["window_share_twin"][1] == pytest.approx(window_share, rel=1e-4)
    measures = {"cka": lambda w: _weighted_cka(x64, y64, w),
                "participation_ratio_twin": lambda w: _weighted_spectrum(y64, w)[0],
                "top3_share_base": lambda w: _weighted_spectrum(x64, w)[1]}
    fin = index.financial[rows]
    for text_type, keep in (("all", np.ones_like(fin)), ("financial", fin)):
        for name, measure in measures.items():
            for j in range(len(bumped)):
                up, down = weights[2 + 2 * j][code] * keep, weights[3 + 2 * j][code] * keep
                expected = (measure(up) - measure(down)) / (2 * eps)
                reps = by_type[text_type][name]
                got = (reps[2 + 2 * j] - reps[3 + 2 * j]) / (2 * eps)
                assert got == pytest.approx(expected, rel=2e-3, abs=1e-6), (text_type, name, bumped[j])


def test_cls_rows_are_measured_apart():
    rng = np.random.default_rng(2)
    index = _corpus(200, rng)
    x = _base(index, rng)
    y = x @ _orthogonal(rng)
    cls_fin = index.is_cls & index.financial
    y[cls_fin] += np.outer(rng.exponential(3.0, cls_fin.sum()), np.eye(D)[0])
    table = activation_lens([(0, x, y)], index, LensConfig(n_boot=50)).table
    assert _pick(table, "affine_r2", "all", "tokens").loc[0, "value"] > 0.9999
    assert _pick(table, "affine_r2", "financial", "cls").loc[0, "value"] < 0.9
    assert _pick(table, "mean_diff_projection", "difference", "cls").loc[0, "lo"] > 0


def test_seeded_and_memory_mapped(tmp_path):
    index, layers, _ = _planted_pair(n_docs=60, seed=6)
    layer, x, y = layers[PLANTED]
    np.save(tmp_path / "x.npy", x.astype(np.float16))
    np.save(tmp_path / "y.npy", y.astype(np.float16))
    mapped = [(layer, np.load(tmp_path / "x.npy", mmap_mode="r"), np.load(tmp_path / "y.npy", mmap_mode="r"))]
    cfg = LensConfig(n_boot=30, seed=11, chunk_rows=256)
    first, again = activation_lens(mapped, index, cfg).table, activation_lens(mapped, index, cfg).table
    pd.testing.assert_frame_equal(first, again)
    other = activation_lens(mapped, index, LensConfig(n_boot=30, seed=12, chunk_rows=256)).table
    assert not np.allclose(first.lo, other.lo)
    in_memory = activation_lens([(layer, x.astype(np.float16), y.astype(np.float16))], index, cfg).table
    pd.testing.assert_frame_equal(first, in_memory, rtol=1e-5)


def test_bad_inputs_are_one_clear_error():
    index, layers, _ = _planted_pair(n_docs=20, seed=7)
    layer, x, y = layers[0]
    with pytest.raises(ConfigError, match="n_boot"):
        LensConfig(n_boot=1)
    with pytest.raises(ConfigError, match="fit_fraction"):
        LensConfig(fit_fraction=1.0)
    mixed = TokenIndex(index.doc, index.window, index.financial ^ (np.arange(len(x)) == 1), index.is_cls)
    with pytest.raises(ConfigError, match="within a document"):
        activation_lens([(layer, x, y)], mixed)
    short = TokenIndex(index.doc[:-1], index.window, index.financial, index.is_cls)
    with pytest.raises(ConfigError, match="one length"):
        activation_lens([(layer, x, y)], short)
    with pytest.raises(ConfigError, match="layer 0: h_twin"):
        activation_lens([(layer, x, y[:, :-1])], index)
    bad = y.copy()
    bad[5, 3] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        activation_lens([(layer, x, bad)], index)
    with pytest.raises(ConfigError, match="fit and >= 2 score"):
        activation_lens([(layer, x, y)], index, fit_docs=np.unique(index.doc))
    one_cls = TokenIndex(index.doc, index.window, index.financial, index.is_cls & (index.doc == index.doc[0]))
    with pytest.raises(ConfigError, match="cls rows hold"):  # [CLS] rows of a single document
        activation_lens([(layer, x, y)], one_cls)


def test_affine_fit_recovers_an_exact_map_and_applies_in_chunks(tmp_path):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(3000, D)).astype(np.float32) + 2.0
    weight, bias = rng.normal(size=(D, D)), rng.normal(size=D)
    y = (x @ weight + bias).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    fit = fit_affine(mapped, y, rows=np.arange(0, 3000, 2), ridge=0.0, chunk_rows=333)
    assert fit.n_fit == 1500 and fit.ridge == 0.0
    np.testing.assert_allclose(fit.weight, weight, atol=1e-3)
    np.testing.assert_allclose(fit.bias, bias, atol=1e-3)
    np.testing.assert_allclose(fit.apply(mapped, chunk_rows=77), y, atol=1e-3 * np.abs(y).max())
    ridged = fit_affine(x, y, ridge=1.0)
    assert ridged.ridge > 0 and np.linalg.norm(ridged.weight) < np.linalg.norm(fit.weight)
    with pytest.raises(ConfigError, match=r"\[n, 24\]"):
        fit.apply(x[:, :5])
    with pytest.raises(ConfigError, match="row-aligned"):
        fit_affine(x, y[:10])
