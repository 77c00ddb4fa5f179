"""Shared fixtures: torch settings for the flow tests, restored afterwards, and the reference data.

Tests that need the third-party reference data (Gaia Challenge mocks, Walker
catalogues) get them through the ``reference_data`` or ``reference_file``
fixtures, which look where :func:`dsphnf.datasets.data_root` looks
(``DSPHNF_DATA``, then ``../shared/data``) and skip the test cleanly, with
one line saying what is missing, when they are absent.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch

from dsphnf.datasets import data_root


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


def find_reference(*parts: str) -> Path:
    """The reference-data folder, or ``parts`` inside it; skips the calling test when absent."""
    root = data_root()
    if root is None:
        pytest.skip("reference data absent (set DSPHNF_DATA to the folder holding gaia_challenge/ and walker_dwarfs/)")
    path = root.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference file {Path(*parts)} absent from the reference-data folder")
    return path


@pytest.fixture
def reference_data() -> Path:
    """The reference-data folder (skips the test when absent)."""
    return find_reference()


@pytest.fixture
def reference_file() -> Callable[..., Path]:
    """``reference_file("gaia_challenge", "PlumCoreOm", name)``: a file of the reference data, or skip."""
    return find_reference
