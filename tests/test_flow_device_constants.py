"""The objective's fixed nodes live on the training device: an evaluation converts nothing from numpy.

On a GPU every numpy -> device conversion inside a training step is a blocking copy (a host round-trip);
these tests count the conversions of host arrays during an evaluation on the CPU, which the same code
path would make on any device.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dsphnf.anisotropy import Inferred
from dsphnf.flows import device_constants
from dsphnf.flows.cnf import random_flow
from dsphnf.flows.foreground import ForegroundTerm
from dsphnf.flows.objective import flow_loss
from dsphnf.flows.prior import SmoothnessPrior
from dsphnf.flows.stars import StarData
from dsphnf.flows.train_config import TrainConfig


def _stars(n: int = 120, seed: int = 4) -> StarData:
    rng = np.random.default_rng(seed)
    obs = torch.as_tensor(np.c_[rng.normal(0, 1, (n, 2)), rng.normal(0, 1, n)], dtype=torch.float64)
    return StarData(obs, [0.2, 0.2, 0.25], verr=torch.full((n,), 0.1, dtype=torch.float64))


def _count_host_conversions(monkeypatch) -> list[str]:
    """Record every torch.as_tensor / torch.tensor of a numpy array, list or Python number."""
    seen: list[str] = []
    for name in ("as_tensor", "tensor"):
        orig = getattr(torch, name)

        def wrapped(data, *a, _orig=orig, _name=name, **k):
            if not isinstance(data, torch.Tensor):
                seen.append(f"torch.{_name}({type(data).__name__})")
            return _orig(data, *a, **k)

        monkeypatch.setattr(torch, name, wrapped)
    return seen


@pytest.mark.parametrize("velocity", ["elliptical", "separable", "angular"])
@pytest.mark.parametrize("mixture", [False, True])
def test_an_evaluation_converts_no_host_arrays(monkeypatch, velocity: str, mixture: bool) -> None:
    """After a first evaluation (which makes the nodes), loss + prior + gradient convert no numpy array."""
    kw = {"anisotropy": Inferred("free"), "velocity": velocity} if velocity != "elliptical" else {}
    flow = random_flow(3, kinematic=True, foreground=mixture, **kw)
    data, cfg = _stars(), TrainConfig(n_gh=3)
    if mixture:
        data.fg = ForegroundTerm(torch.tensor(0.5, dtype=torch.float64), torch.tensor(9.0, dtype=torch.float64),
                                 None, (data.R.min(), data.R.max()))
    prior = SmoothnessPrior.for_stars(data.R, data.weights, 1.0)
    first = flow_loss(flow, data, cfg, None, 0, prior=prior)
    seen = _count_host_conversions(monkeypatch)
    again = flow_loss(flow, data, cfg, None, 0, prior=prior)
    again.backward()
    assert seen == []
    assert float(again.detach()) == float(first.detach())  # the cached nodes are the same numbers


def test_cached_nodes_are_one_set_per_dtype() -> None:
    make = lambda: (np.linspace(0.0, 1.0, 5),)  # noqa: E731
    a64 = device_constants.on_device(("test", 5), make, torch.float64, "cpu")
    a32 = device_constants.on_device(("test", 5), make, torch.float32, "cpu")
    assert a64[0].dtype == torch.float64 and a32[0].dtype == torch.float32
    assert device_constants.on_device(("test", 5), make, torch.float64, torch.device("cpu"))[0] is a64[0]
    assert not a64[0].requires_grad
