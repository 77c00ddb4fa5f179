"""``dsphnf demo``: the main job on the embedded default mock, end to end."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import DsphnfError
from ..outputs import atomic_dir, write_csv
from .info import format_summary
from ..mocks import draw_mock

HELP = "the main job: draw the default mock (NonPlumCuspIso, 1000 stars), fit the flow, compare with the truth"

DEFAULT_MODEL = "NonPlumCuspIso"

DESCRIPTION = f"""\
Draw the benchmark mock dwarf ({DEFAULT_MODEL}: Zhao (2,5,1) stars with
r* = 0.25 kpc in an NFW halo, r_s = 1 kpc, rho0 = 6.4e7 Msun/kpc^3,
isotropic), fit the equivariant flow to its (x, y, vz) exactly as
`dsphnf fit stars.csv --anisotropy isotropic` would, and write into OUT
(atomically; an existing OUT is replaced) everything `dsphnf fit` writes
(profile.csv, summary.json, flows/, profiles.png, data_vs_model.png, loss.png)
plus

  stars.csv     x, y [kpc], vz [km/s]
  truth.csv     r [kpc], nu [kpc^-3, one star], sigma_r [km/s], beta,
                M [Msun], rho [Msun/kpc^3]
  binned.csv    equal-number annuli: R [kpc], Sigma [stars/kpc^2] with Poisson
                errors, sigma_los [km/s] (max. likelihood) with bootstrap errors,
                and the exact annulus averages Sigma_true, sigma_los_true
  profiles.png  binned Sigma(R) and sigma_los(R) against the exact projections

