"""``dsphnf demo``: the main job on the embedded default mock, end to end."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..binned import BINNED_COLUMNS, binned_profiles, chi2
from ..catalog import format_summary
from ..errors import DsphnfError
from ..mocks import draw_mock
from ..outputs import atomic_dir, write_csv
from ..projection import annulus_averages, sky_profiles

HELP = "the main job: draw the default mock (NonPlumCuspIso, 1000 stars), fit the flow, compare with the truth"

DEFAULT_MODEL = "NonPlumCuspIso"
#: Flows of the demo's ensemble: the fewest that give usable Student-t bands in a few minutes.
DEMO_ENSEMBLE = 4
#: Training steps per flow of the demo (dsphnf fit trains 400): 4 x 200 steps take ~3 min on 2 CPU cores.
DEMO_STEPS = 200

DESCRIPTION = f"""\
Draw the benchmark mock dwarf ({DEFAULT_MODEL}: Zhao (2,5,1) stars with
r* = 0.25 kpc in an NFW halo, r_s = 1 kpc, rho0 = 6.4e7 Msun/kpc^3,
isotropic), fit an ensemble of {DEMO_ENSEMBLE} equivariant flows of {DEMO_STEPS} steps each to its
(x, y, vz), and one more on all stars that the value and bands are centred on,
as `dsphnf fit stars.csv --anisotropy isotropic --ensemble {DEMO_ENSEMBLE}
--steps {DEMO_STEPS}` would (dsphnf fit's defaults, 8 flows of 400 steps, take
about four times as long), and write into OUT (atomically; an existing OUT is
replaced) everything `dsphnf fit` writes (profile.csv, profile_bands.csv,
summary.json, flows/, data_vs_model.png, loss.png) plus

  stars.csv     x, y [kpc], vz [km/s]
  truth.csv     r [kpc], nu [kpc^-3, one star], sigma_r [km/s], beta,
                M [Msun], rho [Msun/kpc^3]
  binned.csv    equal-number annuli: R [kpc], Sigma [stars/kpc^2] with Poisson
                errors, sigma_los [km/s] (max. likelihood) with bootstrap errors,
                and the exact annulus averages Sigma_true, sigma_los_true
  sky.png       binned Sigma(R) and sigma_los(R) against the exact projections
                (profiles.png with --steps 0)
  profiles.png  rho(r) and M(r) of the flows with their 68 % and 95 % bands,
                and the truth

