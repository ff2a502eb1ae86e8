"""README's pipeline picture (docs/pipeline.svg) is what finsae.report.pipeline_svg draws now, well-formed SVG
with a box per stage and its artifacts folder, and README shows it near the top."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from finsae.report import pipeline_svg

SVG = "{http://www.w3.org/2000/svg}"


def test_committed_picture_is_current_and_names_every_stage(project_root, tmp_path):
    committed = (project_root / pipeline_svg.DEFAULT_PATH).read_text()
    assert committed == pipeline_svg.pipeline_svg(), "regenerate: python -m finsae.report.pipeline_svg"
    root = ET.fromstring(committed)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    for st in pipeline_svg.STAGES:
        assert st.command in texts and st.artifacts in texts
    assert len(list(root.iter(f"{SVG}rect"))) == 2 * len(pipeline_svg.STAGES) + 1
    assert pipeline_svg.main([str(tmp_path / "p.svg")]) == 0 and (tmp_path / "p.svg").read_text() == committed


def test_readme_shows_the_picture_before_the_quick_start(project_root):
    readme = (project_root / "README.md").read_text()
    assert f"]({pipeline_svg.DEFAULT_PATH.as_posix()})" in readme
    assert readme.index(pipeline_svg.DEFAULT_PATH.as_posix()) < readme.index("## Quick start")
