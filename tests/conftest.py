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

import numpy as np
import pytest
import torch
from scipy import integrate, stats

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


def check_sky_against_projection(stars: np.ndarray, nu, mass, anisotropy, grid: np.ndarray, n_edges: int) -> None:
    """Projected stars against the exact projections of their model.

    KS test (p > 0.01) of R against the CDF of Sigma(R), and in ``n_edges - 1``
    equal-number annuli between the 5th and 95th percentile of R the rms v_z
    against the Sigma-weighted annulus mean of sigma_los^2, within 3 % in sigma.
    ``stars`` holds x, y, z [kpc], vx, vy, vz [km/s]; ``grid`` the projected
    radii [kpc] the projections are tabulated on.
    """
    from dsphnf.projection import surface_density_and_sigma_los2

    R = np.hypot(stars[:, 0], stars[:, 1])
    sig, s2los = surface_density_and_sigma_los2(grid, nu, mass, anisotropy)
    cdf = integrate.cumulative_trapezoid(2 * np.pi * grid**2 * sig, np.log(grid), initial=0.0)
    assert stats.kstest(R, lambda q: np.interp(q, grid, cdf)).pvalue > 0.01
    edges = np.interp(np.linspace(0.05, 0.95, n_edges), cdf, grid)
    idx = np.digitize(R, edges) - 1
    for k in range(len(edges) - 1):
        sel = (grid >= edges[k]) & (grid < edges[k + 1])
        w = grid[sel] ** 2 * sig[sel]
        truth = integrate.trapezoid(w * s2los[sel], grid[sel]) / integrate.trapezoid(w, grid[sel])
        assert np.sqrt(np.mean(stars[idx == k, 5] ** 2) / truth) == pytest.approx(1.0, abs=0.03), k


def random_rotation(seed: int) -> torch.Tensor:
    """A proper rotation matrix (3, 3), float64, uniform (Haar) for the given seed."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q
