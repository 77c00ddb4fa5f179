"""Coverage tables of `dsphnf calibrate` outputs, against the targets of issue 16 item 6.

Usage::

    python benchmarks/coverage_tables.py OUT [OUT ...] [--method baseline] [--seeds LO HI] [--label NAME]
    python benchmarks/coverage_tables.py OUT --method flow --against-start

Reads OUT/calibration.csv (several OUTs are pooled: e.g. seeds 0-39 and 40-59
run into two folders) and prints, per radius r/R_half: the number of
realisations n, the coverage of the 68 % and 95 % bands, the binomial 95 %
interval around nominal for that n (the per-radius target), mean and standard
deviation of z, the median 68 % half-width and the spread of the log10 error
[dex]; then the coverage pooled over the five radii against the pooled target
(within 8 and 4 points of 68 % and 95 %). ``--seeds LO HI`` keeps seeds
LO..HI-1 only (for before/after comparisons on the same mocks).

``--versus baseline`` (with ``--method flow``) adds the issue's other two
flow targets, per radius on the realisations both methods fitted: |median
log10 error| <= 0.3 x the median 68 % half-width, and the flow's scatter of
log10 error over realisations <= 1.5 x the other method's.

``--against-start`` (outputs of ``--method flow,start``) adds the target on
the untrained start: on every mock where the start's mean |log10 error| over
the radii is >= 0.15 dex, the method within a third of it
(:func:`dsphnf.calibrate.versus_start`), and lists the mocks that miss.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from dsphnf.calibrate import NOMINAL68, NOMINAL95, nominal_interval, pooled_coverage


def read_rows(outs: list[str], method: str, seeds: tuple[int, int] | None) -> list[dict]:
    rows = []
    for out in outs:
        with open(Path(out) / "calibration.csv") as f:
            for row in csv.DictReader(f):
                s = int(row["seed"])
                if row["method"] == method and (seeds is None or seeds[0] <= s < seeds[1]):
                    rows.append(row)
    return rows


def table(rows: list[dict], label: str) -> None:
    by_r: dict[float, list[dict]] = {}
    for row in rows:
        by_r.setdefault(float(row["r_over_rhalf"]), []).append(row)
    seeds = sorted({int(r["seed"]) for r in rows})
    print(f"### {label}: {len(seeds)} realisations (seeds {seeds[0]}-{seeds[-1]})\n")
    print("| r/R_half | n | 68 % cover | target | 95 % cover | target | z mean | z std | median w68 [dex] | sd log10 err [dex] |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    misses = []
    for x in sorted(by_r):
        g = by_r[x]
        ok = [r for r in g if r["z"] not in ("", "nan")]
        z = np.array([float(r["z"]) for r in ok])
        err = np.array([float(r["log10_err"]) for r in ok])
        w68 = 0.5 * (np.log10([float(r["rho_hi"]) for r in ok]) - np.log10([float(r["rho_lo"]) for r in ok]))
        c68 = np.mean([int(float(r["in68"])) for r in ok])
        c95 = np.mean([int(float(r["in95"])) for r in ok])
        n = len(ok)
        i68, i95 = nominal_interval(n, NOMINAL68), nominal_interval(n, NOMINAL95)
        bad = [name for name, c, (lo, hi) in (("68", c68, i68), ("95", c95, i95)) if not lo <= c <= hi]
        misses += [f"{x:g} R_half ({n} realisations): {b} % band {c:.2f} outside [{lo:.2f}, {hi:.2f}]"
                   for b, c, (lo, hi) in [(b, c68 if b == "68" else c95, i68 if b == "68" else i95) for b in bad]]
        print(f"| {x:g} | {n} | {c68:.2f} | {i68[0]:.2f}-{i68[1]:.2f} | {c95:.2f} | {i95[0]:.2f}-{i95[1]:.2f} "
              f"| {z.mean():+.2f} | {z.std(ddof=1):.2f} | {np.median(w68):.3f} | {err.std(ddof=1):.3f} |")
    (pooled,) = pooled_coverage([r for r in rows if r["z"] not in ("", "nan")])
    p68, p95 = pooled["cover68"], pooled["cover95"]
    print(f"| pooled | {pooled['n_pairs']} pairs | {p68:.3f} | 0.60-0.76 | {p95:.3f} | 0.91-0.99 | | | | |\n")
    pooled_ok = abs(p68 - 0.68) <= 0.08 + 1e-9, abs(p95 - 0.95) <= 0.04 + 1e-9  # the targets, in points (edges included)
    print(f"pooled targets: 68 % {'met' if pooled_ok[0] else 'MISSED'}, 95 % {'met' if pooled_ok[1] else 'MISSED'}; "
          f"per-radius misses: {'; '.join(misses) if misses else 'none'}\n")


def _errors(rows: list[dict]) -> dict[tuple[float, int], tuple[float, float]]:
    """(r/R_half, seed) -> (log10 error, 68 % half-width [dex]) of the rows with a finite error."""
    out = {}
    for r in rows:
        if r["log10_err"] not in ("", "nan"):
            w68 = 0.5 * (np.log10(float(r["rho_hi"])) - np.log10(float(r["rho_lo"])))
            out[(float(r["r_over_rhalf"]), int(r["seed"]))] = (float(r["log10_err"]), w68)
    return out


def versus(rows: list[dict], other: list[dict], name: str) -> None:
    """Bias against band width, and scatter against the other method's, on the realisations both fitted."""
    mine, theirs = _errors(rows), _errors(other)
    print(f"| r/R_half | n (both) | median log10 err [dex] | median w68 [dex] | ratio (target <= 0.3) "
          f"| sd log10 err [dex] | sd, {name} [dex] | ratio (target <= 1.5) |")
    print("|---|---|---|---|---|---|---|---|")
    for x in sorted({k[0] for k in mine}):
        keys = sorted(k for k in mine if k[0] == x and k in theirs)
        e, w = np.array([mine[k] for k in keys]).T
        e2 = np.array([theirs[k][0] for k in keys])
        b, s1, s2 = np.median(e), e.std(ddof=1), e2.std(ddof=1)
        print(f"| {x:g} | {len(keys)} | {b:+.3f} | {np.median(w):.3f} | {abs(b) / np.median(w):.2f} "
              f"| {s1:.3f} | {s2:.3f} | {s1 / s2:.2f} |")
    print()


