"""python -m finsae.report on a tiny study: one self-contained page, opened in a real browser (Debian's chromium
driven by selenium); sections present when a stage has not run; the generated results pages and their staleness."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from finsae.report.__main__ import main as report_main
from finsae.report.__main__ import write_report
from finsae.report.sections import MAX_ONE_ROW_COLUMNS
from finsae.report.results import HEADLINE_END, HEADLINE_START, stale_pages

pytestmark = pytest.mark.slow
SECTIONS = ["answer", "claims", "sae", "diffing", "labels", "stocknet", "backtest", "canaries", "setup"]
"""The page's sections in order: the answer first, the setup last."""
PAGE_WIDTH = 1400
"""The window width of the no-overflow check."""
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def report(tiny_study, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    readme = out / "README.md"
    readme.write_text(f"# x\n\n{HEADLINE_START}\nold\n{HEADLINE_END}\n\nrest\n")
    html = write_report(tiny_study, out / "html", out / "results", readme)
    return html, out, tiny_study


def test_page_is_self_contained_and_has_every_section(report):
    html, *_ = report
    text = html.read_text()
    assert 'href="latents/index.html"' in text and (html.parent / "latents" / "index.html").is_file()
    assert "python -m finsae.reproduce " in text  # each pair's numbers lead to the command that reruns them
    for anchor in SECTIONS:
        assert f'<section id="{anchor}">' in text, anchor
        section = text.split(f'<section id="{anchor}">', 1)[1].split("</section>", 1)[0]
        # the tiny study ran every stage but the fine-tune (its pair is two tiny random BERTs); a section whose
        # stage is missing carries the report's own marker (findings.md may still say a method was "not run")
        assert ('class="notrun"' in section) == (anchor == "setup"), anchor
    assert not re.search(r"""(src|href)=["'](https?:)?//""", text)  # nothing fetched from elsewhere
    assert "<script" not in text
    assert text.count('src="data:image/png;base64,') >= 3  # SAE quality, analysis plots, equity curves
    assert "<mark" in text  # example contexts with their activating words marked
    assert "published: StockNet (HedgeFundAnalyst)" in text and "ours: price_count" in text


def test_report_in_a_real_browser(report, tmp_path):
    """Every image decodes, every table has rows, no console errors; a full-page screenshot is kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM and CHROMEDRIVER, "Debian's chromium and chromium-driver are needed (.ci/run installs them)"
    html, *_ = report
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-extensions", "--no-first-run", "--window-size=1280,900"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.get(html.as_uri())
        driver.execute_script("return document.readyState")
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight]);")
        assert len(images) >= 3
        for alt, complete, width, height in images:
            assert complete and width > 0 and height > 0, f"image {alt} did not decode"
        rows = driver.execute_script(
            "return Array.from(document.querySelectorAll('table')).map(t => t.querySelectorAll('tbody tr').length);")
        assert rows and min(rows) > 0, rows
        ids = driver.execute_script("return Array.from(document.querySelectorAll('section')).map(s => s.id);")
        assert ids == SECTIONS
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
        _no_table_overflows(driver)
        height = driver.execute_script("return document.documentElement.scrollHeight;")
        driver.set_window_size(1280, min(int(height) + 100, 30000))
        shot = tmp_path / "report.png"
        assert driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 20_000
    finally:
        driver.quit()


def _no_table_overflows(driver) -> None:
    """At PAGE_WIDTH px the page never scrolls sideways: every table sits in a box no wider than the body (a
    wide table scrolls inside it)."""
    driver.set_window_size(PAGE_WIDTH, 900)
    boxes = driver.execute_script(
        "const body = document.body.clientWidth;"
        "return Array.from(document.querySelectorAll('table')).map(t => {"
        "  const box = t.closest('.scroll') || t;"
        "  return [box === t ? 'unboxed' : 'boxed', box.getBoundingClientRect().width, body,"
        "          t.querySelector('th') ? t.querySelector('th').textContent : ''];});")
    assert boxes and all(kind == "boxed" for kind, *_ in boxes), [b for b in boxes if b[0] != "boxed"]
    too_wide = [(head, width, body) for _, width, body, head in boxes if width > body + 0.5]
    assert too_wide == []
    page = driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert page[0] <= page[1], page
    wide = driver.execute_script("return Array.from(document.querySelectorAll('.scroll'))"
                                 ".filter(b => b.scrollWidth > b.clientWidth).length;")
    assert wide >= 1  # the tiny study has tables wider than the page: they scroll in their boxes


def test_answer_comes_first_in_generated_sentences(report):
    """The page opens with the study's answer, generated from the artifacts (tiny study: the two tiny models
    are the same, the labels ran without a matched control, no set trades profitably), then the headline table
    with each row's strictest control, its terms linked to the glossary."""
    html, _, study = report
    text = html.read_text()
    section = text.split('<section id="answer">', 1)[1].split("</section>", 1)[0]
    order = [text.index(f'<section id="{a}">') for a in ("answer", "claims", "setup")]
    assert order == sorted(order)
    assert "tiny_tiny: the twin&#x27;s features match the base&#x27;s one to one at every layer" in section
    assert "labels by lexical beat shuffled labels on embedding AUROC" in section
    assert "selectivity-matched control was not run" in section
    assert ": at 10 bps per side, the daily books&#x27; best is" in section
    assert "no book trades profitably (none has its net Sharpe" in section
    assert "strictest control" in section
    assert 'href="#glossary-dsr"' in section and 'id="glossary-dsr"' in section
    assert "make demo, whole study" not in section  # the clock is engineering: the timing page has it
    from finsae.report.headline import headline_markdown
    from finsae.report.study import Study

    md = headline_markdown(Study(study))  # README's block: the answer, and where its numbers are
    assert md.startswith("**The answer.**\n\n- ") and "[docs/results/headline.md]" in md
    assert "| result |" not in md and "Glossary" not in md
    from finsae.report.results import page_markdown

    page = page_markdown("headline", Study(study))  # the headline page has the table and the glossary
    assert "| result | measured | strictest control | terms |" in page
    assert "- **DSR**: deflated Sharpe ratio" in page


