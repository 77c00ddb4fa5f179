"""Tests of dsphnf.mocks: the Gaia Challenge models, their samples and their truth."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import check_sky_against_projection
from scipy import integrate, stats

from dsphnf.anisotropy import OsipkovMerritt
from dsphnf.errors import DsphnfError
from dsphnf.mocks import MODELS, get_model, model_from_filename, sample_stars, truth_profiles
from dsphnf.projection import surface_density

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gaia_challenge"
REAL_FILES = sorted(DATA.glob("*/*.dat")) if DATA.is_dir() else []


def test_models_table():
    assert len(MODELS) == 8
    m = get_model("nonplumcuspiso")
    assert m is MODELS["NonPlumCuspIso"]
    assert (m.tracer.alpha, m.tracer.beta, m.tracer.gamma, m.tracer.rs) == (2.0, 5.0, 1.0, 0.25)
    assert (m.halo.rho0, m.halo.rs, m.halo.gamma) == (6.4e7, 1.0, 1.0)
    assert m.tracer.total_mass() == pytest.approx(1.0, rel=1e-12)
    om = MODELS["PlumCuspOm"]
    assert om.anisotropy == OsipkovMerritt(0.10) and om.tracer.gamma == 0.1
    assert MODELS["PlumCoreIso"].halo.gamma == 0.0 and MODELS["PlumCoreIso"].halo.rho0 == 4.0e8
    with pytest.raises(DsphnfError, match="unknown model 'Draco'; choose one of: PlumCoreIso"):
        get_model("Draco")


def test_model_from_filename():
    assert model_from_filename("x/gs100_bs050_rcrs025_rarcinf_cusp_0064mpc3_df_1000_0.dat") is MODELS["NonPlumCuspIso"]
    assert model_from_filename("gs010_bs050_rcrs010_rarc100_cusp_0064mpc3_df_100_0_err.dat") is MODELS["PlumCuspOm"]
    assert model_from_filename("gs010_bs050_rcrs025_rarc100_core_0400mpc3_df_10000_0.dat") is MODELS["PlumCoreOm"]
    other = model_from_filename("gs050_bs050_rcrs050_rarc200_core_0400mpc3_df_1000_0.dat")
    assert other.tracer.gamma == 0.5 and other.anisotropy == OsipkovMerritt(1.0)
    assert model_from_filename("dra_spec.dat") is None


def test_truth_matches_published_benchmark():
    """NonPlumCuspIso truth values quoted with the Gaia Challenge data (data/README.md)."""
    t = truth_profiles("NonPlumCuspIso", np.array([0.1, 0.15, 0.25, 0.5, 1.0]))
    np.testing.assert_allclose(t["rho"], [5.29e8, 3.23e8, 1.64e8, 5.69e7, 1.60e7], rtol=5e-3)
    np.testing.assert_allclose(t["M"][[2, 4]], [1.86e7, 1.55e8], rtol=5e-3)
    assert np.all(t["beta"] == 0.0)
    # projected half-light radius 0.190 kpc: half of the stars inside R
    R = np.geomspace(1e-5, 1e3, 3000)
    sig = surface_density(R, MODELS["NonPlumCuspIso"].tracer.density)
    cum = integrate.cumulative_trapezoid(2 * np.pi * R**2 * sig, np.log(R), initial=0.0)
    assert cum[-1] == pytest.approx(1.0, rel=1e-3)
    assert np.interp(0.5, cum, R) == pytest.approx(0.190, abs=1.5e-3)


@pytest.fixture(scope="module")
def om_sample():
    return sample_stars("PlumCoreOm", 100_000, seed=3)


def test_projected_density_and_los_dispersion(om_sample):
    """R of 1e5 stars follows the CDF of Sigma(R); binned sigma_los(R) matches the projected Jeans solution."""
    model = MODELS["PlumCoreOm"]
    # Sigma-weighted bin averages of sigma_los^2, ~10 000 stars per bin
    grid = np.geomspace(1e-5, 1e3, 3000)
    check_sky_against_projection(om_sample, model.tracer.density, model.halo.mass, model.anisotropy, grid, n_edges=10)


def test_seed_and_velocity_errors():
    a = sample_stars("NonPlumCuspIso", 20_000, seed=7)
    b = sample_stars("nonplumcuspiso", 20_000, seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, sample_stars("NonPlumCuspIso", 20_000, seed=8))
    e = sample_stars("NonPlumCuspIso", 20_000, seed=7, verr=2.0)
    np.testing.assert_array_equal(a[:, :3], e[:, :3])  # same stars, errors only on velocities
    d = (e[:, 3:] - a[:, 3:]).ravel()
    assert stats.kstest(d / 2.0, "norm").pvalue > 0.01
    # vz dispersion widens in quadrature: var(vz + err) = var(vz) + verr^2
    assert np.var(e[:, 5]) - np.var(a[:, 5]) == pytest.approx(4.0, abs=0.5)
    with pytest.raises(DsphnfError):
        sample_stars("NonPlumCuspIso", 10, verr=-1.0)


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name)
def test_ks_against_gaia_challenge_files(path):
    """Projected radii and v_z of our draws are indistinguishable from the published mocks."""
    model = model_from_filename(path)
    assert model is not None
    data = np.loadtxt(path)
    verr = 2.0 if path.stem.endswith("_err") else 0.0
    ours = sample_stars(model, len(data), seed=0, verr=verr)
    p_r = stats.ks_2samp(np.hypot(data[:, 0], data[:, 1]), np.hypot(ours[:, 0], ours[:, 1])).pvalue
    p_v = stats.ks_2samp(data[:, 5], ours[:, 5]).pvalue
    assert p_r > 0.01 and p_v > 0.01, (p_r, p_v)


def _radial_tangential(stars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radial and (total) tangential velocity [km/s] of (n, 6) stars."""
    r = np.linalg.norm(stars[:, :3], axis=1)
    vr = np.sum(stars[:, :3] * stars[:, 3:], axis=1) / r
    return vr, np.sqrt(np.maximum(np.sum(stars[:, 3:] ** 2, axis=1) - vr**2, 0.0))


@pytest.mark.parametrize("path", [p for p in REAL_FILES if "_df_10000_" in p.name], ids=lambda p: p.name)
def test_3d_velocities_against_large_gaia_challenge_files(path):
    """The full 6-D files: v_r and v_t distributions match (these tell OM from isotropic and core from cusp)."""
    model = model_from_filename(path)
    data = np.loadtxt(path)
    verr = 2.0 if path.stem.endswith("_err") else 0.0
    ours = sample_stars(model, len(data), seed=0, verr=verr)
    for a, b in zip(_radial_tangential(data), _radial_tangential(ours)):
        assert stats.ks_2samp(a, b).pvalue > 0.01


def test_real_data_folder_present():
    if not DATA.is_dir():
        pytest.skip("reference data ../shared/data/gaia_challenge absent")
    assert len(REAL_FILES) >= 4
