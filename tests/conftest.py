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


# ----------------------------------------------------------------------------- velocity families of the flow
def flow_base_points(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Base positions and velocities (n, 3) each, N(0, I), for the given seed."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g), torch.randn(n, 3, generator=g)


def check_flow_equivariance(flow, ux: torch.Tensor, uv: torch.Tensor) -> None:
    """The map and density commute with joint rotations of (x, v), and f(x, v) = f(x, -v)."""
    x, v, lf = flow.log_prob_base(ux, uv)
    for k in range(3):
        Q = random_rotation(10 + k)
        xr, vr = flow.transform(ux @ Q.T, uv @ Q.T)
        assert torch.allclose(xr, x @ Q.T, atol=1e-11) and torch.allclose(vr, v @ Q.T, atol=1e-11)
        assert torch.allclose(flow.log_prob_base(ux @ Q.T, uv @ Q.T)[2], lf, atol=1e-10)
    x2, v2, lf2 = flow.log_prob_base(ux, -uv)
    assert torch.allclose(v2, -v, atol=1e-12) and torch.allclose(lf2, lf, atol=1e-12)


def check_log_det_against_jacobian(flow, ux: torch.Tensor, uv: torch.Tensor, tol: float) -> None:
    """ln f of :meth:`log_prob_base` against the base density over a brute-force 6x6 Jacobian of the map."""
    _, _, lf = flow.log_prob_base(ux, uv)

    def T(z):
        x, v = flow.transform(z[:3].unsqueeze(0), z[3:].unsqueeze(0))
        return torch.cat([x[0], v[0]])

    for i in range(ux.shape[0]):
        z = torch.cat([ux[i], uv[i]])
        J = torch.autograd.functional.jacobian(T, z)
        brute = -0.5 * float(z @ z) - 3.0 * np.log(2 * np.pi) - torch.linalg.slogdet(J)[1]
        assert float(lf[i]) == pytest.approx(float(brute), abs=tol)


def plummer_losvd(R: float, v: float, law) -> float:
    """Int nu(r) law(v, n_z) dz / Int nu dz for the unit Plummer sphere (an untrained flow's positions)."""
    nu = lambda z: (1.0 + R * R + z * z) ** -2.5  # noqa: E731
    top = integrate.quad(lambda z: nu(z) * law(v, z / np.sqrt(R * R + z * z)), 0.0, np.inf,
                         epsabs=1e-13, epsrel=1e-9)[0]
    return top / integrate.quad(nu, 0.0, np.inf, epsabs=1e-13, epsrel=1e-10)[0]


def check_losvd_against_samples(flow, log_losvd) -> None:
    """The exact LOSVD at R = 0.5 against a kernel estimate from 8e4 flow samples (~4000 in a +-8 % annulus)."""
    with torch.no_grad():
        x, v = flow.sample(80_000, torch.Generator().manual_seed(0))
    R = torch.linalg.vector_norm(x[:, :2], dim=-1)
    h, R0 = 0.3, 0.5
    grid = torch.linspace(-2.5, 2.5, 11)
    vz = v[(R > 0.92 * R0) & (R < 1.08 * R0), 2].numpy()
    mc = np.array([np.mean(np.exp(-0.5 * ((g - vz) / h) ** 2)) / (h * np.sqrt(2 * np.pi)) for g in grid.numpy()])
    mc = 0.5 * (mc + mc[::-1])
    _, lp = log_losvd(flow, torch.full_like(grid, R0), grid, torch.tensor(h))
    np.testing.assert_allclose(np.exp(lp.detach().numpy()), mc, rtol=0.1, atol=1e-3 * mc.max())


def sampled_beta(flow, r: np.ndarray, n: int = 100_000) -> list[float]:
    """beta = 1 - sigma_t^2 / (2 sigma_r^2) of ``n`` flow samples in shells of +-15 % around each radius."""
    with torch.no_grad():
        x, v = flow.sample(n, torch.Generator().manual_seed(1))
    rr = torch.linalg.vector_norm(x, dim=-1)
    vr = (v * x).sum(-1) / rr
    vt2 = (v * v).sum(-1) - vr * vr
    out = []
    for ri in r:
        sel = (rr > 0.85 * ri) & (rr < 1.15 * ri)
        out.append(1.0 - 0.5 * float(vt2[sel].mean()) / float((vr[sel] ** 2).mean()))
    return out
