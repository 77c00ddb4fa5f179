"""``dsphnf info``: read and validate a catalogue, print a short summary."""
from __future__ import annotations

import argparse

from ..catalog import format_summary, read_catalog
from ..errors import CatalogError

HELP = "check a star catalogue and summarise it (stars, R_half [kpc], v_sys and sigma_los [km/s])"

DESCRIPTION = """\
Read any supported star catalogue (.csv, .ecsv, .fits, Gaia Challenge or
Walker-format .dat), validate it and print: number of stars, effective number
of members (sum of membership probabilities, and Kish's (sum w)^2/sum w^2),
projected half-number radius R_half [kpc] (membership-weighted median of
R = sqrt(x^2 + y^2), the length unit of the flow fit), mean line-of-sight
velocity [km/s] (should be ~0: the systemic velocity must be removed) and the
intrinsic line-of-sight velocity dispersion sigma_los [km/s] (maximum
likelihood with the per-star velocity errors removed), each with its 1-sigma
uncertainty.

Columns: x, y [kpc], vz [km/s], optional vz_err [km/s] and p_member [0..1].
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "info", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("catalog", metavar="CATALOG", help="star catalogue: .csv, .ecsv, .fits/.fit or .dat")
    p.add_argument(
        "--distance", type=float, default=None, metavar="KPC",
        help="heliocentric distance [kpc], needed for Walker-format .dat files (positions in arcmin)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.distance is not None and not args.distance > 0:
        raise CatalogError(f"--distance must be a positive number of kpc, got {args.distance:g}")
    cat = read_catalog(args.catalog, distance=args.distance)
    print(format_summary(cat))
    return 0
