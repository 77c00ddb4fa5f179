"""Bands centred on the members' mean against bands centred on the all-star flow, on the same mocks (not a test).

``dsphnf fit --centre all-stars`` reports the read-out of one flow trained on all stars with bands -+ t_{K-1} s
(s the bootstrap members' spread); the default reports the members' mean with -+ t_{K-1} s sqrt(1 + 1/K). Both
come from the same members, and the all-star flow is the single flow of the same seed (tests/test_flow_centre.py),
so two calibrations of the same mocks give both estimators without a third run:

    dsphnf calibrate MODEL --method flow --realisations R --seed S -o ENS                 # 8 members, default
    dsphnf calibrate MODEL --method flow --ensemble 1 --realisations R --seed S -o ONE    # the all-star flows
    python benchmarks/centre_compare.py ENS ONE [--ensemble 8]
    python benchmarks/centre_compare.py ENS_A,ENS_B ONE_A,ONE_B      # calibrations of several seed ranges pooled
    python benchmarks/centre_compare.py ENS ONE --record MODEL       # also the all-star rows as a record entry
    python benchmarks/centre_compare.py ENS ONE --start START        # both centres against the untrained start
                                                                     # (calibrate --method start on the same mocks)

prints, per radius (0.25-4 R_half) and pooled, the coverage of the 68 % / 95 % bands, the median and spread of
log10 rho/rho_true and the spread of z for both centres, and the median over mocks of the mean |error|.
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd


def _rows(dirs: str, method: str = "flow") -> pd.DataFrame:
    """The ``method`` rows of one or more calibrate folders (comma-separated), refusing a mock seed found twice."""
    rows = pd.concat([pd.read_csv(f"{d}/calibration.csv") for d in dirs.split(",")]).query(f"method == '{method}'")
    if rows.duplicated(["seed", "r_over_rhalf"]).any():
        raise SystemExit(f"centre_compare: a mock seed appears twice in {dirs}")
    return rows


def paired(ens_dir: str, one_dir: str, k: int) -> pd.DataFrame:
    """One row per (mock, radius): the members' row of calibrate with the all-star flow's error beside it.

    ``ens_dir`` and ``one_dir`` may each be a comma-separated list of calibrate folders (their rows are pooled).
    """
    ens = _rows(ens_dir)
    one = _rows(one_dir)
    m = ens.merge(one[["seed", "r_over_rhalf", "log10_err"]], on=["seed", "r_over_rhalf"], suffixes=("", "_all"))
    shrink = np.sqrt(1.0 + 1.0 / k)  # the members' half-width is t s sqrt(1 + 1/K); around the all-star flow t s
    w68 = 0.5 * np.log10(m.rho_hi / m.rho_lo)
    w95 = 0.5 * np.log10(m.rho_hi95 / m.rho_lo95)
    m["in68_all"] = (np.abs(m.log10_err_all) <= w68 / shrink).astype(float)
    m["in95_all"] = (np.abs(m.log10_err_all) <= w95 / shrink).astype(float)
    m["z_all"] = m.log10_err_all / (w68 / shrink)
    return m


def record_entry(m: pd.DataFrame, label: str) -> str:
    """The all-star centre's coverage per radius in the format of book chapter 9's ``MEASURED`` record."""
    g = m.groupby("r_over_rhalf")
    r = lambda s, d: [round(float(v), d) for v in s]  # noqa: E731
    entry = {"n": int(m.seed.nunique()), "in68": r(g.in68_all.mean(), 3), "in95": r(g.in95_all.mean(), 3),
             "z_mean": r(g.z_all.mean(), 3), "z_std": r(g.z_all.std(), 3), "sd_err": r(g.log10_err_all.std(), 3),
             "median_err": r(g.log10_err_all.median(), 3)}
    return f"    ({label!r}, 'flow'): {entry},"


def against_start(m: pd.DataFrame, start_dirs: str) -> str:
    """Both centres against the untrained start on the same mocks (:func:`dsphnf.calibrate.versus_start`)."""
    from dsphnf.calibrate.score import START_FAR_DEX, versus_start

    start = _rows(start_dirs, "start")
    rows = [{"method": "start", "seed": s, "log10_err": e} for s, e in zip(start.seed, start.log10_err)]
    for name, col in (("members' mean", "log10_err"), ("all-star flow", "log10_err_all")):
        rows += [{"method": name, "seed": s, "log10_err": e} for s, e in zip(m.seed, m[col])]
    return "\n".join(f"{v['method']}: median mean |error| {v['median_abs_err']:.3f} dex against the start's "
                     f"{v['start_median_abs_err']:.3f}; better on {v['better']} of {v['n']}; within a third on "
                     f"{v['third']}; where the start is >= {START_FAR_DEX} dex off ({v['far']}), within a third "
                     f"on {v['far_third']}" for v in versus_start(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ensembles")
    ap.add_argument("single")
    ap.add_argument("--ensemble", type=int, default=8, help="members per fit of ENS (default 8)")
    ap.add_argument("--record", metavar="MODEL", help="print the all-star centre's rows as an entry of book "
                    "chapter 9's MEASURED record, labelled MODEL")
    ap.add_argument("--start", metavar="START", help="calibrate folder(s) of --method start on the same mocks")
    args = ap.parse_args()
    m = paired(args.ensembles, args.single, args.ensemble)
    if args.record:
        print(record_entry(m, args.record))
    if args.start:
        print(against_start(m, args.start))
    g = m.groupby("r_over_rhalf")
    fmt = lambda s, f="{:.2f}": " / ".join(f.format(v) for v in s)
    print(f"{m.seed.nunique()} mocks; radii {fmt(g.size().index, '{:g}')} R_half")
    for name, err, i68, i95, z in (("members' mean", "log10_err", "in68", "in95", "z"),
                                   ("all-star flow", "log10_err_all", "in68_all", "in95_all", "z_all")):
        print(f"{name}: 68 % {fmt(g[i68].mean())} | 95 % {fmt(g[i95].mean())} | pooled {m[i68].mean():.3f} / "
              f"{m[i95].mean():.3f}")
        print(f"    median err {fmt(g[err].median(), '{:+.3f}')} | sd {fmt(g[err].std(), '{:.3f}')} | "
              f"z std {fmt(g[z].std())}")
    per = m.groupby("seed")[["log10_err", "log10_err_all"]].agg(lambda e: np.mean(np.abs(e)))
    print(f"median of the mean |error|: members' mean {per.log10_err.median():.3f}, all-star flow "
          f"{per.log10_err_all.median():.3f} dex (all-star flow better on {(per.log10_err_all < per.log10_err).sum()} "
          f"of {len(per)})")


if __name__ == "__main__":
    main()
