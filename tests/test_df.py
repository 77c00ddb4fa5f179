"""Physics tests of dsphnf.df: Eddington / Osipkov-Merritt inversion and sampling."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from dsphnf.anisotropy import OsipkovMerritt
from dsphnf.constants import G
from dsphnf.df import EddingtonDF, Potential
from dsphnf.errors import DsphnfError
from dsphnf.jeans import nu_sigma_r2
from dsphnf.mocks import MODELS
from dsphnf.profiles import nfw, plummer

M_PL, A_PL = 1.0e8, 0.3  # self-consistent Plummer sphere: Msun, kpc


def test_potential_matches_closed_forms():
    """Psi(r) of a Plummer sphere and of an (infinite-mass) NFW halo."""
    r = np.geomspace(1e-4, 1e3, 50)
    pot = Potential(plummer(M_PL, A_PL))
    np.testing.assert_allclose(pot(r), G * M_PL / np.sqrt(r**2 + A_PL**2), rtol=1e-5)
    rho0, rs = 6.4e7, 1.0
    pot = Potential(nfw(rho0, rs))
    exact = 4 * np.pi * G * rho0 * rs**3 * np.log1p(r / rs) / r
    np.testing.assert_allclose(pot(r), exact, rtol=1e-5)
    assert pot.psi0 == pytest.approx(4 * np.pi * G * rho0 * rs**2, rel=1e-6)
    # the central table keeps precision where Psi(0) - Psi << Psi(0)
    np.testing.assert_allclose(pot.depth_at(r), pot.psi0 - exact, rtol=1e-4)


def test_plummer_eddington_matches_analytic():
    """f(eps) = 24 sqrt(2) / (7 pi^3) a^2 / (G^5 M^5) eps^(7/2) for one star (BT08 eq. 4.83)."""
    df = EddingtonDF(plummer(1.0, A_PL), plummer(M_PL, A_PL))
    r = np.geomspace(1e-3, 1e3, 40) * A_PL
    eps = G * M_PL / np.sqrt(r**2 + A_PL**2)
    exact = 24 * np.sqrt(2) / (7 * np.pi**3) * A_PL**2 / (G**5 * M_PL**5) * eps**3.5
    np.testing.assert_allclose(df(eps), exact, rtol=1e-4)
    assert np.all(df.f_table >= 0)
    assert df(-1.0) == 0.0


def test_om_plummer_positivity_limit():
    """Osipkov-Merritt Plummer models are physical only for r_a >= 0.75 a (Merritt 1985)."""
    tracer, halo = plummer(1.0, A_PL), plummer(M_PL, A_PL)
    with pytest.raises(DsphnfError, match="negative"):
        EddingtonDF(tracer, halo, OsipkovMerritt(0.70 * A_PL))
    df = EddingtonDF(tracer, halo, OsipkovMerritt(0.80 * A_PL))
    assert np.all(df.f_table >= 0)


@pytest.mark.parametrize("name", list(MODELS))
def test_df_reproduces_density(name):
    """nu_Q(r) = 4 pi Int_0^vesc f(Psi - w^2/2) w^2 dw for every Gaia Challenge model; f >= 0."""
    model = MODELS[name]
    df = EddingtonDF(model.tracer, model.halo, model.anisotropy)
    assert np.all(df.f_table >= 0)
    rs = model.tracer.rs
    # composite Gauss-Legendre in t = w / v_esc (f is interpolated: no adaptive quad)
    x, w8 = np.polynomial.legendre.leggauss(8)
    lo = np.linspace(0.0, 1.0, 129)[:-1, None]
    t = (lo + (x + 1) / 256).ravel()
    wt = np.tile(w8 / 256, 128)
    for r in (0.05 * rs, 0.5 * rs, 2.0 * rs, 10.0 * rs):
        psi = float(df.potential(r))
        w = np.sqrt(2 * psi) * t
        val = np.sum(wt * np.sqrt(2 * psi) * df(psi - 0.5 * w * w) * w * w)
        nu_q = float(model.tracer.density(r)) * (1.0 + (r / df.ra) ** 2)
        assert 4 * np.pi * val == pytest.approx(nu_q, rel=5e-4), r


def _bin_truth(model, edges):
    """nu-weighted bin averages of sigma_r^2 and sigma_t^2 [(km/s)^2] from the Jeans solution."""
    out_r, out_t = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        s = np.geomspace(lo, hi, 201)
        p = nu_sigma_r2(s, model.tracer.density, model.halo.mass, model.anisotropy)
        w = s**2 * model.tracer.density(s)
        b = model.anisotropy.beta(s)
        norm = integrate.trapezoid(w, s)
        out_r.append(integrate.trapezoid(s**2 * p, s) / norm)
        out_t.append(integrate.trapezoid(s**2 * p * 2 * (1 - b), s) / norm)
    return np.array(out_r), np.array(out_t)


@pytest.mark.parametrize("name", ["NonPlumCuspIso", "PlumCoreOm"])
def test_sampled_dispersions_match_jeans(name):
    """Binned sigma_r and sigma_t of 1e5 stars agree with the Jeans solution within 3%."""
    model = MODELS[name]
    df = EddingtonDF(model.tracer, model.halo, model.anisotropy)
    stars = df.sample(100_000, np.random.default_rng(11))
    x, v = stars[:, :3], stars[:, 3:]
    r = np.linalg.norm(x, axis=1)
    # radii follow nu exactly
    cdf = lambda q: model.tracer.mass(q)
    assert stats.kstest(r, cdf).pvalue > 0.01
    vr = np.sum(x * v, axis=1) / r
    vt2 = np.sum(v * v, axis=1) - vr**2
    # ~10 000 stars per bin: statistical error on sigma about 0.8%
    qs = np.array([0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99])
    edges = np.interp(qs, cdf(np.geomspace(1e-4, 1e3, 4000)), np.geomspace(1e-4, 1e3, 4000))
    idx = np.digitize(r, edges) - 1
    s2r_true, s2t_true = _bin_truth(model, edges)
    for k in range(len(edges) - 1):
        sel = idx == k
        assert sel.sum() > 8000
        s2r = np.mean(vr[sel] ** 2)
        s2t = np.mean(vt2[sel])
        assert np.sqrt(s2r / s2r_true[k]) == pytest.approx(1.0, abs=0.03), (k, "sigma_r")
        assert np.sqrt(s2t / s2t_true[k]) == pytest.approx(1.0, abs=0.03), (k, "sigma_t")
    assert abs(np.mean(v)) < 0.1  # no net streaming [km/s]


def test_sampling_is_seeded():
    model = MODELS["PlumCuspOm"]
    df = EddingtonDF(model.tracer, model.halo, model.anisotropy)
    a = df.sample(500, np.random.default_rng(5))
    b = df.sample(500, np.random.default_rng(5))
    c = df.sample(500, np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # every star is bound: v^2/2 < Psi(r)
    r = np.linalg.norm(a[:, :3], axis=1)
    assert np.all(0.5 * np.sum(a[:, 3:] ** 2, axis=1) < df.potential(r))
