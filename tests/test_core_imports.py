"""The science core imports no Hydra, Lightning or W&B (only finsae.glue may)."""

import pkgutil
import subprocess
import sys

import finsae

FORBIDDEN = ("hydra", "lightning", "pytorch_lightning", "wandb", "omegaconf")


def core_modules() -> list[str]:
    mods = []
    for info in pkgutil.walk_packages(finsae.__path__, "finsae."):
        if info.name.startswith("finsae.glue") or info.name.endswith("__main__"):
            continue
        mods.append(info.name)
    return mods


def test_core_does_not_import_frameworks():
    mods = core_modules()
    assert {"finsae.data.corpus", "finsae.models", "finsae.finetune", "finsae.labeling.run", "finsae.sae.run",
            "finsae.finetune.run"} <= set(mods)
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "", f"core modules pulled in: {r.stdout.strip()}"


GLUE_FREE = ("analysis", "labeling", "trading", "sae", "finetune")
"""Stage cores checked statically (imports inside functions too): no finsae.glue, no framework."""


def test_stage_cores_import_no_glue_even_lazily():
    import ast
    from pathlib import Path

    bad = []
    for pkg in GLUE_FREE:
        for path in sorted((Path(finsae.__path__[0]) / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
                bad += [f"{path.name}: {n}" for n in names
                        if n.startswith("finsae.glue") or n.split(".")[0] in FORBIDDEN]
    assert not bad, bad


GLUE_ENTRY_POINTS = {"finsae.glue.label_stage": {"run", "precheck"}, "finsae.glue.analyze_stage": {"run"},
                     "finsae.glue.backtest_stage": {"run", "check_prerequisites"},
                     "finsae.glue.sae_stage": {"run", "precheck"}, "finsae.glue.finetune_stage": {"run", "precheck"}}
"""What tests may import from a stage's glue: its entry points only (the science is imported from the core)."""


def test_tests_import_science_from_the_core_not_from_glue():
    import ast
    from pathlib import Path

    tests = Path(__file__).resolve().parent
    bad = []
    for path in sorted(tests.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module in GLUE_ENTRY_POINTS:
                bad += [f"{path.relative_to(tests)}: {a.name}" for a in node.names
                        if a.name not in GLUE_ENTRY_POINTS[node.module]]
    assert not bad, f"tests import science from glue (import it from the core): {bad}"
