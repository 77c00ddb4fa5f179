"""What pulls a free beta(r) tangential: exact-DF velocities against Gaussian ellipsoids, with and without E4 (not a test).

Draws calibrate's mocks of a one-population model, by default a tangential constant beta (``sample_model``
with the seed's generator, the stars of ``dsphnf calibrate ... --seed S``), optionally replaces every star's velocity by a Gaussian ellipsoid with the
model's own sigma_r(r) and sigma_t(r) (the kind of velocity distribution the elliptical velocity family
contains exactly; the positions stay the same), fits one flow with ``--anisotropy free`` to each (default
settings, one thread), and prints beta and log10 (rho / rho_true) at 0.25-4 R_half per mock, then the median
and mean over the mocks. ``--equilibrium off`` sets the fourth-order Jeans term's scale
(:data:`dsphnf.flows.beta_prior.EQUILIBRIUM_TAU`) to 1e6, which switches the term off. ``--beta-start B``
starts the free beta at B at every radius instead of isotropy (the spline's coefficients all set to that level).

Usage::

    python benchmarks/beta_tangential_pull.py --velocities df|gaussian --equilibrium on|off --seeds 200-207 [--stars 1000] [--nu-mean zhao] [--beta-start -0.5] [--velocity angular]
        [--tangential-equation on|off]

Defaults: ``nfw:6.4e7,1`` | ``plummer:0.25`` | ``constant:-0.5`` (R_half = 0.25 kpc), 1000 stars; the radii
are 0.25-4 R_half of the tracer given (:func:`dsphnf.calibrate.score.projected_half_radius`).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsphnf.anisotropy import Inferred  # noqa: E402
from dsphnf.calibrate.score import projected_half_radius  # noqa: E402
from dsphnf.catalog import Catalog  # noqa: E402
from dsphnf.dwarf import build_model, sample_model  # noqa: E402
from dsphnf.flows import FitOptions, FlowConfig, TrainConfig, fit_flow  # noqa: E402
from dsphnf.flows import beta as flow_beta  # noqa: E402
from dsphnf.flows import beta_prior  # noqa: E402
from dsphnf.flows.ensemble import UnphysicalReadout  # noqa: E402
from dsphnf.jeans import jeans_profiles  # noqa: E402
from nu_core_bias import _seeds  # noqa: E402  (the same --seeds spelling, LO-HI, as that benchmark)

R_OVER_RHALF = (0.25, 0.5, 1.0, 2.0, 4.0)


def start_free_beta_at(b0: float) -> None:
    """Make every new :class:`~dsphnf.flows.beta.FreeBeta` start at beta = ``b0`` (> BETA_MIN) at every radius."""
    y0 = b0 / (2.0 - b0)
    p = (y0 - flow_beta.Y_MIN) / (flow_beta.Y_MAX - flow_beta.Y_MIN)
    level = (math.log(p / (1.0 - p)) - flow_beta.S0) / flow_beta.GAIN  # B-splines sum to one
    init = flow_beta.FreeBeta.__init__

    def started(self, n_knots: int = flow_beta.N_KNOTS) -> None:
        init(self, n_knots)
        with torch.no_grad():
            self.coef.fill_(level)

    flow_beta.FreeBeta.__init__ = started


def gaussian_velocities(model, xv: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``xv`` with v replaced by v_r ~ N(0, sigma_r(r)), v_t ~ N(0, sigma_t(r)) per component [km/s]."""
    r = np.linalg.norm(xv[:, :3], axis=1)
    grid = np.geomspace(1e-4, 1e3, 3000)
    t = jeans_profiles(grid, model.tracer.density, model.halo.mass, model.anisotropy)
    sr = np.exp(np.interp(np.log(r), np.log(grid), np.log(t["sigma_r"])))
    st = sr * np.sqrt(1.0 - np.interp(np.log(r), np.log(grid), t["beta"]))
    rhat = xv[:, :3] / r[:, None]
    vr = rng.normal(size=len(r)) * sr
    vt = rng.normal(size=(len(r), 3)) * st[:, None]
    vt -= np.sum(vt * rhat, axis=1)[:, None] * rhat
    out = xv.copy()
    out[:, 3:] = vr[:, None] * rhat + vt
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--halo", default="nfw:6.4e7,1")
    ap.add_argument("--tracer", default="plummer:0.25")
    ap.add_argument("--anisotropy", default="constant:-0.5")
    ap.add_argument("--velocities", choices=("df", "gaussian"), default="df")
    ap.add_argument("--equilibrium", choices=("on", "off"), default="on")
    ap.add_argument("--seeds", default="200-207")
    ap.add_argument("--stars", type=int, default=1000)
    ap.add_argument("--nu-mean", choices=("none", "zhao"), default="none")
    ap.add_argument("--beta-start", type=float, default=None, help="the free beta's start at every radius (default 0)")
    ap.add_argument("--velocity", default="elliptical", help="velocity family: elliptical | separable | angular")
    ap.add_argument("--tangential-equation", choices=("on", "off", "default"), default="default",
                    help="whether the family's prior holds the v_r v_t^2 moment equation (default: "
                         "beta_prior.TANGENTIAL_EQUATION: on for the angular and separable families)")
    args = ap.parse_args()
    if args.tangential_equation != "default":
        beta_prior.TANGENTIAL_EQUATION[args.velocity] = args.tangential_equation == "on"
    if args.equilibrium == "off":
        beta_prior.EQUILIBRIUM_TAU = 1e6
    if args.beta_start is not None:
        start_free_beta_at(args.beta_start)
    model = build_model(args.halo, args.tracer, args.anisotropy)
    radii = projected_half_radius(model.tracer.density) * np.array(R_OVER_RHALF)
    train = None if args.nu_mean == "none" else TrainConfig(nu_mean=args.nu_mean)
    truth = jeans_profiles(radii, model.tracer.density, model.halo.mass, model.anisotropy)
    betas, errs, failed = [], [], []
    for seed in _seeds(args.seeds):
        xv, _ = sample_model(model, args.stars, np.random.default_rng(seed))
        if args.velocities == "gaussian":
            xv = gaussian_velocities(model, xv, np.random.default_rng(1000 + seed))
        try:
            res = fit_flow(Catalog.from_phase_space(xv, None), Inferred("free"), ensemble=1, seed=seed,
                           progress=False, options=FitOptions(r_grid=tuple(radii), threads=1), train_config=train,
                           flow_config=FlowConfig(velocity=args.velocity))
        except UnphysicalReadout as err:  # counted and reported, not scored
            failed.append(seed)
            print(f"seed {seed}: no read-out ({err})", flush=True)
            continue
        betas.append(np.asarray(res.profile["beta"], dtype=float))
        errs.append(np.log10(np.asarray(res.profile["rho"], dtype=float) / truth["rho"]))
        print(f"seed {seed}: beta " + " ".join(f"{b:+.2f}" for b in betas[-1])
              + " | log10 err " + " ".join(f"{e:+.3f}" for e in errs[-1]), flush=True)
    print(f"{len(betas)} fits scored, {len(failed)} without a read-out (seeds {failed})")
    if not betas:
        return
    b, e = np.array(betas), np.array(errs)
    fmt = " / ".join
    print(f"radii {fmt(f'{x:g}' for x in R_OVER_RHALF)} R_half; true beta {fmt(f'{x:+.2f}' for x in truth['beta'])}")
    print(f"beta median {fmt(f'{x:+.2f}' for x in np.median(b, 0))}, mean {fmt(f'{x:+.2f}' for x in b.mean(0))}")
    k = R_OVER_RHALF.index(1.0)
    print(f"beta(R_half) within 0.2 of the truth: {int((abs(b[:, k] - truth['beta'][k]) <= 0.2).sum())} of {len(b)}")
    print(f"log10 err median {fmt(f'{x:+.3f}' for x in np.median(e, 0))}; "
          f"median of the mean abs error {np.median(np.abs(e).mean(1)):.3f} dex")


if __name__ == "__main__":
    main()