def against_start(rows: list[dict], start: list[dict]) -> None:
    """The method against its untrained start, mock by mock (issue 16 item 6)."""
    from dsphnf.calibrate import mean_abs_errors, versus_start
    from dsphnf.calibrate.score import START_FAR_DEX

    both = [{**r, "log10_err": float(r["log10_err"])} for r in rows + start]
    (v,) = versus_start(both, start=start[0]["method"])
    print(f"{v['method']} against the start on {v['n']} mocks: medians of the mean |log10 error| "
          f"{v['median_abs_err']:.3f} / {v['start_median_abs_err']:.3f} dex; better on {v['better']}, within a "
          f"third on {v['third']}; start >= {START_FAR_DEX:g} dex off on {v['far']}, within a third of it on "
          f"{v['far_third']}")
    own, ref = mean_abs_errors(both, v["method"]), mean_abs_errors(both, start[0]["method"])
    for s in sorted(set(own) & set(ref)):
        if ref[s] >= START_FAR_DEX and own[s] > ref[s] / 3:
            print(f"  seed {s}: {own[s]:.3f} against the start's {ref[s]:.3f} dex ({own[s] / ref[s]:.2f} of it)")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outs", nargs="+")
    ap.add_argument("--method", default="baseline")
    ap.add_argument("--seeds", nargs=2, type=int)
    ap.add_argument("--label", default=None)
    ap.add_argument("--versus", default=None, metavar="METHOD", help="compare bias and scatter with METHOD")
    ap.add_argument("--against-start", action="store_true", help="the method against the untrained start's rows")
    a = ap.parse_args()
    seeds = tuple(a.seeds) if a.seeds else None
    rows = read_rows(a.outs, a.method, seeds)
    if a.against_start:
        against_start(rows, read_rows(a.outs, "start", seeds))
        return
    table(rows, a.label or ", ".join(a.outs))
    if a.versus:
        versus(rows, read_rows(a.outs, a.versus, seeds), a.versus)


if __name__ == "__main__":
    main()
