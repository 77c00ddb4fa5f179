"""The exact line-of-sight velocity likelihood against closed forms and flow samples."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dsphnf.anisotropy import Inferred, parse_anisotropy
from dsphnf.flows import SphericalFlow
from dsphnf.flows.beta import GAIN
from dsphnf.flows import losvd
from dsphnf.flows.losvd import exact_nll, expected_log_mixture, log_losvd, uniform_mixture, velocity_table

pytestmark = pytest.mark.usefixtures("float64_one_thread")


@pytest.mark.parametrize("velocity", ["elliptical", "separable", "angular"])
@pytest.mark.parametrize("h", [0.25, 0.4])
def test_identity_flow_has_a_gaussian_losvd_at_every_radius(h, velocity):
    """Untrained flow of either velocity family: v ~ N(0, I) everywhere, so v_z convolved with h is N(0, 1 + h^2)."""
    beta = {"anisotropy": Inferred("free")} if velocity != "elliptical" else {}
    flow = SphericalFlow(kinematic=True, velocity=velocity, **beta).double()
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


def _mixture_inputs(seed: int):
    """Random mixture inputs (n, k, 1, 1), (n, 1, S, J) x 2, (n, 1, 1, 1): 40 stars, 3 velocities, 5 x 4 nodes."""
    g = torch.Generator().manual_seed(seed)
    n, k, S, J = 40, 3, 5, 4
    va = (torch.rand(n, k, 1, 1, generator=g, dtype=torch.float64) * 3.0)
    va[0] = 60.0  # beyond every node's reach: the floor holds and the star has no gradient
    a = torch.rand(n, 1, S, J, generator=g, dtype=torch.float64) * 2.0 + 0.05
    w = torch.rand(n, 1, S, J, generator=g, dtype=torch.float64)
    hb = torch.rand(n, 1, 1, 1, generator=g, dtype=torch.float64) * 0.5 + 0.2
    return va, a.requires_grad_(), (w / w.sum(dim=(-2, -1), keepdim=True)).detach().requires_grad_(), hb


def test_expected_log_mixture_equals_the_mean_log_of_the_mixture_with_its_gradient():
    """The fused value and gradient (formed in the forward pass) against autograd of the plain expression."""
    va, a, w, hb = _mixture_inputs(0)
    nw = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    up = torch.rand(va.shape[0], dtype=torch.float64) + 0.5  # an arbitrary incoming gradient per star
    fused = expected_log_mixture(va, a, w, hb, nw)
    ga, gw = torch.autograd.grad((fused * up).sum(), (a, w))
    box = (torch.erf((va + a) / hb) - torch.erf((va - a) / hb)) / (4.0 * a)
    plain = (torch.log((box * w).sum(dim=(-2, -1)).clamp_min(1e-30)) * nw).sum(dim=-1)
    pa, pw = torch.autograd.grad((plain * up).sum(), (a, w))
    assert float(plain[0].detach()) == pytest.approx(math.log(1e-30))  # the far star is on the floor
    assert float(ga[0].abs().max()) == 0.0 and float(gw[0].abs().max()) == 0.0
    torch.testing.assert_close(fused, plain, rtol=1e-12, atol=0)
    torch.testing.assert_close(ga, pa, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(gw, pw, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("rows", [1, 7, 1000])
def test_the_mixtures_chunking_changes_no_value_or_gradient(monkeypatch, rows):
    """A GPU's chunks of many rows (losvd.chunk_rows) give the CPU's 16-row values and gradients to rounding."""
    va, a, w, hb = _mixture_inputs(3)
    nw = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)

    def both():
        fused = expected_log_mixture(va, a, w, hb, nw)
        mix = uniform_mixture(va, a, w, hb)
        return (fused, mix, *torch.autograd.grad(fused.sum() + (mix ** 2).sum(), (a, w)))

    ref = both()
    monkeypatch.setattr(losvd, "chunk_rows", lambda va, a: rows)
    for got, want in zip(both(), ref):
        torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-300)


def test_expected_log_mixture_keeps_a_member_axis_and_needs_no_gradient():
    """(K, n, ...) inputs give (K, n), each member as on its own; under no_grad the same values."""
    (va, a, w, hb), (vb, b, u, hc) = _mixture_inputs(1), _mixture_inputs(2)
    nw = torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64)
    both = expected_log_mixture(torch.stack([va, vb]), torch.stack([a, b]), torch.stack([w, u]),
                                torch.stack([hb, hc]), nw)
    with torch.no_grad():
        one = expected_log_mixture(vb, b, u, hc, nw)
    assert both.shape == (2, va.shape[0])
    torch.testing.assert_close(both[1].detach(), one, rtol=1e-14, atol=0)


def test_node_weights_in_the_nll_give_the_per_node_loss_and_gradient():
    """exact_nll with smearing nodes: the fused expectation equals the mean of the per-node log-likelihoods."""
    torch.manual_seed(5)
    flow = SphericalFlow(kinematic=True, anisotropy=parse_anisotropy("om:1.0"), length_scale=1.0).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    R = torch.rand(64, dtype=torch.float64) * 3.0 + 0.05
    v = torch.randn(64, 3, dtype=torch.float64) * 1.5
    v[:3] *= 8.0  # stars far in the tails
    h, nw = torch.full((64,), 0.3, dtype=torch.float64), torch.tensor([1 / 6, 2 / 3, 1 / 6], dtype=torch.float64)
    params = [p for p in flow.parameters() if p.requires_grad]
    fused = exact_nll(flow, R, v, h, node_weights=nw)
    gf = torch.autograd.grad(fused, params, allow_unused=True)
    ls, lp = log_losvd(flow, R, v, h)
    plain = -(ls + (lp * nw).sum(dim=-1)).mean()
    gp = torch.autograd.grad(plain, params, allow_unused=True)
    assert float(fused.detach()) == pytest.approx(float(plain.detach()), rel=1e-13)
    for x, y in zip(gf, gp):
        if y is not None:
            torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-13)


def test_speed_grid_equals_the_radial_map_of_every_radius_speed_pair():
    """One solve per radius for the positions, J speeds along it: the same r and ln s as the (radius, speed)
    pairs mapped one by one, for one flow and for two batched members."""
    from dsphnf.flows.batched import BatchedFlow

    flows = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        flow = SphericalFlow(kinematic=True, inner="cuspy", length_scale=1.0).double()
        with torch.no_grad():
            for p in flow.parameters():
                p.add_(torch.randn_like(p) * 0.2)
        flows.append(flow)
    u = torch.tensor([0.05, 0.4, 1.0, 3.0, 20.0], dtype=torch.float64)
    ls0 = torch.tensor([-2.0, -0.3, 0.7, 1.5], dtype=torch.float64)
    m, J = len(u), len(ls0)
    r, lns = flows[1].speed_grid(u, ls0)
    r1, vs1 = flows[1].radial_map(u.repeat_interleave(J), ls0.repeat(m).unsqueeze(-1))
    assert r.shape == (m,) and lns.shape == (m, J, 1)
    lns = lns[..., 0]
    torch.testing.assert_close(r, r1.reshape(m, J)[:, 0], rtol=1e-13, atol=0)
    torch.testing.assert_close(lns, vs1[:, 0].reshape(m, J), rtol=1e-13, atol=1e-13)
    assert float((lns[:, 1:] - lns[:, :-1]).detach().min()) > 0  # faster base speeds stay faster
    rb, lnsb = BatchedFlow(flows).speed_grid(u, ls0)
    assert rb.shape == (2, m) and lnsb.shape == (2, m, J, 1)
    torch.testing.assert_close(rb[1], r, rtol=1e-13, atol=0)
    torch.testing.assert_close(lnsb[1, ..., 0], lns, rtol=1e-13, atol=1e-13)
    # the separable family: two state columns (ln A, ln B) per speed, both starting at ln s0
    torch.manual_seed(3)
    sep = SphericalFlow(kinematic=True, velocity="separable", anisotropy=Inferred("free")).double()
    with torch.no_grad():
        for p in sep.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    r, ab = sep.speed_grid(u, ls0)
    r1, vs1 = sep.radial_map(u.repeat_interleave(J), ls0.repeat(m).unsqueeze(-1).expand(-1, 2))
    assert ab.shape == (m, J, 2)
    torch.testing.assert_close(r, r1.reshape(m, J)[:, 0], rtol=1e-13, atol=0)
    torch.testing.assert_close(ab, vs1.reshape(m, J, 2), rtol=1e-13, atol=1e-13)


def _loss_and_grads(flow, R, v, h, w, nw, chunk: int, monkeypatch) -> tuple[torch.Tensor, list[torch.Tensor]]:
    monkeypatch.setattr("dsphnf.flows.losvd.STAR_CHUNK", chunk)
    flow.zero_grad()
    loss = exact_nll(flow, R, v, h, w, node_weights=nw)
    loss.sum().backward()
    with torch.no_grad():
        assert torch.equal(exact_nll(flow, R, v, h, w, node_weights=nw), loss.detach())  # no graph: same pieces
    return loss.detach(), [p.grad.clone() for p in flow.parameters()]


@pytest.mark.parametrize("members", [0, 2])
def test_a_large_catalogue_in_pieces_gives_the_one_piece_objective_and_gradient(members, monkeypatch):
    """exact_nll over 100 stars in pieces of 37 (checkpointed) against one piece: the same line-of-sight
    nodes, so the value to 1e-13 and the gradient to 1e-10; one flow with a free beta, and a member axis of two."""
    from dsphnf.flows.batched import BatchedFlow
    from dsphnf.flows.cnf import random_flow

    g = torch.Generator().manual_seed(5)
    n = 100
    flow = (random_flow(1, 0.2, kinematic=True, anisotropy=parse_anisotropy("free")) if not members
            else BatchedFlow([random_flow(k, 0.2, kinematic=True, anisotropy=parse_anisotropy("om:0.5"))
                              for k in range(2)]))  # a learned beta is not batched: a given one there
    lead = (members,) if members else ()
    R = torch.exp(torch.randn(*lead, n, generator=g, dtype=torch.float64))
    v = torch.randn(*lead, n, 3, generator=g, dtype=torch.float64)
    h = 0.25 + 0.5 * torch.rand(*lead, n, generator=g, dtype=torch.float64)
    w = torch.rand(*lead, n, generator=g, dtype=torch.float64)
    nw = torch.tensor([1 / 6, 2 / 3, 1 / 6], dtype=torch.float64)
    one, g_one = _loss_and_grads(flow, R, v, h, w, nw, 10**9, monkeypatch)
    parts, g_parts = _loss_and_grads(flow, R, v, h, w, nw, 37, monkeypatch)
    assert torch.allclose(parts, one, rtol=1e-13, atol=0)
    for a, b in zip(g_parts, g_one):
        assert float((a - b).abs().max()) <= 1e-10 * max(float(b.abs().max()), 1e-12)
