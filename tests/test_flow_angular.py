"""The angular velocity family: its law's closed forms, the map's symmetry, inverse and Jacobian, its exact LOSVD."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numpy.polynomial import legendre as npleg
from scipy import integrate, stats

from conftest import (check_flow_equivariance, check_log_det_against_jacobian, check_losvd_against_samples,
                      flow_base_points as base_points, plummer_losvd, sampled_beta)
from dsphnf.anisotropy import Inferred, Isotropic
from dsphnf.errors import FitError
from dsphnf.flows import FlowConfig, SphericalFlow, fit_flow
from dsphnf.flows.angular import (AngularTable, angular_table, angular_table_moments, family_table_beta, law_basis,
                                  law_cdf, law_log_density, law_moments, law_quantile)
from dsphnf.flows.angular_losvd import los_coefficients, polynomial_mixture
from dsphnf.flows.beta_prior import TANGENTIAL_EQUATION, angular_equilibrium_penalty, tangential_fourth_order_residual
from dsphnf.flows.losvd import log_losvd, velocity_table
from dsphnf.flows.moments import flow_profiles
from dsphnf.flows.separable import speed_nodes
from dsphnf.flows.surface import interp_table, radial_table

pytestmark = pytest.mark.usefixtures("float64_one_thread")

ANGULAR = dict(kinematic=True, velocity="angular", anisotropy=Inferred("free"))
K = 4


def angular_flow(seed: int = 0, std: float = 0.15, **kw) -> SphericalFlow:
    """An angular flow with random (non-trivial) weights, float64."""
    torch.manual_seed(seed)
    flow = SphericalFlow(**{**ANGULAR, **kw}).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.normal_(0.0, std)
    return flow


def random_laws(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(3.0 * torch.randn(n, K + 1, generator=g, dtype=torch.float64), dim=-1)


def law_values(mu: np.ndarray, w: np.ndarray) -> np.ndarray:
    """p(mu) = sum_k w_k C(K, k) mu^2k (1 - mu^2)^(K - k) / Z_k, straight from the definition."""
    from scipy.special import beta as B, comb

    k = np.arange(K + 1)
    z = comb(K, k) * B(k + 0.5, K - k + 1)
    bern = comb(K, k)[:, None] * mu ** (2 * k[:, None]) * (1 - mu * mu) ** (K - k[:, None])
    return (w[:, None] * bern / z[:, None]).sum(0)


# ----------------------------------------------------------------------------- the law
def test_basis_constants_are_the_definitions():
    b = law_basis(K)
    mu = np.linspace(-1, 1, 9)
    for k in range(K + 1):
        w = np.eye(K + 1)[k]
        assert integrate.quad(lambda x: law_values(np.array([x]), w)[0], -1, 1)[0] == pytest.approx(1.0, abs=1e-12)
        # the Legendre series terminates at 2K and reproduces phi_k
        series = sum(b["legendre"][k, i] * npleg.legval(mu, np.eye(2 * i + 1)[2 * i]) for i in range(K + 1))
        np.testing.assert_allclose(series, law_values(mu, w), atol=1e-12)
        assert b["mu2"][k] == pytest.approx(integrate.quad(lambda x: x * x * law_values(np.array([x]), w)[0], -1, 1)[0])
    for i in range(K + 1):  # monomial coefficients of P_2i
        np.testing.assert_allclose(sum(b["monomial"][i, m] * mu ** (2 * m) for m in range(K + 1)),
                                   npleg.legval(mu, np.eye(2 * i + 1)[2 * i]), atol=1e-12)


def test_cdf_density_and_quantile_agree():
    law = random_laws(6, 1)
    mu = torch.linspace(-1, 1, 401, dtype=torch.float64)
    for w in law:
        dens = torch.exp(law_log_density(mu, w.expand(401, -1)))
        np.testing.assert_allclose(dens.numpy(), law_values(mu.numpy(), w.numpy()), rtol=1e-10, atol=1e-14)
        at = torch.linspace(-1, 1, 9, dtype=torch.float64)
        cdf = law_cdf(at, w.expand(9, -1)).numpy()
        direct = [integrate.quad(lambda x: law_values(np.array([x]), w.numpy())[0], -1, float(a))[0] for a in at]
        np.testing.assert_allclose(cdf, direct, atol=1e-12)
    p = torch.rand(6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    q = law_quantile(p, law)
    assert torch.allclose(law_cdf(q, law), p, atol=1e-13)


def test_projected_law_has_the_moments_of_the_direction():
    """q(t | c) of :func:`los_coefficients` against <t^2>, <t^4> of t = mu c + sqrt(1 - mu^2) sqrt(1 - c^2) cos phi."""
    law = random_laws(5, 3)
    c = torch.tensor([0.0, 0.3, 0.7, 0.95, 1.0], dtype=torch.float64)
    d = los_coefficients(law.unsqueeze(-2), c)[:, 0]  # (5, K+1): q(t) = sum_m d_m t^2m
    t, wt = np.polynomial.legendre.leggauss(40)
    q = sum(d[:, m].numpy()[:, None] * t ** (2 * m) for m in range(K + 1))
    assert (q > -1e-12).all()  # a projection of a non-negative law
    m2, m4 = (x.numpy() for x in law_moments(law))
    cc, s2 = c.numpy() ** 2, 1 - c.numpy() ** 2
    np.testing.assert_allclose(q @ wt, 1.0, atol=1e-12)
    np.testing.assert_allclose(q @ (wt * t * t), cc * m2 + s2 * (1 - m2) / 2, atol=1e-12)
    t4 = cc**2 * m4 + 3 * cc * s2 * (m2 - m4) + 3 / 8 * s2**2 * (1 - 2 * m2 + m4)
    np.testing.assert_allclose(q @ (wt * t**4), t4, atol=1e-12)
    # along the radius the projection is the law itself
    np.testing.assert_allclose(q[-1], law_values(t, law[-1].numpy()), atol=1e-12)


@pytest.mark.parametrize("s_over_h", [0.05, 0.5, 1.4, 1.5, 2.5, 4.0, 30.0])
def test_polynomial_mixture_is_the_convolution(s_over_h):
    """Both sides of the switch between quadrature and moments, out to 8 widths beyond the interval."""
    law = random_laws(1, 4)
    d = los_coefficients(law.unsqueeze(-2), torch.tensor([0.6], dtype=torch.float64))[0, 0]
    h, s = 0.3, 0.3 * s_over_h
    v = np.array([0.0, 0.5 * s, s, s + h, s + 3 * h, s + 8 * h])
    one = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    got = polynomial_mixture(torch.as_tensor(v).reshape(1, -1, 1, 1), s * one, d.reshape(1, 1, 1, 1, -1), one,
                             torch.tensor(h, dtype=torch.float64))[0].detach().numpy()
    q = lambda x: sum(float(d[m]) * (x / s) ** (2 * m) for m in range(K + 1)) / s  # noqa: E731
    exact = [integrate.quad(lambda x: q(x) * stats.norm.pdf(vi - x, scale=h), -s, s, points=[min(vi, s)],
                            epsabs=0, epsrel=1e-13, limit=400)[0] for vi in v]
    np.testing.assert_allclose(got, exact, rtol=2e-7)


def test_mixture_gradient_is_that_of_the_plain_expression():
    """The closed-form derivatives of the mixture (speeds on both sides of the switch) against autograd."""
    import dsphnf.flows.angular_losvd as A

    g = torch.Generator().manual_seed(5)
    R, k, S, J = 3, 2, 4, 5
    va = 2.0 * torch.rand(R, k, 1, 1, generator=g, dtype=torch.float64)
    s = (0.05 + 2.0 * torch.rand(R, 1, S, J, generator=g, dtype=torch.float64)).requires_grad_(True)
    d = los_coefficients(random_laws(R * S * J, 6).reshape(R, 1, S, J, K + 1),
                         torch.full((R, 1, S), 0.4, dtype=torch.float64)).requires_grad_(True)
    w = torch.rand(R, 1, S, J, generator=g, dtype=torch.float64).requires_grad_(True)
    h = torch.tensor([0.2, 0.3, 0.25], dtype=torch.float64).reshape(R, 1, 1, 1)
    gout = torch.rand(R, k, generator=g, dtype=torch.float64)
    got = torch.autograd.grad((polynomial_mixture(va, s, d, w, h) * gout).sum(), (s, d, w))
    small = s.detach() < A.TAYLOR_SWITCH * h
    assert 0 < int(small.sum()) < small.numel()  # both sides
    ref = torch.where(small, A._quadrature_terms(va, s, d, h),
                      A._taylor_terms(va, torch.maximum(s, A.TAYLOR_SWITCH * h), d, h))
    want = torch.autograd.grad(((ref * w).sum(dim=(-2, -1)) * gout).sum(), (s, d, w))
    for a, b in zip(got, want):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- the map
@pytest.mark.parametrize("kw", [dict(), dict(inner="cuspy", base="gaussian")])
def test_map_and_density_are_rotation_equivariant(kw):
    check_flow_equivariance(angular_flow(1, **kw), *base_points(64, 5))  # an even law: f(x, v) = f(x, -v)


@pytest.mark.parametrize("kw", [dict(), dict(inner="cuspy", base="gaussian")])
def test_forward_then_inverse_is_identity(kw):
    flow = angular_flow(3, n_steps=16, **kw)
    ux, uv = base_points(200, 4)
    ux2, uv2 = flow.inverse(*flow.transform(ux, uv))
    assert torch.allclose(ux2, ux, atol=2e-6) and torch.allclose(uv2, uv, atol=2e-6)


def test_phase_space_log_det_matches_brute_force_jacobian():
    check_log_det_against_jacobian(angular_flow(5, std=0.3), *base_points(5, 7), tol=1e-8)


def test_untrained_flow_is_isotropic():
    flow = SphericalFlow(**ANGULAR).double()
    beta = family_table_beta(velocity_table(flow))(torch.tensor([0.05, 1.0, 20.0], dtype=torch.float64))
    assert float(beta.detach().abs().max()) < 1e-12


# ----------------------------------------------------------------------------- the LOSVD
def _hand_table(flow, speed, law_of_speed) -> AngularTable:
    """An angular table with speeds S(s0) = ``speed(s0)`` and laws ``law_of_speed(s0)`` (J, K+1) at every radius."""
    tab = angular_table(flow)
    s0 = torch.exp(torch.as_tensor(speed_nodes(tab.lw.shape[0])[0]))
    m = tab.lnr.shape[0]
    return AngularTable(tab.lnr, torch.log(speed(s0)).expand(m, -1), tab.lw, law_of_speed(s0).expand(m, -1, -1))


def test_losvd_against_a_direct_integral_over_speed_and_direction():
    """Speeds 0.8 s0 (chi_3) and a speed-dependent law: ln p(v_z | R) against a brute-force (s0, mu, phi) integral.

    The brute force uses the law's definition (Bernstein polynomials), not its Legendre series.
    """
    flow = SphericalFlow(**ANGULAR).double()
    lo, hi = random_laws(2, 7)
    mix = lambda s0: lo * torch.exp(-s0)[:, None] + hi * (1 - torch.exp(-s0))[:, None]  # noqa: E731
    vtab = _hand_table(flow, lambda s0: 0.8 * s0, mix)
    h = 0.3
    s0, ws = np.polynomial.legendre.leggauss(80)
    s0, ws = 4.0 * (s0 + 1), 4.0 * ws  # s0 in [0, 8]
    ws = ws * stats.chi.pdf(s0, 3)
    mu, wmu = np.polynomial.legendre.leggauss(48)
    phi = (np.arange(64) + 0.5) * 2 * np.pi / 64
    laws = mix(torch.as_tensor(s0)).numpy()
    pmu = np.stack([law_values(mu, w) for w in laws])  # (s0, mu)

    def law(v, nz):
        t = mu[:, None] * nz + np.sqrt(1 - mu * mu)[:, None] * math.sqrt(1 - nz * nz) * np.cos(phi)
        g = stats.norm.pdf(v - 0.8 * s0[:, None, None] * t[None], scale=h).mean(-1)  # (s0, mu)
        return float(ws @ (pmu * g) @ wmu)

    for R0, v0 in [(0.1, 0.0), (0.1, 1.2), (1.0, 0.5), (2.0, 0.0), (2.0, 2.0)]:
        with torch.no_grad():
            _, lp = log_losvd(flow, torch.tensor([R0]), torch.tensor([v0]), torch.tensor(h), radial_table(flow), vtab)
        assert float(lp[0]) == pytest.approx(math.log(plummer_losvd(R0, v0, law)), abs=5e-3)


def test_losvd_is_normalised_and_matches_flow_samples():
    """The table's LOSVD integrates to one and is that of the flow's own samples (8e4 stars)."""
    flow = angular_flow(3, std=0.25)
    grid = torch.linspace(-30.0, 30.0, 3001)
    with torch.no_grad():
        _, lp = log_losvd(flow, torch.full_like(grid, 1.0), grid, torch.tensor(0.3))
    assert float(torch.trapezoid(torch.exp(lp), grid)) == pytest.approx(1.0, abs=1e-4)
    check_losvd_against_samples(flow, log_losvd)


def test_beta_read_back_from_table_readout_and_samples():
    flow = angular_flow(8, std=0.3)
    r = np.array([0.3, 1.0, 2.0])
    prof = flow_profiles(flow, r, length_scale=1.0)
    from_table = family_table_beta(velocity_table(flow))(torch.as_tensor(r)).detach().numpy()
    np.testing.assert_allclose(prof["beta"], from_table, atol=0.02)
    assert np.abs(prof["beta"]).max() > 0.1  # a non-trivial anisotropy
    for mc, b in zip(sampled_beta(flow, r), prof["beta"]):
        assert mc == pytest.approx(b, abs=0.05)


def _beta_minus_one_table(flow, isotropic: bool = False) -> AngularTable:
    """The Gaussian constant-beta model f prop. to L^2 exp(-E) at every radius: speeds chi_5 (the quantile map of
    the base's chi_3) and p(mu) = (3/4)(1 - mu^2); ``isotropic``: the same speeds with a uniform law."""
    k = torch.arange(K + 1, dtype=torch.float64)
    w = (0.5 + 0.0 * k) if isotropic else (1 - k / K)  # 1 = sum b_k(x), (1 - x) = sum (1 - k/K) b_k(x)
    w = w * torch.exp(torch.as_tensor(law_basis(K)["log_z"]))
    w = w / w.sum()
    chi5 = lambda s0: torch.as_tensor(stats.chi.isf(stats.chi.sf(s0.numpy(), 3), 5))  # noqa: E731
    return _hand_table(flow, chi5, lambda s0: w.expand(len(s0), -1))


def test_constant_beta_gaussian_model_has_the_analytic_losvd():
    """f prop. to L^2 exp(-E) (beta = -1, sigma_r = 1): v_theta has density (1 + y^2) phi(y) / 2, so at n_z = c
    p(v) = N(v; 0, 1 + h^2) (1 + m^2 + tau^2) / 2 with m = s v / (1 + h^2), tau^2 = (c^2 + h^2) / (1 + h^2),
    s^2 = 1 - c^2."""
    flow = SphericalFlow(**ANGULAR).double()
    vtab = _beta_minus_one_table(flow)
    np.testing.assert_allclose(law_values(np.linspace(-1, 1, 5), vtab.law[0, 0].numpy()),
                               0.75 * (1 - np.linspace(-1, 1, 5) ** 2), atol=1e-12)
    beta = family_table_beta(vtab)(torch.tensor([0.05, 1.0, 20.0], dtype=torch.float64))
    assert torch.allclose(beta, torch.full((3,), -1.0, dtype=torch.float64), atol=1e-12)
    h = 0.3

    def law(v, nz):
        T = 1 + h * h
        m, tau2 = math.sqrt(1 - nz * nz) * v / T, (nz * nz + h * h) / T
        return stats.norm.pdf(v, scale=math.sqrt(T)) * (1 + m * m + tau2) / 2

    for R0, v0 in [(0.1, 0.0), (0.1, 1.2), (1.0, 0.5), (2.0, 0.0), (2.0, 2.5)]:
        with torch.no_grad():
            _, lp = log_losvd(flow, torch.tensor([R0]), torch.tensor([v0]), torch.tensor(h), radial_table(flow), vtab)
        # 24 base-speed nodes for a map that is not polynomial: 3.7e-3 at most (64 nodes: 5e-4), against
        # 0.02-0.27 between this law and the isotropic one with the same speeds
        assert float(lp[0]) == pytest.approx(math.log(plummer_losvd(R0, v0, law)), abs=5e-3)


def test_a_constant_beta_model_is_in_fourth_order_equilibrium():
    """The model above obeys both fourth-order Jeans equations for any nu (E4 = E4t = 0); its speeds with an
    isotropic law do not, and the family's prior holds both."""
    flow = SphericalFlow(**ANGULAR).double()
    rng = (math.log(0.05), math.log(5.0))
    table = radial_table(flow)
    assert TANGENTIAL_EQUATION["angular"]
    assert float(angular_equilibrium_penalty(table, _beta_minus_one_table(flow), rng).detach()) < 2e-4
    assert float(angular_equilibrium_penalty(table, _beta_minus_one_table(flow, isotropic=True), rng).detach()) > 1.0
    vtab = _beta_minus_one_table(flow)
    lnnu = interp_table(vtab.lnr, table[0], table[1])
    x, e4t = tangential_fourth_order_residual(vtab.lnr, lnnu, angular_table_moments(vtab))
    inside = (x >= rng[0]) & (x <= rng[1])
    assert float(e4t[inside].detach().abs().max()) < 5e-3  # the table's differences and quadrature
    iso = _beta_minus_one_table(flow, isotropic=True)
    _, e4t_iso = tangential_fourth_order_residual(iso.lnr, lnnu, angular_table_moments(iso))
    assert float(e4t_iso[inside].detach().abs().median()) > 0.1


def test_angular_needs_the_free_anisotropy_and_a_fit_records_it(monkeypatch):
    from dsphnf.mocks import draw_mock

    with pytest.raises(ValueError, match="free"):
        SphericalFlow(kinematic=True, velocity="angular", anisotropy=Isotropic())
    monkeypatch.setenv("DSPHNF_FAST", "1")
    cat = draw_mock(n=300, seed=1, halo="nfw:6.4e7,1", tracer="plummer:0.25", anisotropy="constant:-0.5").catalog
    with pytest.raises(FitError, match="free"):
        fit_flow(cat, "isotropic", steps=2, progress=False, flow_config=FlowConfig(velocity="angular"))
    res = fit_flow(cat, "free", steps=3, progress=False, flow_config=FlowConfig(velocity="angular"))
    assert res.summary["settings"]["flow"]["velocity"] == "angular"
    assert res.artefacts.flows[0].angular and np.all(np.isfinite(res.profile["beta"]))
