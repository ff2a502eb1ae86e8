"""The extraction's compute dtype follows the CPU (``activations.dtype=auto``): bf16 with bf16 units, fp32
without; recorded in the entry's manifest and key; the bf16 activations stay close to fp32."""

import numpy as np
import pytest

from finsae import precision
from finsae.activations import build_activations


@pytest.mark.parametrize("units, expected", [("0", "fp32"), ("1", "bf16")])
def test_auto_dtype_follows_the_cpu_and_is_recorded(tiny, corpus, cfg, tmp_path, monkeypatch, units, expected):
    monkeypatch.setenv(precision.ENV, units)
    store = build_activations(tiny, corpus, [1], tmp_path, cfg, progress=False)[1]
    assert store.manifest["compute_dtype"] == expected
    assert store.manifest["extract_config"]["dtype"] == "auto"


def test_bf16_entry_is_its_own_and_close_to_fp32(tiny, corpus, cfg, tmp_path, monkeypatch):
    monkeypatch.setenv(precision.ENV, "0")
    full = build_activations(tiny, corpus, [0, 1], tmp_path, cfg, progress=False)
    monkeypatch.setenv(precision.ENV, "1")
    low = build_activations(tiny, corpus, [0, 1], tmp_path, cfg, progress=False)
    for i in (0, 1):
        assert low[i].key != full[i].key  # a bf16 cache never stands in for an fp32 one
        a = np.asarray(full[i].array[:], dtype=np.float32)
        b = np.asarray(low[i].array[:], dtype=np.float32)
        assert a.shape == b.shape
        # bf16 forward, fp16 storage: elementwise within 0.02 + 0.02|x|, relative Frobenius error < 1%
        np.testing.assert_allclose(b, a, rtol=0.02, atol=0.02)
        assert np.linalg.norm(b - a) / np.linalg.norm(a) < 0.01
