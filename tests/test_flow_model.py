"""The equivariant flow as a map: symmetry, invertibility, exact densities, inner slopes."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchdiffeq import odeint

from conftest import random_rotation
from dsphnf.anisotropy import ConstantBeta, Inferred, Isotropic, OsipkovMerritt
from dsphnf.flows.cnf import SphericalFlow
from dsphnf.flows.field import soft_log_radius


pytestmark = pytest.mark.usefixtures("float64_one_thread")


def random_flow(seed: int = 0, std: float = 0.15, **kw) -> SphericalFlow:
    """A flow with random (non-trivial) weights in float64."""
    torch.manual_seed(seed)
    flow = SphericalFlow(**kw).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.normal_(0.0, std)
        if flow.c_raw is not None:
            flow.c_raw.fill_(math.log(math.expm1(0.6)))
    return flow


CASES = [
    dict(inner="free", anisotropy=Isotropic()),
    dict(inner="cored", anisotropy=OsipkovMerritt(0.5), length_scale=0.3),
    dict(inner="cuspy", anisotropy=Inferred("free")),
    dict(inner="cuspy", anisotropy=ConstantBeta(-0.4), base="gaussian"),
]


@pytest.mark.parametrize("kw", CASES)
def test_samples_and_density_are_rotation_equivariant(kw):
    flow = random_flow(1, **kw)
    g = torch.Generator().manual_seed(5)
    ux, uv = torch.randn(64, 3, generator=g), torch.randn(64, 3, generator=g)
    x, v, lf = flow.log_prob_base(ux, uv)
    for k in range(3):
        Q = random_rotation(10 + k)
        xr, vr = flow.transform(ux @ Q.T, uv @ Q.T)
        # T(R u) = R T(u), jointly on positions and velocities
        assert torch.allclose(xr, x @ Q.T, atol=1e-11, rtol=1e-11)
        assert torch.allclose(vr, v @ Q.T, atol=1e-11, rtol=1e-11)
        # f(R x, R v) = f(x, v)
        x2, v2, lf2 = flow.log_prob_base(ux @ Q.T, uv @ Q.T)
        assert torch.allclose(lf2, lf, atol=1e-10)
        assert torch.allclose(flow.log_prob_x(x @ Q.T), flow.log_prob_x(x), atol=1e-10)
    # and the vector fields themselves: F(R x) = R F(x)
    Q = random_rotation(99)
    t = torch.tensor(0.37)
    assert torch.allclose(flow.pos_field(t, x @ Q.T), flow.pos_field(t, x) @ Q.T, atol=1e-12)
    assert torch.allclose(flow.vel_field(t, x @ Q.T, v @ Q.T), flow.vel_field(t, x, v) @ Q.T, atol=1e-12)


@pytest.mark.parametrize("kw", CASES)
def test_velocity_distribution_is_even(kw):
    """f(x, v) = f(x, -v): the flow maps -u_v to -v (no streaming or rotation)."""
    flow = random_flow(2, **kw)
    g = torch.Generator().manual_seed(3)
    ux, uv = torch.randn(32, 3, generator=g), torch.randn(32, 3, generator=g)
    x1, v1, l1 = flow.log_prob_base(ux, uv)
    x2, v2, l2 = flow.log_prob_base(ux, -uv)
    assert torch.allclose(x1, x2) and torch.allclose(v2, -v1, atol=1e-12) and torch.allclose(l1, l2, atol=1e-12)


@pytest.mark.parametrize("kw", CASES)
def test_forward_then_backward_is_identity(kw):
    flow = random_flow(3, n_steps=16, **kw)
    g = torch.Generator().manual_seed(4)
    ux, uv = torch.randn(200, 3, generator=g), torch.randn(200, 3, generator=g)
    x, v = flow.transform(ux, uv)
    ux2, uv2 = flow.inverse(x, v)
    # reverse-time RK4 inverts the forward RK4 map up to its truncation error
    assert torch.allclose(ux2, ux, atol=2e-6) and torch.allclose(uv2, uv, atol=2e-6)
    # the Newton inverse of the radial map is exact
    r = torch.linalg.vector_norm(x, dim=-1)
    assert torch.allclose(flow.inverse_radius(r), torch.linalg.vector_norm(ux, dim=-1), rtol=1e-11)


@pytest.mark.parametrize("inner", ["free", "cored", "cuspy"])
def test_positional_log_det_matches_brute_force_jacobian(inner):
    flow = random_flow(4, kinematic=False, inner=inner)
    g = torch.Generator().manual_seed(6)
    ux = torch.randn(6, 3, generator=g)
    logp = flow.log_prob_base(ux)[1].detach()
    for i in range(ux.shape[0]):
        J = torch.autograd.functional.jacobian(lambda u: flow.transform(u.unsqueeze(0))[0], ux[i])
        brute = -0.5 * float(ux[i] @ ux[i]) - 1.5 * math.log(2 * math.pi) - torch.linalg.slogdet(J)[1]
        assert float(logp[i]) == pytest.approx(float(brute), abs=1e-10)


@pytest.mark.parametrize("kw", CASES)
def test_phase_space_log_det_matches_brute_force_jacobian(kw):
    flow = random_flow(5, **kw)
    g = torch.Generator().manual_seed(7)
    ux, uv = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    _, _, lf = flow.log_prob_base(ux, uv)

    def T(z):
        x, v = flow.transform(z[:3].unsqueeze(0), z[3:].unsqueeze(0))
        return torch.cat([x[0], v[0]])

    for i in range(4):
        z = torch.cat([ux[i], uv[i]])
        J = torch.autograd.functional.jacobian(T, z)
        brute = -0.5 * float(z @ z) - 3.0 * math.log(2 * math.pi) - torch.linalg.slogdet(J)[1]
        assert float(lf[i]) == pytest.approx(float(brute), abs=1e-9)


def test_radial_reduction_equals_3d_field_and_divergence():
    """The 1-D radial ODE equals the 3-D field x h(|x|, t); ln det = Int div F dt."""
    flow = random_flow(6, kinematic=False, inner="free", base="gaussian", n_steps=64)
    g = torch.Generator().manual_seed(8)
    x0 = torch.randn(5, 3, generator=g)

    def aug(t, y):
        x = y[:, :3]
        r = torch.linalg.vector_norm(x, dim=-1)
        div = flow.pos_field.divergence(torch.log(r), t)
        return torch.cat([flow.pos_field(t, x), div.unsqueeze(-1)], dim=-1)

    y0 = torch.cat([x0, torch.zeros(5, 1)], dim=-1)
    y1 = odeint(aug, y0, torch.tensor([0.0, 1.0]), method="dopri5", rtol=1e-11, atol=1e-12)[-1]
    x1, logp = flow.log_prob_base(x0)
    assert torch.allclose(y1[:, :3], x1, rtol=1e-8, atol=1e-10)
    log_base = -0.5 * (x0 * x0).sum(-1) - 1.5 * math.log(2 * math.pi)
    assert torch.allclose(log_base - y1[:, 3], logp, atol=1e-7)


def test_fixed_step_solver_is_torchdiffeq_rk4():
    flow = random_flow(7, n_steps=8)
    y0 = torch.randn(10, 2)
    ours = flow.solve(y0)
    ref = odeint(flow._rhs, y0, torch.tensor([0.0, 1.0]), method="rk4", options={"step_size": 1 / 8})[-1]
    assert torch.allclose(ours, ref, atol=1e-13)


@pytest.mark.parametrize("kw", [dict(inner="free"), dict(inner="cored"), dict(inner="cuspy"),
                                dict(inner="free", base="gaussian")])
def test_nu_is_normalised_to_one(kw):
    flow = random_flow(8, kinematic=False, **kw)
    u = torch.tensor([1e-3, 7.5])
    r_lo, r_hi = flow.radial_map(u).tolist()
    r = torch.logspace(math.log10(r_lo), math.log10(r_hi), 3000)
    nu = torch.exp(flow.log_nu(r)).detach()
    integrand = (4 * math.pi * nu * r**3).numpy()  # d(mass)/d ln r
    mass = np.trapezoid(integrand, np.log(r.numpy()))
    assert mass == pytest.approx(1.0, abs=2e-4)


def test_identity_flow_has_the_base_density():
    """Zero fields: Plummer (a = 1) and Gaussian bases come out exactly."""
    r = torch.logspace(-2, 1.2, 30)
    plum = SphericalFlow(kinematic=False).double()
    expect = 3 / (4 * math.pi) * (1 + r**2) ** -2.5
    assert torch.allclose(torch.exp(plum.log_nu(r)), expect, rtol=1e-10)
    gauss = SphericalFlow(kinematic=False, base="gaussian").double()
    expect = (2 * math.pi) ** -1.5 * torch.exp(-0.5 * r**2)
    assert torch.allclose(torch.exp(gauss.log_nu(r)), expect, rtol=1e-10)


def _inner_slope(flow, r):
    from dsphnf.flows.moments import flow_profiles

    return flow_profiles(flow, np.array([r]), 1.0)["dlnnu_dlnr"][0]


def test_cored_flow_has_a_flat_centre():
    flow = random_flow(9, std=0.3, kinematic=False, inner="cored", r0=0.1)
    s1, s2 = _inner_slope(flow, 1e-4), _inner_slope(flow, 1e-6)
    # the slope vanishes (linearly in r) towards the centre
    assert abs(s2) < 2e-3 and abs(s2) < abs(s1) / 30
    # while at the scale of the data the slope is not constrained to be flat
    assert abs(_inner_slope(flow, 1.0)) > 0.3


@pytest.mark.parametrize("c", [0.25, 1.0])
def test_cuspy_flow_has_the_designed_inner_slope(c):
    flow = random_flow(10, std=0.3, kinematic=False, inner="cuspy", cusp_c=c)
    expect = -3 * c / (1 + c)
    assert _inner_slope(flow, 1e-8) == pytest.approx(expect, abs=5e-3)
    learned = random_flow(11, std=0.3, kinematic=False, inner="cuspy")
    c_l = float(learned.cusp_power().detach())
    assert _inner_slope(learned, 1e-8) == pytest.approx(-3 * c_l / (1 + c_l), abs=5e-3)


def test_free_inner_slope_follows_the_field():
    """inner='free' with d ln r/dt = a + b ln r gives the power law r -> r^(e^b)."""
    flow = SphericalFlow(kinematic=False, inner="free", base="gaussian", n_steps=32).double()
    lin = flow.pos_field.mlp.net
    with torch.no_grad():
        for p in flow.parameters():
            p.zero_()
        # h(ln r, t) = 0.4 ln r, since SiLU(x) - SiLU(-x) = x, through both hidden layers
        lin[0].weight[0, 0], lin[0].weight[1, 0] = 1.0, -1.0
        lin[2].weight[0, 0], lin[2].weight[0, 1] = 1.0, -1.0
        lin[2].weight[1, 0], lin[2].weight[1, 1] = -1.0, 1.0
        lin[4].weight[0, 0], lin[4].weight[0, 1] = 0.4, -0.4
    k = math.exp(0.4)  # r = u^k near the centre, slope -> 3 (1/k - 1)
    h = flow.pos_field.log_rate(torch.tensor([math.log(0.5)]), 0.0).detach()
    assert float(h) == pytest.approx(0.4 * float(soft_log_radius(torch.tensor(math.log(0.5)))), rel=1e-12)
    assert _inner_slope(flow, 1e-4) == pytest.approx(3 * (1 / k - 1), abs=0.05)


def test_inverse_radius_converges_where_the_map_bends_sharply():
    """Strongly non-linear maps (where plain Newton steps can oscillate) are still inverted, and
    radii outside the reachable range come back as NaN instead of a wrong radius."""
    u = torch.logspace(-3, 0.6, 40, dtype=torch.float64)
    for seed in range(8):
        torch.manual_seed(seed)
        flow = SphericalFlow(kinematic=False, inner="cuspy").double()
        with torch.no_grad():
            for p in flow.parameters():
                p.normal_(0.0, 0.3)
        r = flow.radial_map(u).detach()
        keep = torch.cat([torch.tensor([True]), torch.diff(r) > 0])  # the monotone part of the discretised map
        assert torch.allclose(flow.inverse_radius(r[keep]), u[keep], rtol=1e-8), seed
    assert torch.isnan(flow.inverse_radius(torch.tensor([1e300], dtype=torch.float64))).all()
