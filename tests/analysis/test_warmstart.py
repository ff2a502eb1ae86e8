"""Warm-started SAEs: continuing on the same inputs drifts like the control; moved directions are found."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from planted import WARM_CFG, WARM_START_CFG, concept_tokens

from finsae.analysis.artifacts import read_table, write_analysis_table
from finsae.analysis.config import AnalysisConfig, WarmstartConfig
from finsae.analysis.warmstart import (
    WARMSTART_COLUMNS,
    WarmRuns,
    analyze_layer,
    changed_count,
    decoder_drift,
    layer_summary,
    warmstart_table,
)
from finsae.analysis.warmstart_activity import ActivityRuns, heldout_activity
from finsae.analysis.heldout import HeldoutSet
from finsae.data.corpus import Corpus
from finsae.errors import ConfigError, DataMissingError
from finsae.sae import SaeConfig, TopKSAE, fit, warm_start

D, N_CONCEPTS, MOVED = 32, 40, 8
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


def concepts(moved: bool) -> torch.Tensor:
    dirs = torch.nn.functional.normalize(torch.randn(N_CONCEPTS, D, generator=torch.Generator().manual_seed(5)), dim=1)
    if moved:  # fine-tuning turns the first MOVED concepts by 45 degrees
        new = torch.randn(MOVED, D, generator=torch.Generator().manual_seed(6))
        new -= (new * dirs[:MOVED]).sum(1, keepdim=True) * dirs[:MOVED]
        dirs[:MOVED] = torch.nn.functional.normalize(dirs[:MOVED] + torch.nn.functional.normalize(new, dim=1), dim=1)
    return dirs


def tokens(dirs: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    return concept_tokens(dirs, n, torch.Generator().manual_seed(seed))


def activity(start: TopKSAE, domain: TopKSAE, control: TopKSAE):
    """What the runs do on a fresh sample of the base's tokens (every run read on the same rows)."""
    x = tokens(concepts(False), 4096, seed=9).numpy()
    return heldout_activity(ActivityRuns(start, domain, control), x, x, np.arange(len(x)))[0]


def table(runs, domain: str, **kw):
    return warmstart_table(1, WarmRuns(runs["start"], runs[domain], runs["control"]),
                           activity(runs["start"], runs[domain], runs["control"]), **kw)


def continued(start: TopKSAE, x: torch.Tensor) -> TopKSAE:
    sae = TopKSAE(WARM_CFG.sae_config(D, seed=7))
    warm_start(sae, start)
    fit(sae, x.split(WARM_CFG.batch_size), WARM_CFG)
    return sae


@pytest.fixture(scope="module")
def runs():
    torch.set_num_threads(1)
    start = TopKSAE(WARM_CFG.sae_config(D, seed=0))
    x = tokens(concepts(False), WARM_START_CFG.tokens, seed=0)
    fit(start, x.split(WARM_START_CFG.batch_size), WARM_START_CFG)
    n = WARM_CFG.tokens
    return {
        "start": start,
        "control": continued(start, tokens(concepts(False), n, seed=1)),
        "same": continued(start, tokens(concepts(False), n, seed=2)),  # a "fine-tune" that changed nothing
        "moved": continued(start, tokens(concepts(True), n, seed=2)),
    }


def test_identical_inputs_drift_at_the_control_level(runs):
    t = table(runs, "same")
    s = layer_summary(t).columns()
    m = int(t["live"].sum())
    assert m >= 40  # every planted concept's latent at least
    assert s["n_changed_control"] <= max(1, 0.02 * m)  # ~1% above the control's own 99th percentile, by construction
    assert s["n_changed"] <= max(2, 0.03 * m), s
    assert s["n_changed_lo"] <= s["n_changed"] <= s["n_changed_hi"]


