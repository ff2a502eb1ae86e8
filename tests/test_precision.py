"""bf16 where the CPU has bf16 units: detection (mocked flags, never mocked math), the autocast helper, and how
close a bf16 forward of a tiny model stays to fp32."""

import numpy as np
import pytest
import torch

from finsae import precision
from finsae.errors import ConfigError
from finsae.models import get_spec, hidden_states, load_model


@pytest.fixture
def flags(monkeypatch):
    """Pretend the CPU lists the given flags (the detection is what is mocked, not the arithmetic)."""
    monkeypatch.delenv(precision.ENV, raising=False)

    def set_flags(*names):
        monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(names))
    return set_flags


def _linear_out_dtype(ctx) -> torch.dtype:
    lin = torch.nn.Linear(8, 8)
    with ctx:
        return lin(torch.randn(2, 8)).dtype


def test_cpu_without_bf16_units_keeps_fp32(flags):
    flags("sse2", "avx2", "fma", "avx512f")  # AVX-512 without its bf16 extension is not enough
    assert not precision.cpu_has_bf16()
    assert precision.resolve("auto", "cpu") == "fp32"
    assert _linear_out_dtype(precision.autocast("auto")) == torch.float32
    assert precision.bf16_flags() == {"amx_bf16": False, "avx512_bf16": False}


@pytest.mark.parametrize("flag", ["avx512_bf16", "amx_bf16"])
def test_cpu_with_bf16_units_takes_bf16(flags, flag):
    flags("avx2", flag)
    assert precision.cpu_has_bf16()
    assert precision.resolve("auto", "cpu") == "bf16"
    assert _linear_out_dtype(precision.autocast("auto")) == torch.bfloat16


def test_env_overrides_detection_and_explicit_dtypes_pass_through(flags, monkeypatch):
    flags("amx_bf16")
    monkeypatch.setenv(precision.ENV, "0")
    assert precision.resolve("auto") == "fp32"
    flags("avx2")
    monkeypatch.setenv(precision.ENV, "1")
    assert precision.resolve("auto") == "bf16"
    monkeypatch.setenv(precision.ENV, "maybe")
    with pytest.raises(ConfigError, match="FINSAE_CPU_BF16"):
        precision.cpu_has_bf16()
    monkeypatch.setenv(precision.ENV, "0")
    assert precision.resolve("bf16") == "bf16" and precision.resolve("fp32") == "fp32"
    with pytest.raises(ConfigError, match="dtype="):
        precision.resolve("int8")


def test_real_cpu_flags_are_read():
    precision.cpu_flags.cache_clear()
    got = precision.cpu_flags()
    assert got, "no CPU flags found in /proc/cpuinfo or lscpu"
    assert set(precision.bf16_flags()) == set(precision.BF16_FLAGS)


def test_machine_record_says_which_units_a_measurement_had(flags):
    from finsae import provenance

    flags("avx2", "avx512f", "avx512_bf16", "amx_tile", "fma")
    rec = provenance.machine_record()
    assert rec["bf16_flags"] == {"amx_bf16": False, "avx512_bf16": True} and rec["bf16_units"] is True
    assert rec["isa_flags"] == ["amx_tile", "avx512_bf16", "avx512f"]
    assert rec["cores"] >= 1 and rec["model"] and provenance.machine() == f"{rec['model']} ({rec['cores']} cores)"


def test_bf16_forward_close_to_fp32_on_a_tiny_model(flags):
    """The bf16 path (emulated where the units are missing: slower, same numbers) stays within bf16's ~3
    significant digits of fp32 over two blocks: |bf16 - fp32| <= 0.02 + 0.02 |fp32| elementwise, and the
    relative Frobenius error below 1%."""
    loaded = load_model(get_spec("tiny"))
    torch.manual_seed(0)
    ids = torch.randint(5, loaded.tokenizer.vocab_size, (4, 24))
    mask = torch.ones_like(ids)
    layers = list(range(loaded.num_layers))
    with torch.no_grad():
        ref = hidden_states(loaded.encoder.eval(), ids, mask, layers)
        flags("amx_bf16")
        with precision.autocast("auto"):
            low = hidden_states(loaded.encoder, ids, mask, layers)
    for i in layers:
        a, b = ref.layers[i].float().numpy(), low.layers[i].float().numpy()
        assert low.layers[i].dtype in (torch.bfloat16, torch.float32)
        assert not np.array_equal(a, b), "the bf16 path did not change a single bit: it was not taken"
        np.testing.assert_allclose(b, a, rtol=0.02, atol=0.02)
        assert np.linalg.norm(b - a) / np.linalg.norm(a) < 0.01
