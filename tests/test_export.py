"""finsae.export: SAELens and sparsify layouts, checked three ways.

1. Round trip (export, import) gives the same SAE outputs.
2. The exported files, run by the math each library documents for its layout (written out here from the
   libraries' docs, not from finsae's code), give the same latents and reconstruction as finsae's forward.
3. Against each library's own loader (sparsify's ``SparseCoder.load_many`` / ``load_from_disk``, SAELens'
   ``SAE.load_from_disk``): a tiny *trained* SAE exported by the CLI, loaded by the library and run through its
   ``encode``/``decode``, gives finsae's latents and reconstruction within :data:`tolerances.EXPORT_FLOAT32_TOL`.
   Neither library is a dependency (their pins would pull another torch): ``make test`` installs both beside
   ``.venv`` (``tests/requirements-loaders.txt`` into ``.test-libs/``, passed as ``FINSAE_LOADER_LIBS``), where a
   missing one fails the test; a bare ``pytest`` without that folder skips them, saying how to get it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from finsae.errors import ConfigError, DataMissingError
from finsae.export import from_saelens, from_sparsify, hookpoint_for_layer, to_saelens, to_sparsify
from finsae.sae import SaeConfig, SaeTrainConfig, TopKSAE, fit, save
from tolerances import EXPORT_FLOAT32_TOL, EXPORT_TIE_GAP

RTOL, ATOL = 1e-10, 1e-10  # float64 SAEs: folding the scale in and out costs a few ulps


def tiny_sae(d: int = 12, m: int = 48, k: int = 5, seed: int = 0) -> TopKSAE:
    sae = TopKSAE(SaeConfig(d_in=d, num_latents=m, k=k, seed=seed), dtype=torch.float64)
    g = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        sae.W_enc.add_(0.3 * torch.randn(sae.W_enc.shape, generator=g, dtype=torch.float64))
        sae.b_enc.copy_(0.1 * torch.randn(m, generator=g, dtype=torch.float64))
        sae.b_dec.copy_(0.5 * torch.randn(d, generator=g, dtype=torch.float64))
        sae.norm_scale.fill_(0.37)
    sae.initialized = True
    return sae


@pytest.fixture
def sae() -> TopKSAE:
    return tiny_sae()


@pytest.fixture
def x() -> torch.Tensor:
    return 3.0 * torch.randn(64, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


def _dense_code(sae: TopKSAE, x: torch.Tensor) -> torch.Tensor:
    """finsae's own latents as a dense [n, m] matrix."""
    enc = sae.encode(x)
    return torch.zeros(x.shape[0], sae.num_latents, dtype=x.dtype).scatter(1, enc.latent_indices, enc.latent_acts)


