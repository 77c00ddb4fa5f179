"""Start-independence of a trained flow (not a test): does the answer depend on where training starts?

For each mock (1000 stars, isotropic beta given, default settings, one flow,
fit seed 0, one torch thread) the flow is trained from four starts:

- ``ref``: the default start, a Plummer sphere of scale 1 L (L the
  half-number radius) with velocity dispersion from V (the standard deviation
  of v_z), i.e. an untrained flow;
- ``x0.7`` and ``x1.4``: the same start with every radius and every speed
  scaled by 0.7 or 1.4 (the last-layer biases of the radial and velocity
  fields set to ln 0.7 or ln 1.4: d ln r/dt and d ln |v|/dt constant, an exact
  scaling; the objective, the standardisation and the data are unchanged);
- ``gaussian``: a Gaussian base (``FlowConfig(base="gaussian")``) instead of
  the Plummer one.

It records log10 rho on 21 log-spaced radii in [0.1, 1] kpc plus
0.1/0.15/0.25/0.5/1 kpc, the median |log10 rho/rho_true| over [0.1, 1] kpc,
each member's convergence diagnostics (stop reason, steps of each phase,
gradient norm, last relative change) and the wall time; then the largest shift
of log10 rho from the ``ref`` start over [0.1, 1] kpc (where the stars are:
inside their 2nd-98th percentile of projected radii) against 0.3 x the 68 %
half-width ``HALF68`` (the mean 8-member ensemble half-widths over ten
NonPlumCuspIso realisations, issue 16, interpolated in log r: the one measured
set of bands; used for every mock), and against 0.3 x the mock's own 68 %
half-widths ``OWN_HALF68`` (the same kind of ensembles over 20 realisations of
that model, measured later with ``dsphnf calibrate``).

Mocks: the public Gaia Challenge NonPlumCuspIso file (realisation 0, via
:func:`dsphnf.datasets.reference_or_mock`, ``DSPHNF_DATA``), PlumCoreIso drawn
by :func:`dsphnf.draw_mock` (seed 101) and a Burkert halo
(``dsphnf mock --halo burkert:4e8,1 --tracer plummer:0.25``, seed 102);
PlumCuspIso drawn by :func:`dsphnf.draw_mock` (seed 103), added on 2026-12-03.

Usage::

    DSPHNF_DATA=../shared/data .venv/bin/python benchmarks/bench_start.py --json start.json
    .venv/bin/python benchmarks/bench_start.py --mocks burkert --starts ref gaussian

``--ensemble K`` fits K-member bootstrap ensembles (as ``dsphnf fit`` does by
default) instead of single flows, and scores the shifts of the ensemble's
central value also against the ``ref`` fit's own 68 % half-widths.

``--seed S`` sets the fit seed (default 0). The default ``dsphnf fit`` of a
given anisotropy reports the read-out of its all-star flow, which is the
single flow of the same fit seed; so single flows of seed 0 from each start
and one ``--ensemble 8`` fit of the ``ref`` start (for its own half-widths)
measure the default's start-dependence. ``--report ... --pool-seeds`` scores
instead the mean of the single flows of several fit seeds (run once per
``--seed``) per start: a centre averaged over all-star flows.

Results are appended to ``--json`` after every fit (a rerun skips finished
fits), then printed as Markdown tables for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dsphnf import draw_mock  # noqa: E402
from dsphnf.datasets import reference_or_mock  # noqa: E402
from dsphnf.flows import FitOptions, FlowConfig, fit_flow  # noqa: E402
from dsphnf.flows import member  # noqa: E402

R_MED = np.logspace(-1, 0, 21)
R_CHECK = np.array([0.1, 0.15, 0.25, 0.5, 1.0])
GRID = np.unique(np.concatenate([R_MED, R_CHECK]))
#: mean 68 % half-width [dex] of 8-member ensembles at R_CHECK (ten NonPlumCuspIso mocks, issue 16)
HALF68 = np.array([0.090, 0.075, 0.054, 0.067, 0.104])
#: each mock's own yardstick: median 68 % half-width [dex] of 8-member ensembles over 20 realisations of that
#: model (`dsphnf calibrate MODEL --method flow`, benchmarks/RESULTS.md), at 0.25-4 R_half: (radii [kpc], half-widths)
OWN_HALF68 = {
    "NonPlumCuspIso": ([0.0475, 0.095, 0.19, 0.38, 0.76], [0.142, 0.077, 0.060, 0.047, 0.064]),
    "PlumCoreIso": ([0.245, 0.489, 0.978, 1.957, 3.913], [0.152, 0.074, 0.054, 0.052, 0.087]),
    "burkert": ([0.0625, 0.125, 0.25, 0.5, 1.0], [0.100, 0.084, 0.051, 0.047, 0.069]),
    "PlumCuspIso": ([0.061, 0.122, 0.245, 0.489, 0.978], [0.154, 0.079, 0.051, 0.059, 0.093]),
}
STARTS = {"ref": (1.0, 1.0, "plummer"), "x0.7": (0.7, 0.7, "plummer"), "x1.4": (1.4, 1.4, "plummer"),
          "gaussian": (1.0, 1.0, "gaussian")}
MOCKS = ("NonPlumCuspIso", "PlumCoreIso", "burkert", "PlumCuspIso")


def mock(name: str):
    """(catalogue, log10 rho_true on GRID, description) of a benchmark mock."""
    if name == "NonPlumCuspIso":
        cat, truth, src = reference_or_mock("NonPlumCuspIso")
    elif name == "PlumCoreIso":
        m = draw_mock("PlumCoreIso", n=1000, seed=101)
        cat, truth, src = m.catalog, m.truth, "draw_mock('PlumCoreIso', n=1000, seed=101)"
    elif name == "PlumCuspIso":
        m = draw_mock("PlumCuspIso", n=1000, seed=103)
        cat, truth, src = m.catalog, m.truth, "draw_mock('PlumCuspIso', n=1000, seed=103)"
    elif name == "burkert":
        m = draw_mock(n=1000, seed=102, halo="burkert:4e8,1", tracer="plummer:0.25", anisotropy="isotropic")
        cat, truth, src = m.catalog, m.truth, "dsphnf mock --halo burkert:4e8,1 --tracer plummer:0.25 (seed 102)"
    else:
        raise SystemExit(f"unknown mock {name!r}; choose from {', '.join(MOCKS)}")
    r, rho = np.asarray(truth["r"]), np.asarray(truth["rho"])
    return cat, np.interp(np.log(GRID), np.log(r), np.log10(rho)), src


def scaled_new_flow(length: float, speed: float):
    """member.new_flow whose untrained flow has every radius x ``length`` and every speed x ``speed``."""
    original = member.new_flow

    def new_flow(stars, settings, *args, **kwargs):  # the same signature as member.new_flow, whatever it takes
        flow = original(stars, settings, *args, **kwargs)
        with torch.no_grad():
            flow.pos_field.mlp.net[-1].bias.fill_(math.log(length))
            if flow.vel_field is not None:
                flow.vel_field.mlp.net[-1].bias.fill_(math.log(speed))
        return flow

    return original, new_flow


def run(name: str, start: str, steps: int | None, ensemble: int = 1, seed: int = 0) -> dict:
    cat, log_true, src = mock(name)
    length, speed, base = STARTS[start]
    original, patched = scaled_new_flow(length, speed)
    member.new_flow = patched  # member.start_flow builds every flow through it, batched or not
    try:
        t0 = time.perf_counter()
        res = fit_flow(cat, anisotropy="isotropic", seed=seed, steps=steps, ensemble=ensemble, progress=False,
                       options=FitOptions(r_grid=GRID, threads=1), flow_config=FlowConfig(base=base))
        wall = time.perf_counter() - t0
    finally:
        member.new_flow = original
    log_rho = np.log10(res.profile["rho"])
    members = res.summary["diagnostics"]["members"]
    R = np.hypot(cat.x, cat.y)
    out = {"mock": name, "source": src, "start": start, "ensemble": ensemble, "seed": seed, "wall_s": wall,
           "load": os.getloadavg()[0], "R_2_98": np.percentile(R, [2, 98]).tolist(),
           "log10_rho": log_rho.tolist(), "dex": (log_rho - log_true).tolist(),
           "median_abs_dex": median_abs_dex((log_rho - log_true).tolist())[0],
           "steps": members[0]["steps"], "convergence": members[0].get("convergence"),
           "members_convergence": [m.get("convergence") for m in members]}
    if ensemble > 1:  # the fit's own 68 % half-width [dex], the yardstick a user of this fit would read
        out["half68"] = (0.5 * (np.log10(res.profile["rho_hi"]) - np.log10(res.profile["rho_lo"]))).tolist()
    return out


def median_abs_dex(dex: list[float]) -> tuple[float, int]:
    """(median |error| over the finite values on R_MED, number of R_MED radii without a finite rho > 0)."""
    d = np.array(dex, dtype=float)[np.isin(GRID, R_MED)]
    ok = np.isfinite(d)
    return (float(np.median(np.abs(d[ok]))) if ok.any() else float("nan")), int((~ok).sum())


def half_width_at(r: np.ndarray, radii, widths) -> np.ndarray:
    """68 % half-widths [dex] given at ``radii`` [kpc], interpolated in log r and log width at ``r``
    (held constant outside ``radii``)."""
    return 10 ** np.interp(np.log(r), np.log(radii), np.log10(widths))


def shifts(results: list[dict]) -> list[dict]:
    """Largest |log10 rho - log10 rho_ref| over [0.1, 1] kpc within the stars' 2nd-98th percentile of R,
    the radius [kpc] where it is largest, and that shift over 0.3 x each yardstick (HALF68, the mock's
    OWN_HALF68, the ref ensemble's own half-width)."""
    half = half_width_at(GRID, R_CHECK, HALF68)
    out = []
    for r in results:
        lo, hi = r["R_2_98"]
        sel = (GRID >= max(0.1, lo)) & (GRID <= min(1.0, hi))
        ref = next((x for x in results if x["mock"] == r["mock"] and x["start"] == "ref"), None)
        if ref is None or r["start"] == "ref":
            continue
        d = np.abs(np.array(r["log10_rho"], dtype=float) - np.array(ref["log10_rho"], dtype=float))[sel]
        ok = np.isfinite(d)  # radii where either read-out has no rho > 0 are counted, not compared
        ratio = lambda width: float((d / (0.3 * width))[ok].max())  # noqa: E731
        out.append({"mock": r["mock"], "start": r["start"], "max_shift": float(d[ok].max()), "n_bad": int((~ok).sum()),
                    "r_max_shift": float(GRID[sel][ok][np.argmax(d[ok])]),
                    "range": [float(GRID[sel][0]), float(GRID[sel][-1])],
                    "max_ratio": ratio(half[sel]),
                    "max_ratio_own": ratio(half_width_at(GRID[sel], *OWN_HALF68[r["mock"]])),
                    "max_ratio_fit": ratio(np.array(ref["half68"], dtype=float)[sel]) if "half68" in ref
                    else float("nan")})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mocks", nargs="+", default=list(MOCKS))
    ap.add_argument("--starts", nargs="+", default=list(STARTS), choices=list(STARTS))
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--ensemble", type=int, default=1, help="members per fit (bootstrap ensemble; default 1)")
    ap.add_argument("--seed", type=int, default=0, help="fit seed (default 0; the members' and all-star flows')")
    ap.add_argument("--json", type=Path, default=None, help="append results here (finished fits are skipped)")
    ap.add_argument("--report", type=Path, nargs="+", default=None,
                    help="only print the tables of these result files (no fitting)")
    ap.add_argument("--pool-seeds", action="store_true",
                    help="with --report: score the mean log10 rho of the single flows of every fit seed per start")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.report:
        results = [r for f in args.report for r in json.loads(f.read_text())]
        report(pooled(results) if args.pool_seeds else results)
        if args.pool_seeds:
            seed_report(results)
        return
    results = json.loads(args.json.read_text()) if args.json and args.json.exists() else []
    for name in args.mocks:
        for start in args.starts:
            if any(r["mock"] == name and r["start"] == start and r.get("seed", 0) == args.seed for r in results):
                continue
            results.append(run(name, start, args.steps, args.ensemble, args.seed))
            if args.json:
                args.json.write_text(json.dumps(results, indent=1))
            r = results[-1]
            print(f"{name} {start}: {r['wall_s']:.0f} s, median |dex| {r['median_abs_dex']:.3f}, {r['convergence']}",
                  flush=True)
    report(results)


def ref_bands(results: list[dict]) -> dict[str, dict]:
    """Per mock, the first ``ref``-start ensemble fit (``ensemble > 1``): its 68 % half-widths are the yardstick."""
    out: dict[str, dict] = {}
    for r in results:
        if r["start"] == "ref" and r.get("ensemble", 1) > 1:
            out.setdefault(r["mock"], r)
    return out


def pooled(results: list[dict]) -> list[dict]:
    """One entry per (mock, start): log10 rho averaged over the single flows (``ensemble == 1``) of every fit
    seed, i.e. a centre that is the mean of several all-star flows; the ``ref`` entry keeps the 68 % half-width
    of an ensemble fit of that mock (``ensemble > 1``), if there is one, as its yardstick."""
    out, band = [], ref_bands(results)
    for name in dict.fromkeys(r["mock"] for r in results):
        for start in dict.fromkeys(r["start"] for r in results if r["mock"] == name):
            ones = [r for r in results if r["mock"] == name and r["start"] == start and r.get("ensemble", 1) == 1]
            if not ones:
                continue
            log_rho = np.mean([r["log10_rho"] for r in ones], axis=0)
            dex = np.mean([r["dex"] for r in ones], axis=0)
            entry = {**ones[0], "seeds": [r.get("seed", 0) for r in ones], "log10_rho": log_rho.tolist(),
                     "dex": dex.tolist(), "wall_s": float(sum(r["wall_s"] for r in ones))}
            entry.pop("half68", None)
            if start == "ref" and name in band:
                entry["half68"] = band[name]["half68"]
            out.append(entry)
    return out


def seed_report(results: list[dict]) -> None:
    """Per mock and start: each fit seed's shift from the ``ref`` flow of the same seed over 0.3 x the ``ref``
    ensemble's own 68 % half-width (one yardstick for every seed), and where (r [kpc]) the pooled shift peaks;
    then, as a control, the ``ref`` flow of every other seed against that of the first seed (the same start)."""
    ones = [r for r in results if r.get("ensemble", 1) == 1]
    band = ref_bands(results)
    peak = {(x["mock"], x["start"]): x["r_max_shift"] for x in shifts(pooled(results))}
    print("\n| mock | start | seeds | shift / (0.3 x the ref fit's own half-width), one per seed | seeds under 1 "
          "| median | r of the pooled maximum [kpc] |")
    print("|---|---|---|---|---|---|---|")
    for name in dict.fromkeys(r["mock"] for r in ones):
        if name not in band:
            continue
        for start in [x for x in STARTS if x != "ref"]:
            ratios, seeds = [], []
            for r in [x for x in ones if x["mock"] == name and x["start"] == start]:
                seed = r.get("seed", 0)
                ref = [x for x in ones if x["mock"] == name and x["start"] == "ref" and x.get("seed", 0) == seed]
                if ref:
                    shift = shifts([{**ref[0], "half68": band[name]["half68"]}, r])[0]
                    ratios.append(shift["max_ratio_fit"])
                    seeds.append(seed)
            if not ratios:
                continue
            print(f"| {name} | {start} | {len(seeds)} | {' / '.join(f'{x:.2f}' for x in ratios)} "
                  f"| {sum(x < 1 for x in ratios)} of {len(ratios)} | {np.median(ratios):.2f} "
                  f"| {peak[name, start]:.3f} |")
        refs = sorted((x for x in ones if x["mock"] == name and x["start"] == "ref"), key=lambda x: x.get("seed", 0))
        if len(refs) > 1:
            first = {**refs[0], "half68": band[name]["half68"]}
            ratios = [shifts([first, {**r, "start": "seed"}])[0]["max_ratio_fit"] for r in refs[1:]]
            print(f"| {name} | ref, other seeds against seed {refs[0].get('seed', 0)} | {len(ratios)} "
                  f"| {' / '.join(f'{x:.2f}' for x in ratios)} | {sum(x < 1 for x in ratios)} of {len(ratios)} "
                  f"| {np.median(ratios):.2f} | - |")


def report(results: list[dict]) -> None:
    """Markdown tables of fits and of shifts from the ``ref`` start."""
    print("\n| mock | start | steps (Adam + L-BFGS) | stop | objective [nats/star] | rel. change (last 20) | grad norm "
          "| wall [s] | "
          "median abs dex 0.1-1 kpc (radii without rho > 0) | log10 err at 0.1 / 0.15 / 0.25 / 0.5 / 1 kpc |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    at = np.isin(GRID, R_CHECK)
    for r in results:
        c = r["convergence"] or {}
        rel = "-" if c.get("relative_change") is None else f"{c['relative_change']:.1e}"
        gn = "-" if c.get("grad_norm") is None else f"{c['grad_norm']:.1e}"
        errs = " / ".join(f"{x:+.3f}" for x in np.array(r["dex"])[at])
        med, bad = median_abs_dex(r["dex"])
        obj = "-" if c.get("objective") is None else f"{c['objective']:.5f}"
        print(f"| {r['mock']} | {r['start']} | {c.get('adam_steps')} + {c.get('lbfgs_steps')} | {c.get('stop_reason')} "
              f"| {obj} | {rel} | {gn} | {r['wall_s']:.0f} | {med:.3f} ({bad}) | {errs} |")
    print("\n| mock | start | radii [kpc] (without rho > 0) | max shift of log10 rho from ref [dex] "
          "| max shift / (0.3 x 68 % half-width) | / (0.3 x the mock's own half-width) "
          "| / (0.3 x the ref fit's own half-width) |")
    print("|---|---|---|---|---|---|---|")
    for s in shifts(results):
        print(f"| {s['mock']} | {s['start']} | {s['range'][0]:.2f}-{s['range'][1]:.2f} ({s['n_bad']}) "
              f"| {s['max_shift']:.3f} | {s['max_ratio']:.2f} | {s['max_ratio_own']:.2f} | {s['max_ratio_fit']:.2f} |")


if __name__ == "__main__":
    main()
