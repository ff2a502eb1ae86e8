"""One section model, two renderers: the HTML page and the markdown results pages carry the same tables (same
header, same cells, the same rows and columns hidden) and the same numbers; the registry places every section
on the page, a results page or both."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from report_rendering import html_numbers, html_tables, md_numbers, md_tables

from finsae.report import markdown, page
from finsae.report.build import SECTIONS
from finsae.report.results import PAGES
from finsae.report.sections import (
    MAX_ONE_ROW_COLUMNS, Answer, Context, Glossary, Heading, NotRun, Prose, Ref, Reproduce, Table, Text,
    Unreadable)

NAN = math.nan
WIDE = 2 * MAX_ONE_ROW_COLUMNS
"""Columns of the wide one-row table (every third n/a: more than MAX_ONE_ROW_COLUMNS are left)."""


def _blocks():
    """A section with every kind of table cell: floats small, large and NaN, ints, booleans, None, text with a
    ``|``, linked terms; an all-n/a row and column, more rows than shown, a wide one-row table, a table of
    nothing but n/a, an empty one; and the text blocks around them."""
    many = pd.DataFrame({"name": [f"r{i}" for i in range(7)], "x": np.linspace(-1.5, 2.5e6, 7),
                         "tiny": [1e-5, 2.5e-4, NAN, 0.0, 3.0, 12345.678, -7.25], "empty": [NAN] * 7})
    mixed = pd.DataFrame({"set": ["a|b", "c", "gone"], "ok": [True, False, None], "n": [3, 40, 500],
                          "sharpe": [0.51234, NAN, NAN],
                          "terms": [(Ref("DSR", "glossary-dsr"), Ref("PSR", "glossary-psr")), (), ()]})
    mixed.loc[2, "n"] = NAN  # the "gone" row: all n/a but its name
    wide = pd.DataFrame([{f"c{i}": (NAN if i % 3 == 0 else i * 1.125) for i in range(WIDE)}])
    return [
        Answer(("The twin differs at layer 3 (overlap 0.412 vs 0.9).", "No set trades: Sharpe -0.25.")),
        Heading("pair_1"), Reproduce("python -m finsae.reproduce artifacts/analysis/pair_1"),
        Table(many, "seven rows, five shown", max_rows=5), Table(mixed, "mixed cells"), Table(wide, "wide"),
        Table(pd.DataFrame({"k": ["a", "b"], "v": [NAN, None]}), "nothing measured"),
        Table(pd.DataFrame(), "empty"), Table.of_mapping({"tau": 0.7, "layers": [0, 1, 2], "seconds": 12.5}),
        Text("A **bold** claim with `code` and 2 numbers: 3.5 and [a term](#glossary-dsr).", note=True),
        NotRun("no `labels/` yet", "python label.py"), Unreadable("/x/metrics.csv is cut (rerun 2 steps)"),
        Heading("contexts", 2), Context(("rates", "rose", "4", "%"), (0.0, 2.0, 0.01, 1.5)),
        Prose("# Findings\n\nLayer 2 of 6:\n\n1. first 10\n2. second\n\n"
              "| a | b |\n|---|---|\n| `1.5` | **2** |"),
        Glossary("Glossary", "glossary", (("DSR", "glossary-dsr", "deflated Sharpe, at least 0.95"),
                                          ("PSR", "glossary-psr", "probabilistic Sharpe"))),
    ]


def test_html_and_markdown_of_one_section_carry_the_same_tables_and_numbers():
    blocks = _blocks()
    html, md = page.render(blocks), markdown.render(blocks)
    tables = html_tables(html)
    assert tables == md_tables(md)
    assert len(tables) == 5  # many, mixed, wide (transposed) and the key/value table; the findings' table
    many, mixed, wide, kv, findings = tables
    assert many[0] == ["name", "x", "tiny"] and [r[0] for r in many[1:]] == ["r0", "r1", "r2", "r3", "r4"]
    assert mixed == [["set", "ok", "n", "sharpe", "terms"], ["a|b", "yes", "3", "0.5123", "DSR, PSR"],
                     ["c", "no", "40", "n/a", ""]]
    assert wide[0] == ["field", "value"]
    assert [r[0] for r in wide[1:]] == [f"c{i}" for i in range(WIDE) if i % 3]
    assert kv[1:] == [["tau", "0.7"], ["layers", "0, 1, 2"], ["seconds", "12.5"]]
    assert findings == [["a", "b"], ["1.5", "2"]]
    assert html_numbers(html) == md_numbers(md)
    for hidden in ("1 column(s) all n/a hidden: empty", "2 more rows not shown",
                   "1 row(s) all n/a hidden: gone", "nothing measured: 1 column(s) all n/a hidden: v",
                   "empty table"):
        assert hidden in html and hidden in md, hidden


def test_the_comparison_sees_a_renderer_that_drifts(monkeypatch):
    """The readers above are not blind: one renderer formatting a cell its own way is caught."""
    blocks = _blocks()
    html = page.render(blocks)
    monkeypatch.setattr(markdown, "_cell",
                        lambda v, anchors: v if isinstance(v, str) and v != "0.5123" else "0.51")
    md = markdown.render(blocks)
    assert html_tables(html) != md_tables(md) and html_numbers(html) != md_numbers(md)


def test_links_point_at_the_glossary_on_each():
    blocks = _blocks()
    html, md = page.render(blocks), markdown.render(blocks)
    assert '<a href="#glossary-dsr">DSR</a>' in html and 'id="glossary-dsr"' in html
    assert 'id="glossary"' in html
    assert "[DSR](#glossary)" in md and "## Glossary" in md and "- **DSR**: deflated Sharpe" in md
    assert "<mark" in html and "**rose**" in md and "**4**" not in md  # 0.01 of the top: not marked


def test_every_section_is_on_the_page_or_a_results_page():
    anchors = [s.anchor for s in SECTIONS]
    assert len(set(anchors)) == len(anchors)
    assert all(s.html or s.page for s in SECTIONS)
    assert {s.page for s in SECTIONS if s.page} == set(PAGES)  # no page without a section
    assert anchors[0] == "answer" and [s.anchor for s in SECTIONS if s.html][-1] == "setup"


def test_a_contract_table_in_the_backtest_section_is_one_line(tmp_path, monkeypatch):
    """A table of the backtest's contract is one entry of BACKTEST_TABLES: shown (its rows picked) on the
    page and the results page alike, and its file counted in the page's sources."""
    from finsae.report import trading_sections
    from finsae.report.build import section_html
    from finsae.report.results import page_markdown
    from finsae.report.study import Study
    from finsae.trading import artifacts
    from finsae.trading.summary import BacktestSummary

    folder = tmp_path / "backtest" / "p"
    BacktestSummary(pair="p", protocols=["walk_forward"], sets=["price"], eval_start="2014-06-01",
                    cost_bps=10.0).write(folder)
    rank_ic = pd.DataFrame({"set": ["price", "price"], "model": ["lgbm", "lgbm"],
                            "period": ["headline", "dev"], "rank_ic": [0.0123, 0.5], "n_days": [160, 40]})
    rank_ic.to_csv(artifacts.table_path(folder, "rank_ic"), index=False)
    extra = trading_sections.ContractTable("rank_ic", "rank IC of each set", ("set", "period", "rank_ic"),
                                           rows={"period": "headline"})
    monkeypatch.setattr(trading_sections, "BACKTEST_TABLES", [*trading_sections.BACKTEST_TABLES, extra])
    study = Study(tmp_path)
    html, md = section_html("backtest", study), page_markdown("backtest", study)
    shown = [["set", "period", "rank_ic"], ["price", "headline", "0.0123"]]
    assert html_tables(html)[-1] == md_tables(md)[-1] == shown
    assert "rank IC of each set" in html and "Rank IC of each set:" in md
    assert artifacts.table_path(folder, "rank_ic") in study.files_read


def test_a_new_section_is_one_registry_line(tmp_path, monkeypatch):
    """A section added to SECTIONS is on the page and on the results page it names, read through Study."""
    from finsae.report import build
    from finsae.report.results import write_pages
    from finsae.report.study import Study

    def toy_blocks(study):
        return [Heading("toy pair"), Table(pd.DataFrame({"layer": [0, 1], "toy_score": [0.25, 0.75]}), "toy")]

    toy = build.SectionSpec("toy", "Toy", toy_blocks, "analysis")
    monkeypatch.setattr(build, "SECTIONS", [*build.SECTIONS, toy])
    (tmp_path / "art").mkdir()
    sections = build.html_sections(Study(tmp_path / "art"))
    assert (sections[-1].anchor, sections[-1].title, sections[-1].files) == ("toy", "Toy", set())
    assert "0.75" in page.document("t", "s", sections)
    write_pages(tmp_path / "art", tmp_path / "pages", None, "cmd", {"machine": "m", "code_version": "c"})
    text = (tmp_path / "pages" / "analysis.md").read_text()
    assert "## Toy" in text and "| 1 | 0.75 |" in text
