"""The warm start's nulls with planted truth: a synthetic twin that is an affine map of the base (a rotation
of every direction by up to 1.2 rad, a rescaling and a shift) plus, in one twin, one planted new feature.

The affine-map null absorbs the global part (no latent flagged for it, although nearly every latent drifts
more than continued training moves it), the planted feature's latents are flagged, control B's
false-positive rate is out of sample and near the nominal level, and a latent that dies in the domain run
is counted, not dropped."""

import copy
import dataclasses

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import torch
from planted import WARM_CFG, WARM_START_CFG, concept_tokens

from finsae.analysis.affine import fit_affine
from finsae.analysis.config import WarmstartConfig
from finsae.analysis.methods.warmstart import warm_runs
from finsae.analysis.saes import PairSaes
from finsae.analysis.warmstart import WARMSTART_COLUMNS, WarmRuns, layer_summary, warmstart_table
from finsae.analysis.warmstart_activity import ActivityRuns, heldout_activity
from finsae.errors import ConfigError
from finsae.paths import sae_dir
from finsae.sae import TopKSAE, fit, warm_start
from finsae.sae.io import save
from finsae.sae.warm_start import refit_input_stats, row_moments

D, N_CONCEPTS, HELD = 32, 40, 4096
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


def unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=-1)


CONCEPTS = unit(torch.randn(N_CONCEPTS, D, generator=torch.Generator().manual_seed(5)))
PLANTED = unit(torch.randn(D, generator=torch.Generator().manual_seed(8)))


