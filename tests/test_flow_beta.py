"""Learned anisotropy of the flow: parametrisations, the anisotropy layer read back from samples, the prior."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dsphnf.anisotropy import Inferred, parse_anisotropy
from dsphnf.flows import SphericalFlow, random_flow
from dsphnf.flows.beta import BETA_MAX, BETA_MIN, GAIN, FreeBeta, bounded_beta, learned_anisotropy, symmetrised
from dsphnf.flows.beta_prior import (anisotropy_penalty, equilibrium_penalty, fourth_order_residual,
                                     learned_prior_per_star, tangential_fourth_order_residual)
from dsphnf.flows.surface import radial_table
from dsphnf.flows.cnf import FLOW_FORMS
from dsphnf.flows.losvd import exact_nll, velocity_table
from dsphnf.flows.moments import flow_profiles
from dsphnf.flows.prior import SmoothnessPrior, sigma_r2_table

pytestmark = pytest.mark.usefixtures("float64_one_thread")
FAMILIES = ("free", "constant", "om", "cuddeford", "baes")


def test_bounded_beta_is_isotropic_at_zero_and_stays_inside_its_bounds():
    s = torch.linspace(-60.0, 60.0, 2001, dtype=torch.float64)
    b = bounded_beta(s)
    assert float(bounded_beta(torch.tensor(0.0, dtype=torch.float64))) == pytest.approx(0.0, abs=1e-15)
    assert float(b.min()) >= BETA_MIN - 1e-12 and float(b.max()) <= BETA_MAX + 1e-12
    assert float(b.min()) == pytest.approx(BETA_MIN, abs=1e-6) and float(b.max()) == pytest.approx(BETA_MAX, abs=1e-6)
    assert bool(torch.all(torch.diff(b) > -1e-15))  # monotone
    # y = beta / (2 - beta) is the symmetrised anisotropy: -1 < y < 1 and beta = 2y / (1 + y)
    y = symmetrised(b)
    assert torch.allclose(2 * y / (1 + y), b, atol=1e-12)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_starts_isotropic_inside_the_data(family):
    """A fresh module has beta ~ 0 at 0.02-5 L (Osipkov-Merritt: r_a = 10 L, so beta < 0.2 there)."""
    net = learned_anisotropy(family).double()
    r = torch.exp(torch.linspace(math.log(0.02), math.log(5.0), 30, dtype=torch.float64))
    b = net(r).detach()
    assert float(b.abs().max()) < (0.21 if family in ("om", "cuddeford") else 1e-12)
    assert f"inferred:{family}" in FLOW_FORMS
    assert net.spec() == family


def test_free_profile_is_smooth_and_flat_outside_the_knots():
    torch.manual_seed(0)
    net = FreeBeta().double()
    with torch.no_grad():
        net.coef.normal_(0.0, 1.0 / GAIN)
    x = torch.linspace(math.log(1e-3), math.log(1e3), 4001, dtype=torch.float64)
    b = net(torch.exp(x)).detach().numpy()
    h = float(x[1] - x[0])
    d2 = np.diff(b, 2) / h**2
    # C2 spline of a smooth argument: the second derivative has no jumps (finite, small steps)
    assert np.all(np.isfinite(d2)) and np.max(np.abs(np.diff(d2))) < 0.05 * max(1.0, np.max(np.abs(d2)))
    # far outside the knot range beta is constant
    far = net(torch.tensor([1e-7, 1e-5, 1e5, 1e7], dtype=torch.float64)).detach().numpy()
    assert abs(far[0] - far[1]) < 1e-3 * np.ptp(b) and abs(far[3] - far[2]) < 1e-3 * np.ptp(b)
    assert b.min() > BETA_MIN and b.max() < BETA_MAX


#: learned parameters set by hand for the read-back test (every family far from isotropy)
SET = {"free": {"coef": torch.linspace(-2.0, 2.0, 10)}, "om": {"log_ra": torch.tensor(math.log(0.5))},
       "baes": {"s0": torch.tensor(-1.5), "sinf": torch.tensor(1.5), "log_ra": torch.tensor(-0.5)}}
SET = {fam: {k: v / GAIN for k, v in values.items()} for fam, values in SET.items()}  # parameters are stored / GAIN


@pytest.mark.parametrize("family", sorted(SET))
def test_anisotropy_layer_with_a_learned_beta_is_read_back_from_samples(family):
    """sigma_t^2 / sigma_r^2 = 1 - beta(r) from 1e5 flow samples at one radius, for a fixed learned beta."""
    flow = random_flow(31, std=0.2, weights="replace", anisotropy=Inferred(family), inner="cored")
    with torch.no_grad():
        for name, value in SET[family].items():
            getattr(flow.beta_net, name).copy_(value)
    n = 100_000
    g = torch.Generator().manual_seed(5)
    for u0 in (0.5, 1.5):
        ux = torch.zeros(n, 3, dtype=torch.float64)
        ux[:, 2] = u0
        with torch.no_grad():
            x, v = flow.transform(ux, torch.randn(n, 3, generator=g, dtype=torch.float64))
            r = x[:1, 2]
            beta = float(flow.beta(r))
        ratio = float(0.5 * (v[:, 0] ** 2 + v[:, 1] ** 2).mean() / (v[:, 2] ** 2).mean())
        assert abs(beta) > 0.05  # a non-trivial anisotropy
        assert ratio == pytest.approx(1.0 - beta, rel=6 * math.sqrt(3.0 / n))
        # and the Jeans read-out uses the same beta(r)
        p = flow_profiles(flow, np.array([float(r)]), 1.0, 1.0, need_rho=False)
        assert p["beta"][0] == pytest.approx(beta, abs=1e-12)
        assert p["sigma_t"][0] ** 2 == pytest.approx((1 - beta) * p["sigma_r"][0] ** 2, rel=1e-12)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_exact_likelihood_trains_the_anisotropy_parameters(family):
    torch.manual_seed(1)
    flow = SphericalFlow(anisotropy=Inferred(family), width=8).double()
    g = torch.Generator().manual_seed(2)
    R = torch.rand(50, generator=g, dtype=torch.float64) * 2 + 0.05
    v = torch.randn(50, generator=g, dtype=torch.float64)
    exact_nll(flow, R, v, torch.tensor(0.25, dtype=torch.float64)).backward()
    grads = [p.grad for p in flow.beta_net.parameters()]
    assert grads and all(gr is not None and bool(torch.isfinite(gr).all()) for gr in grads)
    assert sum(float(gr.abs().sum()) for gr in grads) > 0
    # the learned parameters travel with the flow's spec and state
    again = SphericalFlow(**{**flow.spec(), "anisotropy": parse_anisotropy(flow.spec()["anisotropy"])}).double()
    again.load_state_dict(flow.state_dict())
    r = torch.tensor([0.1, 1.0, 3.0], dtype=torch.float64)
    assert torch.equal(again.beta(r), flow.beta(r))


# ---------------------------------------------------------------------------- the prior's closed forms
def test_anisotropy_penalty_closed_forms():
    """P = Int (y'')^2 / (2 tb^2) + Int (y')^2 / (2 ts^2) + Int (d^3 ln sigma_t^2)^2 / (2 tau^2) over ln r,
    y = beta / (2 - beta)."""
    x = torch.linspace(-4.0, 4.0, 161, dtype=torch.float64)  # nodes every 0.05
    lo, hi = -3.0 - 1e-9, 3.0 + 1e-9
    # y quadratic in ln r, sigma_t constant: (2a)^2 (hi - lo) / (2 tb^2)
    a, tb = 0.05, 0.7
    y = a * x**2
    beta = 2 * y / (1 + y)
    p = anisotropy_penalty(x, beta, -torch.log1p(-beta), (lo, hi), tau=1.0, beta_tau=tb, slope_tau=math.inf)
    assert float(p) == pytest.approx((2 * a) ** 2 * 6.0 / (2 * tb**2), rel=1e-9)
    # its slope term alone (curvature scale infinite): Int (2 a x)^2 dx = 4 a^2 (hi^3 - lo^3) / 3
    ts = 0.3
    p = anisotropy_penalty(x, beta, -torch.log1p(-beta), (lo, hi), tau=1.0, beta_tau=math.inf, slope_tau=ts)
    assert float(p) == pytest.approx(4 * a**2 * 54.0 / 3.0 / (2 * ts**2), rel=1e-3)  # trapezoid of x^2, h = 0.05
    # beta = 0, ln sigma_r^2 cubic: c^2 (hi - lo) / (2 tau^2) from the sigma_t term alone
    # (the integral counts each segment by its overlap with [lo, hi], prior._integral_inside)
    c, tau = 0.3, 0.4
    p = anisotropy_penalty(x, 0 * x, c * x**3 / 6, (-3.0, 3.0), tau=tau, slope_tau=0.01)
    assert float(p) == pytest.approx(c**2 * 6.0 / (2 * tau**2), rel=1e-9)
    # a whole Osipkov-Merritt transition: y = sigmoid(2 ln r - ln 2 r_a^2), Int (y'')^2 = 8/30
    xs = torch.linspace(-9.0, 9.0, 3601, dtype=torch.float64)
    b = torch.exp(2 * xs) / (torch.exp(2 * xs) + 1.0)  # r_a = 1
    lnsr2 = -torch.log1p(-b)  # keep sigma_t constant to isolate the first term
    p = anisotropy_penalty(xs, b, lnsr2, (-8.0, 8.0), tau=1.0, beta_tau=1.0, slope_tau=math.inf)
    assert float(p) == pytest.approx(8.0 / 30.0 / 2.0, rel=1e-3)
    # and Int (y')^2 = 1/3 for the slope term: the whole transition costs 1 / (6 ts^2) nats
    p = anisotropy_penalty(xs, b, lnsr2, (-8.0, 8.0), tau=1.0, beta_tau=math.inf, slope_tau=ts)
    assert float(p) == pytest.approx(1.0 / 3.0 / (2 * ts**2), rel=1e-3)
    # a constant beta costs nothing in either term
    k = 0 * xs + 0.4
    p = anisotropy_penalty(xs, k, -torch.log1p(-k), (-8.0, 8.0), tau=1.0)
    assert float(p) == pytest.approx(0.0, abs=1e-12)


def _prior_map_outside_the_data(slope_tau: float) -> tuple[float, float]:
    """y = beta/(2 - beta) of a free beta(r) at the data's inner edge (ln r = -0.25) and far inside it
    (ln r = -4), at the minimum of its smoothness prior plus a pin to a rising line near ln r = 0."""
    net = FreeBeta().double()
    lnr = torch.linspace(-4.0, 2.0, 241, dtype=torch.float64)
    near = lnr.abs() <= 0.25  # the "data": y = 0.3 + 0.3 ln r, known to +-0.01, only here
    opt = torch.optim.LBFGS(net.parameters(), max_iter=500, tolerance_grad=1e-12, line_search_fn="strong_wolfe")

    def objective():
        opt.zero_grad()
        beta = net(torch.exp(lnr))
        y = symmetrised(beta)
        pen = anisotropy_penalty(lnr, beta, -torch.log1p(-beta), (-4.0, 2.0), tau=1.0, slope_tau=slope_tau)
        loss = pen + (((y - 0.3 - 0.3 * lnr)[near] / 0.01) ** 2).sum() / 2
        loss.backward()
        return loss

    for _ in range(4):
        opt.step(objective)
    y = symmetrised(net(torch.exp(torch.tensor([-0.25, -4.0], dtype=torch.float64)))).detach()
    return float(y[0]), float(y[1])


def test_an_unconstrained_free_beta_levels_off_with_the_slope_term_and_follows_the_slope_without():
    """Where no stars are, the prior decides: with its slope term beta levels off near the value at the
    data's edge (as every physical family tends to a constant); with the curvature term alone the slope
    measured in the data is carried on, here to the tangential bound of the parametrisation.

    With both terms the slope decays as exp(-|ln r - ln r_edge| / l), l = tau_slope / tau_beta = 0.5
    (their Euler-Lagrange equation y^(4) / tau_beta^2 = y^(2) / tau_slope^2), so y levels off about
    0.3 x 0.5 = 0.15 below its edge value, 3.75 e-folds of radius away.
    """
    edge, centre = _prior_map_outside_the_data(0.25)
    assert edge == pytest.approx(0.225, abs=0.02)
    assert 0.05 < edge - centre < 0.25
    edge, centre = _prior_map_outside_the_data(math.inf)
    assert edge == pytest.approx(0.225, abs=0.02)
    assert centre < edge - 0.6  # a straight line would reach 0.3 - 1.2 = -0.9, below y's bound -0.6


def test_fourth_order_residual_closed_form():
    """E4 = d ln(nu m4) + 2 beta - (3 sigma_r^4/m4)(d ln(nu sigma_r^2) + 2 beta) for analytic profiles."""
    x = torch.linspace(-2.0, 2.0, 801, dtype=torch.float64)
    lnnu = -2 * x - 0.5 * x**2
    lnm2 = 0.3 * x  # ln <s^2>
    lnm4 = 0.5 * x + math.log(15.0) + 0.2 * torch.sin(x)  # ln <s^4>
    beta = 0.4 * torch.tanh(x)
    xc, e4 = fourth_order_residual(x, lnnu, lnm2, lnm4, beta)
    xc = xc.numpy()
    b = 0.4 * np.tanh(xc)
    kappa_w = (5.0 / 3.0) * np.exp(2 * 0.3 * xc - (0.5 * xc + math.log(15.0) + 0.2 * np.sin(xc)))
    want = (-2 - xc + 0.5 + 0.2 * np.cos(xc)) + 2 * b - kappa_w * (-2 - xc + 0.3 + 2 * b)
    np.testing.assert_allclose(e4.numpy(), want, atol=1e-4)


def _beta_law_moments(beta: torch.Tensor, sr2: torch.Tensor, m4: torch.Tensor) -> dict[str, torch.Tensor]:
    """Moments of an L^(-2 beta) f(E) distribution at each radius from its sigma_r^2 and <v_r^4>: the direction law
    (1 - mu^2)^(-beta) makes x = mu^2 a Beta(1/2, 1 - beta) variate, so <v_r^2 v_theta^2> = (1 - beta) <v_r^4> / 3
    and <v_t^4> = (4/3)(1 - beta)(2 - beta) <v_r^4>."""
    return {"sr2": sr2, "st2": (1 - beta) * sr2, "m4": m4, "m22": (1 - beta) * m4 / 3,
            "t4": 4 * (1 - beta) * (2 - beta) * m4 / 3}


def test_tangential_equation_of_a_constant_beta_distribution_is_the_radial_one():
    """For f = L^(-2 beta) f0(E) the v_r v_t^2 equation reduces to the v_r^3 one: E4t = E4 for any nu and moments."""
    x = torch.linspace(-2.0, 2.0, 201, dtype=torch.float64)
    lnnu, sr2 = -2 * x - 0.5 * x**2, torch.exp(0.3 * x)
    m4 = 3 * sr2**2 * torch.exp(0.2 * torch.sin(x))
    for b0 in (-1.5, -0.5, 0.0, 0.4):
        beta = torch.full_like(x, b0)
        mom = _beta_law_moments(beta, sr2, m4)
        _, e4 = fourth_order_residual(x, lnnu, torch.log(3 * sr2), torch.log(5 * m4), beta)
        _, e4t = tangential_fourth_order_residual(x, lnnu, mom)
        assert float(e4.abs().max()) > 0.05
        np.testing.assert_allclose(e4t.numpy(), e4.numpy(), atol=1e-12)


def test_elliptical_family_holds_the_tangential_equation_only_for_osipkov_merritt():
    """Gaussian ellipsoids of constant width (E4 = 0 for any beta) have E4t = 2 beta + d ln(1 - beta)/d ln r:
    2 beta for a constant beta, zero for beta = r^2 / (r^2 + r_a^2)."""
    x = torch.linspace(-2.0, 2.0, 801, dtype=torch.float64)
    one = torch.ones_like(x)

    def e4t(beta):  # isotropic Gaussian w (sigma 1), v_t stretched by sqrt(1 - beta)
        mom = {"sr2": one, "st2": 1 - beta, "m22": 1 - beta, "t4": 8 * (1 - beta) ** 2}
        return tangential_fourth_order_residual(x, -3 * x, mom)[1]

    np.testing.assert_allclose(e4t(torch.full_like(x, -0.5)).numpy(), -1.0, atol=1e-12)
    r2 = torch.exp(2 * x)
    assert float(e4t(r2 / (r2 + 0.3**2)).abs().max()) < 1e-4


def test_elliptical_family_pays_for_a_constant_beta_when_told_to_hold_the_tangential_equation(monkeypatch):
    """The switch of :data:`TANGENTIAL_EQUATION`: Gaussian speeds of constant width with beta = -0.5 pay
    Int (2 beta)^2 d ln r / (2 tau_4^2) with it, nothing without it."""
    from dsphnf.flows import beta_prior

    flow = random_flow(4, std=0.3, anisotropy=Inferred("free"))
    with torch.no_grad():
        for p in flow.vel_field.parameters():
            p.zero_()
    table, vt = radial_table(flow), velocity_table(flow)
    beta = torch.full_like(vt[0], -0.5)
    assert float(equilibrium_penalty(table, vt, beta, (-3.0, 2.0)).detach()) < 1e-12
    monkeypatch.setitem(beta_prior.TANGENTIAL_EQUATION, "elliptical", True)
    x = vt[0][1:-1].detach()
    x = x[(x >= -3.0) & (x <= 2.0)]
    want = float(x.max() - x.min()) * 1.0 / (2.0 * beta_prior.EQUILIBRIUM_TAU**2)
    assert float(equilibrium_penalty(table, vt, beta, (-3.0, 2.0)).detach()) == pytest.approx(want, rel=1e-6)


def test_gaussian_speeds_are_in_fourth_order_equilibrium_for_any_beta():
    """A flow with an untrained velocity map (Gaussian speeds, constant width) and any nu, beta: P_4 ~ 0."""
    flow = random_flow(4, std=0.3, anisotropy=Inferred("free"))
    with torch.no_grad():
        for p in flow.vel_field.parameters():
            p.zero_()
    table, vt = radial_table(flow), velocity_table(flow)
    beta = flow.beta(torch.exp(vt[0]))
    assert float(beta.detach().abs().max()) > 0.1
    assert float(equilibrium_penalty(table, vt, beta, (-3.0, 2.0)).detach()) < 1e-12
    # a velocity map with a radius-dependent shape is not, and pays for it
    flow2 = random_flow(4, std=0.3, anisotropy=Inferred("free"))
    vt2 = velocity_table(flow2)
    assert float(equilibrium_penalty(radial_table(flow2), vt2, flow2.beta(torch.exp(vt2[0])), (-3.0, 2.0)).detach()) > 1e-3


def test_learned_prior_terms():
    R = torch.tensor([0.05, 0.5, 1.0, 4.0], dtype=torch.float64)
    prior = SmoothnessPrior.for_stars(R, torch.ones(4, dtype=torch.float64), tau=1.0)
    free = random_flow(3, anisotropy=Inferred("free"))
    table, vt = radial_table(free), velocity_table(free)
    beta = free.beta(torch.exp(vt[0]))
    want = (anisotropy_penalty(vt[0], beta, sigma_r2_table(vt), prior.log_range, 1.0)
            + equilibrium_penalty(table, vt, beta, prior.log_range)).detach() / 4.0
    got = learned_prior_per_star(free, table, vt, prior).detach()
    assert float(got) == pytest.approx(float(want), rel=1e-12) and float(got) > 0
    om = random_flow(3, anisotropy=Inferred("om"))
    table, vt = radial_table(om), velocity_table(om)
    want = equilibrium_penalty(table, vt, om.beta(torch.exp(vt[0])), prior.log_range).detach() / 4.0
    assert float(learned_prior_per_star(om, table, vt, prior).detach()) == pytest.approx(float(want), rel=1e-12)
    given = random_flow(3, anisotropy=parse_anisotropy("om:0.3"))
    assert learned_prior_per_star(given, radial_table(given), velocity_table(given), prior) == 0.0


@pytest.mark.parametrize("family", ["free", "om"])
def test_inferred_fit_writes_beta_and_sigma_bands_and_figures(family, tmp_path):
    from dsphnf import draw_mock
    from dsphnf.flows import fit_flow
    from dsphnf.result import load_result

    cat = draw_mock("PlumCoreOm", n=60, seed=0).catalog
    res = fit_flow(cat, family, steps=3, ensemble=2, progress=False)
    for key in ("beta", "sigma_r", "sigma_t"):
        assert np.all(np.isfinite(res.profile[key + "_lo"])) and np.all(res.profile[key + "_lo"] <= res.profile[key + "_hi"])
    assert res.summary["settings"]["anisotropy"] == family
    learned = res.summary["diagnostics"]["members"][0]["anisotropy"]
    assert (set(learned) == {"ra_kpc"}) if family == "om" else learned == {}
    out = res.save(tmp_path / "fit")
    back = load_result(out)
    assert np.allclose(back.profile["sigma_t_hi"], res.profile["sigma_t_hi"])
    assert (out / "profiles.png").exists()
