"""The stellar density nu(r) of positions-only flows against the truth, over many mocks (not a test).

Draws calibrate's mocks (``CalibrationSpec.source.draw(stars, seed)``, the positions only), fits one flow
to each (400 steps, one thread) with the smoothness prior's settings given, and prints log10 (nu / nu_true)
per mock at radii [kpc] and, at the end, the median, spread and rms over the mocks. This measures the pull of
the prior on ln nu where the stars are few (:mod:`dsphnf.flows.nu_mean`).

Usage::

    python benchmarks/nu_core_bias.py --seeds 1-50 [--nu-mean none|zhao] [--tau 1.0] [--steps 1]

Defaults: chapter 7's mock, ``burkert:4e8,1`` | ``plummer:0.25`` (the halo does not enter), 1000 stars.
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
from dsphnf.flows import FitOptions, TrainConfig, fit_flow  # noqa: E402

RADII = (0.03, 0.0625, 0.125, 0.25, 0.5, 1.0)


def _seeds(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--halo", default="burkert:4e8,1")
    ap.add_argument("--tracer", default="plummer:0.25")
    ap.add_argument("--stars", type=int, default=1000)
    ap.add_argument("--seeds", type=_seeds, default=_seeds("1-50"), help="e.g. 1-50")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--nu-mean", default="none", choices=("none", "zhao"))
    ap.add_argument("--tau", type=float, default=1.0, help="TrainConfig.smooth_tau")
    a = ap.parse_args()
    spec = calibration_spec(halo=a.halo, tracer=a.tracer, anisotropy="isotropic", methods="flow", ensemble=1,
                            fit_anisotropy="isotropic", realisations=2, stars=a.stars)
    train = TrainConfig(smooth_tau=a.tau, nu_mean=a.nu_mean)
    print(f"{a.tracer}, {a.stars} stars, nu_mean {a.nu_mean}, tau {a.tau:g}, {a.steps} steps; "
          f"log10 (nu / nu_true) at r [kpc] = {' '.join(f'{r:g}' for r in RADII)}")
    errs = []
    for s in a.seeds:
        mock = spec.source.draw(a.stars, s)
        cat = dataclasses.replace(mock.catalog, vz=None, vz_err=None)
        res = fit_flow(cat, "isotropic", ensemble=1, steps=a.steps, seed=s, progress=False,
                       options=FitOptions(r_grid=RADII, threads=1), train_config=train)
        e = np.log10(np.asarray(res.profile["nu"]) / _lin_in_log_r(np.array(RADII), mock.truth, "nu"))
        errs.append(e)
        print(f"seed {s:3d}", " ".join(f"{x:+.3f}" for x in e), flush=True)
    e = np.array(errs)
    print(f"{'median':8s}", " ".join(f"{x:+.3f}" for x in np.median(e, 0)))
    for name, v in (("spread", e.std(0)), ("rms", np.sqrt((e**2).mean(0)))):
        print(f"{name:8s}", " ".join(f"{x:6.3f}" for x in v))


if __name__ == "__main__":
    main()
