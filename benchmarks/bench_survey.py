"""Benchmark of ``dsphnf survey`` (not a test): the nine dwarfs, then the systematics on Draco and Fornax.

1. The reference survey: all nine Walker dwarfs (or ``--galaxies``), with
   ``--method baseline`` (default) or ``flow``: isotropic, elliptical radius,
   table distance, membership weights, velocity errors used; wall time.
2. The systematics switches on Draco and Fornax, one at a time against the
   reference: circular radius; velocity errors ignored; beta inferred instead
   of isotropy (the baseline a free constant beta, the flow a free beta(r));
   a distance drawn per posterior draw (the flow: per ensemble member); a
   foreground mixture instead of membership weights, for the same stars and
   for every star.  Each shift is the change of the median (the flow: the
   ensemble centre), in the quantity's unit and in units of the reference's
   68 % half-width, and "width" the ratio of the 68 % band widths (variant /
   reference) of each quantity.

Every survey resumes from its folder (``OUT/reference``, ``OUT/<switch>``):
a folder filled by the same ``dsphnf survey`` command is reused, not refitted.
Prints markdown tables for benchmarks/RESULTS.md.

Run:  DSPHNF_DATA=../shared/data MPLBACKEND=Agg .venv/bin/python benchmarks/bench_survey.py --out DIR \
          [--method baseline|flow] [--max-steps N] [--galaxies G ...] [--switches NAME ...]
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from dsphnf.survey import SurveyOptions, format_survey, survey, survey_spec

#: Switch name -> (survey options, anisotropy of the baseline or None: flow only, of the flow or None: baseline only).
SWITCHES = {
    "circular radius": ({"radius": "circular"}, "isotropic", "isotropic"),
    "distance per draw": ({"distance": "per-draw"}, "isotropic", "isotropic"),
    "foreground mixture": ({"membership": "mixture"}, "isotropic", "isotropic"),
    "foreground mixture, every star": ({"membership": "mixture-all"}, "isotropic", "isotropic"),
    "velocity errors ignored": ({"velocity_errors": "ignored"}, "isotropic", "isotropic"),
    "free constant beta": ({}, "constant", None),
    "free beta(r)": ({}, None, "free"),
}
#: Compared quantities: column, how the shift is taken (log10 for densities and masses), label.
SHIFTED = (("rho150", True, "log10 rho(150 pc)"), ("slope150", False, "slope(150 pc)"),
           ("M_half", True, "log10 M(<R_half)"), ("log10_J05", False, "log10 J(0.5 deg)"))


def _value(row: dict, key: str, log: bool, suffix: str = "") -> float:
    v = float(row[key + suffix])
    return math.log10(v) if log else v


def shift_rows(ref: dict, var: dict) -> list[str]:
    """Markdown cells 'shift (shift / half-width)' per compared quantity, then the band-width ratios."""
    cells, ratios = [], []
    for key, log, _ in SHIFTED:
        r, v = _value(ref, key, log), _value(var, key, log)
        width = _value(ref, key, log, "_hi") - _value(ref, key, log, "_lo")
        cells.append(f"{v - r:+.3f} ({(v - r) / (0.5 * width):+.1f})")
        ratios.append(f"{(_value(var, key, log, '_hi') - _value(var, key, log, '_lo')) / width:.2f}")
    return cells + [" / ".join(ratios)]


def _spec(galaxies, method: str, max_steps: int, anisotropy: str = "isotropic", **opts):
    return survey_spec(galaxies, method=method, max_steps=max_steps, anisotropy=anisotropy,
                       options=SurveyOptions(**opts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for the survey outputs")
    ap.add_argument("--method", default="baseline", choices=("baseline", "flow"), help="method of every survey")
    ap.add_argument("--max-steps", type=int, default=20000, help="baseline: emcee steps at most per fit")
    ap.add_argument("--galaxies", nargs="*", default=None, help="galaxies of the reference survey (default all)")
    ap.add_argument("--switches", nargs="*", default=None, help="switches to run (default: all the method supports)")
    args = ap.parse_args()
    out = Path(args.out)
    t0 = time.perf_counter()
    ref = survey(_spec(args.galaxies, args.method, args.max_steps), out / "reference", progress=False)
    print(f"## reference survey ({args.method}): {len(ref.rows)} fits in {time.perf_counter() - t0:.0f} s "
          f"(grid wall {ref.grid.wall_s:.0f} s, {len(ref.grid.resumed)} resumed)\n")
    print(format_survey(ref.rows), "\n")
    by_galaxy = {r["galaxy"]: r for r in ref.rows}
    print("| switch | galaxy | " + " | ".join(label for _, _, label in SHIFTED) + " | width ratios | wall [s] |")
    print("|---|---|" + "---|" * (len(SHIFTED) + 2))
    for name, (opts, base_beta, flow_beta) in SWITCHES.items():
        beta = base_beta if args.method == "baseline" else flow_beta
        if beta is None or (args.switches is not None and name not in args.switches):
            continue
        folder = out / name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
        run = survey(_spec(["draco", "fornax"], args.method, args.max_steps, beta, **opts), folder, progress=False,
                     plots=False)
        for row in run.rows:
            cells = shift_rows(by_galaxy[row["galaxy"]], row)
            print(f"| {name} | {row['galaxy']} | " + " | ".join(cells) + f" | {row['wall_s']:.0f} |", flush=True)
    print(f"\ntotal wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
