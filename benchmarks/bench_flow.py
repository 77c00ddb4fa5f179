"""Benchmark of the flow fit on the Gaia Challenge NonPlumCuspIso mock (not a test).

Measures, for the 1000-star file (or, with ``--mock``, 1000 stars of a named
model drawn by :func:`dsphnf.draw_mock`, true rho from its truth table),
isotropic beta given, default settings:

- the wall time of the whole fit (training, read-out; target <= 2 min on the
  2-core CPU) for one flow, and per phase;
- the median |log10(rho / rho_true)| over 21 log-spaced radii in [0.1, 1] kpc
  (target <= 0.1 dex), rho_true the NFW halo rho0 = 6.4e7 Msun/kpc^3, r_s = 1 kpc;
  ``--steps 1`` gives the untrained start's number on the same stars;
- with ``--ensemble 8``: whether the truth lies inside the 95 % band at
  r = 0.1, 0.15, 0.25, 0.5, 1 kpc.

Usage::

    .venv/bin/python benchmarks/bench_flow.py                  # one flow, seed 0
    .venv/bin/python benchmarks/bench_flow.py --ensemble 8     # bands
    .venv/bin/python benchmarks/bench_flow.py --seeds 0 1 2    # several single flows
    .venv/bin/python benchmarks/bench_flow.py --device cuda --threads 0
    .venv/bin/python benchmarks/bench_flow.py --device cuda --threads 0 --ensemble 8 --no-cuda-graphs
    .venv/bin/python benchmarks/bench_flow.py --mock PlumCoreIso --mock-seed 1   # a drawn mock instead
    .venv/bin/python benchmarks/bench_flow.py --ensemble 8 --executor ray --workers 2   # one batch per worker
    .venv/bin/python benchmarks/bench_flow.py --steps 1                          # the untrained start
    .venv/bin/python benchmarks/bench_flow.py --ensemble 8 --warm-start 50        # members from the all-star flow
    .venv/bin/python benchmarks/bench_flow.py --no-positivity  # diagnostic: positivity term of the prior x 0

Prints a Markdown table for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dsphnf import draw_mock  # noqa: E402
from dsphnf.catalog import read_catalog  # noqa: E402
from dsphnf.flows import ensemble as flow_ensemble, prior as flow_prior  # noqa: E402
from dsphnf.datasets import gaia_challenge_file  # noqa: E402
from dsphnf.flows import FitOptions, TrainConfig, fit_flow  # noqa: E402
from dsphnf.provenance import cpu_label  # noqa: E402

# the reference-data folder of dsphnf.datasets (DSPHNF_DATA, or ../shared/data beside the repository)
FILE = gaia_challenge_file("NonPlumCuspIso") or (
    ROOT.parent / "shared" / "data" / "gaia_challenge" / "NonPlumCuspIso" / "gs100_bs050_rcrs025_rarcinf_cusp_0064mpc3_df_1000_0.dat")
R_CHECK = np.array([0.1, 0.15, 0.25, 0.5, 1.0])
RHO_CHECK = np.array([5.29e8, 3.23e8, 1.64e8, 5.69e7, 1.60e7])  # data/README.md


def rho_nfw(r: np.ndarray) -> np.ndarray:
    """True dark-matter density [Msun/kpc^3]: NFW, rho0 = 6.4e7, r_s = 1 kpc."""
    return 6.4e7 / (r * (1 + r) ** 2)


def stars(mock: str | None, mock_seed: int):
    """(catalogue, true rho(r) [Msun/kpc^3] as a function of r [kpc], rho_true at R_CHECK) of the file or a drawn mock."""
    if mock is None:
        return read_catalog(FILE), rho_nfw, RHO_CHECK
    m = draw_mock(mock, n=1000, seed=mock_seed)
    lr, lrho = np.log(m.truth["r"]), np.log(m.truth["rho"])
    true = lambda r: np.exp(np.interp(np.log(r), lr, lrho))  # noqa: E731
    return m.catalog, true, true(R_CHECK)


def switch_off_positivity() -> None:
    """Diagnostic: multiply the prior's positivity term (rho >= 0, M non-decreasing) by zero (value and gradient).

    Such a flow may be unphysical inside the data's radii, so the read-out's
    survival check (a FitError there) is switched off too; rho <= 0 then shows
    as NaN in the log errors.
    """
    term = flow_prior.positivity_penalty
    flow_prior.positivity_penalty = lambda table, vtable, lo, hi, beta=None: 0.0 * term(table, vtable, lo, hi, beta)
    flow_ensemble.check_survival = lambda accounting: None


def run(seed: int, ensemble: int, threads: int | None, steps: int | None, device: str = "cpu",
        mock: str | None = None, mock_seed: int = 1, cuda_graphs: bool = True, executor: str = "local",
        workers: int | None = None, warm_start: int = 0) -> dict:
    cat, rho_true, rho_check = stars(mock, mock_seed)
    r_med = np.logspace(-1, 0, 21)
    grid = np.unique(np.concatenate([r_med, R_CHECK]))
    t0 = time.perf_counter()
    res = fit_flow(cat, anisotropy="isotropic", ensemble=ensemble, seed=seed, steps=steps, distance=76.0, device=device,
                   progress=sys.stderr.isatty(), options=FitOptions(r_grid=grid, threads=threads, warm_start=warm_start),
                   train_config=TrainConfig(cuda_graphs=cuda_graphs), executor=executor, workers=workers)
    wall = time.perf_counter() - t0
    p = res.profile
    sel = np.isin(grid, r_med)
    with np.errstate(invalid="ignore", divide="ignore"):
        dex = np.log10(p["rho"][sel] / rho_true(grid[sel]))
    at = np.isin(grid, R_CHECK)
    out = {
        "mock": mock or "NonPlumCuspIso file", "mock_seed": mock_seed if mock else None,
        "seed": seed, "ensemble": ensemble, "wall_s": wall, "timings_s": res.summary["timings_s"],
        "steps": [m["steps"] for m in res.summary["diagnostics"]["members"]],
        "convergence": [m.get("convergence") for m in res.summary["diagnostics"]["members"]],
        "median_abs_dex_0.1_1": float(np.median(np.abs(dex))),  # NaN if rho <= 0 at any of the radii
        "radii_without_rho": int(np.sum(~(p["rho"][sel] > 0))),
        "rho": p["rho"][at].tolist(), "rho_lo95": p["rho_lo95"][at].tolist(), "rho_hi95": p["rho_hi95"][at].tolist(),
        "rho_lo": p["rho_lo"][at].tolist(), "rho_hi": p["rho_hi"][at].tolist(),
        "log10_J_76kpc": res.summary["jfactor"]["log10_J"],
        "cuda_graphs": res.summary["diagnostics"]["grid"].get("cuda_graphs"),
        "grid": {k: res.summary["diagnostics"]["grid"].get(k) for k in
                 ("executor", "workers_used", "batched", "batches", "threads", "train_wall_s", "wall_s")},
        "warm_start": res.summary["diagnostics"]["grid"].get("warm_start"),
    }
    out["rho_true"] = rho_check.tolist()
    out["dex_at_check"] = np.log10(np.array(out["rho"]) / rho_check).tolist()
    out["in95"] = [bool(lo <= t <= hi) for lo, t, hi in zip(out["rho_lo95"], rho_check, out["rho_hi95"])]
    out["in68"] = [bool(lo <= t <= hi) for lo, t, hi in zip(out["rho_lo"], rho_check, out["rho_hi"])]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--ensemble", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    ap.add_argument("--mock", default=None, help="a Gaia Challenge model drawn by dsphnf.draw_mock (1000 stars)")
    ap.add_argument("--mock-seed", type=int, default=1, help="seed of the drawn mock")
    ap.add_argument("--no-cuda-graphs", action="store_true",
                    help="on a GPU, evaluate without CUDA graphs (TrainConfig(cuda_graphs=False)); "
                         "a single flow then takes the plain trainer")
    ap.add_argument("--executor", default="local", help="local or ray (a local Ray instance)")
    ap.add_argument("--workers", type=int, default=None, help="with --executor ray: its workers")
    ap.add_argument("--warm-start", type=int, default=0, metavar="N",
                    help="members warm-started from the all-star flow, N L-BFGS steps each (FitOptions.warm_start)")
    ap.add_argument("--no-positivity", action="store_true",
                    help="diagnostic: train without the prior's positivity term (multiplied by zero)")
    args = ap.parse_args()
    if args.no_positivity:
        switch_off_positivity()
    if args.mock is None and not FILE.exists():
        sys.exit(f"benchmark data not found: {FILE}")
    print(f"machine: {cpu_label()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"threads {args.threads or torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f} at start")
    print(f"stars: {args.mock or FILE.name}" + (f" (draw_mock seed {args.mock_seed}, 1000 stars)" if args.mock else "")
          + (", positivity term switched off" if args.no_positivity else ""))
    results = [run(s, args.ensemble, args.threads or None, args.steps, args.device, args.mock, args.mock_seed,
                   not args.no_cuda_graphs, args.executor, args.workers, args.warm_start) for s in args.seeds]
    for r in results:
        if r["cuda_graphs"] is not None:
            print(f"seed {r['seed']}: CUDA graphs {r['cuda_graphs']}")
        print(f"seed {r['seed']}: grid {r['grid']}" + (f", warm start {r['warm_start']}" if r["warm_start"] else ""))
    print("\n| seed | K | steps | wall [s] | train [s] | read-out [s] | median abs dex 0.1-1 kpc | log10 J(76 kpc) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        t = r["timings_s"]
        bad = f" ({r['radii_without_rho']} radii with rho <= 0)" if r["radii_without_rho"] else ""
        j = "-" if not np.isfinite(r["log10_J_76kpc"]) else f"{r['log10_J_76kpc']:.2f}"
        print(f"| {r['seed']} | {r['ensemble']} | {','.join(map(str, r['steps']))} | {r['wall_s']:.1f} | "
              f"{t['train_s']:.1f} | {t['readout_s']:.1f} | {r['median_abs_dex_0.1_1']:.3f}{bad} | {j} |")
    print("\n| seed | r [kpc] | rho_true | median | 95% band | log10 err | in 68% | in 95% |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        for i, rc in enumerate(R_CHECK):
            print(f"| {r['seed']} | {rc:g} | {r['rho_true'][i]:.2e} | {r['rho'][i]:.2e} | "
                  f"[{r['rho_lo95'][i]:.2e}, {r['rho_hi95'][i]:.2e}] | {r['dex_at_check'][i]:+.3f} | "
                  f"{'yes' if r['in68'][i] else 'no'} | {'yes' if r['in95'][i] else 'no'} |")
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
