"""Installs that do not drift: the lock files pin every dependency at one version, inside pyproject.toml's
ranges, the two locks differ only in torch's build, and this environment holds exactly what its lock says."""

import os
import re
import shutil
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCKS = {"cpu": ROOT / "requirements-cpu.lock", "cuda": ROOT / "requirements-cuda.lock"}
API_SENSITIVE = ("openai", "transformers", "lightning", "hydra-core", "wandb", "torch")
"""Dependencies whose next major has broken (or is known to break) callers: pyproject caps each below it."""
CUDA_ONLY = re.compile(r"^(nvidia-|cuda-|triton$)")


def read_lock(path: Path) -> dict[str, str]:
    """``name -> version`` of a lock file (one ``name==version`` a line; comments and blank lines skipped)."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and version and not re.search(r"[<>~!,;\s]", version), f"{path.name}: not an exact pin: {line!r}"
        pins[canonicalize_name(name)] = version
    return pins


def project_requirements() -> list[Requirement]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in meta["dependencies"]]
    for extra in ("dev", "cluster"):
        reqs += [Requirement(r) for r in meta["optional-dependencies"][extra]]
    return reqs


@pytest.mark.parametrize("flavour", sorted(LOCKS))
def test_every_dependency_is_pinned_inside_its_range(flavour):
    pins = read_lock(LOCKS[flavour])
    for req in project_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{flavour}.lock lacks {req.name}"
        version = Version(pins[name])
        assert req.specifier.contains(version, prereleases=True), f"{flavour}.lock: {name}=={version} outside {req}"


def test_api_sensitive_majors_are_capped():
    by_name = {canonicalize_name(r.name): r for r in project_requirements()}
    for name in API_SENSITIVE:
        spec = by_name[canonicalize_name(name)].specifier
        assert any(s.operator in ("<", "<=", "~=", "==") for s in spec), f"pyproject.toml: {name} has no upper bound"


def test_the_two_locks_differ_only_in_torchs_build():
    cpu, cuda = read_lock(LOCKS["cpu"]), read_lock(LOCKS["cuda"])
    assert Version(cpu["torch"]).local == "cpu" and Version(cuda["torch"]).local is None
    assert Version(cpu["torch"]).public == Version(cuda["torch"]).public
    assert set(cpu) <= set(cuda)
    extra = {n for n in set(cuda) - set(cpu)}
    assert all(CUDA_ONLY.match(n) for n in extra), f"cuda.lock has non-CUDA packages cpu.lock lacks: {extra}"
    differ = {n for n in cpu if n != "torch" and cpu[n] != cuda[n]}
    assert not differ, f"the locks pin other versions of {sorted(differ)}"


def _this_environments_lock() -> Path:
    """The lock ``make`` installed here (``FINSAE_LOCK``, set by ``make test``), else the one a machine without
    nvidia-smi gets."""
    chosen = os.environ.get("FINSAE_LOCK")
    if chosen:
        return ROOT / chosen
    return LOCKS["cuda" if shutil.which("nvidia-smi") else "cpu"]


def test_this_environment_holds_exactly_the_locked_versions():
    pins = read_lock(_this_environments_lock())
    wrong = []
    for name, version in pins.items():
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong.append(f"{name}: missing (locked {version})")
            continue
        if Version(have) != Version(version):
            wrong.append(f"{name}: {have} installed, {version} locked")
    assert not wrong, "run `make setup` (installs the lock): " + "; ".join(wrong)
