"""``dsphnf mock``: draw a mock catalogue (and its truth) from a named or a general model."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..errors import DsphnfError
from ..mocks import J_THETA_DEG, MODELS, TRUTH_POINTS, TRUTH_SPAN, draw_mock
from ..outputs import write_csv, write_json
from ..specs import HALO_GRAMMAR, TRACER_GRAMMAR

HELP = "draw a mock catalogue x, y [kpc], vz [km/s] from a known model (optionally its true profiles)"

TRUTH_UNITS = "r [kpc], nu [kpc^-3, one star in total], sigma_r [km/s], beta, M [Msun], rho [Msun/kpc^3]"
GENERAL_UNITS = ("r [kpc], nu [kpc^-3, one star in total], sigma_r, sigma_t [km/s, one tangential component], "
                 "beta, M [Msun], rho [Msun/kpc^3], and for several populations nu_K (population K's share of nu) "
                 "and beta_K")

DESCRIPTION = (
    "Draw N stars from an equilibrium model and write the projected catalogue\n"
    "(observer along z) as CSV with header x,y,vz (x, y [kpc], vz [km/s]; plus\n"
    "vz_err [km/s] when --verr is given).\n\n"
    f"Named models (Gaia Challenge family): {', '.join(MODELS)}.\n"
    "General models: --halo SPEC --tracer SPEC [--anisotropy SPEC] instead of MODEL,\n"
    f"  --halo    {HALO_GRAMMAR}\n"
    f"  --tracer  {TRACER_GRAMMAR}\n"
    "  --anisotropy  isotropic | om:RA | constant:B (-1 <= B <= gamma*/2) | cuddeford:B0,RA\n"
    "             (one for all populations, or one per population separated by ';').\n"
    "  Their catalogues add a column population (0, 1, ...).  A distribution function that is\n"
    "  negative anywhere is refused before sampling.\n\n"
    f"--truth writes the true profiles on a {TRUTH_POINTS}-point logarithmic grid from "
    f"{TRUTH_SPAN[0]:g} to {TRUTH_SPAN[1]:g} r*\n(r* the stellar scale radius), columns: {TRUTH_UNITS}\n"
    f"(general models: {GENERAL_UNITS}).\n"
    f"With --distance KPC, --truth also writes TRUTH.json with the true log10 J({J_THETA_DEG:g} deg) [GeV^2 cm^-5]."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("mock", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", nargs="?", default=None,
                   help="model name, e.g. NonPlumCuspIso (or give --halo and --tracer)")
    p.add_argument("--halo", default=None, metavar="SPEC", help=f"dark-matter halo: {HALO_GRAMMAR}")
    p.add_argument("--tracer", default=None, metavar="SPEC", help=f"stellar tracer: {TRACER_GRAMMAR}")
    p.add_argument("--anisotropy", default=None, metavar="SPEC",
                   help="isotropic (default) | om:RA | constant:B | cuddeford:B0,RA [kpc]; 'A;B' per population")
    p.add_argument("-n", type=int, default=1000, metavar="N", help="number of stars (default 1000)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("-o", "--output", required=True, metavar="STARS.csv", help="output catalogue (CSV)")
    p.add_argument("--truth", default=None, metavar="TRUTH.csv", help=f"also write the true profiles: {TRUTH_UNITS}")
    p.add_argument("--verr", type=float, default=None, metavar="KMS",
                   help="Gaussian velocity error [km/s] added to every vz and written as column vz_err")
    p.add_argument("--distance", type=float, default=None, metavar="KPC",
                   help=f"distance [kpc]: the truth gains log10 J({J_THETA_DEG:g} deg) in TRUTH.json")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    if args.n < 1:
        raise DsphnfError(f"-n must be at least 1, got {args.n}")
    if args.verr is not None and not (math.isfinite(args.verr) and args.verr >= 0):
        raise DsphnfError(f"--verr must be a non-negative velocity error in km/s, got {args.verr:g}")
    if args.distance is not None and not (math.isfinite(args.distance) and args.distance > 0):
        raise DsphnfError(f"--distance must be a positive distance in kpc, got {args.distance:g}")
    general = args.halo is not None or args.tracer is not None
    if args.model is not None and (general or args.anisotropy is not None):
        raise DsphnfError("give either MODEL or --halo/--tracer/--anisotropy, not both")
    if args.model is None and not (args.halo and args.tracer):
        raise DsphnfError(f"give a MODEL ({', '.join(MODELS)}) or both --halo and --tracer")


def run(args: argparse.Namespace) -> int:
    _check(args)
    if args.model is not None:
        cat, truth, model = draw_mock(args.model, args.n, args.seed, args.verr, distance=args.distance)
    else:
        cat, truth, model = draw_mock(None, args.n, args.seed, args.verr, halo=args.halo, tracer=args.tracer,
                                      anisotropy=args.anisotropy, distance=args.distance)
    # everything is computed before anything is written; each write is atomic
    columns = cat.columns()
    if "population" in cat.meta:
        columns["population"] = cat.meta["population"]
    write_csv(args.output, columns, fmt="%.10g")
    jfactor = cat.meta.get("jfactor")
    side = Path(args.truth).with_suffix(".json") if args.truth else None
    if args.truth:
        write_csv(args.truth, truth)
        if jfactor is not None:
            write_json(side, {"model": model.name, **jfactor})
    extra = f", vz_err = {args.verr:g} km/s" if args.verr is not None else ""
    print(f"wrote {cat.n} stars of {model.name} (seed {args.seed}{extra}) to {args.output}")
    if args.truth:
        units = TRUTH_UNITS if args.model is not None else GENERAL_UNITS
        print(f"wrote true profiles ({units}) to {args.truth}")
    if jfactor is not None:
        where = f" (in {side})" if side else ""
        print(f"true log10 J({J_THETA_DEG:g} deg) = {jfactor['log10_J']:.3f} [GeV^2 cm^-5] at "
              f"{jfactor['distance_kpc']:g} kpc{where}")
    return 0
