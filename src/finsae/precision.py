"""bf16 where the CPU has bf16 units, fp32 where it does not (torch is imported only when a GPU or an autocast
context is asked for, so the demo runner starts fast).

On a CPU with AMX-BF16 or AVX-512-BF16 a MiniLM forward under ``torch.autocast("cpu", dtype=torch.bfloat16)``
runs several times faster than in fp32; on one without them the same autocast is emulated and several times
*slower* (6x measured on an AVX2 machine). So "auto" means bf16 exactly when ``/proc/cpuinfo`` (or ``lscpu``)
lists one of :data:`BF16_FLAGS`. ``$FINSAE_CPU_BF16`` (``0``/``1``) overrides the detection: the test suite pins
it to ``0`` so that its bit-identity checks hold on every CPU.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from functools import lru_cache

from finsae.errors import ConfigError

BF16_FLAGS = ("amx_bf16", "avx512_bf16")
"""CPU flags of native bf16 matrix/vector units."""
ENV = "FINSAE_CPU_BF16"
CHOICES = ("auto", "fp32", "bf16", "fp16")


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (first processor of ``/proc/cpuinfo``, else ``lscpu``); empty when unknown."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    for line in out.splitlines():
        if line.lower().startswith("flags:"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def bf16_flags() -> dict[str, bool]:
    """Each of :data:`BF16_FLAGS`: present on this CPU or not (what ``timing.json`` records)."""
    flags = cpu_flags()
    return {f: f in flags for f in BF16_FLAGS}


def cpu_has_bf16() -> bool:
    """Native bf16 units on this CPU (``$FINSAE_CPU_BF16`` = ``0``/``1`` overrides the detection)."""
    env = os.environ.get(ENV, "").strip().lower()
    if env in ("0", "false", "no"):
        return False
    if env in ("1", "true", "yes"):
        return True
    if env not in ("", "auto"):
        raise ConfigError(f"${ENV}={env!r}; use 0, 1 or auto")
    return any(bf16_flags().values())


def resolve(dtype: str, device="cpu") -> str:
    """The concrete compute dtype name for ``dtype`` (``auto``/``fp32``/``bf16``/``fp16``) on ``device``:
    ``auto`` is bf16 on a CPU with bf16 units and on GPUs that have bf16, fp16 on older GPUs, else fp32."""
    if dtype not in CHOICES:
        raise ConfigError(f"dtype={dtype!r}; choose one of {list(CHOICES)}")
    if dtype != "auto":
        return dtype
    kind = device if isinstance(device, str) else device.type
    if kind.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if kind == "cpu":
        return "bf16" if cpu_has_bf16() else "fp32"
    return "fp32"


def autocast(dtype: str, device="cpu"):
    """The context for a model forward in the compute dtype ``resolve(dtype, device)``: ``torch.autocast`` for
    bf16/fp16, a no-op for fp32."""
    name = resolve(dtype, device)
    if name == "fp32":
        return contextlib.nullcontext()
    import torch

    kind = device if isinstance(device, str) else device.type
    return torch.autocast(kind.split(":")[0], dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[name])
