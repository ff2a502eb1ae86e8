"""``python -m finsae.report``: the study report and the generated results pages (see ``finsae.report``)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from finsae import provenance
from finsae.atomic import write_text
from finsae.errors import FinsaeError
from finsae.paths import PROJECT_ROOT, default_artifacts_dir, default_data_dir, report_dir, results_pages_dir
from finsae.report import build, page, results, sae_table
from finsae.report.study import Study, fingerprint


def write_report(artifacts: Path, out: Path | None = None, results_dir: Path | None = None,
                 readme: Path | None = None, command: str = "python -m finsae.report",
                 echo: Callable[[str], None] | None = None) -> Path:
    """Write the SAE tables and plots (:mod:`~finsae.report.sae_table`) and then ``index.html``, both under
    ``out`` (default ``artifacts/report``), and, when ``results_dir`` is given, the results pages (and the README
    headline when ``readme`` is given); returns the HTML path. ``echo`` receives the tables' markdown. A corrupt SAE
    or fine-tune summary fails, naming its file, before anything is written (``index.html`` comes after the tables: the
    demo takes it, newer than every summary, as the report being done)."""
    artifacts = Path(artifacts)
    if not artifacts.is_dir():
        raise FinsaeError(f"--artifacts {artifacts} is not a folder; `make demo` (or train.py) fills artifacts/")
    out = Path(out) if out else report_dir(artifacts)
    tables = sae_table.write_tables(Study(artifacts), out)
    if echo is not None:
        echo(tables)
    prov = provenance.record(default_data_dir())
    study = Study(artifacts)
    sections = build.all_sections(study, prov)
    subtitle = (f"Built by <code>{page.esc(command)}</code> on {page.esc(prov['machine'])} at "
                f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from {len(study.files_read)} artifact file(s) "
                f"(fingerprint {fingerprint(study.files_read, artifacts)}).")
    html_path = out / "index.html"
    write_text(html_path, page.document("finsae study report", subtitle, sections))  # the demo's done marker
    if results_dir is not None:
        results.write_pages(artifacts, Path(results_dir), readme, command, prov)
    return html_path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m finsae.report", description=__doc__.split(":")[0])
    p.add_argument("--artifacts", default=str(default_artifacts_dir()), help="the study's store (default artifacts/)")
    p.add_argument("--out", default=None, help="folder of index.html and the SAE tables (default ARTIFACTS/report)")
    p.add_argument("--results", default=str(results_pages_dir()),
                   help="folder of the generated results pages (default docs/results; '' for none)")
    p.add_argument("--readme", default=str(PROJECT_ROOT / "README.md"),
                   help="README whose headline block is regenerated ('' for none)")
    p.add_argument("--check", action="store_true", help="only say whether the results pages are stale (exit 1)")
    a = p.parse_args(argv)
    try:
        if a.check:
            stale = results.stale_pages(Path(a.results))
            for line in stale:
                print(f"finsae.report: stale: {line}", file=sys.stderr)
            return 1 if stale else 0
        cmd = "python -m finsae.report" + ("" if Path(a.artifacts) == default_artifacts_dir() else f" --artifacts {a.artifacts}")
        path = write_report(Path(a.artifacts), Path(a.out) if a.out else None, Path(a.results) if a.results else None,
                            Path(a.readme) if a.readme else None, cmd, echo=print)
    except FinsaeError as e:
        print(f"finsae: error: {e}", file=sys.stderr)
        return 2
    print(f"finsae.report: wrote {path}" + (f" and the pages in {a.results}" if a.results else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
