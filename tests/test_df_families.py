"""Physics of the Cuddeford-family DFs (isotropic, OM, constant beta, Cuddeford) in every halo family.

1e5 stars per model (full 6-D, before projection) against the Jeans solution:
sigma_r, sigma_t and beta in every radial bin between the 5th and 95th
percentile of r within 3 %; Sigma(R) (KS) and sigma_los(R) against the
projections; the fourth moment of constant-beta models against the
fourth-order Jeans solution (Lokas 2002).
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import check_sky_against_projection
from scipy import integrate, stats

from dsphnf.anisotropy import ConstantBeta, Cuddeford, Isotropic, OsipkovMerritt
from dsphnf.df import CuddefordDF
from dsphnf.errors import DsphnfError
from dsphnf.halos import Burkert, Einasto
from dsphnf.jeans import nu_sigma_r2
from dsphnf.profiles import Zhao, plummer, tracer_zhao

N = 100_000
HALOS = {
    "nfw": Zhao(6.4e7, 1.0, 1.0, 3.0, 1.0),
    "zhao": Zhao(1.0e8, 1.5, 2.0, 4.0, 0.5),
    "burkert": Burkert(4.0e8, 1.0),
    "einasto": Einasto(2.0e7, 1.0, 0.17),
}
NEAR_PLUMMER = tracer_zhao(0.25, 0.1, 5.0, 2.0)  # gamma* = 0.1 (the Gaia Challenge 'Plum'): isotropic in any halo
PLUMMER = tracer_zhao(0.25, 0.0, 5.0, 2.0)
CUSPY = tracer_zhao(0.25, 1.0, 5.0, 2.0)  # gamma* = 1 allows beta0 up to 1/2
FAMILIES = {
    "isotropic": (NEAR_PLUMMER, Isotropic()),
    "om": (NEAR_PLUMMER, OsipkovMerritt(0.3)),
    "constant-0.5": (PLUMMER, ConstantBeta(-0.5)),
    "constant+0.25": (CUSPY, ConstantBeta(0.25)),
    "cuddeford": (CUSPY, Cuddeford(0.3, 0.4)),
}
CASES = [(f, h) for f in FAMILIES for h in HALOS]


def _draw(family: str, halo: str, seed: int = 1):
    tracer, aniso = FAMILIES[family]
    df = CuddefordDF(tracer, HALOS[halo], aniso)
    return tracer, aniso, df, df.sample(N, np.random.default_rng(seed))


def _radial_tangential(stars: np.ndarray):
    x, v = stars[:, :3], stars[:, 3:]
    r = np.linalg.norm(x, axis=1)
    vr = np.sum(x * v, axis=1) / r
    return r, vr, np.maximum(np.sum(v * v, axis=1) - vr**2, 0.0)


def _bin_truth(lo, hi, tracer, halo, aniso):
    """nu r^2-weighted averages of sigma_r^2, sigma_t^2 (both tangential components) over [lo, hi]."""
    s = np.geomspace(lo, hi, 201)
    p = nu_sigma_r2(s, tracer.density, halo.mass, aniso)
    w = s**2 * tracer.density(s)
    norm = integrate.trapezoid(w, s)
    return (integrate.trapezoid(s**2 * p, s) / norm,
            integrate.trapezoid(s**2 * p * 2.0 * (1.0 - aniso.beta(s)), s) / norm)


@pytest.mark.slow
@pytest.mark.parametrize("family, halo", CASES, ids=[f"{f}-{h}" for f, h in CASES])
def test_dispersions_and_projection_match_jeans(family, halo):
    tracer, aniso, df, stars = _draw(family, halo)
    assert np.all(df.f_table >= 0)
    r, vr, vt2 = _radial_tangential(stars)
    assert stats.kstest(r, tracer.mass).pvalue > 0.01  # radii follow nu exactly
    edges = np.quantile(r, np.linspace(0.05, 0.95, 10))
    idx = np.digitize(r, edges) - 1
    for k in range(len(edges) - 1):
        sel = idx == k
        s2r, s2t = _bin_truth(edges[k], edges[k + 1], tracer, HALOS[halo], aniso)
        mr, mt = np.mean(vr[sel] ** 2), np.mean(vt2[sel])
        assert np.sqrt(mr / s2r) == pytest.approx(1.0, abs=0.03), (k, "sigma_r")
        assert np.sqrt(mt / s2t) == pytest.approx(1.0, abs=0.03), (k, "sigma_t")
        assert 1 - mt / (2 * mr) == pytest.approx(1 - s2t / (2 * s2r), abs=0.05), (k, "beta")
    # KS of R against Sigma(R); Sigma-weighted bin means of vz^2 against sigma_los^2 within 3 % in sigma
    grid = np.geomspace(1e-3 * tracer.rs, 1e3 * tracer.rs, 240)  # the generic (Cuddeford) projection is slow
    check_sky_against_projection(stars, tracer.density, HALOS[halo].mass, aniso, grid, n_edges=7)


def _fourth_moment(r, tracer, halo, beta0):
    """nu <v_r^4> = 3 r^(-2b) Int_r^inf s^(2b) nu sigma_r^2 G M / s^2 ds (Lokas 2002), on the grid r."""
    aniso = ConstantBeta(beta0)
    table_r = np.geomspace(1e-6 * tracer.rs, 1e6 * tracer.rs, 3000)
    ln_p = np.log(nu_sigma_r2(table_r, tracer.density, halo.mass, aniso))
    p = lambda s: np.exp(np.interp(np.log(s), np.log(table_r), ln_p, right=-np.inf))  # noqa: E731
    return 3.0 * nu_sigma_r2(r, p, halo.mass, aniso)


@pytest.mark.slow
@pytest.mark.parametrize("family, halo", [("constant-0.5", "burkert"), ("constant+0.25", "nfw"),
                                          ("constant+0.25", "einasto")])
def test_fourth_moment_matches_lokas(family, halo):
    tracer, aniso, df, stars = _draw(family, halo, seed=4)
    r, vr, _ = _radial_tangential(stars)
    edges = np.quantile(r, np.linspace(0.05, 0.95, 7))
    idx = np.digitize(r, edges) - 1
    for k in range(len(edges) - 1):
        s = np.geomspace(edges[k], edges[k + 1], 61)
        w = s**2 * tracer.density(s)
        truth = integrate.trapezoid(s**2 * _fourth_moment(s, tracer, HALOS[halo], aniso.beta0), s) \
            / integrate.trapezoid(w, s)
        v4 = vr[idx == k] ** 4
        err = np.std(v4) / np.sqrt(v4.size)
        assert abs(np.mean(v4) - truth) < 4.0 * err + 0.005 * truth, (k, np.mean(v4), truth, err)


def test_constant_beta_plummer_matches_closed_form_density():
    """rho_Q = 2^(3/2-b) pi^(3/2) Gamma(1-b) I^(3/2-b) f_Q: the DF reproduces r^(2b) nu(r) for -1 <= b < 1."""
    from scipy import special

    halo = plummer(1e8, 0.3)
    cases = ((-1.0, plummer(1.0, 0.3)), (-0.8, plummer(1.0, 0.3)), (-0.5, plummer(1.0, 0.3)),
             (-0.2, plummer(1.0, 0.3)), (0.25, tracer_zhao(0.3, 1.0)), (0.5, tracer_zhao(0.3, 1.0)),
             (0.7, tracer_zhao(0.3, 1.5)))
    for b0, tracer in cases:  # derivative orders 5/2 (m = 3), 2.3, 2 (integer), 1.7, 1.25, 1 (integer), 0.8 (m = 1)
        df = CuddefordDF(tracer, halo, ConstantBeta(b0))
        x, w = np.polynomial.legendre.leggauss(40)
        for r in (0.03, 0.3, 3.0):
            psi = float(df.potential(r))
            # Int_0^psi f(Q) (psi - Q)^(1/2 - b) dQ with psi - Q = psi t^2 (smooth in t for b < 1)
            t = 0.5 * (x + 1.0)
            q = psi * (1.0 - t**2)
            val = np.sum(0.5 * w * df(q) * (psi * t**2) ** (0.5 - b0) * 2.0 * psi * t)
            lhs = 2 ** (1.5 - b0) * np.pi * np.sqrt(np.pi) * special.gamma(1 - b0) / special.gamma(1.5 - b0) * val
            assert lhs == pytest.approx(r ** (2 * b0) * float(tracer.density(r)), rel=2e-3), (b0, r)


@pytest.mark.parametrize("aniso, words", [
    (ConstantBeta(0.3), ["cusp-slope limit gamma*/2 = 0", "An & Evans"]),
    (Cuddeford(0.2, 1.0), ["cusp-slope limit"]),
    (OsipkovMerritt(0.05), ["negative", "at least about"]),
    (ConstantBeta(-1.5), ["below the supported limit -1"]),
])
def test_negative_df_is_refused(aniso, words):
    """A DF negative anywhere is refused with one line naming the reason and the limit."""
    with pytest.raises(DsphnfError) as exc:
        CuddefordDF(PLUMMER, HALOS["burkert"], aniso)
    msg = str(exc.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_om_limit_quoted_is_the_limit():
    """The quoted smallest r_a is where f turns non-negative (within the bisection tolerance)."""
    with pytest.raises(DsphnfError) as exc:
        CuddefordDF(PLUMMER, HALOS["burkert"], OsipkovMerritt(0.05))
    ra_min = float(str(exc.value).split("at least about ")[1].split(" kpc")[0])
    CuddefordDF(PLUMMER, HALOS["burkert"], OsipkovMerritt(1.05 * ra_min))
    with pytest.raises(DsphnfError):
        CuddefordDF(PLUMMER, HALOS["burkert"], OsipkovMerritt(0.9 * ra_min), explain=False)


def test_sampling_is_seeded_and_bound():
    df = CuddefordDF(CUSPY, HALOS["einasto"], Cuddeford(0.3, 0.4))
    a, b = df.sample(2000, 5), df.sample(2000, 5)
    np.testing.assert_array_equal(a, b)
    r = np.linalg.norm(a[:, :3], axis=1)
    assert np.all(0.5 * np.sum(a[:, 3:] ** 2, axis=1) < df.potential(r))
    assert abs(np.mean(a[:, 3:])) < 0.5  # no net streaming [km/s]


def test_slow_tail_tracer_samples_beyond_the_tables():
    """A Hernquist-like tracer (nu ~ r^-4) puts stars beyond 1e5 scale radii; f and Psi continue as power laws."""
    tracer = tracer_zhao(0.01, 1.0, 4.0, 1.0)
    df = CuddefordDF(tracer, HALOS["burkert"], ConstantBeta(0.25))
    stars = df.sample(100_000, np.random.default_rng(0))
    r = np.linalg.norm(stars[:, :3], axis=1)
    assert r.max() > np.exp(df.lnr_f[-1])  # some stars lie beyond the DF table
    assert np.all(np.isfinite(stars)) and np.all(0.5 * np.sum(stars[:, 3:] ** 2, axis=1) < df.potential(r))


@pytest.mark.parametrize("halo", list(HALOS))
def test_potential_of_every_halo_matches_quadrature(halo):
    """Psi(r) = G M(r)/r + 4 pi G Int_r^inf rho s ds, and the central table Psi(0) - Psi(r)."""
    from dsphnf.constants import G
    from dsphnf.potential import Potential

    h = HALOS[halo]
    pot = Potential(h)

    def psi(r):
        f = lambda lx: np.exp(2 * lx) * float(h.density(np.exp(lx)))  # noqa: E731
        outer = integrate.quad(f, np.log(r), np.log(r) + 60, limit=400, epsabs=0, epsrel=1e-11)[0]
        return G * float(h.mass(r)) / r + 4 * np.pi * G * outer

    for r in (1e-3, 0.1, 1.0, 30.0):
        assert float(pot(r)) == pytest.approx(psi(r), rel=1e-5), r
    psi0 = psi(1e-9)
    assert pot.psi0 == pytest.approx(psi0, rel=1e-5)
    assert float(pot.depth_at(1e-3)) == pytest.approx(psi0 - psi(1e-3), rel=1e-3)