and print the catalogue summary, the chi^2 of the binned data against the
exact annulus averages of the true projections, and the recovered rho(r)
against the truth at 0.1, 0.15, 0.25, 0.5 and 1 kpc.  --steps 0 skips the
flow (mock and projections only).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-o", "--output", default="demo_out", metavar="OUT", help="output folder (default demo_out)")
    p.add_argument("--n", type=int, default=1000, metavar="N", help="number of stars (default 1000)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("--bins", type=int, default=10, metavar="K", help="annuli in the figure (default 10)")
    p.add_argument("--steps", type=int, default=None, metavar="N",
                   help="training steps of the flow (default as in dsphnf fit; 0: no fit)")
    p.add_argument("--ensemble", type=int, default=1, metavar="K", help="flows on bootstrap resamples (default 1)")
    p.set_defaults(func=run)


def true_projections(model, R: np.ndarray, n_stars: int) -> dict[str, np.ndarray]:
    """Exact Sigma(R) [stars/kpc^2, for ``n_stars``] and sigma_los(R) [km/s] of a mock model."""
    from ..projection import surface_density_and_sigma_los2

    R = np.asarray(R, dtype=float)
    sigma, s2 = surface_density_and_sigma_los2(R, model.tracer, model.halo.mass, model.anisotropy)
    return {"R": R, "Sigma": n_stars * np.asarray(sigma, dtype=float), "sigma_los": np.sqrt(np.asarray(s2, dtype=float))}


def annulus_averages(model, R_lo: np.ndarray, R_hi: np.ndarray, n_stars: int, points: int = 128) -> dict:
    """Exact annulus averages of Sigma [stars/kpc^2] and of sigma_los^2 (Sigma-weighted) [km/s].

    These are what the binned estimators measure: the mean surface density
    over each annulus, and sqrt(<Sigma sigma_los^2> / <Sigma>) over it.
    """
    from ..projection import surface_density_and_sigma_los2

    sig, los = [], []
    for lo, hi in zip(R_lo, R_hi):
        lnR = np.linspace(np.log(max(lo, 1e-5 * hi)), np.log(hi), points)
        R = np.exp(lnR)
        S, s2 = surface_density_and_sigma_los2(R, model.tracer, model.halo.mass, model.anisotropy)
        dn = 2.0 * np.pi * R**2 * S  # dN / dln R per star
        N = np.trapezoid(dn, lnR)
        sig.append(n_stars * N / (np.pi * (hi**2 - lo**2)))
        los.append(np.sqrt(np.trapezoid(dn * s2, lnR) / N))
    return {"Sigma": np.asarray(sig), "sigma_los": np.asarray(los)}


def chi2(data: np.ndarray, err: np.ndarray, model: np.ndarray) -> tuple[float, int]:
    """chi^2 and the number of finite points."""
    ok = np.isfinite(data) & np.isfinite(err) & (err > 0) & np.isfinite(model)
    return float(np.sum(((data[ok] - model[ok]) / err[ok]) ** 2)), int(ok.sum())


def run(args: argparse.Namespace) -> int:
    from scipy.stats import chi2 as chi2_dist

    from ..plotting import binned_profiles, plot_binned_profiles

    if args.n < 20:
        raise DsphnfError(f"--n must be at least 20 stars for the demo, got {args.n}")
    if not 2 <= args.bins <= args.n // 10:
        raise DsphnfError(f"--bins must be between 2 and n/10 = {args.n // 10}, got {args.bins}")
    if args.steps is not None and args.steps < 0:
        raise DsphnfError(f"--steps must be >= 0, got {args.steps}")
    if args.ensemble < 1:
        raise DsphnfError(f"--ensemble must be >= 1, got {args.ensemble}")
    cat, truth, model = draw_mock(DEFAULT_MODEL, args.n, args.seed)
    cat.source = f"{DEFAULT_MODEL} mock (seed {args.seed})"
    cat.meta["format"] = "mock"
    binned = binned_profiles(cat, n_bins=args.bins, seed=args.seed)
    R = np.geomspace(max(binned["R_hi"][0] / 10, 1e-3), binned["R_hi"][-1], 60)
    exact = true_projections(model, R, cat.n)
    at_bins = annulus_averages(model, binned["R_lo"], binned["R_hi"], cat.n)
    c_sig, k_sig = chi2(binned["Sigma"], binned["Sigma_err"], at_bins["Sigma"])
    c_los, k_los = chi2(binned["sigma_los"], binned["sigma_los_err"], at_bins["sigma_los"])

    result = None
    if args.steps != 0:
        from ..compare import compare_profiles, format_table
        from ..flows import fit_flow

        result = fit_flow(cat, anisotropy="isotropic", steps=args.steps, ensemble=args.ensemble,
                          seed=args.seed, distance=76.0)

    out = Path(args.output)
    with atomic_dir(out) as tmp:
        if result is not None:
            result.write_into(tmp)
        cat.to_csv(tmp / "stars.csv")
        write_csv(tmp / "truth.csv", truth)
        cols = {k: binned[k] for k in ("R_lo", "R_hi", "R", "n", "Sigma", "Sigma_err", "sigma_los", "sigma_los_err")}
        cols.update(Sigma_true=at_bins["Sigma"], sigma_los_true=at_bins["sigma_los"])
        write_csv(tmp / "binned.csv", cols)
        plot_binned_profiles(
            tmp / ("sky.png" if result is not None else "profiles.png"), binned, exact, title=f"{DEFAULT_MODEL}: {cat.n} stars, seed {args.seed}",
            model_binned=at_bins,
        )

    print(format_summary(cat))
    for label, c, k in (("Sigma(R)", c_sig, k_sig), ("sigma_los(R)", c_los, k_los)):
        print(f"{label:<16} chi2 = {c:.1f} for {k} annuli against the exact projection (p = {chi2_dist.sf(c, k):.2f})")
    if result is None:
        print(f"wrote {out}/stars.csv, truth.csv, binned.csv, profiles.png")
        return 0
    rows = compare_profiles({"flow": result.profile}, truth=truth)
    print(format_table(rows))
    print(f"flow fit: {result.summary['timings_s']['total_s']:.0f} s; wrote {out}/ "
          "(stars.csv, truth.csv, binned.csv, sky.png, profile.csv, summary.json, profiles.png, ...)")
    return 0
