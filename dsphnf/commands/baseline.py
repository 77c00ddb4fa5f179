"""``dsphnf baseline``: parametric Jeans analysis sampled with emcee."""
from __future__ import annotations

import argparse
import sys

from ..catalog import read_catalog
from ..errors import FitError

HELP = "parametric Jeans baseline (Zhao stars + gNFW halo + anisotropy) sampled with emcee"

DESCRIPTION = """\
The conventional analysis the flow is compared against.  Stars: Zhao profile
(r*, inner slope gamma*, outer slope beta*; alpha* = 2) fitted to the projected
radii with an unbinned likelihood normalised inside the data's radial window.
Dark matter: Zhao/gNFW halo rho0 [Msun/kpc^3], r_s [kpc], inner slope gamma
(--halo nfw fixes gamma = 1, --halo cored gamma = 0).  Velocities:
v_i ~ N(v_sys, sigma_los^2(R_i) + err_i^2), weighted by membership.

Anisotropy: isotropic, constant:B (fixed), constant (free, sampled as
beta/(2-beta) in [-1, 1]), om:RA (Osipkov-Merritt, r_a in kpc) or om (free r_a).

Default priors (override with --priors FILE, JSON or TOML; an entry is a number
to fix a parameter, [lo, hi] for uniform or {normal = [mean, sd]}):
  log10_rstar U(-2, 1)  gamma_star U(0, 2)  beta_star U(3.2, 8)  alpha_star 2
  log10_rho0 U(4, 11)   log10_rs U(-1.5, 1.5)  gamma U(0, 2)  alpha_dm 1  beta_dm 3
  beta_sym U(-1, 1)  log10_ra U(-1.5, 1.5)  v_sys U(-50, 50) km/s

Sampling: emcee (32 walkers by default) started from a Gaussian around the
maximum a posteriori point; runs until the chain is longer than 50
autocorrelation times (or --steps).

Outputs in OUT/: profile.csv (r [kpc], nu [kpc^-3, one star], sigma_r [km/s],
beta, M [Msun] with 16/84% M_lo/M_hi, rho [Msun/kpc^3] with 16/84% and
2.5/97.5% bands), summary.json (settings, acceptance, tau, ESS, wall time,
parameter posteriors, log10 J(0.5 deg) with --distance), chain.npz,
corner.png and profiles.png.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("baseline", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("catalog", metavar="STARS", help="star catalogue (.csv, .ecsv, .fits, .dat) with vz")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder (replaced atomically)")
    p.add_argument("--anisotropy", default="isotropic", metavar="SPEC",
                   help="isotropic | constant:B | constant | om:RA | om (default isotropic)")
    p.add_argument("--halo", default="zhao", choices=["zhao", "nfw", "cored"], help="halo family (default zhao)")
    p.add_argument("--steps", type=int, default=20000, metavar="N", help="maximum emcee steps (default 20000)")
    p.add_argument("--walkers", type=int, default=32, metavar="W", help="emcee walkers (default 32)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("--distance", type=float, default=None, metavar="KPC",
                   help="distance [kpc]: converts Walker-format catalogues and gives the J-factor band")
    p.add_argument("--priors", default=None, metavar="FILE", help="prior overrides, JSON (.json) or TOML")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..anisotropy import parse_anisotropy
    from ..baseline.model import BaselineModel, read_priors
    from ..baseline.run import run_baseline

    if args.steps < 10:
        raise FitError(f"--steps must be at least 10, got {args.steps}")
    if args.walkers < 4:
        raise FitError(f"--walkers must be at least 4, got {args.walkers}")
    if args.distance is not None and not args.distance > 0:
        raise FitError(f"--distance must be > 0 kpc, got {args.distance}")
    priors = read_priors(args.priors) if args.priors else None
    args.anisotropy = parse_anisotropy(args.anisotropy)
    BaselineModel(args.halo, args.anisotropy, priors)  # validate settings before reading data
    cat = read_catalog(args.catalog, distance=args.distance, require_velocity=True)
    summary = run_baseline(cat, args.output, args.anisotropy, args.halo, priors=priors, max_steps=args.steps,
                           nwalkers=args.walkers, seed=args.seed, distance=args.distance,
                           progress=False if args.no_progress else None)
    s = summary["sampler"]
    conv = "converged" if s["converged"] else "NOT converged (raise --steps)"
    print(f"baseline: {s['n_steps']} steps x {s['n_walkers']} walkers, {conv}; acceptance "
          f"{s['acceptance_fraction']:.2f}, max tau {max(s['tau'].values()):.0f} steps, min ESS {s['ess_min']:.0f}; "
          f"{summary['wall_s']:.1f} s")
    if "log10_J" in summary:
        j = summary["log10_J"]
        print(f"log10 J(0.5 deg) = {j['median']:.2f} +{j['hi'] - j['median']:.2f} -{j['median'] - j['lo']:.2f} "
              f"[GeV^2 cm^-5] at {j['distance_kpc']:g} kpc")
    print(f"wrote {args.output}/ (profile.csv, summary.json, chain.npz, corner.png, profiles.png)", file=sys.stdout)
    return 0
