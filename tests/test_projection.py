"""Projected surface density and line-of-sight dispersion against closed forms
and brute-force double quadrature."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from dsphnf.anisotropy import CallableBeta, ConstantBeta, Isotropic, OsipkovMerritt
from dsphnf.constants import G
from dsphnf.profiles import Zhao, nfw, plummer
from dsphnf.projection import (
    constant_beta_kernel,
    om_kernel,
    sigma_los,
    sigma_los2,
    surface_density,
    surface_density_and_sigma_los2,
)

M_PL, A_PL = 1.0e8, 0.3
R_GRID = np.geomspace(1e-3, 30.0, 40)

# Gaia-Challenge-like model: NFW halo, Zhao (2, 5, 1) tracer with r* = 0.25 kpc
RHO0, RS, RSTAR = 6.4e7, 1.0, 0.25
HALO = nfw(RHO0, RS)
TRACER = Zhao(1.0, RSTAR, 2.0, 5.0, 1.0)  # deliberately not normalised


def test_plummer_surface_density():
    pl = plummer(M_PL, A_PL)
    exact = M_PL * A_PL**2 / (np.pi * (A_PL**2 + R_GRID**2) ** 2)
    np.testing.assert_allclose(surface_density(R_GRID, pl), exact, rtol=1e-8)


def test_isotropic_plummer_sigma_los():
    """Self-consistent isotropic Plummer: sigma_los^2 = 3 pi G M / (64 sqrt(a^2 + R^2))."""
    pl = plummer(M_PL, A_PL)
    exact = 3.0 * np.pi * G * M_PL / (64.0 * np.sqrt(A_PL**2 + R_GRID**2))
    np.testing.assert_allclose(sigma_los2(R_GRID, pl, pl.mass, Isotropic()), exact, rtol=1e-7)
    np.testing.assert_allclose(sigma_los(R_GRID, pl, pl.mass), np.sqrt(exact), rtol=1e-7)


def test_plummer_closed_form_by_double_quad():
    """The closed form used above, checked by nested quadrature of the Jeans integrals."""
    pl = plummer(M_PL, A_PL)
    nu = lambda r: float(pl.density(r))
    p = lambda r: integrate.quad(lambda s: nu(s) * G * float(pl.mass(s)) / s**2, r, np.inf, epsrel=1e-11)[0]
    R = 0.2
    # r = R + y^2 removes the 1/sqrt(r - R) edge
    outer = lambda y: 2.0 * p(R + y * y) * (R + y * y) * 2.0 * y / (y * math.sqrt(2 * R + y * y))
    num = integrate.quad(outer, 0.0, np.inf, epsrel=1e-10, limit=200)[0]
    sig = 2.0 * integrate.quad(lambda y: nu(R + y * y) * (R + y * y) * 2.0 / math.sqrt(2 * R + y * y), 0, np.inf)[0]
    assert num / sig == pytest.approx(3.0 * np.pi * G * M_PL / (64.0 * math.sqrt(A_PL**2 + R**2)), rel=1e-8)


@pytest.mark.parametrize("beta", [-0.5, 0.0, 0.25, 0.5, 0.7])
def test_power_law_tracer_in_log_halo(beta):
    """nu ~ r^-g in M = v_c^2 r / G: sigma_los^2 = v_c^2 (1 - beta (g - 1)/g) / (g - 2 beta)."""
    vc, g = 20.0, 4.0
    nu = lambda r: np.asarray(r, dtype=float) ** -g
    mass = lambda r: vc**2 * np.asarray(r, dtype=float) / G
    R = np.geomspace(0.05, 3.0, 12)
    exact = vc**2 * (1.0 - beta * (g - 1.0) / g) / (g - 2.0 * beta)
    np.testing.assert_allclose(sigma_los2(R, nu, mass, ConstantBeta(beta)), exact, rtol=1e-6)
    if beta != 0.0:
        # the general (double-integral) path for a callable beta
        cb = CallableBeta(lambda r: np.full_like(r, beta))
        np.testing.assert_allclose(sigma_los2(R[::3], nu, mass, cb), exact, rtol=1e-6)


def test_constant_beta_kernel_matches_quad():
    t = 0.3 * np.arange(30)
    for beta in (-1.5, -0.5, 0.0, 0.3, 0.5, 0.9):
        K = constant_beta_kernel(t, beta)
        for tj, kj in zip(t[1:25:4], K[1:25:4]):
            u = math.cosh(tj)
            f = lambda w: (1 - beta / w**2) * w ** (1 - 2 * beta) / math.sqrt(w * w - 1)
            ref = u ** (2 * beta - 1) * integrate.quad(f, 1.0, u, epsrel=1e-12, limit=200)[0]
            assert kj == pytest.approx(ref, rel=1e-9)
    np.testing.assert_allclose(constant_beta_kernel(t, 0.0), np.tanh(t), rtol=1e-12, atol=1e-15)


def test_om_kernel_matches_its_integral():
    """K = (u^2 + ua^2)/u Int_1^u (1 - 1/(w^2+ua^2)) w / ((w^2+ua^2) sqrt(w^2-1)) dw."""
    for ua in (0.1, 1.0, 5.0):
        for u in (1.01, 1.5, 4.0, 50.0):
            f = lambda w: (1 - 1 / (w * w + ua * ua)) * w / ((w * w + ua * ua) * math.sqrt(w * w - 1))
            ref = (u * u + ua * ua) / u * integrate.quad(f, 1.0, u, epsrel=1e-12, limit=200)[0]
            assert float(om_kernel(u, ua)) == pytest.approx(ref, rel=1e-9)


# ---- brute force: sigma_r^2 by quad, then the line-of-sight quad -----------------
def _nu(r: float) -> float:
    x = r / RSTAR
    return 1.0 / (x * (1.0 + x * x) ** 2)


def _mass(r: float) -> float:
    x = r / RS
    return 4.0 * math.pi * RHO0 * RS**3 * (math.log1p(x) - x / (1.0 + x))


def _brute_sigma_los2(R: float, beta, log_g) -> float:
    def p(r):  # nu sigma_r^2
        f = lambda s: math.exp(log_g(s) - log_g(r)) * _nu(s) * G * _mass(s) / s**2
        return integrate.quad(f, r, np.inf, epsrel=1e-10, limit=200)[0]

    def outer(y):  # r = R + y^2
        r = R + y * y
        return 2.0 * (1.0 - beta(r) * R * R / (r * r)) * p(r) * r * 2.0 / math.sqrt(r + R)

    def sig(y):
        r = R + y * y
        return 2.0 * _nu(r) * r * 2.0 / math.sqrt(r + R)

    num = integrate.quad(outer, 0.0, np.inf, epsrel=1e-9, limit=200)[0]
    return num / integrate.quad(sig, 0.0, np.inf, epsrel=1e-11, limit=200)[0]


@pytest.mark.parametrize(
    "model",
    [ConstantBeta(0.3), ConstantBeta(-0.4), OsipkovMerritt(RSTAR)],
    ids=["beta=0.3", "beta=-0.4", "om:0.25"],
)
def test_nfw_zhao251_against_brute_force(model):
    if isinstance(model, ConstantBeta):
        b0 = model.beta0
        beta, log_g = (lambda r: b0), (lambda r: 2.0 * b0 * math.log(r))
    else:
        ra = model.ra
        beta, log_g = (lambda r: r * r / (r * r + ra * ra)), (lambda r: math.log(r * r + ra * ra))
    R = np.array([0.03, 0.25, 1.2])
    ours = sigma_los2(R, TRACER, HALO.mass, model)
    ref = np.array([_brute_sigma_los2(x, beta, log_g) for x in R])
    np.testing.assert_allclose(ours, ref, rtol=1e-6)


def test_callable_beta_equals_kernel_paths():
    R = np.geomspace(0.01, 2.0, 9)
    const = sigma_los2(R, TRACER, HALO.mass, ConstantBeta(0.3))
    call = sigma_los2(R, TRACER, HALO.mass, CallableBeta(lambda r: np.full_like(r, 0.3)))
    np.testing.assert_allclose(call, const, rtol=1e-7)
    om = OsipkovMerritt(0.4)
    np.testing.assert_allclose(
        sigma_los2(R, TRACER, HALO.mass, CallableBeta(om.beta)), sigma_los2(R, TRACER, HALO.mass, om), rtol=1e-7
    )


def test_normalisation_shapes_and_specs():
    R = np.geomspace(0.01, 2.0, 6)
    a = sigma_los2(R, TRACER, HALO.mass, OsipkovMerritt(0.3))
    b = sigma_los2(R, TRACER.normalised(), HALO.mass, OsipkovMerritt(0.3))
    np.testing.assert_allclose(a, b, rtol=1e-12)
    S, s2 = surface_density_and_sigma_los2(R.reshape(2, 3), TRACER, HALO.mass, ConstantBeta(0.2))
    assert S.shape == s2.shape == (2, 3)
    np.testing.assert_allclose(s2.ravel(), sigma_los2(R, TRACER, HALO.mass, ConstantBeta(0.2)), rtol=1e-12)
    assert np.ndim(sigma_los2(0.1, TRACER, HALO.mass)) == 0
    # sigma_los grows with radial anisotropy at small R for this cuspy model
    iso, rad = sigma_los2(0.02, TRACER, HALO.mass), sigma_los2(0.02, TRACER, HALO.mass, ConstantBeta(0.5))
    assert rad > iso
    with pytest.raises(ValueError):
        sigma_los2(np.array([0.0, 0.1]), TRACER, HALO.mass)


@pytest.mark.slow  # importing galpy takes seconds
def test_independent_galpy_cross_check():
    """galpy's quad-based spherical Jeans solver (natural units: ro = 1 kpc, vo = 1 km/s)."""
    from galpy.df import jeans
    from galpy.potential import NFWPotential

    pot = NFWPotential(amp=4.0 * np.pi * RHO0 * RS**3 * G, a=RS)  # mass unit 1/G Msun
    dens = lambda r: float(TRACER(r))
    ref = jeans.sigmalos(pot, 0.3, dens=dens, beta=0.3, use_physical=False)
    assert float(sigma_los(0.3, TRACER, HALO.mass, ConstantBeta(0.3))) == pytest.approx(ref, rel=1e-8)
