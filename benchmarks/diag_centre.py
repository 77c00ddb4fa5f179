"""Where a flow's inner density error comes from: nu, sigma_r, M and rho of one fit against the truth (not a test).

One mock of ``dsphnf calibrate`` (the same draw: ``CalibrationSpec.source.draw(stars, seed)``),
one flow fitted with the mock's anisotropy given, as calibrate's single flows are (400 steps, one thread),
and log10 (fit / truth) of nu, sigma_r, M and rho at radii [kpc] inside and around the centre. With
``--positions-only`` the same stars without velocities are fitted too, so that the positions' own share of
nu's error shows.

Usage::

    python benchmarks/diag_centre.py --seed 12 --anisotropy om:0.3 [--positions-only]
    python benchmarks/diag_centre.py --seed 12 --anisotropy isotropic

Defaults: chapter 7's radial mock, ``burkert:4e8,1`` | ``plummer:0.25``, 1000 stars.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsphnf.calibrate import calibration_spec  # noqa: E402
from dsphnf.calibrate.score import _lin_in_log_r  # noqa: E402
from dsphnf.flows import FitOptions, fit_flow  # noqa: E402

RADII = (0.03, 0.045, 0.0625, 0.09, 0.125, 0.18, 0.25, 0.5, 1.0)


def _errors(profile: dict, truth: dict, radii: np.ndarray, keys: tuple[str, ...]) -> None:
    """log10 (fit / truth) per key, the truth read from its table as calibrate's scoring reads it."""
    for k in keys:
        tr = _lin_in_log_r(radii, truth, k)
        print(f"  {k:8s}", " ".join(f"{np.log10(a / b):+.3f}" for a, b in zip(profile[k], tr)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--halo", default="burkert:4e8,1")
    ap.add_argument("--tracer", default="plummer:0.25")
    ap.add_argument("--anisotropy", default="om:0.3", help="the mock's beta(r), given to the fit")
    ap.add_argument("--stars", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--positions-only", action="store_true")
    a = ap.parse_args()
    spec = calibration_spec(halo=a.halo, tracer=a.tracer, anisotropy=a.anisotropy, methods="flow", ensemble=1,
                            fit_anisotropy=a.anisotropy, realisations=2, stars=a.stars)
    mock = spec.source.draw(a.stars, a.seed)
    radii = np.array(RADII)
    options = FitOptions(r_grid=RADII, threads=1)
    R = np.hypot(mock.catalog.x, mock.catalog.y)
    print(f"seed {a.seed}, {a.anisotropy}; radii [kpc] {' '.join(f'{r:g}' for r in RADII)}; "
          f"stars with R < 0.0625 / 0.125 kpc: {int((R < 0.0625).sum())} / {int((R < 0.125).sum())}")
    if a.positions_only:
        cat = dataclasses.replace(mock.catalog, vz=None, vz_err=None)
        res = fit_flow(cat, "isotropic", ensemble=1, steps=a.steps, seed=a.seed, progress=False, options=options)
        print("positions only")
        _errors(res.profile, mock.truth, radii, ("nu",))
    res = fit_flow(mock.catalog, spec.fits[0].anisotropy, ensemble=1, steps=a.steps, seed=a.seed, progress=False,
                   options=options)
    print(f"positions and velocities ({res.summary['diagnostics']['members'][0]['steps']} steps)")
    _errors(res.profile, mock.truth, radii, ("nu", "sigma_r", "M", "rho"))


if __name__ == "__main__":
    main()
