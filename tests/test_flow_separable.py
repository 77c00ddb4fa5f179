"""The separable velocity family: the map's symmetry, inverse and Jacobian, and its exact LOSVD against closed forms."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from conftest import (check_flow_equivariance, check_log_det_against_jacobian, check_losvd_against_samples,
                      flow_base_points as base_points, plummer_losvd, sampled_beta)
from dsphnf.anisotropy import Inferred, Isotropic
from dsphnf.catalog import Catalog
from dsphnf.errors import FitError
from dsphnf.flows import FlowConfig, SphericalFlow, fit_flow
from dsphnf.flows.losvd import log_losvd, velocity_table
from dsphnf.flows.moments import flow_profiles
from dsphnf.flows.separable import separable_table, speed_nodes, table_beta, table_moments
from dsphnf.flows.surface import radial_table

pytestmark = pytest.mark.usefixtures("float64_one_thread")

SEPARABLE = dict(kinematic=True, velocity="separable", anisotropy=Inferred("free"))


def separable_flow(seed: int = 0, std: float = 0.15, **kw) -> SphericalFlow:
    """A separable flow with random (non-trivial) weights, float64."""
    torch.manual_seed(seed)
    flow = SphericalFlow(**{**SEPARABLE, **kw}).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.normal_(0.0, std)
    return flow


@pytest.mark.parametrize("kw", [dict(), dict(inner="cuspy", base="gaussian")])
def test_map_and_density_are_rotation_equivariant(kw):
    check_flow_equivariance(separable_flow(1, **kw), *base_points(64, 5))  # and odd in the base velocity


@pytest.mark.parametrize("kw", [dict(), dict(inner="cuspy", base="gaussian")])
def test_forward_then_inverse_is_identity(kw):
    flow = separable_flow(3, n_steps=16, **kw)
    ux, uv = base_points(200, 4)
    ux2, uv2 = flow.inverse(*flow.transform(ux, uv))
    # reverse-time RK4 for the radius; the base speed by Newton steps on the forward map (exact)
    assert torch.allclose(ux2, ux, atol=2e-6) and torch.allclose(uv2, uv, atol=1e-8)


def test_phase_space_log_det_matches_brute_force_jacobian():
    check_log_det_against_jacobian(separable_flow(5), *base_points(5, 7), tol=1e-9)


def test_semi_axes_grow_with_the_base_speed():
    """Nested shells (the map is a bijection): A(s0) and B(s0) increase at every radius of the table."""
    _, lna, lnb, _ = separable_table(separable_flow(2, std=0.4))
    assert bool((lna.diff(dim=-1) > 0).all()) and bool((lnb.diff(dim=-1) > 0).all())
    assert float((lna - lnb).detach().abs().max()) > 0.05  # and they are not the same map


def test_losvd_is_normalised_in_vz():
    flow = separable_flow(6)  # semi-axes up to ~20 at the largest base speed
    grid = torch.linspace(-40.0, 40.0, 4001)
    for R0 in (0.1, 1.0, 5.0):
        with torch.no_grad():
            _, lp = log_losvd(flow, torch.full_like(grid, R0), grid, torch.tensor(0.3))
        total = torch.trapezoid(torch.exp(lp), grid)
        assert float(total) == pytest.approx(1.0, abs=1e-4)


def _hand_table(flow, semi_axes):
    """A separable table whose semi-axes are (A(s0), B(s0)) = ``semi_axes(s0)`` at every radius."""
    lnr, _, _, lw = separable_table(flow)
    ls0 = torch.as_tensor(speed_nodes(lw.shape[0])[0])
    a, b = semi_axes(torch.exp(ls0))
    m = lnr.shape[0]
    return lnr, torch.log(a).expand(m, -1), torch.log(b).expand(m, -1), lw


def test_constant_beta_gaussian_table_has_the_analytic_losvd():
    """Semi-axes (sigma_r s0, sigma_t s0): the anisotropic Gaussian, beta = 1 - sigma_t^2/sigma_r^2 = -0.5."""
    flow = SphericalFlow(**SEPARABLE).double()
    sr, st = 0.8, 0.8 * math.sqrt(1.5)
    vtab = _hand_table(flow, lambda s: (sr * s, st * s))
    R = torch.tensor([0.1, 0.1, 0.1, 1.0, 1.0, 1.0, 3.0, 3.0])
    v = torch.tensor([0.0, 0.7, 2.0, 0.0, 0.7, 2.0, 0.3, 1.5])
    h = 0.3
    with torch.no_grad():
        _, lp = log_losvd(flow, R, v, torch.tensor(h), radial_table(flow), vtab)
    gauss = lambda v, nz, h: stats.norm.pdf(v, scale=math.sqrt(sr**2 * nz**2 + st**2 * (1 - nz**2) + h * h))  # noqa: E731
    exact = [math.log(plummer_losvd(float(r), float(x), lambda v, nz: gauss(v, nz, h))) for r, x in zip(R, v)]
    np.testing.assert_allclose(lp.numpy(), exact, atol=3e-3)
    beta = table_beta(vtab)(torch.tensor([0.05, 1.0, 20.0])).detach()
    assert torch.allclose(beta, torch.full((3,), -0.5), atol=1e-12)


def test_nonelliptical_table_has_its_analytic_losvd():
    """A(s0) = s0, B(s0) = 0.5 s0 + 0.3 s0^2 (the aspect changes with speed): against the s0 integral."""
    flow = SphericalFlow(**SEPARABLE).double()
    semi = lambda s: (s, 0.5 * s + 0.3 * s * s)  # noqa: E731
    vtab = _hand_table(flow, semi)
    h = 0.3

    s = np.linspace(1e-6, 12.0, 6001)  # a fine trapezoid in s0, independent of the flow's 24 nodes
    a, b = semi(s)
    chi3 = stats.chi.pdf(s, 3)

    def law(v, nz, h):  # Int chi_3(s0) U(v; |e|) convolved with N(0, h^2) ds0
        e = np.sqrt(nz * nz * a * a + (1 - nz * nz) * b * b)
        box = (stats.norm.cdf((v + e) / h) - stats.norm.cdf((v - e) / h)) / (2 * e)
        return np.trapezoid(chi3 * box, s)

    for R0, v0 in [(0.1, 0.0), (0.1, 1.2), (2.0, 0.0), (2.0, 1.2)]:
        with torch.no_grad():
            _, lp = log_losvd(flow, torch.tensor([R0]), torch.tensor([v0]), torch.tensor(h), radial_table(flow), vtab)
        assert float(lp[0]) == pytest.approx(math.log(plummer_losvd(R0, v0, lambda v, nz: law(v, nz, h))), abs=5e-3)


def test_losvd_matches_a_kernel_estimate_from_flow_samples():
    """The table's LOSVD is that of the flow's own samples (8e4 stars, ~4000 in a +-8 % annulus)."""
    check_losvd_against_samples(separable_flow(3, std=0.2), log_losvd)


def test_beta_read_back_from_table_readout_and_samples():
    """beta(r) of the table, of the Jeans read-out and of flow samples in radial shells agree."""
    flow = separable_flow(8, std=0.2)
    r = np.array([0.3, 1.0, 2.0])
    prof = flow_profiles(flow, r, length_scale=1.0)
    from_table = table_beta(velocity_table(flow))(torch.as_tensor(r)).detach().numpy()
    np.testing.assert_allclose(prof["beta"], from_table, atol=0.02)
    assert np.ptp(prof["beta"]) > 0.05 or abs(prof["beta"][0]) > 0.1  # a non-trivial anisotropy
    for mc, b in zip(sampled_beta(flow, r), prof["beta"]):  # >= 4000 stars per shell: beta to ~0.03
        assert mc == pytest.approx(b, abs=0.05)
    # sigma_t^2 / sigma_r^2 of the table's moments is the same beta
    ls_r, ls_t = table_moments(velocity_table(flow))
    assert torch.allclose(-torch.expm1(ls_t - ls_r), table_beta(velocity_table(flow))(torch.exp(velocity_table(flow)[0])))


def test_separable_needs_the_free_anisotropy():
    with pytest.raises(ValueError, match="free"):
        SphericalFlow(kinematic=True, velocity="separable", anisotropy=Isotropic())
    with pytest.raises(ValueError, match="velocity"):
        SphericalFlow(kinematic=True, velocity="spherical")


def test_fit_records_the_family_and_refuses_a_given_beta(monkeypatch):
    from dsphnf.mocks import draw_mock

    monkeypatch.setenv("DSPHNF_FAST", "1")
    cat = draw_mock(n=300, seed=1, halo="nfw:6.4e7,1", tracer="plummer:0.25", anisotropy="constant:-0.5").catalog
    with pytest.raises(FitError, match="free"):
        fit_flow(cat, "isotropic", steps=2, progress=False, flow_config=FlowConfig(velocity="separable"))
    res = fit_flow(cat, "free", steps=3, progress=False, flow_config=FlowConfig(velocity="separable"))
    assert res.summary["settings"]["flow"]["velocity"] == "separable"
    assert res.artefacts.flows[0].separable and np.all(np.isfinite(res.profile["beta"]))


def test_mixed_ensemble_is_the_two_families_members(monkeypatch, tmp_path):
    """``mixed``: member k is member k of the one-family ensemble of its family (elliptical for even k, separable
    for odd k), bit for bit; each flow is saved and reloaded in its own family; the value is the members' mean.
    It is the default (``auto``) for a free beta and an even ensemble."""
    from dsphnf.flows import load_flows
    from dsphnf.mocks import draw_mock

    monkeypatch.setenv("DSPHNF_FAST", "1")
    cat = draw_mock(n=200, seed=2, halo="nfw:6.4e7,1", tracer="plummer:0.25", anisotropy="constant:-0.5").catalog
    with pytest.raises(FitError, match="multiple of 2"):
        fit_flow(cat, "free", steps=2, ensemble=3, progress=False, flow_config=FlowConfig(velocity="mixed"))
    with pytest.raises(FitError, match="free"):
        fit_flow(cat, "om", steps=2, ensemble=2, progress=False, flow_config=FlowConfig(velocity="mixed"))
    fits = {v: fit_flow(cat, "free", steps=3, ensemble=2, seed=4, progress=False, flow_config=FlowConfig(velocity=v))
            for v in ("mixed", "elliptical", "separable")}
    mixed = fits["mixed"]
    assert [m["velocity"] for m in mixed.summary["diagnostics"]["members"]] == ["elliptical", "separable"]
    auto = fit_flow(cat, "free", steps=3, ensemble=2, seed=4, progress=False)  # the default: 'auto' -> 'mixed'
    assert auto.summary["settings"]["flow"]["velocity"] == mixed.summary["settings"]["flow"]["velocity"] == "mixed"
    np.testing.assert_array_equal(auto.profile["rho"], mixed.profile["rho"])
    assert [f.velocity for f in mixed.artefacts.flows] == ["elliptical", "separable"]
    for k, family in enumerate(("elliptical", "separable")):
        for key in ("rho", "beta", "nu"):
            np.testing.assert_array_equal(mixed.artefacts.members[k][key], fits[family].artefacts.members[k][key])
    flows, _ = load_flows(mixed.save(tmp_path / "mixed", plots=False))  # each flow rebuilt in its own family
    assert [f.velocity for f in flows] == ["elliptical", "separable"]
    both = mixed.profile["n_used"] == 2
    assert both.sum() > 10
    rho = np.log10(np.stack([m["rho"][both] for m in mixed.artefacts.members]))
    np.testing.assert_allclose(np.log10(mixed.profile["rho"][both]), rho.mean(axis=0), rtol=1e-12)
    positions = Catalog(cat.x, cat.y, source="positions only")  # no velocity field: one architecture, batched
    res = fit_flow(positions, "free", steps=2, ensemble=2, progress=False, flow_config=FlowConfig(velocity="mixed"))
    assert res.summary["diagnostics"]["grid"]["batched"]
    assert [m["velocity"] for m in res.summary["diagnostics"]["members"]] == ["elliptical", "elliptical"]


def test_fourth_order_residuals_of_the_separable_table():
    """Both fourth-order equations (the family holds E4 and E4t). For B = c A, the elliptical family's special case,
    E4 is that family's with beta = 1 - c^2 and E4t = E4 + 2 beta for any speeds (Gaussian shells: E4 = 0,
    E4t = 2 beta); Gaussian shells with an Osipkov-Merritt aspect, B^2 = A^2 r_a^2 / (r^2 + r_a^2), obey both."""
    from dsphnf.flows.beta_prior import EQUILIBRIUM_TAU, TANGENTIAL_EQUATION, fourth_order_residual
    from dsphnf.flows.beta_prior import separable_equilibrium_penalty
    from dsphnf.flows.surface import interp_table

    assert TANGENTIAL_EQUATION["separable"]
    flow = SphericalFlow(**SEPARABLE).double()
    table = radial_table(flow)
    rng = (math.log(0.05), math.log(5.0))
    lnr, lna, lnb, lw = _hand_table(flow, lambda s: (s, s))
    om = (lnr, lna, lnb - 0.5 * torch.log1p(torch.exp(2 * lnr) / 0.3**2)[:, None], lw)
    assert float(separable_equilibrium_penalty(table, om, rng).detach()) < 1e-2  # central differences, 41 nodes
    c = 0.7
    for speed in (lambda s: s, lambda s: s + 0.2 * s * s):  # Gaussian shells, then non-Gaussian speeds
        vtab = _hand_table(flow, lambda s: (speed(s), c * speed(s)))
        lnnu = interp_table(lnr, *table)
        m2, m4 = torch.logsumexp(2 * vtab[1] + lw, -1), torch.logsumexp(4 * vtab[1] + lw, -1)
        x, e4 = fourth_order_residual(lnr, lnnu, m2, m4, torch.full_like(lnr, 1 - c * c))
        inside = (x >= rng[0]) & (x <= rng[1])
        both = e4[inside] ** 2 + (e4[inside] + 2 * (1 - c * c)) ** 2
        expect = (torch.trapezoid(both, x[inside]) / (2 * EQUILIBRIUM_TAU**2)).detach()
        assert float(expect) > 1.0
        assert float(separable_equilibrium_penalty(table, vtab, rng).detach()) == pytest.approx(float(expect), rel=1e-9)
