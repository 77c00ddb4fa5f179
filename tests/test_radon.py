"""Radon/Abel projection: deprojection against closed forms, rotation invariance of projections."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from dsphnf.mocks import get_model, sample_stars
from dsphnf.profiles import plummer
from dsphnf.projection import sigma_los, surface_density
from dsphnf.catalog import Catalog
from dsphnf.binned import binned_profiles
from dsphnf.radon import abel_deproject, project_stars, random_rotation


def test_random_rotation_is_proper_and_uniform() -> None:
    rng = np.random.default_rng(0)
    mats = np.array([random_rotation(rng) for _ in range(2000)])
    for q in mats[:20]:
        np.testing.assert_allclose(q @ q.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(q) == pytest.approx(1.0)
    # Haar measure: the rotated z axis is uniform on the sphere, so its z component is U(-1, 1)
    assert stats.kstest(mats[:, 2, 2], "uniform", args=(-1, 2)).pvalue > 0.01


def test_abel_deprojection_recovers_plummer() -> None:
    a = 0.3
    p = plummer(1.0, a)
    R = np.geomspace(1e-3, 30.0, 300)
    Sigma_exact = 1.0 / (np.pi * a**2) * (1 + R**2 / a**2) ** -2
    np.testing.assert_allclose(surface_density(R, p), Sigma_exact, rtol=1e-6)
    r = np.geomspace(0.01, 3.0, 25)
    np.testing.assert_allclose(abel_deproject(R, Sigma_exact, r), p.density(r), rtol=2e-3)


def test_projection_is_the_same_from_every_direction() -> None:
    """A spherical equilibrium model projects to the same (R, v_z) statistics from any angle."""
    model = get_model("NonPlumCuspIso")
    stars = sample_stars(model, 20000, seed=3)
    base = project_stars(stars)
    rot = project_stars(stars, random_rotation(7))
    R0, R1 = np.hypot(base[:, 0], base[:, 1]), np.hypot(rot[:, 0], rot[:, 1])
    assert stats.ks_2samp(R0, R1).pvalue > 0.001
    assert stats.ks_2samp(base[:, 2], rot[:, 2]).pvalue > 0.001
    # and both match the analytic projections
    prof = binned_profiles(Catalog(rot[:, 0], rot[:, 1], rot[:, 2]), n_bins=8, n_boot=0)
    Sig = surface_density(prof["R"], model.tracer)
    sig = sigma_los(prof["R"], model.tracer, model.halo.mass, model.anisotropy)
    assert np.all(np.abs(prof["sigma_los"] - sig) < 4 * prof["sigma_los_err"])
    # bin-averaged Sigma differs from Sigma at the bin's mean R by curvature; allow 15%.
    # The outermost bin reaches the farthest star, so its average is not a local value.
    np.testing.assert_allclose(prof["Sigma"][:-1] / len(R1), Sig[:-1], rtol=0.15)


def test_binned_dispersion_errors_bootstrap_and_gaussian_agree() -> None:
    rng = np.random.default_rng(1)
    cat = Catalog(rng.normal(0, 0.3, 2000), rng.normal(0, 0.3, 2000), rng.normal(0, 10, 2000))
    fast = binned_profiles(cat, 5, n_boot=0)
    boot = binned_profiles(cat, 5, n_boot=300)
    np.testing.assert_allclose(fast["sigma_los"], boot["sigma_los"])
    np.testing.assert_allclose(fast["sigma_los_err"], boot["sigma_los_err"], rtol=0.25)
    assert np.all(np.abs(fast["sigma_los"] - 10) < 4 * fast["sigma_los_err"])
