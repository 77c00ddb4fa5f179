"""Freed tensor memory stays in the process: a repeated large allocation stops page-faulting."""
from __future__ import annotations

import resource

import pytest
import torch

from dsphnf.flows.allocator import MMAP_THRESHOLD, keep_freed_memory


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def test_a_repeated_40_mb_tensor_is_served_from_kept_memory():
    """40 MB is above glibc's largest dynamic mmap threshold (32 MB): by default every allocation is a
    fresh mapping, ~10^4 page faults each; with the thresholds raised the block is reused."""
    if not keep_freed_memory():
        pytest.skip("not glibc, or the user's malloc settings stand")
    n = 5_000_000  # 40 MB of float64, below MMAP_THRESHOLD
    assert 8 * n < MMAP_THRESHOLD
    torch.ones(n, dtype=torch.float64)  # the heap grows once
    before = _minor_faults()
    for _ in range(20):
        assert float(torch.ones(n, dtype=torch.float64)[-1]) == 1.0
    pages = 8 * n // 4096
    # fresh mappings fault ~20 x pages; kept memory ~0, plus whatever the kernel reclaims meanwhile
    # (a run on a loaded machine measured 3 x pages once, so the bound is half the fresh-mapping count)
    assert _minor_faults() - before < 10 * pages


def test_keep_freed_memory_is_decided_once():
    assert keep_freed_memory() is keep_freed_memory()


def test_the_opt_out_leaves_glibcs_thresholds_alone(monkeypatch):
    """DSPHNF_KEEP_FREED_MEMORY=0: _apply refuses before touching mallopt (decided per process, so _apply itself)."""
    from dsphnf.flows import allocator

    monkeypatch.setenv(allocator.OPT_OUT, "0")
    assert allocator._apply() is False
