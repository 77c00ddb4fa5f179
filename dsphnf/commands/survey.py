"""``dsphnf survey``: fit the classical dwarfs and put the numbers beside the literature."""
from __future__ import annotations

import argparse

from ..executor import add_executor_arguments, executor_from_args

HELP = "fit the nine Walker-catalogue dwarfs; rho(150 pc), slope, M(<R_half), beta, J beside the literature"

DESCRIPTION = """\
Fit each GALAXY (default: all nine of carina, cvn1, draco, fornax, leo1, leo2,
sculptor, sextans, ursaminor) with the flow and/or the baseline.  Catalogues
are the Walker-format files in walker_dwarfs/ of the reference-data folder
(DSPHNF_DATA or ../shared/data); distances, ellipticities, position angles,
centres and half-light radii are those of McConnachie (2012).

Per galaxy and method, with 68% bands: rho(150 pc) [Msun/kpc^3], d ln rho /
d ln r at 150 pc, M(<R_half) [Msun] (R_half the circularised half-light
radius), beta(R_half) (NaN for isotropic fits), log10 J(0.5 deg)
[GeV^2 cm^-5], and log10 J within the stars' largest radius when that
subtends less than 0.5 deg (flagged j_beyond_data), members and wall time.

Systematics switches: --radius elliptical|circular, --distance fixed|per-draw
(a distance drawn per posterior draw of the baseline, per flow of the
ensemble), --membership weights|mixture|mixture-all (a broad Gaussian
foreground in v_z, uniform on the sky, in the likelihood with a free fraction
instead of the membership weights, for the same stars or for every star; the
fraction is the column f_fg), --velocity-errors used|ignored, --anisotropy
(e.g. constant for a free constant beta in the baseline, free for the flow),
--tracer spectroscopic|photometric (the stellar density fitted to the
catalogue's positions, or fixed to a Plummer sphere of the half-light radius:
the baseline only).

Writes into OUT: survey.ecsv (with units), survey.csv, literature.csv (against
Read, Walker & Steger 2019; Pace & Strigari 2019; Geringer-Sameth et al. 2015,
with pulls), literature.png and summary.json.  Finished fits are kept in
OUT/tasks/: the same command resumes.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("survey", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("galaxies", nargs="*", metavar="GALAXY", help="galaxies to fit (default: all nine)")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output folder (OUT/tasks/ keeps finished fits)")
    p.add_argument("--method", default="baseline", metavar="M", help="flow | baseline | both (default baseline)")
    p.add_argument("--anisotropy", default="isotropic", metavar="SPEC", help="beta(r) of the fits (default isotropic)")
    p.add_argument("--radius", default="elliptical", metavar="KIND", help="elliptical | circular (default elliptical)")
    p.add_argument("--distance", default="fixed", metavar="KIND", help="fixed | per-draw (default fixed)")
    p.add_argument("--membership", default="weights", metavar="KIND",
                   help="weights | mixture | mixture-all (default weights)")
    p.add_argument("--velocity-errors", default="used", metavar="KIND", help="used | ignored (default used)")
    p.add_argument("--tracer", default="spectroscopic", metavar="KIND",
                   help="spectroscopic | photometric (default spectroscopic; photometric: baseline only)")
    p.add_argument("--halo", default=None, metavar="FAMILY",
                   help="the baseline's halo family, as in dsphnf baseline --halo: zhao-alpha (default) | "
                        "zhao (gNFW) | nfw | cored | broken (broken power law)")
    p.add_argument("--losvd", default=None, metavar="SHAPE",
                   help="the baseline's line-of-sight velocity distribution, as in dsphnf baseline --losvd: gaussian "
                        "(default) | kurtosis (heavy-tailed, its kurtosis free) | kurtosis-radial (its "
                        "kurtosis at R_half/4 and 4 R_half free)")
    p.add_argument("--fast", action="store_true", help="quick settings for whatever is not given (a first look)")
    p.add_argument("--max-steps", type=int, default=None, metavar="N",
                   help="baseline emcee steps at most (default 20000)")
    p.add_argument("--walkers", type=int, default=None, metavar="W", help="baseline emcee walkers (default 32)")
    p.add_argument("--ensemble", type=int, default=None, metavar="K", help="flows per galaxy (default 4)")
    p.add_argument("--steps", type=int, default=None, metavar="N", help="flow training steps (default: as dsphnf fit)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed of every fit (default 0)")
    p.add_argument("--no-plots", action="store_true", help="skip literature.png")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_executor_arguments(p, "galaxies")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..survey import SurveyOptions, failed, format_survey, survey, survey_spec

    executor = executor_from_args(args)
    options = SurveyOptions(args.radius, args.distance, args.membership, args.velocity_errors, args.tracer)
    spec = survey_spec(args.galaxies, method=args.method, anisotropy=args.anisotropy, options=options,
                       fast=args.fast, max_steps=args.max_steps, nwalkers=args.walkers, ensemble=args.ensemble,
                       steps=args.steps, seed=args.seed, halo=args.halo, losvd=args.losvd)
    print(f"survey: {len(spec.galaxies)} galaxies x {', '.join(spec.methods)} ({len(spec.tasks())} fits); "
          + ", ".join(f"{k} {v}" for k, v in options.spec().items()))
    result = survey(spec, args.output, executor=executor, progress=False if args.no_progress else None,
                    plots=not args.no_plots)
    print(format_survey(result.rows))
    bad = failed(result.rows)
    if bad:
        print(f"{len(bad)} of {len(result.rows)} fit(s) failed (row of NaN, fit_note says why): "
              + ", ".join(f"{r['galaxy']} {r['method']}" for r in bad))
    g = result.grid
    print(f"{len(g.computed)} fit(s) computed, {len(g.resumed)} resumed from {result.folder / 'tasks'} "
          f"in {g.wall_s:.1f} s")
    print(f"wrote survey.ecsv, survey.csv, literature.csv{'' if args.no_plots else ', literature.png'} and "
          f"summary.json to {result.folder}")
    return 0
