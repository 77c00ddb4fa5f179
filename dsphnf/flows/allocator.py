"""Keep freed tensor memory in the process during training (glibc's malloc on Linux).

Every evaluation of the exact objective allocates and frees the same
tensors again (a few hundred kB to tens of MB each, for 1000 stars). With
glibc's default settings, blocks above the mmap threshold (128 kB, raised
dynamically up to 32 MB) are mapped afresh for each allocation, and freed
memory at the top of the heap beyond the trim threshold goes back to the
operating system; either way the next allocation page-faults its memory in
again and has it zeroed by the kernel. On the 2-core benchmark machine that
was ~20 % of the CPU time of one objective evaluation (one flow: 0.12 s ->
0.10 s; 8 batched members: 0.64 s -> 0.52 s; benchmarks/RESULTS.md), and it
changes no arithmetic: the results are bit for bit the same.

:func:`keep_freed_memory` raises both thresholds (M_MMAP_THRESHOLD to
64 MiB, M_TRIM_THRESHOLD to 1 GiB) with ``mallopt``, once per process; the
process then holds on to up to 1 GiB of freed heap for reuse. The mmap
threshold stays below the arrays of a piece of a large catalogue
(:data:`~dsphnf.flows.losvd.STAR_CHUNK`: 104 MB): with 512 MiB the
heap grew with the number of pieces (a full-data objective with its
gradient: 2.2 GB at 1e5 stars, 4.0 GB at 2e5); with 64 MiB it stays near
2 GB (benchmarks/RESULTS.md, "Cost against the number of stars"). It does
nothing off glibc, and nothing when the user has set glibc's own malloc
environment variables (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``,
``GLIBC_TUNABLES``), which then stand. ``DSPHNF_KEEP_FREED_MEMORY=0`` in the
environment turns it off (for a notebook or service that must not keep the
freed heap; training then costs ~20 % more CPU).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["keep_freed_memory", "MMAP_THRESHOLD", "TRIM_THRESHOLD", "OPT_OUT"]

#: allocations up to this size [bytes] come from the heap, not from fresh mappings
MMAP_THRESHOLD = 64 << 20
#: free memory at the top of the heap kept before it is returned [bytes]
TRIM_THRESHOLD = 1 << 30
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")
#: set to "0" to leave glibc's thresholds alone
OPT_OUT = "DSPHNF_KEEP_FREED_MEMORY"
_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (once); True when they are in force.

    False off Linux/glibc, when ``mallopt`` refuses, when the user's own
    malloc environment variables are set (they are left alone), or with
    ``DSPHNF_KEEP_FREED_MEMORY=0``.

    >>> keep_freed_memory() in (True, False)
    True
    """
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if not sys.platform.startswith("linux") or any(v in os.environ for v in _USER_SETTINGS):
        return False
    if os.environ.get(OPT_OUT, "1").strip() == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