def test_each_section_renders_the_same_tables_and_numbers_on_the_page_and_its_results_page(tiny_study):
    """Every section of the tiny study, built once, carries the same tables and numbers in HTML and markdown
    (a figure and the latent browser are named by their path on the results pages only)."""
    from report_rendering import html_numbers, html_tables, md_numbers, md_tables

    from finsae.report import markdown, page
    from finsae.report.build import SECTIONS, build_section
    from finsae.report.study import Study

    prov = {"code_version": "abc", "machine": "m", "python": "3", "data_dir": "d"}
    study = Study(tiny_study, provenance=prov)
    tables = 0
    for spec in SECTIONS:
        section = build_section(spec, study)
        html, md = page.render(section.blocks), markdown.render(section.blocks)
        assert html_tables(html) == md_tables(md), spec.anchor
        assert html_numbers(html) == md_numbers(md, ("Figure: ", "Latent browser (")), spec.anchor
        tables += len(html_tables(html))
    assert tables >= 15


def test_label_and_layer_tables_are_short_and_named(report):
    """The label summary is a few short tables, not one key/value wall; the per-layer scores' overall row is
    called "all" (not layer -99); the results pages have no one-row table of dozens of columns."""
    html, out, _ = report
    labels = html.read_text().split('<section id="labels">', 1)[1].split("</section>", 1)[0]
    assert "each scorer&#x27;s score beside its controls" in labels and "all n/a hidden" in labels
    assert ">-99<" not in labels and '<td class="t">all</td>' in labels
    for md in (out / "results").glob("*.md"):
        for block in re.findall(r"(?:^\|.*\n?)+", md.read_text(), flags=re.M):
            lines = block.strip().splitlines()
            assert len(lines) > 3 or lines[0].count("|") - 1 <= MAX_ONE_ROW_COLUMNS, (md.name, lines[0][:200])
            assert "| n/a |" not in lines[0]


def test_every_section_says_not_run_without_artifacts(tmp_path):
    (tmp_path / "art").mkdir()
    html = write_report(tmp_path / "art", tmp_path / "out")
    text = html.read_text()
    for anchor in SECTIONS:
        section = text.split(f'<section id="{anchor}">', 1)[1].split("</section>", 1)[0]
        assert anchor == "setup" or "not run" in section, anchor
    assert "python analyze.py" in text and "python backtest.py" in text  # the commands that make them


def test_results_pages_record_their_sources_and_go_stale(report, tiny_study, tmp_path):
    html, out, _ = report
    results = out / "results"
    sources = json.loads((results / "sources.json").read_text())
    assert set(sources) == {"headline.md", "sae.md", "analysis.md", "labels.md", "backtest.md", "timing.md"}
    assert "not run: no `report/timing_history.jsonl` yet" in (results / "timing.md").read_text()
    sae = (results / "sae.md").read_text()
    assert sae.startswith("<!-- finsae.report fingerprint=") and "python -m finsae.report" in sae
    assert "| tiny | 0 | t |" in sae and " cores), code " in sae  # the machine and code version that made it
    assert "analysis/tiny_tiny/findings.md" in sources["analysis.md"]["files"]
    assert stale_pages(results) == []
    readme = (out / "README.md").read_text()
    assert "old" not in readme and "rest" in readme
    assert "**The answer.**" in readme and "docs/results/headline.md" in readme
    # Change one artifact the SAE page was made from: that page (and the headline) is stale, the others are not.
    copy = tmp_path / "artifacts"
    shutil.copytree(tiny_study, copy, symlinks=True)
    pages = tmp_path / "pages"
    write_report(copy, tmp_path / "html", pages)
    assert stale_pages(pages) == []
    summary = next(copy.glob("sae/tiny/layer_0/t/summary.json"))
    s = json.loads(summary.read_text())
    summary.write_text(json.dumps({**s, "fvu": s["fvu"] + 0.01}))
    stale = stale_pages(pages)
    assert sorted(line.split(":")[0] for line in stale) == ["headline.md", "sae.md"]
    assert report_main(["--check", "--results", str(pages)]) == 1
    # On a machine without the artifacts: a page is still checked against sources.json (a hand edit is caught),
    # not against artifacts it cannot see; the strict check calls every page stale.
    shutil.rmtree(copy)
    assert stale_pages(pages, absent_artifacts_ok=True) == []
    assert len(stale_pages(pages)) == len(json.loads((pages / "sources.json").read_text()))
    analysis = pages / "analysis.md"
    analysis.write_text(analysis.read_text().replace("fingerprint=", "fingerprint=0", 1))
    assert [line.split(":")[0] for line in stale_pages(pages, absent_artifacts_ok=True)] == ["analysis.md"]


def test_cli_one_line_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "finsae.report", "--artifacts", str(tmp_path / "none"), "--results", ""],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "none" in r.stderr


def test_committed_results_pages_are_fresh(project_root):
    """docs/results/*.md generated by finsae.report agree with sources.json (never edited by hand) everywhere, and
    are not stale relative to the artifacts they were made from where those are on this machine; no page is pasted
    by hand (every page is one sources.json names)."""
    results = project_root / "docs" / "results"
    assert stale_pages(results, absent_artifacts_ok=True) == []
    generated = set(json.loads((results / "sources.json").read_text()))
    assert {p.name for p in results.glob("*.md")} <= generated
