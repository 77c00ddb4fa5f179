"""``dsphnf mock``: draw a mock catalogue (and its truth)."""
from __future__ import annotations

import argparse
import math

from ..errors import DsphnfError
from ..mocks import MODELS, TRUTH_POINTS, TRUTH_SPAN, draw_mock
from ..outputs import write_csv

HELP = "draw a mock catalogue x, y [kpc], vz [km/s] from a known model (optionally its true profiles)"

TRUTH_UNITS = "r [kpc], nu [kpc^-3, one star in total], sigma_r [km/s], beta, M [Msun], rho [Msun/kpc^3]"

DESCRIPTION = (
    "Draw N stars from an equilibrium model (Gaia Challenge family) and write the\n"
    "projected catalogue (observer along z) as CSV with header x,y,vz\n"
    "(x, y [kpc], vz [km/s]; plus vz_err [km/s] when --verr is given).\n\n"
    f"Models: {', '.join(MODELS)}.\n\n"
    f"--truth writes the true profiles on a {TRUTH_POINTS}-point logarithmic grid from "
    f"{TRUTH_SPAN[0]:g} to {TRUTH_SPAN[1]:g} r*\n(r* the stellar scale radius), columns: {TRUTH_UNITS}."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("mock", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="model name, e.g. NonPlumCuspIso")
    p.add_argument("-n", type=int, default=1000, metavar="N", help="number of stars (default 1000)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("-o", "--output", required=True, metavar="STARS.csv", help="output catalogue (CSV)")
    p.add_argument("--truth", default=None, metavar="TRUTH.csv", help=f"also write the true profiles: {TRUTH_UNITS}")
    p.add_argument("--verr", type=float, default=None, metavar="KMS",
                   help="Gaussian velocity error [km/s] added to every vz and written as column vz_err")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise DsphnfError(f"-n must be at least 1, got {args.n}")
    if args.verr is not None and not (math.isfinite(args.verr) and args.verr >= 0):
        raise DsphnfError(f"--verr must be a non-negative velocity error in km/s, got {args.verr:g}")
    cat, truth, model = draw_mock(args.model, args.n, args.seed, args.verr)
    # everything is computed before anything is written; each write is atomic
    cat.to_csv(args.output)
    if args.truth:
        write_csv(args.truth, truth)
    extra = f", vz_err = {args.verr:g} km/s" if args.verr is not None else ""
    print(f"wrote {cat.n} stars of {model.name} (seed {args.seed}{extra}) to {args.output}")
    if args.truth:
        print(f"wrote true profiles ({TRUTH_UNITS}) to {args.truth}")
    return 0
