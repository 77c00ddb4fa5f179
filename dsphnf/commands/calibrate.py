"""``dsphnf calibrate``: coverage of the rho(r) bands over many mocks of a known model."""
from __future__ import annotations

import argparse

from ..executor import add_executor_arguments, executor_from_args

HELP = "fit many mocks of a known model; coverage of the 68%%/95%% rho bands at 0.25-4 R_half"

DESCRIPTION = """\
Draw R independent mocks of N stars (x, y [kpc], vz [km/s]) from a known model
(a Gaia Challenge MODEL, or --halo/--tracer/--anisotropy specs), fit each with
the flow and/or the baseline, and score the fitted dark-matter density rho
[Msun/kpc^3] at r = 0.25, 0.5, 1, 2, 4 x R_half, R_half [kpc] the projected
half-number radius of the true tracer. Realisation i uses random seed S + i for
the mock and the fit.

Writes into OUT: calibration.csv (per realisation, method and radius: r [kpc],
r/R_half, log10 error = log10(rho/rho_true), z = log10 error / half-width of
the 68% band in log10, in68, in95; the enclosed mass: M_true, M with its
bands [Msun], M_err = log10(M/M_true), M_in68, M_in95; and beta: beta_true,
beta with its bands, beta_err = beta - beta_true, beta_in68, beta_in95, NaN
where beta is given), coverage.csv (per method and radius: the fraction of
realisations inside the 68% and 95% bands with binomial errors sqrt(p(1-p)/n),
mean and spread of z, the same for M and beta), coverage.png (rho's) and summary.json (with machines: how many
fits ran on each CPU, since a trained flow repeats bit for bit on one CPU
only). A single
flow (--ensemble 1) has no bands: its z and coverage are NaN. --method flow,start
also scores the flow's untrained start (one flow, one step) on the same mocks and
says on how many the trained flow beats it. Finished fits are
kept in OUT/tasks/: the same command resumes, and more --realisations reuse them.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("calibrate", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", default=None, metavar="MODEL", help="Gaia Challenge model, e.g. PlumCuspIso")
    p.add_argument("--halo", default=None, metavar="SPEC", help="mock halo instead of MODEL, e.g. burkert:1e8,0.5")
    p.add_argument("--tracer", default=None, metavar="SPEC", help="mock tracer instead of MODEL, e.g. plummer:0.25")
    p.add_argument("--anisotropy", default=None, metavar="SPEC", help="mock beta(r), e.g. om:0.5 (RA in kpc)")
    p.add_argument("--realisations", type=int, required=True, metavar="R", help="number of mocks (at least 2)")
    p.add_argument("--stars", type=int, required=True, metavar="N", help="stars per mock (at least 20)")
    p.add_argument("--method", default="both", metavar="M", help="flow | baseline | profile (the baseline's likelihood with profile-likelihood "
                   "bands) | start (the flow's untrained start, one step, no bands: what training must beat) | "
                   "a comma list | both (flow,baseline) | all (default both)")
    p.add_argument("--ensemble", type=int, default=8, metavar="K", help="flows per flow fit (default 8; 1 has no bands)")
    p.add_argument("--fit-anisotropy", default="isotropic", metavar="SPEC",
                   help="beta(r) the fits assume (default isotropic), as in dsphnf fit --anisotropy")
    p.add_argument("--fit-halo", default="zhao-alpha", metavar="FAMILY",
                   help="the baseline's halo family, as in dsphnf baseline --halo: zhao-alpha (default, transition "
                        "sharpness free) | zhao (gNFW) | nfw | cored | broken (broken power law)")
    p.add_argument("--losvd", default="gaussian", metavar="SHAPE",
                   help="the baseline's line-of-sight velocity distribution, as in dsphnf baseline --losvd: gaussian "
                        "(default) | kurtosis (heavy-tailed, its kurtosis free) | kurtosis-radial (its "
                        "kurtosis at R_half/4 and 4 R_half free)")
    p.add_argument("--steps", type=int, default=None, metavar="N", help="flow training steps (default: as dsphnf fit)")
    p.add_argument("--warm-start", type=int, default=0, metavar="N",
                   help="flow ensembles as a k-step bootstrap, as in dsphnf fit --warm-start (default 0: off)")
    p.add_argument("--centre", default="auto", metavar="C",
                   help="what the flow's value and bands are centred on, as in dsphnf fit --centre: auto (default: "
                        "all-stars with a given --fit-anisotropy, else members) | members | "
                        "all-stars")
    p.add_argument("--nu-mean", default="none", choices=["none", "zhao"],
                   help="what the flow's smoothness prior measures the roughness of ln nu from, as in dsphnf fit "
                        "--nu-mean (default none)")
    p.add_argument("--velocity", default="auto", metavar="FAMILY",
                   help="the flow's velocity family, as in dsphnf fit --velocity: auto (default: mixed with "
                        "--fit-anisotropy free and an even --ensemble, else elliptical) | elliptical | separable | "
                        "angular | mixed (separable, angular and mixed need --fit-anisotropy free, mixed an even "
                        "--ensemble)")
    p.add_argument("--max-steps", type=int, default=20000, metavar="N", help="baseline emcee steps at most (default 20000)")
    p.add_argument("--walkers", type=int, default=32, metavar="W", help="baseline emcee walkers (default 32)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="base random seed (default 0)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder (OUT/tasks/ keeps finished fits)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_executor_arguments(p, "fits")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..calibrate import calibrate, calibration_spec, format_coverage

    executor = executor_from_args(args)
    spec = calibration_spec(args.model, halo=args.halo, tracer=args.tracer, anisotropy=args.anisotropy,
                            realisations=args.realisations, stars=args.stars, methods=args.method,
                            ensemble=args.ensemble, fit_anisotropy=args.fit_anisotropy, steps=args.steps,
                            max_steps=args.max_steps, nwalkers=args.walkers, seed=args.seed,
                            fit_halo=args.fit_halo, nu_mean=args.nu_mean, warm_start=args.warm_start,
                            centre=args.centre, velocity=args.velocity, losvd=args.losvd)
    print(f"calibrating {', '.join(spec.methods)} on {spec.realisations} mocks of {spec.stars} stars "
          f"({spec.source.label()}, seeds {spec.seed}..{spec.seed + spec.realisations - 1}); "
          f"R_half = {spec.r_half:.4g} kpc (projected half-number radius of the true tracer)")
    cal = calibrate(spec, args.output, executor=executor, progress=False if args.no_progress else None)
    print(format_coverage(cal))
    for method in cal.unbanded:
        what = "the untrained start" if method == "start" else "a single flow, --ensemble 1"
        print(f"{method}: no bands ({what}): z and coverage are NaN, not reported as covering")
    if cal.failed:
        print(f"{len(cal.failed)} fit(s) failed (NaN rows, left out of the coverage): "
              + "; ".join(f"{k}: {v}" for k, v in cal.failed.items()))
    if cal.without_fit:
        print(f"{cal.without_fit} of {len(cal.rows)} rows have no fitted rho (failed fits, or radii outside a "
              "baseline's radial grid): NaN in calibration.csv, left out of the coverage")
    g = cal.grid
    print(f"{len(g.computed)} fit(s) computed, {len(g.resumed)} resumed from {cal.folder / 'tasks'} "
          f"in {g.wall_s:.1f} s")
    print(f"wrote calibration.csv, coverage.csv, coverage.png and summary.json to {cal.folder}")
    return 0
