"""J-factor: exact cone geometry, reference values and tabulated densities."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from dsphnf.constants import J_UNIT
from dsphnf.jfactor import j_factor, j_factor_tabulated, log10_j_factor, shell_weight
from dsphnf.profiles import cored, nfw

HALO = nfw(6.4e7, 1.0)  # Gaia Challenge cusp halo


@pytest.mark.parametrize("distance, expected", [(50.0, 19.35), (76.0, 19.05), (100.0, 18.83)])
def test_gaia_challenge_nfw_reference(distance, expected):
    assert log10_j_factor(HALO, distance, 0.5) == pytest.approx(expected, abs=0.02)


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
def test_against_brute_force_cone_integral():
    """J = 2 pi Int_0^theta sin(psi) dpsi Int rho^2 ds, truncated at r = D, at a wide angle."""
    halo, D, th = cored(4.0e8, 1.0), 20.0, 10.0

    def ray(psi):
        c = math.cos(psi)
        f = lambda s: float(halo(math.sqrt(max(s * s + D * D - 2 * s * D * c, 0.0)))) ** 2
        return integrate.quad(f, 0.0, 2 * D * c, points=[D * c], limit=400, epsrel=1e-10)[0]  # r <= D

    ref = 2 * np.pi * integrate.quad(lambda p: math.sin(p) * ray(p), 0.0, math.radians(th), epsrel=1e-9)[0]
    assert j_factor(halo, D, th, r_max=D) == pytest.approx(ref * J_UNIT, rel=1e-7)


def test_small_angle_limit_and_scaling():
    # r_max << D sin(theta): all shells inside the cone, J -> Int rho^2 dV / D^2
    D, rt = 1000.0, 2.0
    rho = lambda r: HALO(r)
    vol = integrate.quad(lambda r: 4 * np.pi * r**2 * float(HALO(r)) ** 2, 0, rt, epsrel=1e-12)[0]
    assert j_factor(rho, D, 1.0, r_max=rt) == pytest.approx(vol / D**2 * J_UNIT, rel=2e-6)
    # weights: exact shell weight -> 2/D^2 near the centre, continuous at D sin(theta)
    # (with a square-root edge there, hence the tolerance)
    assert float(shell_weight(1e-4, D, 1.0)) == pytest.approx(2 / D**2, rel=1e-9)
    b = D * math.sin(math.radians(1.0))
    assert float(shell_weight(b * (1 - 1e-12), D, 1.0)) == pytest.approx(
        float(shell_weight(b * (1 + 1e-12), D, 1.0)), rel=1e-5
    )
    # J grows with the cone
    assert j_factor(HALO, 76.0, 0.1) < j_factor(HALO, 76.0, 0.5) < j_factor(HALO, 76.0, 2.0)


@pytest.mark.parametrize("halo", [nfw(6.4e7, 1.0), cored(4.0e8, 1.0)], ids=["nfw", "cored"])
def test_tabulated_matches_analytic(halo):
    """Tabulated to 10 kpc: continued outwards, the whole halo's J; truncated, J inside 10 kpc."""
    r = np.geomspace(0.01, 10.0, 60)
    for D in (50.0, 76.0):
        tab = np.log10(j_factor_tabulated(r, halo(r), D, 0.5))
        assert tab == pytest.approx(log10_j_factor(halo, D, 0.5), abs=1e-3)
        cut = np.log10(j_factor_tabulated(r, halo(r), D, 0.5, outer_gamma_min=None))
        assert cut == pytest.approx(log10_j_factor(halo, D, 0.5, r_max=10.0), abs=1e-3)


def test_tabulated_power_law_extrapolation_is_exact():
    """rho = A/r on [0.05, 0.5] kpc, truncated outside: inner extrapolation continues the power law."""
    A = 6.4e7
    r = np.geomspace(0.05, 0.5, 5)
    tab = j_factor_tabulated(r, A / r, 76.0, 0.5, outer_gamma_min=None)
    assert tab == pytest.approx(j_factor(lambda x: A / x, 76.0, 0.5, r_max=0.5), rel=1e-8)


