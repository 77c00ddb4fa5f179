"""Shared fixtures: torch settings for the flow tests, restored afterwards."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small tensors: one torch thread is fastest, and avoids oversubscribing a shared CPU."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def float64_one_thread(one_torch_thread):
    """float64 physics checks on one torch thread; the default dtype is restored afterwards."""
    old_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old_dtype)
