"""The flows' fixed-step RK4 (dsphnf.flows.rk4) against torchdiffeq's, and against closed forms."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchdiffeq import odeint

from dsphnf.flows.cnf import random_flow
from dsphnf.flows.rk4 import rk4_solve, time_grid


def _torchdiffeq(rhs, y0, n_steps, reverse):
    ts = torch.tensor([1.0, 0.0] if reverse else [0.0, 1.0], dtype=y0.dtype)
    return odeint(rhs, y0, ts, method="rk4", options={"step_size": 1.0 / n_steps})[-1]


@pytest.mark.parametrize("n_steps", [1, 4, 7, 49])  # 49: 1/(1/49) rounds up, torchdiffeq adds a tiny last step
def test_grid_is_torchdiffeqs(n_steps):
    for reverse in (False, True):
        h = 1.0 / n_steps
        start, end = (-1.0, -0.0) if reverse else (0.0, 1.0)
        n = int(torch.ceil(torch.tensor((end - start) / h + 1, dtype=torch.float64)).item())
        ref = torch.arange(0, n, dtype=torch.float64) * h + start
        ref[-1] = end
        assert time_grid(n_steps, reverse) == ref.tolist()
    assert len(time_grid(49)) == 51


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("n_steps", [4, 49])
def test_flow_solve_is_torchdiffeqs_bit_for_bit(reverse, n_steps):
    """Value and gradient of a random flow's positions and velocities, forward and backward in time."""
    flow = random_flow(3)
    flow.n_steps = n_steps
    gen = torch.Generator().manual_seed(0)
    y0 = torch.randn(50, 2, generator=gen, dtype=torch.float64) * 0.5  # (ln r, ln speed)

    def run(solver):
        flow.zero_grad()
        y = solver(flow._rhs, y0, n_steps, reverse)
        (y**2).sum().backward()
        return y.detach(), [p.grad.clone() for p in flow.parameters() if p.grad is not None]

    y_ref, g_ref = run(_torchdiffeq)
    y, g = run(rk4_solve)
    assert torch.equal(y, y_ref)
    assert len(g) == len(g_ref) > 0 and all(torch.equal(a, b) for a, b in zip(g, g_ref))
    assert torch.equal(flow.solve(y0, reverse=reverse).detach(), y_ref)


def test_rk4_is_fourth_order_on_a_closed_form():
    """dy/dt = t y: y(1) = y(0) e^(1/2); the error falls 16-fold per halving of the step; backwards returns y(0)."""
    y0 = torch.tensor([1.0, -2.0], dtype=torch.float64)
    exact = y0 * math.exp(0.5)
    errs = [float((rk4_solve(lambda t, y: t * y, y0, n) - exact).abs().max()) for n in (8, 16, 32)]
    assert errs[0] < 1e-5
    assert np.allclose(np.log2(np.array(errs[:-1]) / np.array(errs[1:])), 4.0, atol=0.2)
    back = rk4_solve(lambda t, y: t * y, exact, 64, reverse=True)
    assert torch.allclose(back, y0, rtol=1e-9)