def _broken(x, r_b, inner, outer):
    """1e8 (x/r_b)^-inner inside r_b, (x/r_b)^-outer outside [Msun/kpc^3]."""
    return 1e8 * np.where(x < r_b, (x / r_b) ** -inner, (x / r_b) ** -outer)


@pytest.mark.parametrize("outer, continued", [(2.5, 2.5), (3.2, 3.2), (0.5, 2.0), (1.0, 2.0)])
def test_tabulated_outer_continuation_is_fitted_and_no_shallower_than_isothermal(outer, continued):
    """Outside the last node the density is a power law to r = D: the slope fitted over the
    outer factor of two, no shallower than r^-2 (a core larger than the data goes on as r^-2)."""
    r = np.geomspace(0.05, 0.5, 41)
    tab = j_factor_tabulated(r, _broken(r, 0.2, 1.0, outer), 233.0)
    reference = j_factor(lambda x: np.where(x <= 0.5, _broken(x, 0.2, 1.0, outer),
                                            _broken(0.5, 0.2, 1.0, outer) * (x / 0.5) ** -continued), 233.0)
    assert tab == pytest.approx(reference, rel=1e-3)  # the reference integrates across the kinks
    truncated = j_factor_tabulated(r, _broken(r, 0.2, 1.0, outer), 233.0, outer_gamma_min=None)
    assert truncated < tab
    with pytest.raises(ValueError, match="1.5"):
        j_factor_tabulated(r, _broken(r, 0.2, 1.0, outer), 233.0, outer_gamma_min=1.5)


def test_tabulated_inner_continuation_is_fitted_and_capped_at_the_nfw_cusp():
    """Inside the first node the density is a power law: the slope fitted over the inner
    factor of two in radius, clipped to [0, 1]; unclipped, a slope >= 1.5 diverges."""
    r = np.geomspace(0.05, 0.5, 31)
    for gamma in (0.0, 0.5, 1.0):
        A = 6.4e7 * 0.05**gamma
        exact = j_factor(lambda x, a=A, g=gamma: a * x**-g, 76.0, 0.5, r_max=0.5)
        assert j_factor_tabulated(r, A * r**-gamma, 76.0, outer_gamma_min=None) == pytest.approx(exact, rel=1e-8)
    steep = 1e9 * (r / 0.05) ** -1.6
    capped = j_factor_tabulated(r, steep, 76.0, outer_gamma_min=None)
    as_nfw_inside = j_factor(lambda x: 1e9 * np.where(x < 0.05, (x / 0.05) ** -1.0, (x / 0.05) ** -1.6),
                             76.0, 0.5, r_max=0.5)
    assert capped == pytest.approx(as_nfw_inside, rel=1e-3)  # the reference integrates across the kink
    with pytest.raises(ValueError, match="diverges"):
        j_factor_tabulated(r, steep, 76.0, gamma_max=None)
    rising = 1e8 * (r / 0.05) ** 0.5  # a hole at the centre is continued as a core
    assert j_factor_tabulated(r, rising, 76.0, outer_gamma_min=None) == pytest.approx(
        j_factor(lambda x: 1e8 * np.maximum(x / 0.05, 1.0) ** 0.5, 76.0, 0.5, r_max=0.5), rel=1e-3)


def test_tabulated_j_is_robust_to_one_noisy_inner_node():
    """NFW tabulated with its first node 20 % high: the two-node slope (2.6) would make J
    infinite; the fitted, capped continuation keeps J within 0.01 dex of the analytic value."""
    r = np.geomspace(0.01, 10.0, 60)
    noisy = HALO(r) * np.where(r == r[0], 1.2, 1.0)
    assert np.log10(j_factor_tabulated(r, noisy, 76.0)) == pytest.approx(log10_j_factor(HALO, 76.0, 0.5), abs=0.01)
    with pytest.raises(ValueError):
        j_factor_tabulated(r[:2], noisy[:2], 76.0, gamma_max=None)


def test_errors():
    with pytest.raises(ValueError):
        j_factor(HALO, 76.0, 95.0)
    with pytest.raises(ValueError):
        j_factor_tabulated(np.array([0.1, 1.0]), np.array([1.0, -1.0]), 76.0)
