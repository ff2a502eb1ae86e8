"""The demo sits on top of the stages: no other finsae module imports it (the timing record the report and
the backtest read lives in the low module ``finsae.timing``)."""

import ast
from pathlib import Path

import finsae


def test_no_module_outside_the_demo_imports_it():
    root = Path(finsae.__path__[0])
    bad = []
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).parts[0] == "demo":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            bad += [f"{path.relative_to(root)}: {n}" for n in names
                    if n == "finsae.demo" or n.startswith("finsae.demo.")]
    assert not bad, bad


def test_the_timing_record_is_importable_without_the_demo():
    from finsae import timing

    assert timing.fmt_seconds(3906) == "1h05m06s" and timing.TIMING_FILE == "timing.json"
