"""Benchmark of the parametric Jeans baseline (not a test).

Gaia Challenge NonPlumCuspIso, 1000 stars (x, y, vz observed), isotropic
anisotropy, Zhao halo:

1. cost of one likelihood evaluation for 1000 stars (single parameter vector,
   and per walker in a batch of 16 as emcee calls it);
2. wall time of a converged run (MAP + emcee until 50 autocorrelation times);
3. whether the true rho_DM at 0.1/0.15/0.25/0.5/1 kpc lies inside the 68%/95% bands,
   and log10 J(0.5 deg) at 76 kpc (truth 19.05).

Run:  MPLBACKEND=Agg .venv/bin/python benchmarks/bench_baseline.py [--seed S] [--out DIR]
"""
from __future__ import annotations

import argparse
import os
import timeit
from pathlib import Path

import numpy as np

from dsphnf.anisotropy import parse_anisotropy
from dsphnf.baseline import BaselineLikelihood, BaselineModel, fit_baseline
from dsphnf.catalog import read_catalog
from dsphnf.provenance import cpu_label

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gaia_challenge" / "NonPlumCuspIso"
FILE = DATA / "gs100_bs050_rcrs025_rarcinf_cusp_0064mpc3_df_1000_0.dat"
RADII = np.array([0.1, 0.15, 0.25, 0.5, 1.0])
TRUTH = np.array([5.29e8, 3.23e8, 1.64e8, 5.69e7, 1.60e7])


def time_likelihood(cat) -> dict:
    out = {}
    for aniso in ("isotropic", "constant", "om", "cuddeford", "baes"):
        m = BaselineModel("zhao", parse_anisotropy(aniso))
        like = BaselineLikelihood(m, cat.R, cat.vz, cat.vz_err, cat.weights)
        x = m.initial_guess(float(np.median(cat.R)), float(np.std(cat.vz)))
        xb = x + 1e-3 * np.random.default_rng(0).standard_normal((16, x.size))
        one = np.array(timeit.repeat(lambda: like(x), number=100, repeat=7)) / 100
        b16 = np.array(timeit.repeat(lambda: like(xb), number=20, repeat=7)) / 20 / 16
        out[aniso] = (one.min() * 1e3, np.median(one) * 1e3, b16.min() * 1e3, np.median(b16) * 1e3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="also write the baseline output folder here")
    args = ap.parse_args()
    if not FILE.exists():
        raise SystemExit(f"data file not found: {FILE}")
    cat = read_catalog(FILE)
    print(f"machine: {cpu_label()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} (shared)")
    print("likelihood, 1000 stars [ms]: single min / median, per walker in a batch of 16 min / median")
    for k, v in time_likelihood(cat).items():
        print(f"  {k:10s} {v[0]:.3f} / {v[1]:.3f}    {v[2]:.3f} / {v[3]:.3f}")
    res = fit_baseline(cat, "isotropic", "zhao", seed=args.seed, distance=76.0, progress=False)
    s, t = res.artefacts.sampler, res.summary["timings_s"]
    prof = res.artefacts.profile_at(np.geomspace(0.05, 2.0, 64), seed=args.seed)
    j = res.summary["jfactor"]
    print(f"run: {s.chain.shape[0]} steps x {s.chain.shape[1]} walkers, converged={s.converged}, "
          f"acceptance {s.acceptance:.3f}, max tau {s.tau.max():.1f}, min ESS {s.ess.min():.0f}, burn {s.burn}")
    print(f"wall time: sampler (MAP + emcee) {t['sampler_s']:.1f} s, posterior profiles {t['profiles_s']:.1f} s, "
          f"J band {t['jfactor_s']:.1f} s, fit_baseline in all {t['total_s']:.1f} s")
    lo68 = np.exp(np.interp(np.log(RADII), np.log(prof["r"]), np.log(prof["rho_lo"])))
    hi68 = np.exp(np.interp(np.log(RADII), np.log(prof["r"]), np.log(prof["rho_hi"])))
    lo = np.exp(np.interp(np.log(RADII), np.log(prof["r"]), np.log(prof["rho_lo95"])))
    hi = np.exp(np.interp(np.log(RADII), np.log(prof["r"]), np.log(prof["rho_hi95"])))
    med = np.exp(np.interp(np.log(RADII), np.log(prof["r"]), np.log(prof["rho"])))
    print("| r [kpc] | rho_true | median | 95% band | log10 err | in 68% | in 95% |")
    print("|---|---|---|---|---|---|---|")
    for i, r in enumerate(RADII):
        print(f"| {r:g} | {TRUTH[i]:.3g} | {med[i]:.3g} | [{lo[i]:.3g}, {hi[i]:.3g}] | "
              f"{np.log10(med[i] / TRUTH[i]):+.3f} | {'yes' if lo68[i] <= TRUTH[i] <= hi68[i] else 'no'} | "
              f"{'yes' if lo[i] <= TRUTH[i] <= hi[i] else 'no'} |")
    print(f"log10 J(0.5 deg) at 76 kpc: {j['log10_J']:.3f} [{j['log10_J_lo']:.3f}, {j['log10_J_hi']:.3f}] 68%, "
          f"[{j['log10_J_lo95']:.3f}, {j['log10_J_hi95']:.3f}] 95% (truth 19.05; {j['n_left_out']} draws left out)")
    if args.out:
        res.save(args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
