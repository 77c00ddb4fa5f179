"""Benchmark: wall and CPU time of one training step of each velocity family (not a test).

One step = the deterministic training objective of a single flow (exact
likelihood with Gauss-Hermite smearing, the smoothness prior and, for an
inferred anisotropy, its priors) and its gradient, on the stars of a
``dsphnf.draw_mock`` catalogue standardised as ``fit_flow`` does, for an
untrained flow of each family with ``anisotropy="free"``: ``elliptical``
(speed map, learned beta layer), ``separable`` (two semi-axis maps) and
``angular`` (speed map and a learned angular law).
Prints one JSON line per family: median wall and CPU seconds per step over
``--reps`` steps, the load average and the number of stars.

Usage::

    python benchmarks/bench_velocity_step.py --n 2000 --reps 10
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dsphnf.anisotropy import Inferred  # noqa: E402
from dsphnf.flows import SphericalFlow, TrainConfig  # noqa: E402
from dsphnf.flows.objective import flow_loss  # noqa: E402
from dsphnf.flows.prior import SmoothnessPrior  # noqa: E402
from dsphnf.flows.stars import StarData  # noqa: E402
from dsphnf.mocks import draw_mock  # noqa: E402


def stars(n: int, seed: int) -> StarData:
    """The tangential mock's stars in units of their median R and velocity dispersion (h as fit_flow's default)."""
    cat = draw_mock(n=n, seed=seed, halo="nfw:6.4e7,1", tracer="plummer:0.25", anisotropy="constant:-0.5").catalog
    L, V = float(np.median(np.hypot(cat.x, cat.y))), float(np.std(cat.vz))
    obs = torch.as_tensor(np.column_stack([cat.x / L, cat.y / L, (cat.vz - np.mean(cat.vz)) / V]))
    return StarData(obs, torch.tensor([0.1, 0.1, 0.25], dtype=torch.float64), torch.ones(n, dtype=torch.float64), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reps", type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(1)
    data, cfg = stars(a.n, a.seed), TrainConfig()
    prior = SmoothnessPrior.for_stars(data.R, data.weights, cfg.smooth_tau)
    for family in ("elliptical", "separable", "angular"):
        torch.manual_seed(a.seed)
        flow = SphericalFlow(kinematic=True, anisotropy=Inferred("free"), velocity=family).double()
        walls, cpus = [], []
        for _ in range(a.reps):
            w0, c0 = time.perf_counter(), time.process_time()
            flow.zero_grad()
            flow_loss(flow, data, cfg, None, 0, prior=prior).backward()
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
        print(json.dumps({"family": family, "n": a.n, "reps": a.reps, "wall_s_per_step": round(float(np.median(walls)), 3),
                          "cpu_s_per_step": round(float(np.median(cpus)), 3),
                          "load": [round(x, 2) for x in os.getloadavg()]}), flush=True)


if __name__ == "__main__":
    main()
