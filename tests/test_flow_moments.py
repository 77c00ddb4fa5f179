"""Jeans read-out of flows with known answers, the imposed anisotropy, and the KDE loss."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dsphnf.anisotropy import ConstantBeta, Inferred, Isotropic, OsipkovMerritt, parse_anisotropy
from dsphnf.constants import G
from dsphnf.flows.cnf import SphericalFlow
from dsphnf.flows.kde import bandwidths, kde_log_likelihood_reference, smeared_kde_loss
from dsphnf.flows.stars import StarData
from dsphnf.flows.moments import flow_profiles

from test_flow_model import random_flow


pytestmark = pytest.mark.usefixtures("float64_one_thread")

L, V = 0.3, 9.0  # kpc, km/s of the standardised units


@pytest.mark.parametrize("beta", [Isotropic(), ConstantBeta(0.3), OsipkovMerritt(0.25)])
def test_identity_flow_gives_the_analytic_jeans_solution(beta):
    """Zero fields, Plummer base: nu Plummer (a = L), sigma_r = V, and the closed-form M, rho."""
    flow = SphericalFlow(anisotropy=beta, length_scale=L)
    r = np.logspace(-2, 0.5, 12)
    p = flow_profiles(flow, r, L, V)
    a2 = L**2
    nu = 3 / (4 * np.pi * L**3) * (1 + r**2 / a2) ** -2.5
    slope = -5 * r**2 / (a2 + r**2)
    b = beta.beta(r)
    M = -r * V**2 * (slope + 2 * b) / G
    # dM/dr from the closed form, including d beta/dr
    db = np.gradient(b, r) if not isinstance(beta, OsipkovMerritt) else 2 * r * beta.ra**2 / (r**2 + beta.ra**2) ** 2
    dslope = -10 * r * a2 / (a2 + r**2) ** 2
    dM = -V**2 / G * ((slope + 2 * b) + r * (dslope + 2 * db))
    rho = dM / (4 * np.pi * r**2)
    np.testing.assert_allclose(p["r"], r, rtol=1e-12)
    np.testing.assert_allclose(p["nu"], nu, rtol=1e-10)
    np.testing.assert_allclose(p["sigma_r"], V, rtol=1e-10)
    np.testing.assert_allclose(p["beta"], b, atol=1e-12)
    np.testing.assert_allclose(p["sigma_t"], V * np.sqrt(1 - b), rtol=1e-10)
    np.testing.assert_allclose(p["M"], M, rtol=1e-9)
    np.testing.assert_allclose(p["rho"], rho, rtol=1e-8)


def test_gaussian_identity_flow_has_harmonic_mass():
    """Gaussian nu with sigma_r = V: G M = r^3 V^2 / L^2, a constant density 3 V^2 / (4 pi G L^2)."""
    flow = SphericalFlow(base="gaussian", length_scale=L)
    r = np.array([0.01, 0.1, 0.3, 1.0])
    p = flow_profiles(flow, r, L, V)
    np.testing.assert_allclose(p["M"], r**3 * V**2 / (G * L**2), rtol=1e-9)
    np.testing.assert_allclose(p["rho"], 3 * V**2 / (4 * np.pi * G * L**2), rtol=1e-8)


def _mc_moments(flow, u0: float, n: int = 60_000, seed: int = 0):
    """Monte Carlo sigma_r^2, sigma_t^2 (one component) at the image radius of base radius u0."""
    g = torch.Generator().manual_seed(seed)
    ux = torch.zeros(n, 3)
    ux[:, 2] = u0
    uv = torch.randn(n, 3, generator=g)
    with torch.no_grad():
        x, v = flow.transform(ux, uv)
    vr2 = (v[:, 2] ** 2).mean()
    vt2 = 0.5 * (v[:, 0] ** 2 + v[:, 1] ** 2).mean()
    return float(x[0, 2]), float(vr2), float(vt2), n


@pytest.mark.parametrize("spec", ["om:0.4", "constant:0.5", "constant:-0.8", "free"])
def test_velocity_moments_match_flow_samples(spec):
    """Quadrature moments (and hence an imposed beta) agree with samples of the 6-D flow."""
    flow = random_flow(21, std=0.2, anisotropy=parse_anisotropy(spec), length_scale=L, inner="cored")
    for u0 in (0.4, 1.3):
        r, vr2, vt2, n = _mc_moments(flow, u0)
        p = flow_profiles(flow, np.array([r * L]), L, 1.0, need_rho=False)
        tol = 6 * math.sqrt(2.0 / n)  # ~6 standard errors of a Gaussian variance
        assert p["sigma_r"][0] ** 2 == pytest.approx(vr2, rel=tol)
        assert p["sigma_t"][0] ** 2 == pytest.approx(vt2, rel=tol)
        beta_mc = 1 - vt2 / vr2
        assert p["beta"][0] == pytest.approx(beta_mc, abs=2 * tol)
        # the imposed profile (given, or the flow's learned one), exactly
        want = flow.beta(torch.tensor([r], dtype=torch.float64)) if spec == "free" else parse_anisotropy(spec).beta(r * L)
        assert p["beta"][0] == pytest.approx(float(want[0].detach() if spec == "free" else want), abs=1e-12)


def test_free_anisotropy_flow_is_not_isotropic():
    flow = random_flow(22, std=0.3, anisotropy=Inferred("free"))
    p = flow_profiles(flow, np.array([0.1, 0.5, 2.0]), 1.0, 1.0, need_rho=False)
    assert np.all(np.isfinite(p["beta"])) and np.ptp(p["beta"]) > 0.05


# ---------------------------------------------------------------------------- KDE loss
def _kde_setup(seed=0, verr=True, d=3):
    g = torch.Generator().manual_seed(seed)
    data = torch.randn(40, d, generator=g, dtype=torch.float64)
    w = torch.rand(40, generator=g, dtype=torch.float64)
    ve = torch.rand(40, generator=g, dtype=torch.float64) * 0.5 if (verr and d == 3) else None
    kd = StarData(data, [0.3, 0.25, 0.4][:d], w, ve)
    rows = kd.smeared(g, 3)
    return kd, rows


@pytest.mark.parametrize("d,verr", [(3, True), (3, False), (2, False)])
def test_fast_kde_loss_equals_the_plain_formula_and_its_gradient(d, verr):
    kd, rows = _kde_setup(1, verr, d)
    model = torch.randn(70, d, dtype=torch.float64, requires_grad=True)
    l1 = smeared_kde_loss(kd, model, rows=rows)
    (g1,) = torch.autograd.grad(l1, model)
    l2 = kde_log_likelihood_reference(rows[0], kd.h, rows[2], model, rows[1])
    (g2,) = torch.autograd.grad(l2, model)
    assert float(l1.detach()) == pytest.approx(float(l2.detach()), rel=1e-12)
    assert torch.allclose(g1, g2, atol=1e-12)


def test_kde_loss_is_a_proper_gaussian_cross_entropy():
    """One data point, one model point: -log N(a - c; 0, h^2 + err^2) exactly."""
    a = torch.tensor([[0.3, -0.2, 0.5]], dtype=torch.float64)
    kd = StarData(a, [0.2, 0.3, 0.4], verr=torch.tensor([0.3], dtype=torch.float64))
    rows = (a.clone(), torch.ones(1, dtype=torch.float64), kd.inv_hv2)
    c = torch.tensor([[0.1, 0.1, -0.1]], dtype=torch.float64)
    s2 = torch.tensor([0.04, 0.09, 0.16 + 0.09], dtype=torch.float64)
    expect = 0.5 * (((a - c) ** 2 / s2).sum() + torch.log(2 * math.pi * s2).sum())
    assert float(smeared_kde_loss(kd, c, rows=rows)) == pytest.approx(float(expect), rel=1e-12)


def test_importance_weighted_kde_is_unbiased_for_the_flow():
    """Widened-base samples with weights estimate the same smeared density as plain samples."""
    flow = random_flow(23, std=0.15, kinematic=False)
    kd = StarData(torch.tensor([[0.2, 0.1], [2.5, -1.0], [6.0, 0.0]]), [0.3, 0.3])
    dens, spread = {}, {}
    for scale in (1.0, 1.8):
        per = []
        for i in range(4):
            g = torch.Generator().manual_seed(100 + i)
            with torch.no_grad():
                obs, lw = flow.sample_projected_weighted(50_000, g, scale)
            logk = -0.5 * (((kd.obs[:, None, :] - obs[None]) / kd.h) ** 2).sum(-1)
            lw = torch.zeros(obs.shape[0], dtype=obs.dtype) if lw is None else lw
            per.append(torch.exp(torch.logsumexp(logk + lw, 1) - torch.logsumexp(lw, 0)))
        per = torch.stack(per)
        dens[scale], spread[scale] = per.mean(0), per.std(0) / per.mean(0)
    assert torch.allclose(torch.log(dens[1.0][:2]), torch.log(dens[1.8][:2]), atol=0.05)
    assert abs(float(torch.log(dens[1.0][2] / dens[1.8][2]))) < 3 * float(spread[1.0][2] + spread[1.8][2]) / 2


def test_bandwidth_rule():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(5000, 3)) * [1.0, 2.0, 0.5]
    h = bandwidths(data)
    expect = np.array([1.0, 2.0, 0.5]) * (4 / (5 * 5000)) ** (1 / 7)
    np.testing.assert_allclose(h, expect, rtol=0.05)
    # equal weights do not matter; the factor scales
    np.testing.assert_allclose(bandwidths(data, np.full(5000, 0.3), 0.5), 0.5 * h, rtol=1e-12)
