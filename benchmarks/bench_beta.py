"""Benchmark: the flow with beta(r) inferred against beta fixed isotropic and the untrained start (not a test).

For one catalogue (a public Gaia Challenge file of 1000 or 10,000 stars, or a
general mock of ``dsphnf.draw_mock``) fits single flows with the anisotropy variants asked
for and prints, per variant, the median |log10(rho / rho_true)| over 21
log-spaced radii in [0.1, 1] kpc (and over those of them inside an
ensemble's grid, which ends at the stars' 98th percentile), log10 errors at 0.1 / 0.15 / 0.25 / 0.5 / 1 kpc,
beta at R_half (the weighted median projected radius of the stars) against the
truth there, and the wall time. Variants:

- ``free``, ``om``, ``constant``, ... : the flow with that anisotropy inferred (``free`` in the default
  velocity family, ``auto``: with an even ``--ensemble`` both families, ``mixed``; else elliptical);
- ``isotropic`` : the flow with beta wrongly fixed to zero (the bias);
- ``start`` : the untrained start (one step at a learning rate of 1e-12);
- ``separable`` : the flow with the separable velocity family (beta(r) learned
  with its separate radial and tangential speed maps; ``FlowConfig(velocity="separable")``);
- ``angular`` : the flow with the angular velocity family (one speed map and a learned
  law of the velocity's angle to the radius; ``FlowConfig(velocity="angular")``);
- ``elliptical``, ``mixed`` : beta(r) free in that velocity family, or in both (an even ``--ensemble``);
- ``baseline:om`` (any ``baseline:FAMILY``) : the parametric Jeans fit with that inferred family
  (its posterior bands are reported as an ensemble's are).

With ``--ensemble K`` (K > 1) every flow variant is an ensemble of K bootstrap
members on the default output grid (the 2nd-98th percentile of R, as ``dsphnf
fit``), interpolated in ln r to the radii above, and the line also has the
68 % band of beta and the 95 % band of rho at those radii (and whether the
truth is inside), and where the data constrain beta
(:func:`dsphnf.flows.beta_constraint.beta_constraint`).

Usage::

    python benchmarks/bench_beta.py --case PlumCoreOm --realisation 0 --variants free isotropic start
    python benchmarks/bench_beta.py --case PlumCuspOm --n 10000 --variants free start
    python benchmarks/bench_beta.py --case tangential --seed 1 --variants free om
    python benchmarks/bench_beta.py --case radial_om --ensemble 4 --variants free isotropic
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dsphnf.catalog import read_catalog  # noqa: E402
from dsphnf.datasets import gaia_challenge_file  # noqa: E402
from dsphnf.flows import FitOptions, FlowConfig, TrainConfig, fit_flow  # noqa: E402
from dsphnf.kinematics import half_number_radius  # noqa: E402
from dsphnf.mocks import draw_mock, get_model, truth_profiles  # noqa: E402

R_CHECK = np.array([0.1, 0.15, 0.25, 0.5, 1.0])
R_MED = np.logspace(-1, 0, 21)
#: general mocks: (halo, tracer, anisotropy)
MOCKS = {
    "tangential": ("nfw:6.4e7,1", "plummer:0.25", "constant:-0.5"),
    "radial_om": ("burkert:4e8,1", "plummer:0.25", "om:0.3"),
    "radial_constant": ("nfw:6.4e7,1", "zhao:0.25,1,4,1", "constant:0.3"),  # Hernquist stars: beta(0) <= 1/2
    "cuddeford": ("burkert:4e8,1", "plummer:0.25", "cuddeford:-0.3,0.4"),
    "isotropic": ("burkert:4e8,1", "plummer:0.25", "isotropic"),
}


def catalogue(case: str, realisation: int, seed: int, n: int = 1000):
    """(catalogue, truth(r) -> dict) of a case (``n`` stars: a general mock's, or the Gaia Challenge file's)."""
    if case in MOCKS:
        from dsphnf.dwarf import model_truth

        halo, tracer, aniso = MOCKS[case]
        mock = draw_mock(n=n, seed=seed, halo=halo, tracer=tracer, anisotropy=aniso)
        return mock.catalog, lambda r: model_truth(mock.model, r)
    path = gaia_challenge_file(case, n, realisation)
    if path is None:
        raise SystemExit(f"no data file for {case} with {n} stars, realisation {realisation}")
    model = get_model(case)
    return read_catalog(path), lambda r: truth_profiles(model, r)


def _on_grid(profile: dict, grid: np.ndarray) -> dict:
    """Every column of ``profile`` interpolated in ln r to ``grid`` (ln of positive columns; NaN outside)."""
    lr, lg = np.log(profile["r"]), np.log(grid)
    out = {"r": grid}
    for key, v in profile.items():
        v = np.asarray(v, dtype=float)
        if key == "r" or v.shape != lr.shape:
            continue
        pos = np.all(v[np.isfinite(v)] > 0)
        f = np.interp(lg, lr, np.log(v) if pos else v, left=np.nan, right=np.nan)
        out[key] = np.exp(f) if pos else f
    return out


def run_variant(cat, variant: str, steps: int, seed: int, grid: np.ndarray, save: str | None = None,
                ensemble: int = 1):
    """The profile of one variant on ``grid``, its wall time [s], the learned parameters and the full result."""
    t0 = time.perf_counter()
    if variant.startswith("baseline:"):
        from dsphnf.baseline import fit_baseline

        res = fit_baseline(cat, variant.split(":", 1)[1], "zhao", seed=seed, progress=False)
        return _on_grid(res.profile, grid), time.perf_counter() - t0, {}, res
    opts = FitOptions(r_grid=grid if ensemble <= 1 else None, threads=1)
    if variant == "start":
        res = fit_flow(cat, "free", seed=seed, progress=False, options=opts,
                       train_config=TrainConfig(steps=1, lr=1e-12))
    elif variant in ("separable", "angular", "elliptical", "mixed"):
        res = fit_flow(cat, "free", seed=seed, steps=steps, progress=False, options=opts, ensemble=ensemble,
                       flow_config=FlowConfig(velocity=variant))
    else:
        res = fit_flow(cat, variant, seed=seed, steps=steps, progress=False, options=opts, ensemble=ensemble)
    wall = time.perf_counter() - t0
    info = res.summary["diagnostics"]["members"][0].get("anisotropy", {})
    if save:
        res.save(Path(save) / variant.replace(":", "_"), plots=False)
    return (res.profile if ensemble <= 1 else _on_grid(res.profile, grid)), wall, info, res


def _bands(prof: dict, tr: dict, res, cat, at: np.ndarray, ih: int) -> dict:
    """The ensemble's bands at the check radii and R_half, truth coverage, and where beta is constrained."""
    from dsphnf.flows.beta_constraint import beta_constraint

    def rnd(v):
        return [round(float(x), 3) for x in v]
    out = {
        "beta_lo_at": rnd(prof["beta_lo"][at]), "beta_hi_at": rnd(prof["beta_hi"][at]),
        "beta_band_rhalf": rnd(prof["beta_lo"][[ih]]) + rnd(prof["beta_hi"][[ih]]),
        "rho_in95_at": [bool(lo <= t <= hi) for lo, t, hi in zip(prof["rho_lo95"][at], tr["rho"][at],
                                                                     prof["rho_hi95"][at])],
        "beta_in68_at": [bool(lo <= t <= hi) for lo, t, hi in zip(prof["beta_lo"][at], tr["beta"][at],
                                                                      prof["beta_hi"][at])],
    }
    if res.summary.get("method") == "flow" and res.summary["settings"]["anisotropy"] in (
            "free", "constant", "om", "cuddeford", "baes"):
        c = beta_constraint(res.profile, np.hypot(cat.x, cat.y), cat.weights)
        out["beta_constrained_kpc"] = [[round(a, 3), round(b, 3)] for a, b in c["ranges_kpc"]]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--case", required=True, help="PlumCoreOm, PlumCuspOm, " + ", ".join(MOCKS))
    ap.add_argument("--realisation", type=int, default=0, help="Gaia Challenge file index k")
    ap.add_argument("--seed", type=int, default=0, help="mock seed and fit seed")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--n", type=int, default=1000,
                    help="stars of a general mock, or of the Gaia Challenge file (1000 or 10000; default 1000)")
    ap.add_argument("--variants", nargs="+", default=["free", "isotropic", "start"])
    ap.add_argument("--ensemble", type=int, default=1, help="bootstrap members per flow variant (default 1)")
    ap.add_argument("--save", default=None, help="folder to save each flow result in (for diagnostics)")
    ap.add_argument("--tau4", type=float, default=None, help="override beta_prior.EQUILIBRIUM_TAU")
    ap.add_argument("--beta-tau", type=float, default=None, help="override beta_prior.BETA_TAU")
    ap.add_argument("--beta-slope-tau", type=float, default=None,
                    help="override beta_prior.BETA_SLOPE_TAU (inf: no first-derivative term)")
    a = ap.parse_args()
    from dsphnf.flows import beta_prior

    if a.tau4 is not None:
        beta_prior.EQUILIBRIUM_TAU = a.tau4
    if a.beta_tau is not None:
        beta_prior.BETA_TAU = a.beta_tau
    if a.beta_slope_tau is not None:
        beta_prior.BETA_SLOPE_TAU = a.beta_slope_tau
    torch.set_num_threads(1)
    cat, truth = catalogue(a.case, a.realisation, a.seed, a.n)
    r_half = half_number_radius(cat.x, cat.y, cat.weights)
    grid = np.unique(np.concatenate([R_MED, R_CHECK, [r_half]]))
    tr = truth(grid)
    for variant in a.variants:
        ens = 1 if variant in ("start",) or variant.startswith("baseline:") else a.ensemble
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        prof, wall, info, res = run_variant(cat, variant, a.steps, a.seed, grid, a.save, ens)
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
        dex = np.log10(prof["rho"] / tr["rho"])
        dex_med = dex[np.isin(grid, R_MED)]  # the 21 radii of the median
        at = np.searchsorted(grid, R_CHECK)
        ih = int(np.searchsorted(grid, r_half))
        out = {
            "case": a.case, "realisation": a.realisation, "seed": a.seed, "variant": variant, "steps": a.steps,
            "wall_s": round(wall, 1), "median_abs_dex": float(np.median(np.abs(dex_med))),
            # an ensemble's default grid ends at the stars' 98th percentile: the median over the radii it covers
            "median_abs_dex_in_grid": float(np.nanmedian(np.abs(dex_med))),
            "radii_in_grid": int(np.sum(np.isfinite(dex_med))),
            "dex_21": [round(float(d), 4) for d in dex_med],
            "dex_at": [round(float(d), 3) for d in dex[at]], "r_half": round(r_half, 3),
            "beta_rhalf": round(float(prof["beta"][ih]), 3), "beta_true_rhalf": round(float(tr["beta"][ih]), 3),
            "beta_at": [round(float(b), 3) for b in prof["beta"][at]],
            "beta_true_at": [round(float(b), 3) for b in tr["beta"][at]], "learned": info,
            "tau4": beta_prior.EQUILIBRIUM_TAU, "beta_tau": beta_prior.BETA_TAU,
            "beta_slope_tau": beta_prior.BETA_SLOPE_TAU, "ensemble": ens,
            "n": int(cat.n), "cpu_s": round(cpu, 1), "load": [round(x, 2) for x in os.getloadavg()],
            "steps_done": [m.get("steps") for m in res.summary.get("diagnostics", {}).get("members", [])],
        }
        if ens > 1 or variant.startswith("baseline:"):
            out.update(_bands(prof, tr, res, cat, at, ih))
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
