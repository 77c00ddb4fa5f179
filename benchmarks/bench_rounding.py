"""How much floating-point rounding moves a trained flow (not a test).

Fits chapter 7's isotropic ensemble (the Osipkov-Merritt mock ``burkert:4e8,1``
| ``plummer:0.25`` | ``om:0.3``, 1000 stars, seed 0, beta wrongly fixed to 0;
4 members, the default 400 steps, one torch thread) and prints one JSON line:
torch's CPU capability, log10 rho/rho_true at 0.1 / 0.15 / 0.25 / 0.5 / 1 kpc,
each member's final objective [nats per star] and stop reason, and the wall
time [s]. Run it twice on one machine, once with torch's default vector
kernels and once with others, and compare::

    DSPHNF_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/bench_rounding.py
    ATEN_CPU_CAPABILITY=avx2 DSPHNF_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/bench_rounding.py
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsphnf import draw_mock  # noqa: E402
from dsphnf.compare import DEFAULT_RADII, compare  # noqa: E402
from dsphnf.dwarf import model_truth  # noqa: E402
from dsphnf.flows import FitOptions, fit_flow  # noqa: E402


def main() -> None:
    mock = draw_mock(n=1000, seed=0, halo="burkert:4e8,1", tracer="plummer:0.25", anisotropy="om:0.3")
    t0 = time.perf_counter()
    res = fit_flow(mock.catalog, "isotropic", ensemble=4, seed=0, progress=False, options=FitOptions(threads=1))
    rows = compare({"iso": res.profile}, model_truth(mock.model, np.geomspace(0.01, 5, 400)), DEFAULT_RADII)
    conv = [m.get("convergence") or {} for m in res.summary["diagnostics"]["members"]]
    print(json.dumps({"cap": os.environ.get("ATEN_CPU_CAPABILITY", "default"),
                      "torch_cap": torch.backends.cpu.get_cpu_capability(),
                      "err": [round(r["log10_err"], 4) for r in rows],
                      "objectives": [c.get("objective") for c in conv], "stops": [c.get("stop_reason") for c in conv],
                      "wall_s": round(time.perf_counter() - t0)}))


if __name__ == "__main__":
    main()
