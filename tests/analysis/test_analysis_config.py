"""The ``analysis:`` group through Hydra: each method's knobs in its own nested block, range-checked in one line."""

import pytest
from hydra import compose, initialize_config_dir

from finsae.analysis.config import AnalysisConfig
from finsae.analysis.matching import DEFAULT_TAU
from finsae.analysis.selectivity import FDR, MIN_AUROC
from finsae.analysis.summary import AnalysisSummary
from finsae.errors import FinsaeError
from finsae.glue.schemas import register_schemas, validate


def analysis(project_root, *overrides):
    register_schemas()
    with initialize_config_dir(str(project_root / "conf"), version_base="1.3"):
        # paths.output_dir is Hydra's run folder otherwise (unset when composing outside a run)
        return validate(compose("analyze", ["paths.output_dir=.", "pair.base=tiny", "pair.domain=tiny",
                                            *overrides])).analysis


def test_method_blocks_take_overrides(project_root):
    a = analysis(project_root, "analysis.warmstart.n_boot=200", "analysis.warmstart.quantile=0.95",
                 "analysis.crosscoder.base_only_max=0.2", "analysis.crosscoder.shared_contexts=4",
                 "analysis.independent.overlap_n_boot=50")
    assert (a.warmstart.n_boot, a.warmstart.quantile) == (200, 0.95)
    assert (a.crosscoder.base_only_max, a.crosscoder.shared_contexts) == (0.2, 4)
    assert a.independent.overlap_n_boot == 50
    d = analysis(project_root)
    assert (d.warmstart.n_boot, d.warmstart.quantile, d.crosscoder.artifact_nu) == (1000, 0.99, 0.5)


@pytest.mark.parametrize("override, says", [
    ("analysis.warmstart.quantile=1.5", "analysis.warmstart.quantile"),
    ("analysis.warmstart.n_boot=2", "analysis.warmstart.n_boot"),
    ("analysis.crosscoder.shared_min=0.05", "analysis.crosscoder cut-offs"),
    ("analysis.crosscoder.artifact_nu=0", "analysis.crosscoder.artifact_nu"),
    ("analysis.independent.overlap_n_boot=1", "analysis.independent.overlap_n_boot"),
])
def test_a_bad_method_knob_fails_in_one_line(project_root, override, says):
    with pytest.raises(FinsaeError, match=says) as e:
        analysis(project_root, override)
    assert "\n" not in str(e.value)


def test_the_shared_defaults_are_declared_once():
    assert (DEFAULT_TAU, FDR, MIN_AUROC) == (AnalysisConfig.tau, AnalysisConfig.fdr, AnalysisConfig.min_auroc)
    s = AnalysisSummary(pair="p", base="a", domain="b", tag="t", seed_tag="t_seed1")
    assert (s.tau, s.fdr, s.min_auroc) == (AnalysisConfig.tau, AnalysisConfig.fdr, AnalysisConfig.min_auroc)
