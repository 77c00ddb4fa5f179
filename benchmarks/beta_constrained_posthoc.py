"""Where a flow called beta constrained, and how often its bands held the truth there, for calibrate folders
written before calibration.csv recorded that statement (not a test).

``dsphnf calibrate`` now writes ``beta_constrained`` per row (the fit's own
:func:`dsphnf.flows.beta_constraint.beta_constraint` at the scored radii) and the coverage of beta's bands where it is 1.
For an older folder this script applies the same rule after the fact: it redraws each realisation's stars
(the mock's random seed is the row's seed, as in ``calibrate``), counts the stars near each radius and takes the
band's width from calibration.csv, then prints per radius how many realisations the rule calls constrained and
beta's 68 / 95 % coverage over all of them and over those.

Usage::

    python benchmarks/beta_constrained_posthoc.py OUT (MODEL | --halo SPEC --tracer SPEC --anisotropy SPEC) \\
        [--stars 1000]
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsphnf.anisotropy import anisotropy_from  # noqa: E402
from dsphnf.calibrate.spec import MockSource  # noqa: E402
from dsphnf.flows.beta_constraint import beta_constraint  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder")
    p.add_argument("model", nargs="?")
    p.add_argument("--halo")
    p.add_argument("--tracer")
    p.add_argument("--anisotropy")
    p.add_argument("--stars", type=int, default=1000)
    p.add_argument("--method", default="flow")
    a = p.parse_args()
    source = MockSource(model=a.model, halo=a.halo, tracer=a.tracer,
                        anisotropy=None if a.anisotropy is None else anisotropy_from(a.anisotropy))
    with open(Path(a.folder) / "calibration.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["method"] == a.method]
    said = []
    for seed in sorted({int(r["seed"]) for r in rows}):
        own = sorted((r for r in rows if int(r["seed"]) == seed), key=lambda r: float(r["r"]))
        cat = source.draw(a.stars, seed).catalog
        prof = {k: np.array([float(r[k]) for r in own]) for k in ("r", "beta", "beta_lo", "beta_hi")}
        c = beta_constraint(prof, np.hypot(cat.x, cat.y), cat.weights)
        said += [(float(r["r_over_rhalf"]), ok, n, float(r["beta_in68"]), float(r["beta_in95"]))
                 for r, ok, n in zip(own, c["constrained"], c["n_stars_near"])]
    table = np.array(said, dtype=float)
    print("r/R_half  constrained  stars near (median)  68 % cover: all / constrained  95 % cover: all / constrained")
    for ratio in sorted(set(table[:, 0])) + [None]:
        t = table if ratio is None else table[table[:, 0] == ratio]
        k = t[t[:, 1] == 1.0]
        cov = lambda x, j: f"{np.mean(x[:, j]):.2f}" if len(x) else "  - "
        label = "pooled" if ratio is None else f"{ratio:g}"
        print(f"{label:>8s}  {len(k):4d} of {len(t):<4d}  {np.median(t[:, 2]):19.0f}  {cov(t, 3):>16s} / "
              f"{cov(k, 3):<11s}  {cov(t, 4):>16s} / {cov(k, 4)}")


if __name__ == "__main__":
    main()
