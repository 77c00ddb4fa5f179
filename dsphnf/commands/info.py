"""``dsphnf info``: read and validate a catalogue, print a short summary."""
from __future__ import annotations

import argparse

from ..catalog import Catalog, read_catalog
from ..errors import CatalogError

HELP = "check a star catalogue and summarise it (stars, R_half [kpc], v_sys and sigma_los [km/s])"

DESCRIPTION = """\
Read any supported star catalogue (.csv, .ecsv, .fits, Gaia Challenge or
Walker-format .dat), validate it and print: number of stars, effective number
of members (sum of membership probabilities, and Kish's (sum w)^2/sum w^2),
projected half-number radius R_half [kpc] (membership-weighted median of
R = sqrt(x^2 + y^2)), mean line-of-sight velocity [km/s] (should be ~0: the
systemic velocity must be removed) and the intrinsic line-of-sight velocity
dispersion sigma_los [km/s] (maximum likelihood with the per-star velocity
errors removed), each with its 1-sigma uncertainty.

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


def format_summary(cat: Catalog) -> str:
    """The lines printed by ``dsphnf info`` for a validated catalogue."""
    s = cat.summary()
    m = cat.meta
    lines = [f"catalogue        {cat.source} ({m.get('format', 'unknown format')})"]
    if "distance_kpc" in m:
        lines.append(
            f"conversion       distance {m['distance_kpc']:g} kpc; systemic velocity "
            f"{m['v_sys_removed_kms']:.2f} km/s (membership-weighted mean) removed"
        )
    if m.get("n_dropped_nonmember") or m.get("n_dropped_bad_velocity"):
        lines.append(
            f"dropped          {m.get('n_dropped_nonmember', 0)} of {m.get('n_rows', '?')} rows with membership "
            f"< {m.get('min_member', 0):g}, {m.get('n_dropped_bad_velocity', 0)} with unusable velocities"
        )
    if m.get("ignored_columns"):
        lines.append(f"ignored columns  {', '.join(m['ignored_columns'])}")
    lines.append(f"stars            {s['n']}")
    lines.append(f"members          {s['n_eff']:.1f} effective (sum p_member), Kish {s['n_kish']:.1f}")
    lines.append(f"R_half           {s['R_half']:.4f} kpc (membership-weighted median projected radius)")
    if cat.has_velocities:
        errs = "velocity errors removed" if cat.vz_err is not None else "no velocity errors given"
        lines.append(f"mean vz          {s['v_mean']:.2f} +- {s['v_mean_err']:.2f} km/s")
        lines.append(f"sigma_los        {s['sigma_los']:.2f} +- {s['sigma_los_err']:.2f} km/s (max. likelihood, {errs})")
    else:
        lines.append("velocities       none (positions only: enough for nu(r), not for the mass)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.distance is not None and not args.distance > 0:
        raise CatalogError(f"--distance must be a positive number of kpc, got {args.distance:g}")
    cat = read_catalog(args.catalog, distance=args.distance)
    print(format_summary(cat))
    return 0
