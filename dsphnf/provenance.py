"""Where a result was computed: the software's versions and the machine's CPU, for summary.json.

A flow fit is reproducible bit for bit on one CPU and torch thread count
only. Training is a long non-convex optimisation, so a last-bit difference in
one kernel (torch picks AVX-512 kernels on one CPU and AVX2 ones on another)
grows into a different optimum: the same seeds gave fits up to 0.15 dex apart
on the project's Intel (AVX-512) and AMD (AVX2) machines
(benchmarks/RESULTS.md). So every fit's summary names its machine, and a
calibration counts the machines its fits ran on.
"""
from __future__ import annotations

import os
import platform
import sys
from collections import Counter
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Iterable

__all__ = ["software_versions", "machine", "cpu_label", "machine_tally"]

#: Label of a fit whose machine was not recorded (a task stored by an older dsphnf).
UNRECORDED = "not recorded"


def software_versions() -> dict[str, str]:
    """Versions of dsphnf, Python and the numerical packages a fit depends on.

    Examples
    --------
    >>> sorted(software_versions())
    ['dsphnf', 'numpy', 'python', 'torch', 'torchdiffeq']
    """
    from . import __version__

    return {"dsphnf": __version__, "python": platform.python_version(),
            **{name: _version(name) for name in ("numpy", "torch", "torchdiffeq")}}


def machine() -> dict[str, Any]:
    """The CPU model, its widest vector instructions, the instruction set torch's CPU kernels use, the
    architecture, OS and number of CPUs.

    Examples
    --------
    >>> m = machine()
    >>> sorted(m)
    ['arch', 'cpu', 'cpus', 'os', 'simd', 'torch_cpu_capability']
    >>> m["cpus"] >= 1
    True
    """
    model, flags = _cpuinfo()
    return {"cpu": model, "simd": _widest_simd(flags), "torch_cpu_capability": _torch_capability(),
            "arch": platform.machine(), "os": platform.system(), "cpus": os.cpu_count() or 1}


def cpu_label() -> str:
    """One short string for the CPU and its widest vector instructions, e.g. ``'AMD EPYC (AVX2)'``.

    Examples
    --------
    >>> m = machine()
    >>> cpu_label() == f"{m['cpu']} ({m['simd']})"
    True
    """
    model, flags = _cpuinfo()
    return f"{model} ({_widest_simd(flags)})"


def machine_tally(labels: Iterable[str | None]) -> dict[str, int]:
    """How many fits ran on each machine (:func:`cpu_label`); None counts as :data:`UNRECORDED`.

    Examples
    --------
    >>> machine_tally(["Intel Xeon (AVX512)", "AMD EPYC (AVX2)", "AMD EPYC (AVX2)", None])
    {'AMD EPYC (AVX2)': 2, 'Intel Xeon (AVX512)': 1, 'not recorded': 1}
    """
    return dict(sorted(Counter(UNRECORDED if label is None else label for label in labels).items()))


def _cpuinfo() -> tuple[str, set[str]]:
    """The CPU's model name and feature flags (Linux: /proc/cpuinfo; elsewhere what :mod:`platform` says, no flags)."""
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if not model and key in ("model name", "hardware", "cpu model"):
                    model = value.strip()
                elif not flags and key in ("flags", "features"):
                    flags = set(value.split())
    except OSError:
        pass
    return model or platform.processor() or platform.machine() or "unknown", flags


def _widest_simd(flags: set[str]) -> str:
    """The widest vector extension among the CPU's flags (``'AVX512'``, ``'AVX2'``, ...; ``'unknown'`` without flags).

    Examples
    --------
    >>> _widest_simd({"sse2", "avx", "avx2", "fma"}), _widest_simd({"asimd"}), _widest_simd(set())
    ('AVX2', 'NEON', 'unknown')
    """
    for flag, name in (("avx512f", "AVX512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sse4_2", "SSE4.2"),
                       ("sve", "SVE"), ("asimd", "NEON")):
        if flag in flags:
            return name
    return "unknown"


def _torch_capability() -> str:
    """The instruction set of torch's CPU kernels (``'AVX2'``, ``'AVX512'``, ...); ``'no torch'`` where torch was not
    imported (a baseline fit alone does not load it, and its record need not pay for loading it)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return "no torch"
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except AttributeError:  # pragma: no cover - torch older than 2.0
        return "unknown"


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:  # pragma: no cover - a source checkout without installation
        return "unknown"