and print the catalogue summary, the chi^2 of the binned data against the
exact annulus averages of the true projections, and the recovered rho(r)
against the truth at 0.1, 0.15, 0.25, 0.5 and 1 kpc with how often the truth
lies inside the bands (only where there are bands: --ensemble 1 has none).
--steps 0 skips the flow (mock and projections only).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-o", "--output", default="demo_out", metavar="OUT", help="output folder (default demo_out)")
    p.add_argument("--n", type=int, default=1000, metavar="N", help="number of stars (default 1000)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("--bins", type=int, default=10, metavar="K", help="annuli in the figure (default 10)")
    p.add_argument("--steps", type=int, default=DEMO_STEPS, metavar="N",
                   help=f"training steps per flow (default {DEMO_STEPS}; 0: no fit)")
    p.add_argument("--ensemble", type=int, default=DEMO_ENSEMBLE, metavar="K",
                   help=f"flows on bootstrap resamples, for the bands (default {DEMO_ENSEMBLE}; 1: no bands)")
    p.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> None:
    """Refuse bad options with one line (DsphnfError: exit 2)."""
    if args.n < 20:
        raise DsphnfError(f"--n must be at least 20 stars for the demo, got {args.n}")
    if not 2 <= args.bins <= args.n // 10:
        raise DsphnfError(f"--bins must be between 2 and n/10 = {args.n // 10}, got {args.bins}")
    if args.steps is not None and args.steps < 0:
        raise DsphnfError(f"--steps must be >= 0, got {args.steps}")
    if args.ensemble < 1:
        raise DsphnfError(f"--ensemble must be >= 1, got {args.ensemble}")


class SkyChecks(NamedTuple):
    """The mock's binned Sigma(R) and sigma_los(R), the exact projections (on a fine grid and averaged over
    each annulus) and their chi^2 tests."""

    binned: dict
    exact: dict
    at_bins: dict
    tests: dict


def _sky_checks(cat, model, args: argparse.Namespace) -> SkyChecks:
    """Binned Sigma(R) and sigma_los(R) of the mock, the exact projections, and their chi^2 tests."""
    binned = binned_profiles(cat, n_bins=args.bins, seed=args.seed)
    physics = (model.tracer, model.halo.mass, model.anisotropy)
    R = np.geomspace(max(binned["R_hi"][0] / 10, 1e-3), binned["R_hi"][-1], 60)
    exact = sky_profiles(R, *physics, n_stars=cat.n)
    at_bins = annulus_averages(binned["R_lo"], binned["R_hi"], *physics, n_stars=cat.n)
    tests = {"Sigma(R)": chi2(binned["Sigma"], binned["Sigma_err"], at_bins["Sigma"]),
             "sigma_los(R)": chi2(binned["sigma_los"], binned["sigma_los_err"], at_bins["sigma_los"])}
    return SkyChecks(binned, exact, at_bins, tests)


def _write(out: Path, cat, truth, result, sky: SkyChecks, args: argparse.Namespace) -> None:
    """Everything of the demo into ``out``, atomically: the fit, the mock, its truth and sky profiles."""
    from ..plotting import plot_binned_profiles

    binned, exact, at_bins, _ = sky
    with atomic_dir(out) as tmp:
        if result is not None:
            result.write_into(tmp)
            from ..flows.plots import plot_profiles

            plot_profiles(result, truth=lambda r: truth, path=tmp / "profiles.png")  # with the truth
        cat.to_csv(tmp / "stars.csv")
        write_csv(tmp / "truth.csv", truth)
        cols = {k: binned[k] for k in BINNED_COLUMNS}
        cols.update(Sigma_true=at_bins["Sigma"], sigma_los_true=at_bins["sigma_los"])
        write_csv(tmp / "binned.csv", cols)
        plot_binned_profiles(tmp / ("sky.png" if result is not None else "profiles.png"), binned, exact,
                             title=f"{DEFAULT_MODEL}: {cat.n} stars, seed {args.seed}", model_binned=at_bins)


def _report_fit(result, truth, out: Path) -> None:
    """The fit against the truth: the table of errors and coverage, the read-out count, the cost."""
    from ..compare import compare, format_table
    from ..flows.ensemble import centre_note, readout_note

    print(format_table(compare({"flow": result}, truth=truth)))
    d = result.summary["diagnostics"]
    print(readout_note(d.get("readout")))
    if d.get("centre"):
        print(centre_note(d["centre"]))
    k = result.summary["settings"]["ensemble"]
    flows = f"{k} flow(s) of {d['members'][0]['steps']} steps" + (" and one on all stars" if d.get("centre") else "")
    print(f"flow fit: {flows}, {result.summary['timings_s']['total_s']:.0f} s; wrote {out}/ "
          "(stars.csv, truth.csv, binned.csv, sky.png, profile.csv, summary.json, profiles.png, ...)")


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    cat, truth, model = draw_mock(DEFAULT_MODEL, args.n, args.seed)
    cat.source = f"{DEFAULT_MODEL} mock (seed {args.seed})"
    cat.meta["format"] = "mock"
    sky = _sky_checks(cat, model, args)
    result = None
    if args.steps != 0:
        from ..flows import fit_flow

        result = fit_flow(cat, anisotropy="isotropic", steps=args.steps, ensemble=args.ensemble,
                          seed=args.seed, distance=76.0)
    out = Path(args.output)
    _write(out, cat, truth, result, sky, args)
    print(format_summary(cat))
    for label, c in sky.tests.items():
        print(f"{label:<16} chi2 = {c.value:.1f} for {c.n} annuli against the exact projection (p = {c.p:.2f})")
    if result is None:
        print(f"wrote {out}/stars.csv, truth.csv, binned.csv, profiles.png")
    else:
        _report_fit(result, truth, out)
    return 0
