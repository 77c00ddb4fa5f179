"""The exact line-of-sight velocity likelihood against closed forms and flow samples."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dsphnf.anisotropy import parse_anisotropy
from dsphnf.flows import SphericalFlow
from dsphnf.flows.beta import GAIN
from dsphnf.flows.losvd import exact_nll, log_losvd, velocity_table

pytestmark = pytest.mark.usefixtures("float64_one_thread")


@pytest.mark.parametrize("h", [0.25, 0.4])
def test_identity_flow_has_a_gaussian_losvd_at_every_radius(h):
    """Untrained isotropic flow: v ~ N(0, I) everywhere, so v_z convolved with h is N(0, 1 + h^2)."""
    flow = SphericalFlow(kinematic=True).double()
    R = torch.tensor([0.05, 0.3, 1.0, 3.0, 10.0]).repeat_interleave(6)
    v = torch.tensor([0.0, 0.3, 0.8, 1.5, 2.5, 4.0]).repeat(5)
    ls, lp = log_losvd(flow, R, v, torch.tensor(h))
    exact = -0.5 * v**2 / (1 + h * h) - 0.5 * math.log(2 * math.pi * (1 + h * h))
    assert torch.allclose(lp, exact, atol=3e-3)
    assert torch.allclose(ls, -math.log(math.pi) - 2 * torch.log1p(R**2), atol=2e-3)


@pytest.mark.parametrize("anisotropy", ["om:1.0", "constant:-0.5", "free", "cuddeford"])
def test_losvd_matches_a_kernel_estimate_from_flow_samples(anisotropy):
    """Exact LOSVD against a kernel estimate from 1.5e5 flow samples; given beta, and a learned one (free, cuddeford)."""
    torch.manual_seed(3)
    flow = SphericalFlow(kinematic=True, anisotropy=parse_anisotropy(anisotropy), length_scale=1.0).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(torch.randn_like(p) * 0.3)
        if anisotropy == "free":  # a smooth learned profile, beta from ~-0.9 inside to ~+0.6 outside
            flow.beta_net.coef.copy_(torch.linspace(-1.0, 1.0, flow.beta_net.coef.shape[0]) / GAIN)
        x, v = flow.sample(150_000, torch.Generator().manual_seed(0))
    R = torch.linalg.vector_norm(x[:, :2], dim=-1)
    h = 0.3
    grid = torch.linspace(-2.5, 2.5, 11)
    for R0 in (0.5,):
        sel = (R > 0.95 * R0) & (R < 1.05 * R0)
        vz = v[sel, 2].numpy()
        mc = np.array([np.mean(np.exp(-0.5 * ((g - vz) / h) ** 2)) / (h * math.sqrt(2 * math.pi)) for g in grid.numpy()])
        mc = 0.5 * (mc + mc[::-1])  # the LOSVD is even (f(x, v) = f(x, -v)): halve the Monte Carlo noise
        _, lp = log_losvd(flow, torch.full_like(grid, R0), grid, torch.tensor(h))
        # a +-5 % annulus and ~10^4 samples: a few per cent of Monte Carlo noise
        np.testing.assert_allclose(np.exp(lp.detach().numpy()), mc, rtol=0.1, atol=1e-3 * mc.max())


def test_per_star_widths_and_weights_enter_the_nll():
    flow = SphericalFlow(kinematic=True).double()
    R = torch.tensor([0.5, 1.0, 2.0])
    v = torch.tensor([0.1, -0.7, 1.2])
    h = torch.tensor([0.25, 0.5, 1.0])
    ls, lp = log_losvd(flow, R, v, h)
    exact = -0.5 * v**2 / (1 + h * h) - 0.5 * torch.log(2 * math.pi * (1 + h * h))
    assert torch.allclose(lp, exact, atol=3e-3)
    w = torch.tensor([1.0, 0.0, 2.0])
    nll = exact_nll(flow, R, v, h, w)
    assert float(nll.detach()) == pytest.approx(float((-(w * (ls + lp)).sum() / w.sum()).detach()), rel=1e-12)


def test_speed_table_is_the_identity_for_an_untrained_flow():
    flow = SphericalFlow(kinematic=True).double()
    lnr, lns, lw = velocity_table(flow)
    assert float(torch.logsumexp(lw, 0)) == pytest.approx(0.0, abs=1e-12)
    # the untrained velocity map keeps every base speed
    assert torch.allclose(lns, lns[:1].expand_as(lns))
