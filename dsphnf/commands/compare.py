"""``dsphnf compare``: overlay profile outputs and tabulate errors against the truth."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import DsphnfError

HELP = "overlay rho and M profiles of several output folders (and the truth); table of errors and coverage"

DESCRIPTION = """\
Read each result folder of `dsphnf fit` or `dsphnf baseline` (summary.json and
profile_bands.csv or profile.csv, the same way for both methods), overlay
rho(r) [Msun/kpc^3] and M(<r) [Msun] with their 68%/95% bands, and print a
table at the chosen radii [kpc]: rho with its 68% band and, with --truth (a
CSV with columns r,nu,sigma_r,beta,M,rho as written by `dsphnf mock --truth`),
log10(rho / rho_true) and whether the truth lies inside the 68% and 95% bands.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("compare", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="OUT", help="result folders of dsphnf fit or dsphnf baseline")
    p.add_argument("-o", "--output", required=True, metavar="FIG.png", help="figure to write (.png, .pdf, .svg)")
    p.add_argument("--truth", default=None, metavar="TRUTH.csv", help="true profiles (r, rho[, M]) as CSV")
    p.add_argument("--radii", default="0.1,0.15,0.25,0.5,1", metavar="R1,R2,...",
                   help="radii [kpc] of the table (default 0.1,0.15,0.25,0.5,1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..compare import compare, format_table, load_runs, parse_radii, plot_comparison, read_truth

    radii = parse_radii(args.radii)
    if Path(args.output).suffix.lower() not in (".png", ".pdf", ".svg"):
        raise DsphnfError(f"{args.output}: figure must end in .png, .pdf or .svg")
    runs = load_runs(args.runs)
    truth = read_truth(args.truth) if args.truth else None
    rows = compare(runs, truth, radii)
    plot_comparison(runs, truth, args.output, radii=radii)
    print(format_table(rows))
    print(f"wrote {args.output}")
    return 0
