"""finsae.export: SAELens and sparsify layouts, checked three ways.

1. Round trip (export, import) gives the same SAE outputs.
2. The exported files, run by the math each library documents for its layout (written out here from the
   libraries' docs, not from finsae's code), give the same latents and reconstruction as finsae's forward.
sparsify's own loader is not run here: ``eai-sparsify`` is installed only by ``make bench`` (without its pins),
so ``make test`` checks its documented layout and math instead (``SparseCoder.load_from_disk``: cfg.json fields
plus ``d_in``, ``load_model(strict=True)`` over exactly these four tensors).
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
from finsae.sae import SaeConfig, TopKSAE, save

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
    src = save(sae, tmp_path / "sae" / "minilm" / "layer_3" / "default", extra={"model": "minilm", "layer": 3})
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
