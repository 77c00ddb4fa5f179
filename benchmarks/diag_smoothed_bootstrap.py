"""A smoothed (generative) bootstrap on one calibration realisation, against the members calibrate's bands used.

The default ensemble's members are flows trained on resamples of the stars with replacement. This script instead
draws K new catalogues of the same size from the all-star flow itself (the flow is a generative model of x, y,
v_z), fits one flow to each, and prints the spread of their log10 M(<r) and log10 rho(r) at 0.25, 0.5, 1, 2 and
4 R_half beside the errors of the all-star flow. Compare the spreads with the half-widths of the same
realisation's row in ``dsphnf calibrate NonPlumCuspIso --method flow`` (half-width = 1.077 x the members'
standard deviation for 8 members). A trace of why the flow's mass bands are too narrow from R_half outwards
(benchmarks/RESULTS.md, "The flow's mass bands over realisations": over six mocks the draws spread no more
than the resampled members, so this is not the cause); not a method of the package.

    python benchmarks/diag_smoothed_bootstrap.py 7        # about 15 minutes on one core (9 single flows)
"""
from __future__ import annotations

import sys
import time

import numpy as np
import torch

from dsphnf.calibrate import RADII_OVER_RHALF, projected_half_radius
from dsphnf.catalog import Catalog
from dsphnf.flows import FitOptions, fit_flow
from dsphnf.mocks import draw_mock

QUANTITIES = ("M", "rho")


def draw_from(flow, scales: dict[str, float], n: int, seed: int) -> Catalog:
    """``n`` stars (x, y [kpc], v_z [km/s]) drawn from a trained flow in the units ``scales``; no velocity errors."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        obs = flow.sample_projected(n, g).double().numpy()
    L, V = scales["L"], scales["V"]
    return Catalog(obs[:, 0] * L, obs[:, 1] * L, obs[:, 2] * V + scales["v_sys"], source=f"draw {seed}")


def main(seed: int, K: int = 8, model: str = "NonPlumCuspIso") -> None:
    mock = draw_mock(model, 1000, seed)
    if mock.catalog.vz_err is not None:
        raise SystemExit("this trace draws no velocity errors; the calibration mocks have none")
    radii = np.asarray(RADII_OVER_RHALF) * projected_half_radius(mock.model.tracer.density)
    options = FitOptions(r_grid=tuple(radii), threads=1)
    truth = {"M": mock.model.halo.mass(radii), "rho": mock.model.halo.density(radii)}
    anchor = fit_flow(mock.catalog, "isotropic", ensemble=1, seed=seed, progress=False, options=options)
    print(f"log10(x / x_true) at r / R_half = {RADII_OVER_RHALF}")
    for q in QUANTITIES:
        print(f"  all-star flow {q:3s}", np.round(np.log10(anchor.profile[q] / truth[q]), 3))
    flow, scales = anchor.artefacts.flows[0], anchor.artefacts.scales_of(0)
    draws = {q: [] for q in QUANTITIES}
    for k in range(K):
        t0 = time.time()
        draw = draw_from(flow, scales, len(mock.catalog.x), seed * 1000 + k)
        fit = fit_flow(draw, "isotropic", ensemble=1, seed=seed * 1000 + k, progress=False, options=options)
        for q in QUANTITIES:
            draws[q].append(np.log10(fit.profile[q] / truth[q]))
        print(f"  draw {k + 1}/{K} ({time.time() - t0:.0f} s) M", np.round(draws["M"][-1], 3), flush=True)
    for q in QUANTITIES:
        x, own = np.array(draws[q]), np.log10(anchor.profile[q] / truth[q])
        print(f"  {q:3s} spread over the draws [dex]", np.round(x.std(axis=0, ddof=1), 3),
              " their mean minus the all-star flow's", np.round(x.mean(axis=0) - own, 3))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 8)
