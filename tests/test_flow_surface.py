"""The exact Abel-projected positional likelihood of a flow against closed forms and brute force."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dsphnf import flows
from dsphnf.flows import SphericalFlow
from dsphnf.flows.stars import StarData
from dsphnf.flows.surface import interp_table, log_surface_density, positional_nll, radial_table
from dsphnf.projection import surface_density

pytestmark = pytest.mark.usefixtures("float64_one_thread")


def random_flow(seed: int, std: float = 0.3, **kw) -> SphericalFlow:
    return flows.random_flow(seed, std, kinematic=False, **kw)


def test_untrained_flow_projects_to_the_plummer_surface_density():
    """The identity flow on the Plummer base: Sigma = 1 / (pi (1 + R^2)^2) (a = 1, one star)."""
    flow = SphericalFlow(kinematic=False).double()
    R = torch.logspace(-3, 2, 60)
    exact = -math.log(math.pi) - 2 * torch.log1p(R**2)
    assert torch.allclose(log_surface_density(flow, R), exact, atol=1e-3)


def test_gaussian_base_projects_to_a_2d_gaussian():
    flow = SphericalFlow(kinematic=False, base="gaussian").double()
    R = torch.logspace(-3, math.log10(3.0), 30)
    exact = -0.5 * R**2 - math.log(2 * math.pi)
    assert torch.allclose(log_surface_density(flow, R), exact, atol=5e-3)


@pytest.mark.parametrize("inner", ["free", "cored", "cuspy"])
def test_sigma_is_the_abel_projection_of_the_exact_nu(inner):
    """Against dsphnf.projection.surface_density of the flow's exact log_nu (Newton inverse)."""
    flow = random_flow(4, inner=inner)
    R = np.array([0.05, 0.2, 0.7, 2.0, 6.0])

    def nu(r):
        r = np.asarray(r, dtype=float)
        out = flow.log_nu(torch.as_tensor(r.ravel())).detach().numpy()
        return np.exp(out).reshape(r.shape)

    ref = surface_density(R, nu)
    got = np.exp(log_surface_density(flow, torch.as_tensor(R)).detach().numpy())
    np.testing.assert_allclose(got, ref, rtol=3e-3)


@pytest.mark.parametrize("inner", ["free", "cuspy"])
def test_sigma_is_normalised_to_one_star(inner):
    flow = random_flow(5, std=0.1, inner=inner)
    lnr, _ = radial_table(flow)
    lnR = torch.linspace(float(lnr[0].detach()), float(lnr[-1].detach()), 4000)
    R = torch.exp(lnR)
    y = 2 * math.pi * R * R * torch.exp(log_surface_density(flow, R)).detach()
    assert float(torch.trapezoid(y, lnR)) == pytest.approx(1.0, abs=3e-3)


def test_sigma_agrees_with_a_histogram_of_flow_samples():
    flow = random_flow(6, inner="free")
    g = torch.Generator().manual_seed(0)
    x = flow.sample(200_000, g)
    R = torch.linalg.vector_norm(x[:, :2], dim=-1).detach().numpy()
    edges = np.quantile(R, np.linspace(0.05, 0.95, 10))
    counts, _ = np.histogram(R, edges)
    mid = np.sqrt(edges[1:] * edges[:-1])
    frac_model = counts / len(R)
    Rg = torch.as_tensor(np.concatenate([np.linspace(a, b, 60) for a, b in zip(edges[:-1], edges[1:])]))
    S = np.exp(log_surface_density(flow, Rg).detach().numpy()).reshape(len(mid), 60)
    frac_exact = np.trapezoid(2 * np.pi * Rg.numpy().reshape(len(mid), 60) * S, Rg.numpy().reshape(len(mid), 60), axis=1)
    np.testing.assert_allclose(frac_model, frac_exact, rtol=0.03)


def test_interpolation_is_exact_at_nodes_and_linear_outside():
    lnr = torch.tensor([0.0, 1.0, 3.0])
    lnnu = torch.tensor([1.0, -1.0, -5.0])
    q = torch.tensor([0.0, 1.0, 3.0, 2.0, -1.0, 4.0])
    assert torch.allclose(interp_table(q, lnr, lnnu), torch.tensor([1.0, -1.0, -5.0, -3.0, 3.0, -7.0]))
    # a two-column table, held at the end values instead of extrapolated
    two = torch.stack([lnnu, 2 * lnnu], dim=-1)
    held = interp_table(q, lnr, two, extrapolate=False)
    assert held.shape == (6, 2)
    assert torch.allclose(held[:, 0], torch.tensor([1.0, -1.0, -5.0, -3.0, 1.0, -5.0])) and torch.allclose(held[:, 1], 2 * held[:, 0])


def test_positional_nll_has_the_gradient_of_brute_force_finite_differences():
    flow = random_flow(7, std=0.2, inner="cuspy")
    R = torch.tensor([0.1, 0.5, 1.0, 3.0])
    loss = positional_nll(flow, R, torch.tensor([1.0, 0.5, 1.0, 0.2]))
    loss.backward()
    p = flow.c_raw
    eps = 1e-6
    with torch.no_grad():
        p += eps
        up = positional_nll(flow, R, torch.tensor([1.0, 0.5, 1.0, 0.2]))
        p -= 2 * eps
        dn = positional_nll(flow, R, torch.tensor([1.0, 0.5, 1.0, 0.2]))
        p += eps
    assert float(p.grad) == pytest.approx(float((up - dn) / (2 * eps)), rel=1e-5)


def test_table_is_monotone_and_follows_the_radial_map():
    flow = random_flow(8)
    lnr, lnnu = radial_table(flow)
    assert bool(torch.all(torch.diff(lnr) > 0))
    # fourth-order differences inside, second order at the two end nodes
    r = torch.exp(lnr[2:-2:20]).detach()
    assert torch.allclose(lnnu[2:-2:20].detach(), flow.log_nu(r).detach(), atol=2e-5)