def affine_part() -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, c)``: a rotation of up to 1.2 rad in every plane, columns rescaled by 0.7-1.4, a shift."""
    rng = np.random.default_rng(0)
    skew = rng.normal(size=(D, D))
    skew = (skew - skew.T) / 2
    rotation = scipy.linalg.expm(1.2 * skew / np.linalg.norm(skew, 2))
    a = rotation * rng.uniform(0.7, 1.4, D)
    return torch.tensor(a, dtype=torch.float32), torch.tensor(rng.normal(size=D) * 0.5, dtype=torch.float32)


def base_tokens(n: int, seed: int) -> tuple[torch.Tensor, torch.Generator]:
    g = torch.Generator().manual_seed(seed)
    return concept_tokens(CONCEPTS, n, g), g


def twin_tokens(x: torch.Tensor, g: torch.Generator, planted: bool) -> torch.Tensor:
    """The twin's rows of the base's rows ``x``: ``A x + c``, plus the planted feature on 6% of them."""
    a, c = affine_part()
    y = x @ a + c
    if planted:
        amp = (torch.rand(len(x), generator=g) < 0.06) * (1 + torch.rand(len(x), generator=g))
        y = y + amp[:, None] * PLANTED
    return y


def continued(start: TopKSAE, source: torch.Tensor, target: torch.Tensor) -> TopKSAE:
    """``start`` continued on ``target`` (the rows it was trained on: ``source``), norm_scale and b_dec
    refitted first, as ``python train.py sae.init_from=...`` does."""
    sae = warm_start(TopKSAE(WARM_CFG.sae_config(D, seed=7)), start)
    first = np.arange(WARM_CFG.init_sample)
    refit_input_stats(sae, row_moments(target.numpy(), first), row_moments(source.numpy(), first).mean)
    fit(sae, target.split(WARM_CFG.batch_size), WARM_CFG)
    return sae


@pytest.fixture(scope="module")
def trained():
    """The start SAE, controls A (the domain runs' tokens) and B (other tokens), and per twin its domain run
    and its affine null (the map fitted on other documents than both the runs' and the held-out ones)."""
    torch.set_num_threads(1)
    start = TopKSAE(WARM_CFG.sae_config(D, seed=0))
    fit(start, base_tokens(WARM_START_CFG.tokens, 0)[0].split(WARM_START_CFG.batch_size), WARM_START_CFG)
    x, _ = base_tokens(WARM_CFG.tokens, 2)
    x_b, _ = base_tokens(WARM_CFG.tokens, 3)
    out = {"start": start, "control": continued(start, x, x), "control_b": continued(start, x_b, x_b)}
    for planted in (False, True):
        x, g = base_tokens(WARM_CFG.tokens, 2)
        y = twin_tokens(x, g, planted)
        x_fit, g_fit = base_tokens(20_000, 4)
        mapped = torch.from_numpy(fit_affine(x_fit.numpy(), twin_tokens(x_fit, g_fit, planted).numpy()).apply(
            x.numpy())).float()
        out[planted] = (continued(start, x, y), continued(start, x, mapped))
    return out


def layer(trained, planted: bool, q: float = WarmstartConfig.quantile, domain: TopKSAE | None = None):
    """The warm start's table and layer fields of one twin on held-out tokens."""
    dom, null = trained[planted]
    runs = WarmRuns(trained["start"], domain or dom, trained["control"], null, trained["control_b"])
    x, g = base_tokens(HELD, 9)
    y = twin_tokens(x, g, planted)
    act, _ = heldout_activity(ActivityRuns(runs.start, runs.domain, runs.control, runs.control_b), x.numpy(),
                              y.numpy(), np.arange(HELD))
    table = warmstart_table(1, runs, act, q=q)
    return table, layer_summary(table, q).columns()


def test_the_affine_null_absorbs_a_global_change(trained):
    t, s = layer(trained, planted=False)
    live = int(t["live"].sum())
    assert live >= 35 and s["affine_null"]
    # the global change moves nearly every latent beyond the control's 99th percentile ...
    assert s["n_changed_vs_control"] >= 0.8 * live and s["n_moved_affine"] >= 0.8 * live, s
    assert s["drift_ratio"] > 10
    # ... and the affine null moves them alike: none is changed by fine-tuning
    assert s["n_changed"] == int(t["changed"].sum()) <= 1, t.loc[t["changed"]]
    assert s["drift_ratio_beyond_affine"] < 0.2


def test_the_planted_feature_is_changed_beyond_the_affine_null(trained):
    t, s = layer(trained, planted=True)
    fires = (t["live"] | t["born"]).to_numpy()
    cos = (unit(trained[True][0].W_dec.detach()) @ PLANTED).numpy()
    planted = fires & (cos > 0.9)
    assert planted.sum() >= 1
    assert t.loc[planted, "changed"].all(), t.loc[planted]
    # the global change is absorbed: every other flagged latent carries part of the planted feature (at most
    # one exception), where control A alone flags nearly all
    others = t["changed"].to_numpy() & (cos <= 0.5)
    assert others.sum() <= 1, t.loc[others]
    assert s["n_changed_vs_control"] >= 0.8 * t["live"].sum()
    assert s["n_changed"] == int(t["changed"].sum())
    assert s["n_changed_lo"] <= s["n_changed"] <= s["n_changed_hi"]
    assert s["n_changed"] > layer(trained, planted=False)[1]["n_changed"]
    # the planted latents no longer do what the start's latent did: little activation correlation where they
    # fired before
    corr = t.loc[planted & t["live"].to_numpy(), "act_corr_domain"]
    assert (corr.isna() | (corr < 0.5)).all(), corr


def test_control_b_false_positives_are_near_the_nominal_level(trained):
    """Control B, read as a domain run with control A as its null: at a loose quantile the rate is measurable
    on ~50 latents and its interval holds the nominal rate."""
    _, s = layer(trained, planted=True, q=0.9)
    assert s["n_tested_control_b"] >= 35 and s["fp_nominal"] == pytest.approx(0.1)
    assert s["fp_rate_control_b_lo"] <= 0.1 <= s["fp_rate_control_b_hi"], s
    assert s["fp_rate_control_b"] == pytest.approx(s["n_changed_control_b"] / s["n_tested_control_b"])


def drift_table(drift_a: np.ndarray, drift_b: np.ndarray) -> pd.DataFrame:
    """A warm-start table of given control drifts (every latent live in all runs, no affine null)."""
    m = len(drift_a)
    t = pd.DataFrame({c: np.full(m, np.nan) for c in WARMSTART_COLUMNS})
    flags = {"live": True, "live_control_b": True, "changed": False, "changed_vs_control": False,
             "financial": False, "died": False, "born": False, "silent": False, "died_control_b": False,
             "born_control_b": False}
    return t.assign(layer=1, latent=np.arange(m), drift_domain=drift_a, drift_control=drift_a,
                    drift_control_b=drift_b, **flags)


def test_the_false_positive_rate_is_out_of_sample():
    """Per-latent drift scales (some latents drift more in any run), two independent control runs: control B
    above control A's 99th percentile is ~1%; when control B drifts more than control A (here: twice) the rate
    says so, where control A against its own quantile stays at 1% by construction."""
    rng = np.random.default_rng(0)
    scale = rng.lognormal(0, 0.5, 20_000)
    a, b = scale * rng.gamma(2, size=len(scale)), scale * rng.gamma(2, size=len(scale))
    s = layer_summary(drift_table(a, b), n_boot=20).columns()
    assert s["fp_rate_control_b_lo"] <= 0.01 <= s["fp_rate_control_b_hi"] < 0.015
    wider = layer_summary(drift_table(a, 2 * b), n_boot=20).columns()
    assert wider["fp_rate_control_b_lo"] > 0.05
    assert wider["n_changed_control"] == s["n_changed_control"] == 200


def test_a_latent_that_dies_in_the_domain_run_is_counted_not_dropped(trained):
    t, s = layer(trained, planted=False)
    victim = int(t.index[t["live"]][0])
    dead = copy.deepcopy(trained[False][0])
    with torch.no_grad():
        dead.b_enc[victim] = -1e3  # fires on no row
    t2, s2 = layer(trained, planted=False, domain=dead)
    assert t2.loc[victim, "died"] and not t2.loc[victim, "live"] and not t2.loc[victim, "changed"]
    assert t2.loc[victim, "firing_domain"] == 0 and t2.loc[victim, "firing_start"] > 0
    assert s2["n_died"] == s["n_died"] + 1 and s2["n_live_warmstart"] == s["n_live_warmstart"] - 1
    assert np.isfinite(s2["n_died_control_b"])


def test_the_analysis_finds_the_null_and_control_b_by_their_tags(tmp_path, trained):
    """warm_runs: the domain run and control A are required, the affine null and control B optional, each only
    when continued from the base SAE, found under analysis.warmstart's suffixes."""
    saes = PairSaes(tmp_path, "base", "twin", "demo", ("demo_seed1",))
    start = save(trained["start"], sae_dir(tmp_path, "base", 1, "demo"))

    def put(model: str, tag: str, init_from, seed: int = 1) -> None:
        sae = copy.deepcopy(trained["control"])
        sae.cfg = dataclasses.replace(sae.cfg, seed=seed)
        save(sae, sae_dir(tmp_path, model, 1, tag), {"init_from": str(init_from)})

    put("twin", "demo_warm_domain", start)
    assert warm_runs(saes, 1) is None  # no control A
    put("base", "demo_warm_control", start)
    assert warm_runs(saes, 1)[3:] == (None, None)
    put("twin", "demo_warm_affine", start)
    put("base", "demo_warm_control_b", tmp_path / "elsewhere")  # continued another SAE: left out
    found = warm_runs(saes, 1)
    assert found[3] == sae_dir(tmp_path, "twin", 1, "demo_warm_affine") and found[4] is None
    put("base", "demo_warm_control_b", start)  # control A's seed: not out of sample, left out
    assert warm_runs(saes, 1)[4] is None
    put("base", "demo_null_b", start, seed=2)
    custom = warm_runs(saes, 1, WarmstartConfig(affine_suffix="_nothing", control_b_suffix="_null_b"))
    assert custom[3] is None and custom[4] == sae_dir(tmp_path, "base", 1, "demo_null_b")
    with pytest.raises(ConfigError, match="analysis.warmstart.affine_suffix must be a tag suffix"):
        WarmstartConfig(affine_suffix="warm/affine")