def _same_outputs(a: TopKSAE, b: TopKSAE, x: torch.Tensor) -> None:
    torch.testing.assert_close(_dense_code(a, x), _dense_code(b, x), rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(a(x).sae_out, b(x).sae_out, rtol=RTOL, atol=ATOL)


def test_saelens_round_trip_same_outputs(sae, x, tmp_path):
    out = to_saelens(sae, tmp_path / "sl", hookpoint="encoder.layer.2")
    assert sorted(p.name for p in out.iterdir()) == ["cfg.json", "sae_weights.safetensors"]
    back = from_saelens(out)
    _same_outputs(sae, back, x)
    torch.testing.assert_close(back.W_dec, sae.W_dec, rtol=RTOL, atol=ATOL)  # unit rows again after unfolding


def test_sparsify_round_trip_same_outputs(sae, x, tmp_path):
    folder = to_sparsify(sae, tmp_path / "sp", hookpoint="encoder.layer.2")
    assert folder == tmp_path / "sp" / "encoder.layer.2"
    assert sorted(p.name for p in folder.iterdir()) == ["cfg.json", "sae.safetensors"]
    _same_outputs(sae, from_sparsify(folder), x)


def test_saelens_layout_runs_as_saelens_documents(sae, x, tmp_path):
    """SAELens topk: hidden_pre = (x - b_dec) @ W_enc + b_enc; keep the top k, ReLU them; x_hat = f @ W_dec + b_dec."""
    out = to_saelens(sae, tmp_path, hookpoint="h")
    cfg = json.loads((out / "cfg.json").read_text())
    w = load_file(str(out / "sae_weights.safetensors"))
    assert (cfg["architecture"], cfg["d_in"], cfg["d_sae"], cfg["k"]) == ("topk", 12, 48, 5)
    assert cfg["apply_b_dec_to_input"] is True and cfg["normalize_activations"] == "none"
    assert tuple(w["W_enc"].shape) == (12, 48) and tuple(w["W_dec"].shape) == (48, 12)
    pre = (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    vals, idx = pre.topk(cfg["k"], dim=1)
    f = torch.zeros_like(pre).scatter(1, idx, vals.relu())
    torch.testing.assert_close(f, _dense_code(sae, x), rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(f @ w["W_dec"] + w["b_dec"], sae(x).sae_out, rtol=RTOL, atol=ATOL)


def test_sparsify_layout_runs_as_sparsify_documents(sae, x, tmp_path):
    """sparsify SparseCoder: relu(encoder(x - b_dec)), keep the top k; decode sum a_i W_dec[i] + b_dec."""
    folder = to_sparsify(sae, tmp_path, hookpoint="encoder.layer.0")
    cfg = json.loads((folder / "cfg.json").read_text())
    w = load_file(str(folder / "sae.safetensors"))
    assert set(w) == {"encoder.weight", "encoder.bias", "W_dec", "b_dec"}
    assert (cfg["activation"], cfg["d_in"], cfg["num_latents"], cfg["k"]) == ("topk", 12, 48, 5)
    assert cfg["skip_connection"] is False and cfg["transcode"] is False
    pre = torch.nn.functional.linear(x - w["b_dec"], w["encoder.weight"], w["encoder.bias"]).relu()
    vals, idx = pre.topk(cfg["k"], dim=1)
    f = torch.zeros_like(pre).scatter(1, idx, vals)
    torch.testing.assert_close(f, _dense_code(sae, x), rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(f @ w["W_dec"] + w["b_dec"], sae(x).sae_out, rtol=RTOL, atol=ATOL)


def test_cli_exports_a_saved_folder_and_imports_it_back(sae, x, tmp_path):
    src = save(sae, tmp_path / "art" / "sae" / "minilm" / "layer_3" / "default", extra={"model": "minilm", "layer": 3})
    run = [sys.executable, "-m", "finsae.export"]
    subprocess.run([*run, str(src), str(tmp_path / "out")], check=True, capture_output=True)
    hook = hookpoint_for_layer(3)
    assert hook == "encoder.layer.3"
    assert (tmp_path / "out" / "sparsify" / hook / "sae.safetensors").is_file()
    sl_cfg = json.loads((tmp_path / "out" / "saelens" / "cfg.json").read_text())
    assert sl_cfg["hook_name"] == hook and sl_cfg["model_name"] == "minilm"
    subprocess.run([*run, "--from", "sparsify", str(tmp_path / "out" / "sparsify" / hook), str(tmp_path / "back")],
                   check=True, capture_output=True)
    from finsae.sae import load, read_meta

    _same_outputs(sae, load(tmp_path / "back"), x)
    assert read_meta(tmp_path / "back")["extra"]["layer"] == 3


def test_missing_and_foreign_exports_fail_in_one_line(sae, tmp_path):
    with pytest.raises(DataMissingError, match="cfg.json"):
        from_saelens(tmp_path / "nothing")
    out = to_saelens(sae, tmp_path / "sl", hookpoint="h")
    cfg = json.loads((out / "cfg.json").read_text())
    (out / "cfg.json").write_text(json.dumps({**cfg, "architecture": "jumprelu"}))
    with pytest.raises(ConfigError, match="not a top-k"):
        from_saelens(out)
    (out / "cfg.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        from_saelens(out)
    with pytest.raises(ConfigError, match="--hookpoint"):
        to_sparsify(sae, tmp_path / "sp")  # a bare SAE has no layer to name its hookpoint by
    r = subprocess.run([sys.executable, "-m", "finsae.export", str(tmp_path / "nope"), str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "nope" in r.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A float32 SAE trained (finsae's own loop) on sparse combinations of random atoms with an offset and a scale
    far from 1 (so ``norm_scale`` and ``b_dec`` matter), saved as a finsae folder; with held-out tokens, finsae's
    dense code of them, and the tokens without a near tie at the k-th latent."""
    d, m, k = 16, 64, 4
    g = torch.Generator().manual_seed(11)
    atoms = torch.randn(48, d, generator=g)

    def tokens(n: int) -> torch.Tensor:
        coef = torch.rand(n, 48, generator=g) * (torch.rand(n, 48, generator=g) < 0.06)
        return 7.0 * (coef @ atoms) + 3.0

    train, x = tokens(40 * 128), tokens(256)
    sae = TopKSAE(SaeConfig(d_in=d, num_latents=m, k=k, seed=0))
    history = fit(sae, list(train.split(128)), SaeTrainConfig(lr=1e-2, batch_size=128, tokens=train.shape[0]))
    assert history[-1].fvu < 0.7 * history[0].fvu  # it did train
    assert sae.W_enc.dtype == torch.float32 and abs(float(sae.norm_scale) - 1) > 0.5
    folder = save(sae, tmp_path_factory.mktemp("trained") / "sae" / "tiny" / "layer_2" / "t",
                  extra={"model": "tiny", "layer": 2})
    with torch.no_grad():
        pre = torch.relu((x * sae.norm_scale - sae.b_dec) @ sae.W_enc.T + sae.b_enc)
        code = _dense_code(sae, x)
    top = pre.topk(k + 1, dim=1).values
    clear = (top[:, -2] - top[:, -1]) > EXPORT_TIE_GAP
    assert clear.float().mean() > 0.9 and code.abs().max() > 0.1  # mostly well-posed; latents that fire
    return sae, folder, x, code, clear


def _export(folder, out, fmt: str) -> None:
    r = subprocess.run([sys.executable, "-m", "finsae.export", str(folder), str(out), "--format", fmt],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr


def _agree(sae, x, code, clear, their_code, their_x_hat) -> None:
    """Their latents (dense ``[n, m]``) and reconstruction equal finsae's, on the tokens without a near tie."""
    torch.testing.assert_close(their_code[clear], code[clear], rtol=EXPORT_FLOAT32_TOL, atol=EXPORT_FLOAT32_TOL)
    with torch.no_grad():
        x_hat = sae(x).sae_out
    # the reconstruction is in the encoder's own units (scale ~|x|)
    torch.testing.assert_close(their_x_hat[clear], x_hat[clear], rtol=EXPORT_FLOAT32_TOL,
                               atol=EXPORT_FLOAT32_TOL * float(x.abs().max()))


def _their_library(module: str):
    """The other library, from ``FINSAE_LOADER_LIBS`` (the folder ``make test`` installs them into, appended to the
    path so that nothing in .venv is shadowed) or .venv. Under ``make test`` a missing library fails the test; a
    bare ``pytest`` without the folder skips it, saying how to get it."""
    import importlib
    import os
    import sys

    libs = os.environ.get("FINSAE_LOADER_LIBS")
    if libs and libs not in sys.path:
        sys.path.append(libs)
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if libs:
            pytest.fail(f"{module} is not importable from {libs} ({e}); rerun `make test` (it installs "
                        f"tests/requirements-loaders.txt there)")
        pytest.skip(f"{module} is not installed: `make test` installs it beside .venv (tests/requirements-loaders.txt)")


def test_sparsify_loads_the_export_with_its_own_loader(trained, tmp_path):
    sparsify = _their_library("sparsify")
    sae, folder, x, code, clear = trained
    _export(folder, tmp_path / "out", "sparsify")
    coders = sparsify.SparseCoder.load_many(str(tmp_path / "out"), local=True)
    assert list(coders) == ["encoder.layer.2"]
    coder = coders["encoder.layer.2"]
    assert (coder.d_in, coder.num_latents, coder.cfg.k) == (16, 64, 4) and coder.dtype == torch.float32
    with torch.no_grad():
        enc = coder.encode(x)
        one = sparsify.SparseCoder.load_from_disk(tmp_path / "out" / "encoder.layer.2").encode(x)
        torch.testing.assert_close(one.top_acts, enc.top_acts, rtol=0, atol=0)
        x_hat = coder.decode(enc.top_acts, enc.top_indices)
    _agree(sae, x, code, clear, torch.zeros_like(code).scatter(1, enc.top_indices, enc.top_acts), x_hat)


def test_saelens_loads_the_export_with_its_own_loader(trained, tmp_path):
    sae_lens = _their_library("sae_lens")
    sae, folder, x, code, clear = trained
    _export(folder, tmp_path / "out", "saelens")
    theirs = sae_lens.SAE.load_from_disk(tmp_path / "out")
    assert type(theirs).__name__ == "TopKSAE" and theirs.cfg.d_sae == 64 and theirs.cfg.k == 4
    with torch.no_grad():
        f = theirs.encode(x)
        x_hat = theirs.decode(f)
    _agree(sae, x, code, clear, f, x_hat)


# ------------------------------------------------------------------ guards (issue 37): refused before any work
def _store_with_published_sae(tmp_path, sae):
    """An artifacts store holding a published SAE (weights, cfg.json and the stage's summary.json)."""
    folder = save(sae, tmp_path / "art" / "sae" / "minilm" / "layer_3" / "demo", extra={"model": "minilm", "layer": 3})
    (folder / "summary.json").write_text('{"fvu": 0.1}')
    return folder


def _files(root):
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _refused(capsys, argv, message):
    from finsae.export import main

    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("finsae: error:") and message in err[0], err


@pytest.mark.parametrize("force", [[], ["--force"]], ids=["plain", "force"])
def test_an_import_onto_a_published_sae_is_refused_even_with_force(sae, tmp_path, capsys, force):
    published = _store_with_published_sae(tmp_path, sae)
    exported = to_sparsify(tiny_sae(seed=5), tmp_path / "elsewhere", hookpoint="encoder.layer.3")
    before = _files(tmp_path)
    _refused(capsys, ["--from", "sparsify", exported, published, *force], "a published result")
    assert _files(tmp_path) == before


@pytest.mark.parametrize("where", ["not empty", "in the store"])
def test_an_export_into_a_non_empty_or_store_folder_needs_force(sae, tmp_path, capsys, where):
    from finsae.export import main

    src = _store_with_published_sae(tmp_path, sae)
    out = tmp_path / "out" if where == "not empty" else tmp_path / "art" / "exported"
    out.mkdir(parents=True)
    (out / "precious.txt").write_text("keep")
    before = _files(tmp_path)
    _refused(capsys, [src, out], "is not empty" if where == "not empty" else "lies inside the artifacts store")
    assert _files(tmp_path) == before
    assert main([str(src), str(out), "--force"]) == 0
    assert (out / "precious.txt").read_text() == "keep" and (out / "saelens" / "cfg.json").is_file()


@pytest.mark.parametrize("hookpoint", ["../..", "../escaped", "/tmp/abs-hook", ".", ""])
def test_a_hookpoint_that_is_a_path_is_refused(sae, tmp_path, capsys, hookpoint):
    src = save(sae, tmp_path / "src", extra={"model": "minilm", "layer": 3})
    before = _files(tmp_path)
    _refused(capsys, [src, tmp_path / "a" / "b", "--format", "sparsify", "--hookpoint", hookpoint],
             f"--hookpoint={hookpoint!r} must be a plain name")
    assert _files(tmp_path) == before and not (tmp_path / "a").exists()
    with pytest.raises(ConfigError, match="must be a plain name"):
        to_sparsify(sae, tmp_path / "a", hookpoint=hookpoint)


def test_an_export_over_its_own_source_is_refused(sae, tmp_path, capsys):
    exported = to_sparsify(sae, tmp_path / "sp", hookpoint="encoder.layer.3")
    before = _files(tmp_path)
    _refused(capsys, ["--from", "sparsify", exported, exported, "--force"], "would write over SRC")
    assert _files(tmp_path) == before


@pytest.mark.parametrize("kind", ["OUT is a file", "a parent is a file", "read-only"])
def test_an_out_that_cannot_be_written_is_one_line(sae, tmp_path, capsys, monkeypatch, kind):
    import builtins
    import errno
    import os

    src = save(sae, tmp_path / "src", extra={"model": "minilm", "layer": 3})
    out = tmp_path / "out"
    if kind == "OUT is a file":
        out.write_text("a file")
    elif kind == "a parent is a file":
        (tmp_path / "f").write_text("a file")
        out = tmp_path / "f" / "out"
    else:  # the tests run as root, which ignores permission bits: the disk says read-only
        (tmp_path / "ro").mkdir()
        out, real_open = tmp_path / "ro" / "out", builtins.open

        def read_only(file, mode="r", *a, **k):
            if set(mode) & set("wax+") and str(file).startswith(str(tmp_path / "ro")):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(file))
            return real_open(file, mode, *a, **k)

        monkeypatch.setattr(builtins, "open", read_only)
    before = _files(tmp_path)
    _refused(capsys, [src, out], {"OUT is a file": "it is a file", "a parent is a file": "is a file",
                                  "read-only": "cannot be written (Read-only file system)"}[kind])
    assert _files(tmp_path) == before
