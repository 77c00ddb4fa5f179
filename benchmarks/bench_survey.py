"""Benchmark of ``dsphnf survey`` with the baseline (not a test): the nine dwarfs, then the systematics.

1. The reference survey: all nine Walker dwarfs, baseline, isotropic, elliptical
   radius, table distance, membership weights, velocity errors used; wall time.
2. The systematics switches on Draco and Fornax, one at a time against the
   reference: circular radius; a distance drawn per posterior draw; a
   foreground mixture instead of membership weights; velocity errors ignored;
   a free constant beta (inferred ``constant``) instead of isotropy.  Each
   shift is the change of the posterior median, in the quantity's unit and in
   units of the reference's 68 % half-width.

Prints markdown tables for benchmarks/RESULTS.md.

Run:  DSPHNF_DATA=../shared/data MPLBACKEND=Agg .venv/bin/python benchmarks/bench_survey.py --out DIR [--max-steps N]
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from dsphnf.survey import SurveyOptions, format_survey, survey, survey_spec

SWITCHES = {
    "circular radius": ({"radius": "circular"}, "isotropic"),
    "distance per draw": ({"distance": "per-draw"}, "isotropic"),
    "foreground mixture": ({"membership": "mixture"}, "isotropic"),
    "foreground mixture, every star": ({"membership": "mixture-all"}, "isotropic"),
    "velocity errors ignored": ({"velocity_errors": "ignored"}, "isotropic"),
    "free constant beta": ({}, "constant"),
}
#: Compared quantities: column, how the shift is taken (log10 for densities and masses), label.
SHIFTED = (("rho150", True, "log10 rho(150 pc)"), ("slope150", False, "slope(150 pc)"),
           ("M_half", True, "log10 M(<R_half)"), ("log10_J05", False, "log10 J(0.5 deg)"))


def _value(row: dict, key: str, log: bool, suffix: str = "") -> float:
    v = float(row[key + suffix])
    return math.log10(v) if log else v


def shift_rows(ref: dict, var: dict) -> list[str]:
    """Markdown cells 'shift (shift / half-width)' per compared quantity."""
    cells = []
    for key, log, _ in SHIFTED:
        r, v = _value(ref, key, log), _value(var, key, log)
        half = 0.5 * (_value(ref, key, log, "_hi") - _value(ref, key, log, "_lo"))
        cells.append(f"{v - r:+.3f} ({(v - r) / half:+.1f})")
    return cells


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for the survey outputs")
    ap.add_argument("--max-steps", type=int, default=20000, help="emcee steps at most per fit")
    ap.add_argument("--galaxies", nargs="*", default=None, help="galaxies of the reference survey (default all)")
    args = ap.parse_args()
    out = Path(args.out)
    t0 = time.perf_counter()
    ref = survey(survey_spec(args.galaxies, max_steps=args.max_steps), out / "reference", progress=False)
    print(f"## reference survey: {len(ref.rows)} fits in {time.perf_counter() - t0:.0f} s "
          f"(grid wall {ref.grid.wall_s:.0f} s)\n")
    print(format_survey(ref.rows), "\n")
    by_galaxy = {r["galaxy"]: r for r in ref.rows}
    print("| switch | galaxy | " + " | ".join(label for _, _, label in SHIFTED) + " | wall [s] |")
    print("|---|---|" + "---|" * (len(SHIFTED) + 1))
    for name, (opts, anisotropy) in SWITCHES.items():
        folder = out / name.replace(" ", "_")
        run = survey(survey_spec(["draco", "fornax"], max_steps=args.max_steps, anisotropy=anisotropy,
                                 options=SurveyOptions(**opts)), folder, progress=False, plots=False)
        for row in run.rows:
            cells = shift_rows(by_galaxy[row["galaxy"]], row)
            print(f"| {name} | {row['galaxy']} | " + " | ".join(cells) + f" | {row['wall_s']:.0f} |", flush=True)
    print(f"\ntotal wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
