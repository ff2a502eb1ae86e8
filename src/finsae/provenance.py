"""What a result was made from: the code version and a fingerprint of the data.

Every stage's run records both (``provenance.json`` in its run folder and the ``provenance`` key of its W&B
config, written by ``finsae.glue.tracking``), so ``python -m finsae.reproduce`` can tell whether a rerun uses
the same code and data as the run it reproduces.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import finsae
from finsae.paths import PROJECT_ROOT

FILE = "provenance.json"
MANIFEST = "MANIFEST.tsv"


NOT_CODE = (":(exclude)docs", ":(exclude)*.md")
"""Tracked files whose changes do not make a checkout ``+dirty``: prose and the results pages the report writes
(``make demo`` regenerates ``docs/results`` and README's headline, which made every later run read dirty)."""


def code_version(root: Path = PROJECT_ROOT) -> str:
    """``<git sha>`` of the checkout (``+dirty`` when tracked files other than :data:`NOT_CODE` differ from it);
    the package version when the code is not a git checkout (an installed wheel)."""
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", ".",
                                *NOT_CODE], capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"finsae-{finsae.__version__}"
    return sha + ("+dirty" if dirty else "")


def source_fingerprint() -> str:
    """16 hex digits identifying the code that runs: the hash of every ``.py`` file of the installed
    ``finsae`` package (path and bytes). Unlike :func:`code_version` it tells two edited checkouts apart."""
    root = Path(finsae.__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def data_fingerprint(data_dir: str | Path | None) -> str:
    """16 hex digits identifying the data folder: the hash of its ``MANIFEST.tsv`` (path, bytes, sha256 of each
    file) when it has one, else of every file's relative path and size. ``"none"`` for no folder."""
    if data_dir is None or not Path(data_dir).is_dir():
        return "none"
    root = Path(data_dir)
    h = hashlib.sha256()
    if (root / MANIFEST).is_file():
        h.update((root / MANIFEST).read_bytes())
    else:
        for p in sorted(q for q in root.rglob("*") if q.is_file()):
            h.update(f"{p.relative_to(root).as_posix()}\t{p.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def record(data_dir: str | Path | None) -> dict[str, Any]:
    """The provenance of a run started now."""
    return {"code_version": code_version(), "finsae_version": finsae.__version__,
            "data_fingerprint": data_fingerprint(data_dir), "data_dir": str(data_dir) if data_dir else None,
            "python": platform.python_version(), "machine": machine()}


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), e.g. ``AMD EPYC 7B13``; the platform's processor name elsewhere."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """CPU model and core count, e.g. ``AMD EPYC 7B13 (2 cores)``."""
    return f"{cpu_model()} ({os.cpu_count()} cores)"


def machine_record() -> dict[str, Any]:
    """What a measurement records of its machine: CPU model, cores, the bf16 flags and whether they are used
    (:mod:`finsae.precision`), and the AVX-512 / AMX flags that decide how reductions round and how fast GEMMs are."""
    from finsae import precision

    flags = precision.cpu_flags()
    return {"model": cpu_model(), "cores": os.cpu_count(), "bf16_flags": precision.bf16_flags(),
            "bf16_units": precision.cpu_has_bf16(),
            "isa_flags": sorted(f for f in flags if f.startswith(("avx512", "amx")))}


def write(run_dir: str | Path, prov: dict[str, Any]) -> Path:
    path = Path(run_dir) / FILE
    path.write_text(json.dumps(prov, indent=2, sort_keys=True) + "\n")
    return path


def read(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
