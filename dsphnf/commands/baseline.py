"""``dsphnf baseline``: parametric Jeans analysis sampled with emcee."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..catalog import read_catalog

HELP = "parametric Jeans baseline (Zhao stars + Zhao halo + anisotropy) sampled with emcee"

DESCRIPTION = """\
The conventional analysis the flow is compared against.  Stars: Zhao profile
(r*, inner slope gamma*, outer slope beta*; alpha* = 2) fitted to the projected
radii with an unbinned likelihood normalised inside the data's radial window.
Dark matter: Zhao halo rho0 [Msun/kpc^3], r_s [kpc], inner slope gamma,
outer slope 3 and transition sharpness alpha_dm (by default free, --halo
zhao-alpha, so the halo can turn over as sharply as a Burkert core; --halo zhao
fixes alpha_dm = 1, the gNFW; --halo nfw fixes gamma = 1, --halo cored
gamma = 0, both with alpha_dm = 1); or --halo broken: a broken power law,
log rho linear in log r between nodes at 1/4, 1/2, 1, 2 and 4 R_half (the
stars' median projected radius), its density at R_half and its four slopes
free, so cusps, cores and sharp turns are all inside the family.  Velocities:
v_i ~ N(v_sys, sigma_los^2(R_i) + err_i^2), weighted by membership; with --losvd
kurtosis a heavy-tailed distribution of the same variance instead (a Gaussian
scale mixture, each component convolved with err_i) whose kurtosis
<v^4>/<v^2>^2 >= 3 is a free parameter, one for all radii: for stars whose
velocities have heavy tails (a cored tracer deep in a dense halo, radial
orbits), where a Gaussian likelihood's bands are too narrow; with --losvd
kurtosis-radial the kurtosis at R_half/4 and at 4 R_half are free, linear in
ln R between them and constant beyond, for tails that change with radius.

Anisotropy (--anisotropy): any given model -- isotropic, constant:B,
om:RA (Osipkov-Merritt, r_a in kpc), cuddeford:B0,RA (beta = (B0 + r^2/RA^2) /
(1 + r^2/RA^2)), baes:B0,BINF,RA,ETA (beta = B0 + (BINF - B0) / (1 + (RA/r)^ETA))
-- or an inferred family: constant (beta sampled as beta/(2-beta) in [-1, 1]),
om (free r_a), cuddeford (b0_sym = b0/(2-b0) and r_a free) or baes (b0_sym,
binf_sym, r_a and eta free).  free is not supported by the baseline.

Default priors (override with --priors FILE, JSON or TOML; an entry is a number
to fix a parameter, [lo, hi] for uniform or {normal = [mean, sd]}):
  log10_rstar U(-2, 1)  gamma_star U(0, 2)  beta_star U(3.2, 8)  alpha_star 2
  log10_rho0 U(4, 11)   log10_rs U(-1.5, 1.5)  gamma U(0, 2)  alpha_dm 1 (U(0.5, 3) with --halo zhao-alpha)  beta_dm 3
  --halo broken instead: log10_rho_half U(4, 11)  gamma_1 U(0, 2)  gamma_2 ... gamma_4 U(0, 3)
  beta_sym U(-1, 1)  b0_sym U(-1, 1)  binf_sym U(-1, 1)  log10_ra U(-1.5, 1.5)  eta U(1, 3)
  v_sys U(-50, 50) km/s  kurtosis U(3, 12) (--losvd kurtosis)
  kurtosis_inner, kurtosis_outer U(3, 12) (--losvd kurtosis-radial)

Sampling: emcee (32 walkers by default) started from a Gaussian around the
maximum a posteriori point; runs until the chain is longer than 50
autocorrelation times (or --steps).

Outputs in OUT/: profile.csv (r [kpc], nu [kpc^-3, one star], sigma_r [km/s],
beta, M [Msun] with 16/84% M_lo/M_hi, rho [Msun/kpc^3] with 16/84% and
2.5/97.5% bands), profile_bands.csv (the 68/95% bands of every quantity),
summary.json (settings, acceptance, tau, ESS, timings, parameter posteriors,
the velocities' kurtosis about the best fit, versions, machine, log10 J(0.5 deg)
with --distance), chain.npz, posterior.nc (the chain as ArviZ
InferenceData: arviz.from_netcdf), corner.png and profiles.png; with
--profile-likelihood N also profile_likelihood.csv (r [kpc], rho [Msun/kpc^3]
and M [Msun] at the likelihood's maximum, each with its 68/95% profile-likelihood
intervals _lo, _hi, _lo95, _hi95, no prior).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("baseline", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("catalog", metavar="STARS", help="star catalogue (.csv, .ecsv, .fits, .dat) with vz")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder (replaced atomically)")
    p.add_argument("--anisotropy", default="isotropic", metavar="SPEC",
                   help="isotropic | constant:B | om:RA | cuddeford:B0,RA | baes:B0,BINF,RA,ETA (given) or "
                        "constant | om | cuddeford | baes (inferred); default isotropic")
    p.add_argument("--halo", default="zhao-alpha",
                   choices=["zhao-alpha", "zhao", "nfw", "cored", "broken"],
                   help="halo family (default zhao-alpha: Zhao with its transition sharpness alpha_dm free; "
                        "zhao: gNFW, alpha_dm = 1; broken: a broken power law with nodes at 1/4-4 R_half)")
    p.add_argument("--losvd", default="gaussian", choices=["gaussian", "kurtosis", "kurtosis-radial"],
                   help="line-of-sight velocity distribution: gaussian (default), kurtosis (heavy-tailed, its "
                        "kurtosis free; about twice the time) or kurtosis-radial (its kurtosis at R_half/4 and "
                        "4 R_half free)")
    p.add_argument("--steps", type=int, default=20000, metavar="N", help="maximum emcee steps (default 20000)")
    p.add_argument("--walkers", type=int, default=32, metavar="W", help="emcee walkers (default 32)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("--distance", type=float, default=None, metavar="KPC",
                   help="distance [kpc]: converts Walker-format catalogues and gives the J-factor band")
    p.add_argument("--priors", default=None, metavar="FILE", help="prior overrides, JSON (.json) or TOML")
    p.add_argument("--profile-likelihood", type=int, default=0, metavar="N",
                   help="also rho(r) and M(<r) from the likelihood alone at N radii over the data: maximum and "
                        "68/95%% profile-likelihood intervals, no prior (profile_likelihood.csv; ~5-20 s per "
                        "radius for 1000 stars with a Gaussian LOSVD); default 0, off")
    p.add_argument("--no-plots", action="store_true", help="skip corner.png and profiles.png")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..anisotropy import parse_anisotropy
    from ..baseline import fit_baseline

    anisotropy = parse_anisotropy(args.anisotropy)
    cat = read_catalog(args.catalog, distance=args.distance, require_velocity=True)
    result = fit_baseline(cat, anisotropy, args.halo, priors=args.priors, max_steps=args.steps,
                          nwalkers=args.walkers, seed=args.seed, distance=args.distance,
                          progress=False if args.no_progress else None, profile_likelihood=args.profile_likelihood,
                          losvd=args.losvd)
    result.save(args.output, plots=not args.no_plots)
    _report(result.summary, args.output)
    if result.artefacts.likelihood_bands is not None:
        _report_likelihood_bands(result)
    return 0


def _report_likelihood_bands(result) -> None:
    """rho and M from the posterior beside the same from the likelihood alone, at the profile-likelihood radii."""
    import numpy as np

    pl = result.artefacts.likelihood_bands
    post = result.artefacts.profile_at(pl["r"])
    print(f"posterior median [68% band] | likelihood maximum [68% profile-likelihood interval] "
          f"({result.summary['timings_s']['profile_likelihood_s']:.0f} s):")
    for q, unit in (("rho", "Msun/kpc^3"), ("M", "Msun")):
        print(f"{q} [{unit}]")
        for i, r in enumerate(pl["r"]):
            print(f"  r = {r:8.4f} kpc: {post[q][i]:.3g} [{post[q + '_lo'][i]:.3g}, {post[q + '_hi'][i]:.3g}] | "
                  f"{pl[q][i]:.3g} [{pl[q + '_lo'][i]:.3g}, {pl[q + '_hi'][i]:.3g}]"
                  + ("" if np.all(np.isfinite([pl[q + "_lo"][i], pl[q + "_hi"][i]])) and pl[q + "_lo"][i] > 0
                     else f"  (open: the data bound {q} on one side only)"))


def _report(summary: dict, out: str) -> None:
    """Sampler diagnostics, stars left out (if any), the J-factor band (with --distance), the files written."""
    from ..baseline.losvd import LOSVD_PARAMETERS, heavy_tails

    s = summary["diagnostics"]["sampler"]
    conv = "converged" if s["converged"] else "NOT converged (raise --steps)"
    print(f"baseline: {s['n_steps']} steps x {s['n_walkers']} walkers, {conv}; acceptance "
          f"{s['acceptance_fraction']:.2f}, max tau {max(s['tau'].values()):.0f} steps, min ESS {s['ess_min']:.0f}; "
          f"{summary['timings_s']['total_s']:.1f} s")
    left = summary["diagnostics"]["data"]["n_stars_left_out"]
    if left:
        print(f"{left} star(s) at R = 0 left out; {summary['n_stars']} used")
    post = summary["diagnostics"]["parameters"]
    about = summary["diagnostics"]["losvd"]["kurtosis_about_map"]
    where = {"kurtosis_inner": " at R_half/4", "kurtosis_outer": " at 4 R_half"}  # kurtosis: all radii
    for name in LOSVD_PARAMETERS[summary["settings"]["losvd"]]:
        k = post[name]
        print(f"line-of-sight velocity kurtosis{where.get(name, '')} {k['median']:.2f} [{k['lo']:.2f}, "
              f"{k['hi']:.2f}] (68%; 3 is a Gaussian, and the least this distribution takes)")
    if summary["settings"]["losvd"] == "gaussian" and heavy_tails(about, summary["n_eff"]):
        print(f"the velocities about the fitted model have a kurtosis of {about:.2f} (a Gaussian's is 3, give or "
              f"take {math.sqrt(24 / summary['n_eff']):.2f} for {summary['n_eff']:.0f} stars): the "
              f"Gaussian likelihood's bands on the dispersion are about {math.sqrt((about - 1) / 2):.2f} times too "
              "narrow; --losvd kurtosis fits the tails")
    j = summary.get("jfactor")
    if j is not None and j["n_used"] == 0:
        print(f"log10 J({j['theta_deg']:g} deg): every one of the {j['n_left_out']} posterior draws diverges "
              "(halo inner slope >= 1.5); no band")
    elif j is not None:
        print(f"log10 J({j['theta_deg']:g} deg) = {j['log10_J']:.2f} +{j['log10_J_hi'] - j['log10_J']:.2f} "
              f"-{j['log10_J'] - j['log10_J_lo']:.2f} [GeV^2 cm^-5] at {j['distance_kpc']:g} kpc "
              f"({j['n_used']} posterior draws, {j['n_left_out']} with a divergent J left out)")
    names = sorted(p.name for p in Path(out).iterdir())
    print(f"wrote {out}/ ({', '.join(names)})")
