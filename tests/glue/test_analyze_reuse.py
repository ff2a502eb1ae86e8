"""`analyze.py` reads a layer's stored result instead of recomputing it when the result was made with the
same settings, the same code and the same SAEs (``reuse_layers``, default true): a rerun only combines, a
retrained SAE redoes its layer alone, ``reuse_layers=false`` redoes every layer; a source edit changes the
fingerprint."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import finsae
from finsae.analysis.artifacts import read_layers
from finsae.paths import analysis_dir
from finsae.provenance import source_fingerprint

pytestmark = pytest.mark.slow
PAIR = ["pair.base=tiny", "pair.domain=tiny", "tag=t"]
SMALL = ["analysis.docs_per_side=100", "analysis.docs_per_category=10", "analysis.genre_docs=50",
         "analysis.n_boot=10", "analysis.agreement_tokens=2000", "analysis.control_latents=4",
         "analysis.jobs=1", "progress_bar=false", "logger=csv"]


def _run(root: Path, art: Path, script: str, *overrides: str) -> str:
    flags = [o for o in overrides if o.startswith("--")]
    rest = [o for o in overrides if o not in flags]
    cmd = [sys.executable, script, *flags, f"paths.artifacts={art}", *rest]
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=900, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def _reused(stdout: str) -> str | None:
    line = next((x for x in stdout.splitlines() if x.startswith("analyze: layers ") and " reused" in x), None)
    return None if line is None else line.split(" reused")[0].removeprefix("analyze: layers ")


def test_a_rerun_reuses_unchanged_layers_and_redoes_a_retrained_one(tmp_path, project_root):
    art = tmp_path / "art"
    _run(project_root, art, "train.py", "--multirun", "debug=tiny", "layer=0,1", "tag=t")
    first = _run(project_root, art, "analyze.py", *PAIR, *SMALL)
    assert _reused(first) is None
    out = analysis_dir(art, "tiny_tiny")
    before = read_layers(out)

    again = _run(project_root, art, "analyze.py", *PAIR, *SMALL)
    assert _reused(again) == "[0, 1]"
    pd.testing.assert_frame_equal(read_layers(out), before, check_like=True)

    _run(project_root, art, "train.py", "debug=tiny", "layer=1", "tag=t", "seed=3", "overwrite=true")
    redo = _run(project_root, art, "analyze.py", *PAIR, *SMALL)
    assert _reused(redo) == "[0]" and "analyze: layer 1:" in redo  # the retrained layer is compared again
    assert _reused(_run(project_root, art, "analyze.py", *PAIR, *SMALL, "reuse_layers=false")) is None


def test_the_source_fingerprint_follows_every_source_file(tmp_path, monkeypatch):
    pkg = tmp_path / "finsae"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "m.py").write_text("X = 1\n")
    monkeypatch.setattr(finsae, "__file__", str(pkg / "__init__.py"))
    a = source_fingerprint()
    (pkg / "sub" / "m.py").write_text("X = 2\n")
    b = source_fingerprint()
    (pkg / "sub" / "notes.txt").write_text("not code")
    assert a != b and source_fingerprint() == b and len(a) == 16
