"""python -m finsae.report's command line (issue 37): the checkout's README and results pages are the default
store's, written from another store only when asked; an output folder that cannot be written is one line before
any work. The checkout is a stand-in under tmp_path (the module's PROJECT_ROOT and pages folder pointed there), so
a failing row never touches the real README."""

from __future__ import annotations

import json

import pytest

from finsae.report import __main__ as cli
from finsae.report.results import HEADLINE_END, HEADLINE_START

README = f"# x\n\n{HEADLINE_START}\nold\n{HEADLINE_END}\n\nrest\n"


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A stand-in checkout (README.md with a headline block, an empty docs/results/) and the default store."""
    root = tmp_path / "checkout"
    (root / "docs" / "results").mkdir(parents=True)
    (root / "README.md").write_text(README)
    (root / "artifacts").mkdir()
    monkeypatch.setattr(cli, "PROJECT_ROOT", root)
    monkeypatch.setattr(cli, "results_pages_dir", lambda: root / "docs" / "results")
    monkeypatch.setattr(cli, "default_artifacts_dir", lambda: (root / "artifacts").resolve())
    return root


def _files(root):
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_another_store_leaves_the_checkouts_readme_and_pages_alone(checkout, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    before = _files(checkout)
    assert cli.main(["--artifacts", str(other)]) == 0
    assert _files(checkout) == before
    assert (other / "report" / "index.html").is_file()


def test_another_store_writes_the_pages_and_readme_named_explicitly(checkout, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    readme = checkout / "README.md"
    assert cli.main(["--artifacts", str(other), "--results", str(checkout / "docs" / "results"),
                     "--readme", str(readme)]) == 0
    assert (checkout / "docs" / "results" / "sources.json").is_file()
    assert "old" not in readme.read_text() and "rest" in readme.read_text()


def test_the_default_store_still_writes_them_by_default(checkout):
    assert cli.main([]) == 0
    assert (checkout / "docs" / "results" / "sources.json").is_file() and "old" not in (checkout / "README.md").read_text()


@pytest.mark.parametrize("kind", ["a file", "a parent is a file", "read-only"])
def test_an_out_that_cannot_be_written_is_one_line(checkout, tmp_path, capsys, monkeypatch, kind):
    import builtins
    import errno
    import os

    other = tmp_path / "other"
    other.mkdir()
    out = tmp_path / "out"
    if kind == "a file":
        out.write_text("a file")
    elif kind == "a parent is a file":
        (tmp_path / "f").write_text("a file")
        out = tmp_path / "f" / "out"
    else:  # the tests run as root, which ignores permission bits: the disk says read-only
        out.mkdir()
        real_open = builtins.open

        def read_only(file, mode="r", *a, **k):
            if set(mode) & set("wax+") and str(file).startswith(str(out)):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(file))
            return real_open(file, mode, *a, **k)

        monkeypatch.setattr(builtins, "open", read_only)
    before = _files(tmp_path)
    assert cli.main(["--artifacts", str(other), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("finsae: error: the --out folder") and "Traceback" not in err[0], err
    assert {"a file": "it is a file", "a parent is a file": "is a file",
            "read-only": "(Read-only file system)"}[kind] in err[0]
    assert _files(tmp_path) == before


# ------------------------------------------------------------------ issue 34: portable pages
def test_pages_name_their_store_relative_to_the_checkout_and_check_the_code(checkout, tmp_path, capsys, monkeypatch):
    import json
    from pathlib import Path

    from finsae.report.results import store_of_label

    other = tmp_path / "other"
    other.mkdir()
    pages = checkout / "docs" / "results"
    assert cli.main(["--artifacts", str(other), "--results", str(pages)]) == 0
    sources = json.loads((pages / "sources.json").read_text())
    labels = {rec["artifacts"] for rec in sources.values()}
    assert len(labels) == 1 and not Path(next(iter(labels))).is_absolute()
    assert store_of_label(next(iter(labels))).resolve() == other.resolve()
    for page in pages.glob("*.md"):  # no machine path, the command's included
        assert str(tmp_path) not in page.read_text().replace(next(iter(labels)), "LABEL"), page.name
    capsys.readouterr()
    assert cli.main(["--check", "--results", str(pages)]) == 0
    assert "are fresh" in capsys.readouterr().out
    monkeypatch.setattr(cli.provenance, "code_version", lambda: "f" * 40)  # a later checkout
    assert cli.main(["--check", "--results", str(pages)]) == 1
    assert f"this checkout is {'f' * 40}" in capsys.readouterr().err


def test_check_without_the_artifacts_here_cannot_verify_and_exits_0(checkout, project_root, tmp_path, capsys):
    """The committed pages on a machine without their artifacts (a fresh clone): not stale, said so; a hand
    edit is still caught."""
    import shutil

    pages = tmp_path / "pages"
    shutil.copytree(project_root / "docs" / "results", pages)
    # their store named as one no machine has (the committed label may resolve on the machine that made them)
    label = next(iter(json.loads((pages / "sources.json").read_text()).values()))["artifacts"]
    for f in pages.iterdir():
        f.write_text(f.read_text().replace(label, "../no-such-store/artifacts"))
    assert cli.main(["--check", "--results", str(pages)]) == 0
    out = capsys.readouterr()
    assert "cannot verify here" in out.out and "stale" not in out.err
    page = next(pages.glob("*.md"))
    page.write_text(page.read_text().replace("fingerprint=", "fingerprint=0", 1))
    assert cli.main(["--check", "--results", str(pages)]) == 1
    assert f"stale: {page.name}: page and sources.json disagree" in capsys.readouterr().err


def test_the_run_folder_of_a_summary_stays_off_the_pages(tmp_path):
    """A summary names the run folder that made it (a machine path where the run lay outside the checkout):
    for reproduce, never printed in a page's table, on the results page or the HTML report."""
    import typing
    from dataclasses import fields

    from finsae.analysis.summary import AnalysisSummary
    from finsae.report.build import section_html
    from finsae.report.results import page_markdown
    from finsae.report.study import Study
    from finsae.summary import run_origin

    hints = typing.get_type_hints(AnalysisSummary)
    sample = {int: 3, float: 0.25, str: "x", bool: True}
    values = {f.name: sample.get(hints[f.name], []) for f in fields(AnalysisSummary)
              if f.name not in ("run_dir", "wandb_run_id")}
    values = {k: ({} if "dict" in str(hints[k]) and v == [] else v) for k, v in values.items()}
    with run_origin(tmp_path / "machine" / "run", "id123"):
        summary = AnalysisSummary(**values)
    assert summary.run_dir == str(tmp_path / "machine" / "run")
    summary.write(tmp_path / "art" / "analysis" / "minilm_fin")
    study = Study(tmp_path / "art")
    page, html = page_markdown("analysis", study), section_html("diffing", study)
    assert "## minilm_fin" in page and '<td class="t">seconds</td>' in html  # the summary is on both
    for text in (page, html):
        assert "machine/run" not in text and "id123" not in text
