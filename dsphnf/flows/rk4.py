"""Fixed-step RK4 without reading the device: the flows' default solver, step for step torchdiffeq's.

``torchdiffeq.odeint(..., method="rk4", options={"step_size": h})`` takes the
3/8-rule Runge-Kutta step on a grid of times it builds on the device, and
decides on the host, per step, whether an output time has been reached: on
a GPU that is a host read (a synchronisation) per step, ~24 per evaluation
of the objective, plus small copies and kernels for the time arithmetic.
:func:`rk4_solve` takes the same steps, with the same operations in the same
order (bit for bit the same result and gradient on the CPU, tested in
tests/test_rk4.py), on a grid built once on the host: the stage times are
cached on the device (:func:`~dsphnf.flows.device_constants.on_device`) and
nothing in the loop reads the device.
"""
from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np
import torch

from .device_constants import on_device

_ONE_THIRD = 1 / 3
_TWO_THIRDS = 2 / 3


def time_grid(n_steps: int, reverse: bool = False) -> list[float]:
    """torchdiffeq's fixed grid for step 1/n_steps over t = 0 -> 1 (``reverse``: 1 -> 0, as s = -t from -1 to -0).

    >>> time_grid(4)
    [0.0, 0.25, 0.5, 0.75, 1.0]
    >>> time_grid(2, reverse=True)
    [-1.0, -0.5, -0.0]
    """
    h = 1.0 / n_steps
    start, end = (-1.0, -0.0) if reverse else (0.0, 1.0)
    n = math.ceil((end - start) / h + 1)  # as torchdiffeq counts them (one more where 1/h rounds up)
    grid = [float(k) * h + start for k in range(n)]
    grid[-1] = end
    return grid


@functools.lru_cache(maxsize=None)
def stage_times(n_steps: int, reverse: bool = False) -> np.ndarray:
    """(steps, 5): t0, t0 + dt/3, t0 + 2 dt/3, t1 and dt of each step, in the time the field sees.

    ``reverse`` gives the field t = -s (torchdiffeq's reversed function); dt stays the step in s.
    """
    grid = time_grid(n_steps, reverse)
    rows = []
    for t0, t1 in zip(grid[:-1], grid[1:]):
        dt = t1 - t0
        ts = [t0, t0 + dt * _ONE_THIRD, t0 + dt * _TWO_THIRDS, t1]
        rows.append([-t for t in ts] + [dt] if reverse else ts + [dt])
    return np.array(rows)  # cached: callers must not write to it


def rk4_solve(rhs: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], y0: torch.Tensor, n_steps: int,
              reverse: bool = False) -> torch.Tensor:
    """y(1) of dy/dt = rhs(t, y), y(0) = y0 (``reverse``: y(0) from y(1) = y0), in ``n_steps`` 3/8-rule RK4 steps.

    The same value and gradient as ``torchdiffeq.odeint(rhs, y0, [0, 1] (or [1, 0]), method="rk4",
    options={"step_size": 1 / n_steps})[-1]``, without host reads: bit for bit in float64 (in float32 the
    times here are exact doubles, torchdiffeq's are rounded to float32).

    >>> y = rk4_solve(lambda t, y: -y, torch.ones(1, dtype=torch.float64), 8)
    >>> abs(y.item() - math.exp(-1)) < 1e-6
    True
    """
    host = stage_times(n_steps, reverse)
    (times,) = on_device(("rk4_stage_times", n_steps, reverse), lambda: (host,), y0.dtype, y0.device)
    f = (lambda t, y: -1.0 * rhs(t, y)) if reverse else rhs
    y = y0
    for i, dt in enumerate(host[:, 4].tolist()):  # host floats: the steps multiply as torchdiffeq's do
        t = times[i]
        k1 = f(t[0], y)
        k2 = f(t[1], y + dt * k1 * _ONE_THIRD)
        k3 = f(t[2], y + dt * (k2 - k1 * _ONE_THIRD))
        k4 = f(t[3], y + dt * (k1 - k2 + k3))
        y = y + (k1 + 3 * (k2 + k3) + k4) * dt * 0.125
    return y
