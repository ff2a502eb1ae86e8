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
    assert {"finsae.data.corpus", "finsae.models", "finsae.finetune"} <= set(mods)
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "", f"core modules pulled in: {r.stdout.strip()}"


GLUE_FREE = ("analysis",)
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
