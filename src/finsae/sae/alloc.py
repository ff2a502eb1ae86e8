"""Opt-in glibc malloc tuning for SAE training loops.

Each step allocates a few tensors of tens of MB (the ``[m, d]`` weight gradients, about 75 MB
each at m = 24,576, d = 768). glibc serves every allocation above 32 MB with a fresh ``mmap``
and unmaps it on free, so the next step pays a page fault per 4 KiB page again (~60 ms per
75 MB on one core, ~10-15 % of a CPU training step). :func:`keep_freed_memory` tells glibc
to use its heap for all sizes and never give freed memory back, so steady-state steps reuse
the same pages. It is process-wide (every library in the process is affected), it keeps the
process's RSS at its peak, and it is never called by the library itself: call it once at
the start of a training process (the benchmark does, for every contender alike).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse (no mmap, no trim). True if applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl) or no libc found
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
