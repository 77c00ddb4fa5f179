"""Spherical Jeans equation: forward solution against closed forms, and the
inverse (mass and density from nu, sigma_r^2, beta) round trip."""
from __future__ import annotations

import numpy as np
import pytest

from dsphnf.anisotropy import CallableBeta, ConstantBeta, Isotropic, OsipkovMerritt
from dsphnf.constants import G
from dsphnf.jeans import density_from_mass, jeans_profiles, mass_from_jeans, nu_sigma_r2, sigma_r2
from dsphnf.profiles import Zhao, nfw, plummer

HALO = nfw(6.4e7, 1.0)
TRACER = Zhao(1.0, 0.25, 2.0, 5.0, 1.0)
R_GRID = np.geomspace(1e-3, 20.0, 200)


def test_isotropic_plummer_sigma_r():
    """Self-consistent isotropic Plummer: sigma_r^2 = G M / (6 sqrt(r^2 + a^2))."""
    M, a = 1.0e8, 0.3
    pl = plummer(M, a)
    r = np.geomspace(1e-4, 50.0, 40)
    np.testing.assert_allclose(sigma_r2(r, pl, pl.mass, Isotropic()), G * M / (6 * np.sqrt(r**2 + a**2)), rtol=1e-10)


@pytest.mark.parametrize("beta", [-0.5, 0.0, 0.3, 0.8])
def test_power_law_in_log_halo(beta):
    """nu ~ r^-g in M = v_c^2 r / G: sigma_r^2 = v_c^2 / (g - 2 beta), any anisotropy spelling."""
    vc, g = 15.0, 3.5
    nu = lambda r: np.asarray(r, dtype=float) ** -g
    mass = lambda r: vc**2 * np.asarray(r, dtype=float) / G
    r = np.geomspace(1e-2, 1.0, 15)
    exact = vc**2 / (g - 2 * beta)
    # boundary sigma_r^2(r_max) = 0 costs (r_max/r)^(2 beta - g) relative: push it out
    np.testing.assert_allclose(sigma_r2(r, nu, mass, ConstantBeta(beta), r_max=1e7), exact, rtol=1e-7)
    cb = CallableBeta(lambda s: np.full_like(s, beta))
    np.testing.assert_allclose(sigma_r2(r, nu, mass, cb, r_max=1e7), exact, rtol=1e-7)
    # inverse Jeans with exact slopes gives back M exactly
    Mi = mass_from_jeans(r, nu(r), np.full_like(r, exact), beta, np.full_like(r, -g), np.zeros_like(r))
    np.testing.assert_allclose(Mi, mass(r), rtol=1e-12)


def test_callable_om_equals_analytic_om():
    om = OsipkovMerritt(0.3)
    r = np.geomspace(1e-3, 10.0, 25)
    a = nu_sigma_r2(r, TRACER, HALO.mass, om)
    b = nu_sigma_r2(r, TRACER, HALO.mass, CallableBeta(om.beta))
    np.testing.assert_allclose(b, a, rtol=1e-9)
    # sigma_r^2 does not depend on the normalisation of nu
    np.testing.assert_allclose(sigma_r2(r, TRACER.normalised(), HALO.mass, om), a / TRACER(r), rtol=1e-12)


@pytest.mark.parametrize(
    "model",
    [Isotropic(), ConstantBeta(0.3), OsipkovMerritt(0.25), CallableBeta(lambda r: 0.5 * r / (r + 0.5))],
    ids=["iso", "const", "om", "callable"],
)
def test_round_trip_recovers_mass_and_density(model):
    r = R_GRID
    s2 = sigma_r2(r, TRACER, HALO.mass, model)
    M = mass_from_jeans(r, TRACER(r), s2, model)
    np.testing.assert_allclose(M, HALO.mass(r), rtol=1e-4)  # whole grid, edges included
    np.testing.assert_allclose(M[3:-3], HALO.mass(r)[3:-3], rtol=1e-6)
    # beta given as an array on the grid gives the same answer
    np.testing.assert_allclose(mass_from_jeans(r, TRACER(r), s2, model.beta(r)), M, rtol=1e-12)
    rho = density_from_mass(r, M)
    np.testing.assert_allclose(rho[5:-5], HALO.density(r)[5:-5], rtol=1e-5)


def test_density_from_mass_nfw():
    r = np.geomspace(1e-3, 50.0, 300)
    np.testing.assert_allclose(density_from_mass(r, HALO.mass(r)), HALO.density(r), rtol=1e-5)
    # with the exact derivative it is exact
    dM = 4 * np.pi * r**2 * HALO.density(r)
    np.testing.assert_allclose(density_from_mass(r, HALO.mass(r), dM), HALO.density(r), rtol=1e-14)


def test_jeans_profiles_table():
    out = jeans_profiles(R_GRID, TRACER, HALO.mass, OsipkovMerritt(0.25))
    assert set(out) >= {"r", "nu", "sigma_r", "beta", "M", "rho"}
    np.testing.assert_allclose(out["rho"], HALO.density(R_GRID), rtol=1e-14)  # from Zhao.density
    np.testing.assert_allclose(out["beta"], R_GRID**2 / (R_GRID**2 + 0.25**2))
    np.testing.assert_allclose(out["sigma_r"] ** 2, sigma_r2(R_GRID, TRACER, HALO.mass, OsipkovMerritt(0.25)))
    # a plain callable mass: rho from M'(r)
    plain = jeans_profiles(R_GRID, TRACER, lambda r: HALO.mass(r))
    np.testing.assert_allclose(plain["rho"][5:-5], HALO.density(R_GRID)[5:-5], rtol=1e-5)
    # sanity: sigma_r of this model is of order 10 km/s
    assert 5.0 < out["sigma_r"][np.searchsorted(R_GRID, 0.25)] < 20.0


def test_bad_grids_raise():
    with pytest.raises(ValueError):
        mass_from_jeans(np.array([1.0, 0.5, 2.0]), np.ones(3), np.ones(3), 0.0)
    with pytest.raises(ValueError):
        sigma_r2(np.array([-1.0]), TRACER, HALO.mass)