def test_moved_directions_are_changed_latents(runs):
    start = runs["start"]
    t = table(runs, "moved")
    s = layer_summary(t).columns()
    same = layer_summary(table(runs, "same")).columns()
    # the latents that encoded a moved concept at the start
    dirs = concepts(False)[:MOVED]
    owners = (torch.nn.functional.normalize(start.W_dec.detach(), dim=1) @ dirs.t()).argmax(0).numpy()
    assert t["changed"].to_numpy()[owners].all(), t.iloc[owners]
    assert s["n_changed"] >= MOVED and s["n_changed_lo"] > same["n_changed"], (s, same)


def test_warm_start_copies_the_sae_and_checks_its_shape():
    a = TopKSAE(SaeConfig(d_in=8, num_latents=16, k=2, seed=0))
    with torch.no_grad():
        a.norm_scale.fill_(0.25), a.b_dec.fill_(0.5)
    b = warm_start(TopKSAE(SaeConfig(d_in=8, num_latents=16, k=2, seed=1)), a)
    for name in ("W_enc", "b_enc", "W_dec", "b_dec", "norm_scale"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert b.initialized and decoder_drift(a, b) == pytest.approx(np.zeros(16), abs=1e-12)
    with pytest.raises(ConfigError, match="sae.init_from: the SAE to start from has num_latents=16"):
        warm_start(TopKSAE(SaeConfig(d_in=8, num_latents=32, k=2)), a)


def test_table_round_trip_and_bad_inputs(tmp_path, runs):
    t = table(runs, "same", auroc_domain=np.full(64, 0.7),
                        auroc_control=np.full(64, 0.6), financial=np.arange(64) < 3)
    np.testing.assert_allclose(t["selectivity_change"], 0.1, atol=1e-12)
    write_analysis_table(tmp_path, "warmstart", t)
    pd.testing.assert_frame_equal(read_table(tmp_path, "warmstart"), t)
    assert list(read_table(tmp_path, "warmstart").columns) == list(WARMSTART_COLUMNS)
    with pytest.raises(DataMissingError, match="warm-start table not found"):
        read_table(tmp_path / "nowhere", "warmstart")
    with pytest.raises(ValueError, match="same latents"):
        changed_count(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="keeps its shape"):
        decoder_drift(np.ones((3, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="live, born, silent and beyond_null must have one entry per latent"):
        changed_count(np.zeros(3), np.zeros(3), live=np.ones(2, bool))
    with pytest.raises(ValueError, match="one entry per latent"):
        warmstart_table(2, WarmRuns(runs["start"], runs["same"], runs["control"]), financial=np.zeros(5, bool))
    other = copy.deepcopy(runs["start"])
    assert layer_summary(warmstart_table(2, WarmRuns(runs["start"], other, runs["control"]))).changed.n_changed == 0


def test_analyze_layer_on_held_out_documents_finds_the_moved_financial_latent(runs):
    """40 documents of 8 tokens, row-aligned in two models: concept 0 (moved by the "fine-tune") only in the 20
    financial ones (10 of them AG Business), every other concept at random everywhere."""
    n_docs, per = 40, 8
    g = torch.Generator().manual_seed(11)
    amp = (torch.rand(n_docs * per, N_CONCEPTS, generator=g) < 0.06) * (1 + torch.rand(n_docs * per, N_CONCEPTS,
                                                                                         generator=g))
    doc_of_row = np.repeat(np.arange(n_docs), per)
    amp[:, 0] = torch.from_numpy((doc_of_row < 20) * 1.5).float()
    noise = 0.02 * torch.randn(n_docs * per, D, generator=g)
    base_rows, domain_rows = (amp @ concepts(moved) + noise for moved in (False, True))
    frame = pd.DataFrame({"doc_id": [f"d{i}" for i in range(n_docs)], "text": ["a b c d e f g h"] * n_docs,
                          "source": "test"})
    held = HeldoutSet(Corpus(name="toy", frame=frame), {
        "financial": np.arange(20), "general": np.arange(20, 40), "ag_business": np.arange(10),
        "ag_other": np.arange(20, 30)})
    moved = WarmRuns(runs["start"], runs["moved"], runs["control"])
    out = analyze_layer(3, moved, base_rows.numpy(), domain_rows.numpy(), held, doc_of_row, AnalysisConfig())
    t, s = out.table, out.row.columns()
    assert tuple(t.columns) == WARMSTART_COLUMNS and len(t) == 64 and t["layer"].eq(3).all()
    owner = int((torch.nn.functional.normalize(runs["start"].W_dec.detach(), dim=1) @ concepts(False)[0]).argmax())
    assert t.loc[owner, "live"] and t.loc[owner, "changed"] and t.loc[owner, "financial"], t.loc[owner]
    assert s["n_changed_financial"] >= 1 and s["n_changed"] >= s["n_changed_financial"]
    # a latent never seen on these tokens is not live and cannot be changed
    assert not (t["changed"] & ~t["live"]).any() and s["n_live_warmstart"] == int(t["live"].sum())
    assert np.isfinite(t.loc[t["live"], "selectivity_change"]).all()
    # the moved concept's latent: its encoder turned too, it fires on as many rows, its activation on the twin's
    # rows tracks the start latent's on the base's less closely than the control's does
    assert t.loc[owner, "encoder_drift_domain"] > t.loc[owner, "encoder_drift_control"]
    assert t.loc[owner, "firing_domain"] == pytest.approx(t.loc[owner, "firing_start"], abs=0.05)
    assert t.loc[owner, "act_corr_control"] > 0.9 and t.loc[owner, "act_corr_domain"] > 0.5
    live = t["live"].to_numpy()
    assert np.nanmedian(t.loc[live, "act_corr_control"]) > 0.9
    # without the affine null and control B: measured against control A alone, their columns NaN
    assert t["changed"].equals(t["changed_vs_control"]) and t["drift_affine"].isna().all()
    assert not s["affine_null"] and np.isnan(s["fp_rate_control_b"]) and np.isnan(s["n_died_control_b"])
    # analysis.warmstart reaches the layer's analysis
    loose = analyze_layer(3, moved, base_rows.numpy(), domain_rows.numpy(), held, doc_of_row,
                          AnalysisConfig(warmstart=WarmstartConfig(quantile=0.5, n_boot=20)))
    assert loose.row.changed.drift_threshold < s["drift_threshold"] and loose.row.changed.n_changed > s["n_changed"]
    with pytest.raises(ValueError, match="keeps its shape"):
        small = TopKSAE(SaeConfig(d_in=D, num_latents=32, k=3, seed=0))
        analyze_layer(3, WarmRuns(runs["start"], small, runs["control"]), base_rows.numpy(), domain_rows.numpy(),
                      held, doc_of_row, AnalysisConfig())


def test_the_warm_start_knobs_come_from_its_config(runs):
    """``analysis.warmstart.n_boot`` and ``.quantile`` reach the count (they were module constants)."""
    from finsae.analysis.warmstart import layer_summary as summary

    t = table(runs, "moved")
    default = summary(t, WarmstartConfig.quantile, WarmstartConfig.n_boot).changed
    assert summary(t).changed == default
    looser = summary(t, 0.5, 20).changed
    assert looser.drift_threshold < default.drift_threshold and looser.n_changed > default.n_changed
    n_live = int(t["live"].sum())
    rng = np.random.default_rng(1)
    drifts = rng.random(n_live)
    few = changed_count(drifts, drifts[::-1], n_boot=10, seed=0)
    many = changed_count(drifts, drifts[::-1], n_boot=2000, seed=0)
    assert (few.n_changed, few.drift_threshold) == (many.n_changed, many.drift_threshold)
    assert (few.n_changed_lo, few.n_changed_hi) != (many.n_changed_lo, many.n_changed_hi)
