"""The same code on a GPU: objective, gradient and short fits on CUDA against the CPU's.

Skipped where torch sees no CUDA device (CI has none); ``benchmarks/bench_gpu.sh``
runs this module first on a GPU machine. Float64 throughout, so the CPU and
the GPU differ only in the order of their sums: the objective and gradient
agree to ~1e-12, and a few training steps keep the profiles within rounding.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dsphnf.anisotropy import anisotropy_from
from dsphnf.flows import fit_flow
from dsphnf.flows.kde import bandwidths
from dsphnf.flows.member import MemberSettings, MemberStars, _star_data, member_data, new_flow
from dsphnf.flows.objective import flow_loss
from dsphnf.flows.prior import SmoothnessPrior
from dsphnf.flows.settings import FlowConfig
from dsphnf.flows.standardise import raw_stars, scales_of
from dsphnf.flows.train_config import TrainConfig
from dsphnf.mocks import draw_mock

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to torch")


@pytest.fixture(scope="module")
def cat():
    """300 stars of the NonPlumCuspIso model with 2 km/s velocity errors."""
    return draw_mock("NonPlumCuspIso", n=300, seed=3, verr=2.0).catalog


def _loss_and_gradient(cat, device: str) -> tuple[float, np.ndarray]:
    """Objective (likelihood and smoothness prior) and its gradient of the same untrained flow on ``device``."""
    raw = raw_stars(cat)
    stars = MemberStars(raw, scales_of(raw), True, np.logspace(-1, 0, 11))
    st = MemberSettings(anisotropy_from("isotropic"), "free", 1, 0, FlowConfig(velocity="elliptical"),
                        TrainConfig(), 0.0, 1.0, torch.float64, device, 1)
    tr, _, sc, std = member_data(stars, st, 0)
    torch.manual_seed(11)
    flow = new_flow(stars, st, sc["L"])
    data = _star_data(std, st, tr, bandwidths(std["obs"][tr], std["w"][tr], st.bandwidth_factor))
    loss = flow_loss(flow, data, st.train, None, 0, prior=SmoothnessPrior.of(st.train, data.R, data.weights))
    loss.sum().backward()
    grad = torch.cat([p.grad.reshape(-1) for p in flow.parameters() if p.grad is not None])
    return float(loss.detach().sum()), grad.cpu().numpy()


def test_objective_and_gradient_on_cuda_equal_the_cpus(cat):
    loss_cpu, g_cpu = _loss_and_gradient(cat, "cpu")
    loss_gpu, g_gpu = _loss_and_gradient(cat, "cuda")
    assert np.isfinite(loss_cpu) and np.all(np.isfinite(g_cpu))
    assert loss_gpu == pytest.approx(loss_cpu, rel=1e-10)
    assert np.max(np.abs(g_gpu - g_cpu)) <= 1e-8 * np.max(np.abs(g_cpu))


@pytest.mark.parametrize("ensemble", [1, 3])
def test_short_fit_on_cuda_follows_the_cpus(cat, ensemble):
    """A single flow and 3 batched members, 15 steps: the same profile to rounding, and the result on the host."""
    kw = dict(anisotropy="isotropic", ensemble=ensemble, steps=15, seed=5, progress=False)
    cpu = fit_flow(cat, device="cpu", **kw)
    gpu = fit_flow(cat, device="cuda", **kw)
    assert isinstance(gpu.profile["rho"], np.ndarray)
    dex = np.abs(np.log10(gpu.profile["rho"] / cpu.profile["rho"]))
    assert np.max(dex) < 1e-4, f"largest difference {np.max(dex):.2e} dex"


def test_warm_started_members_on_cuda_follow_the_cpus(cat):
    """The all-star flow and 3 members warm-started from it (5 L-BFGS steps each): the CPU's profile to rounding."""
    from dsphnf.flows import FitOptions

    kw = dict(anisotropy="isotropic", ensemble=3, steps=15, seed=5, progress=False,
              options=FitOptions(warm_start=5))
    cpu = fit_flow(cat, device="cpu", **kw)
    gpu = fit_flow(cat, device="cuda", **kw)
    assert gpu.summary["diagnostics"]["grid"]["warm_start"]["steps"] == 5
    dex = np.abs(np.log10(gpu.profile["rho"] / cpu.profile["rho"]))
    assert np.max(dex) < 1e-4, f"largest difference {np.max(dex):.2e} dex"


def test_free_beta_fit_runs_on_cuda(cat):
    """The free-anisotropy family (the model-independent mode) trains on the GPU and reads out a finite beta."""
    res = fit_flow(cat, anisotropy="free", steps=10, seed=2, device="cuda", progress=False)
    assert np.all(np.isfinite(res.profile["beta"]))


def test_cuda_graphs_follow_eager_batched_training(cat):
    """3 batched members, 30 steps (Adam and L-BFGS): replayed graphs give eager's profile to rounding."""
    from dsphnf.flows import TrainConfig

    kw = dict(anisotropy="isotropic", ensemble=3, steps=30, seed=5, progress=False, device="cuda", batched=True)
    eager = fit_flow(cat, train_config=TrainConfig(steps=30, adam_steps=15, cuda_graphs=False), **kw)
    graphed = fit_flow(cat, train_config=TrainConfig(steps=30, adam_steps=15, cuda_graphs=True), **kw)
    record = graphed.summary["diagnostics"]["grid"]["cuda_graphs"]
    assert record["fallback"] is None and record["captured"] >= 1
    dex = np.abs(np.log10(graphed.profile["rho"] / eager.profile["rho"]))
    assert np.max(dex) < 1e-4, f"largest difference {np.max(dex):.2e} dex"
