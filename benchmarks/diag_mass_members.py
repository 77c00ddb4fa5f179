"""Members' M(<r) and rho(r) against their fit's value on one calibration realisation.

Refits realisation ``seed`` of ``dsphnf calibrate NonPlumCuspIso --method flow`` (the same mock and fit call:
8 members centred on the all-star flow, one torch thread) and prints log10(x / x_true) at 0.25, 0.5, 1, 2 and
4 R_half for the fit's value and for every member, so that one sees whether a realisation's error is shared by
its bootstrap members (benchmarks/RESULTS.md, "The flow's mass bands over realisations").

    python benchmarks/diag_mass_members.py 4        # about 10 minutes on one core
"""
from __future__ import annotations

import sys

import numpy as np

from dsphnf.calibrate import RADII_OVER_RHALF, projected_half_radius
from dsphnf.flows import FitOptions, fit_flow
from dsphnf.mocks import draw_mock


def main(seed: int, model: str = "NonPlumCuspIso") -> None:
    mock = draw_mock(model, 1000, seed)
    r_half = projected_half_radius(mock.model.tracer.density)
    radii = np.asarray(RADII_OVER_RHALF) * r_half
    res = fit_flow(mock.catalog, "isotropic", ensemble=8, seed=seed, progress=False,
                   options=FitOptions(r_grid=tuple(radii), threads=1))
    truth = {"M": mock.model.halo.mass(radii), "rho": mock.model.halo.density(radii)}
    for key, true in truth.items():
        print(f"{key}: log10({key} / {key}_true) at r / R_half = {RADII_OVER_RHALF}")
        print("  value  ", np.round(np.log10(res.profile[key] / true), 3))
        for k, member in enumerate(res.artefacts.members):
            print(f"  member {k}", np.round(np.log10(np.asarray(member[key]) / true), 3))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4)
