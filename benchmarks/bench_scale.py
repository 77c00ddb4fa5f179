"""Cost of one flow fit against the number of stars (not a test).

For N = 1e3, 1e4 and 1e5 stars drawn from the NonPlumCuspIso model
(:func:`dsphnf.draw_mock`, seed 0), one flow with isotropy given is trained
for a fixed number of Adam steps (``--optimiser adam``, the default, so that
every N runs the same algorithm) on minibatches of ``--batch`` stars (all stars
when N <= batch), then the *full-data* objective (every star, no prior) of the
trained flow is evaluated once. Each N runs in its own process so that its
peak resident memory (``ru_maxrss``) is its own.

Reported per N: wall and CPU time of the fit (training + read-out), seconds
per step, wall and CPU time of one full-data objective, peak memory after the
fit and after the full-data objective, the full-data objective [nats per star]
and the median |log10 rho/rho_true| over 0.1-1 kpc, each beside the untrained
start's (the same flow after one step at a learning rate of 1e-12), the CPU
time and peak memory of one full-data objective *with its gradient* (what a
full-batch training step costs; more than ``STAR_CHUNK`` stars go in
checkpointed pieces, :func:`dsphnf.flows.losvd.exact_nll`); then the
slopes d ln(cost) / d ln N of each cost (target of the scaling issue: linear,
slope <= 1). With a fixed number of steps on minibatches the training's own
cost does not grow with N; the full-data objective is the O(N) part.

With ``--members``: batched against one-by-one ensemble members (issue 11).
On the 1000-star mock (NonPlumCuspIso, seed 0) four fits with the default
settings (steps, threads ``"auto"``), each in its own process: K = 1 and
K = 8 members, trained one by one (``batched=False``) and as one batch
(``batched=True``). Reported: wall time and CPU time of the fit (the CPU time says what the
wall time would be on an unloaded core), the threads used, each
member's steps, the median |log10 rho/rho_true| over 0.1-1 kpc of the
ensemble's profile, and the largest difference in dex between the batched
and the one-by-one profile over that range.

Usage::

    .venv/bin/python benchmarks/bench_scale.py                       # CPU, 1 thread
    .venv/bin/python benchmarks/bench_scale.py --device cuda --threads 0
    .venv/bin/python benchmarks/bench_scale.py --n 1000 10000 --steps 50
    .venv/bin/python benchmarks/bench_scale.py --members              # batched members (issue 11)

Prints a Markdown table for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dsphnf.provenance import cpu_label  # noqa: E402


def rho_nfw(r: np.ndarray) -> np.ndarray:
    """True halo of NonPlumCuspIso [Msun/kpc^3]: NFW, rho0 = 6.4e7, r_s = 1 kpc."""
    return 6.4e7 / (r * (1 + r) ** 2)


def _peak_mb() -> float:
    """Peak resident memory of this process so far [MB] (Linux reports ru_maxrss in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _full_objective(flow, cat, gradient: bool = False) -> tuple[float, float, float]:
    """(full-data objective [nats per star], wall [s], CPU [s]) of ``flow`` on every star of ``cat``, no prior;
    with ``gradient`` the timing includes its backward pass (what a full-batch training step costs)."""
    import torch

    from dsphnf.flows import TrainConfig
    from dsphnf.flows.objective import flow_loss
    from dsphnf.flows.standardise import standardise
    from dsphnf.flows.stars import StarData

    std, _ = standardise(cat)  # every star; the flow's own scales are those of the full catalogue here
    p = next(flow.parameters())
    data = StarData(torch.as_tensor(std["obs"], dtype=p.dtype, device=p.device), [1.0, 1.0, 1.0],
                    torch.as_tensor(std["w"], dtype=p.dtype, device=p.device))
    t0, c0 = time.perf_counter(), time.process_time()
    flow.zero_grad()
    with torch.set_grad_enabled(gradient):
        loss = flow_loss(flow, data, TrainConfig(smooth_tau=None), torch.Generator(device=p.device), 0)
        if gradient:
            loss.backward()
    return float(loss), time.perf_counter() - t0, time.process_time() - c0


def one(n: int, steps: int, batch: int, device: str, threads: int | None, optimiser: str = "adam") -> dict:
    """Fit one flow to ``n`` stars and measure it, and its untrained start (runs in a child process).

    The untrained start is the same flow (same seed) after one Adam step at a
    learning rate of 1e-12, read out the same way.
    """
    from dsphnf.flows import FitOptions, TrainConfig, fit_flow
    from dsphnf.mocks import draw_mock

    cat = draw_mock("NonPlumCuspIso", n=n, seed=0).catalog
    grid = np.logspace(-1, 0, 21)
    opts = FitOptions(r_grid=grid, threads=threads)
    cfg = TrainConfig(steps=steps, batch=batch if n > batch else None, optimiser=optimiser)
    start = fit_flow(cat, "isotropic", steps=1, seed=0, device=device, progress=False, options=opts,
                     train_config=TrainConfig(steps=1, lr=1e-12, batch=cfg.batch, optimiser=optimiser))
    t0, c0 = time.perf_counter(), time.process_time()
    res = fit_flow(cat, "isotropic", steps=steps, seed=0, device=device, progress=False,
                   train_config=cfg, options=opts)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak_fit = _peak_mb()
    full, full_s, full_cpu = _full_objective(res.artefacts.flows[0], cat)
    full0 = _full_objective(start.artefacts.flows[0], cat)[0]
    peak_full = _peak_mb()
    _, grad_s, grad_cpu = _full_objective(res.artefacts.flows[0], cat, gradient=True)
    dex = lambda r: float(np.median(np.abs(np.log10(r.profile["rho"] / rho_nfw(grid)))))  # noqa: E731
    train_s = res.summary["timings_s"].get("train_s", float("nan"))
    taken = res.summary["diagnostics"]["members"][0]["steps"]  # fewer than ``steps`` if L-BFGS converged
    return {
        "n": n, "steps": taken, "batch": cfg.batch, "optimiser": optimiser, "device": device, "wall_s": wall,
        "cpu_s": cpu, "train_s": train_s, "s_per_step": train_s / taken,
        "full_objective_s": full_s, "full_objective_cpu_s": full_cpu, "full_objective": full,
        "full_objective_start": full0, "peak_fit_mb": peak_fit, "peak_mb": peak_full,
        "full_gradient_s": grad_s, "full_gradient_cpu_s": grad_cpu, "peak_grad_mb": _peak_mb(),
        "median_abs_dex": dex(res), "median_abs_dex_start": dex(start),
        "full_gradient_wall_s": grad_s, "device_peak_mb": _device_peak_mb(device),
    }


def _device_peak_mb(device: str) -> float | None:
    """Peak memory torch allocated on a CUDA device in this process [MB]; None on the CPU."""
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None


def one_ensemble(K: int, batched: bool, device: str) -> dict:
    """Fit K members to the 1000-star mock, batched or one by one, with the default settings (child process)."""
    from dsphnf.flows import FitOptions, fit_flow
    from dsphnf.mocks import draw_mock

    cat = draw_mock("NonPlumCuspIso", n=1000, seed=0).catalog
    grid = np.logspace(-1, 0, 21)
    t0, c0 = time.perf_counter(), time.process_time()
    res = fit_flow(cat, "isotropic", ensemble=K, seed=0, device=device, progress=False, batched=batched,
                   options=FitOptions(r_grid=grid))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    g = res.summary["diagnostics"]["grid"]
    members = res.summary["diagnostics"]["members"]
    return {"K": K, "batched": bool(g.get("batched")), "wall_s": wall, "cpu_s": cpu, "threads": g.get("threads", 1),
            "thread_probe_s": g.get("thread_probe_s"), "steps": [m["steps"] for m in members],
            "stop": [m["convergence"]["stop_reason"] for m in members],
            "rho": res.profile["rho"].tolist(),
            "median_abs_dex": float(np.median(np.abs(np.log10(res.profile["rho"] / rho_nfw(grid)))))}


def members_main(device: str) -> None:
    """The four ensemble fits of ``--members``, each in its own process, and their table."""
    print(f"machine: {cpu_label()}, {os.cpu_count()} cores, device {device}, "
          f"load average {os.getloadavg()[0]:.2f} at start")
    rows = {}
    for K in (1, 8):
        for batched in (False, True):
            cmd = [sys.executable, __file__, "--ensemble-child", str(K), "--batched", str(int(batched)),
                   "--device", device]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows[K, batched] = json.loads(out.strip().splitlines()[-1])
            print(f"  K = {K}, batched {batched}: {rows[K, batched]['wall_s']:.1f} s, load average "
                  f"{os.getloadavg()[0]:.2f}", file=sys.stderr)
    print("\n| K | members | wall [s] | CPU [s] | threads | steps per member | median abs dex 0.1-1 kpc | "
          "max dex batched vs one by one |")
    print("|---|---|---|---|---|---|---|---|")
    for (K, batched), r in rows.items():
        diff = np.max(np.abs(np.log10(np.asarray(r["rho"]) / np.asarray(rows[K, False]["rho"]))))
        print(f"| {K} | {'batched' if batched else 'one by one'} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
              f"{r['threads']} | "
              f"{min(r['steps'])}-{max(r['steps'])} | {r['median_abs_dex']:.3f} | {diff:.1e} |")
    for batched in (False, True):
        print(f"wall(K=8)/wall(K=1), {'batched' if batched else 'one by one'}: "
              f"{rows[8, batched]['wall_s'] / rows[1, batched]['wall_s']:.2f} "
              f"(CPU time: {rows[8, batched]['cpu_s'] / rows[1, batched]['cpu_s']:.2f})")
    print(f"wall(K=8 batched)/wall(K=1 one by one): {rows[8, True]['wall_s'] / rows[1, False]['wall_s']:.2f}; "
          f"thread probe {rows[8, True]['thread_probe_s']}; load average at end {os.getloadavg()[0]:.2f}")


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ln y against ln x (NaN with fewer than two finite points)."""
    x, y = np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float))
    ok = np.isfinite(x) & np.isfinite(y)
    return float(np.polyfit(x[ok], y[ok], 1)[0]) if ok.sum() >= 2 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=1000, help="stars per step when N is larger")
    ap.add_argument("--optimiser", default="adam", choices=["adam", "adam+lbfgs"],
                    help="adam (default): the same fixed number of steps at every N; adam+lbfgs stops at "
                         "convergence where the objective is deterministic (N <= batch)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: leave torch's default)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--members", action="store_true", help="batched against one-by-one members (issue 11)")
    ap.add_argument("--ensemble-child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--batched", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ensemble_child is not None:
        print(json.dumps(one_ensemble(args.ensemble_child, bool(args.batched), args.device)))
        return
    if args.members:
        members_main(args.device)
        return
    threads = args.threads or None
    if args.child is not None:
        print(json.dumps(one(args.child, args.steps, args.batch, args.device, threads, args.optimiser)))
        return
    print(f"machine: {cpu_label()}, {os.cpu_count()} cores, device {args.device}, "
          f"threads {args.threads or 'default'}, optimiser {args.optimiser}, load average {os.getloadavg()[0]:.2f} at start")
    rows = []
    for n in args.n:
        cmd = [sys.executable, __file__, "--child", str(n), "--steps", str(args.steps), "--batch", str(args.batch),
               "--device", args.device, "--threads", str(args.threads), "--optimiser", args.optimiser]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:  # counted and shown, and the other N still run
            print(f"  N = {n}: failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"  N = {n}: {rows[-1]['wall_s']:.1f} s; {json.dumps(rows[-1])}", file=sys.stderr)
    if len(rows) < len(args.n):
        print(f"{len(args.n) - len(rows)} of {len(args.n)} sizes failed; the table and slopes use the others")
    print("\n| N | steps | batch | fit wall [s] | fit CPU [s] | s/step | full objective wall [s] | "
          "full objective CPU [s] | peak memory after fit [MB] | peak memory with full objective [MB] | "
          "full objective and gradient CPU [s] | peak memory with it [MB] | "
          "full objective [nats/star], trained (start) | median abs dex 0.1-1 kpc, trained (start) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']} | {r['steps']} | {r['batch'] or 'all'} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
              f"{r['s_per_step']:.3f} | {r['full_objective_s']:.2f} | {r['full_objective_cpu_s']:.2f} | "
              f"{r['peak_fit_mb']:.0f} | {r['peak_mb']:.0f} | {r['full_gradient_cpu_s']:.2f} | "
              f"{r['peak_grad_mb']:.0f} | {r['full_objective']:.4f} "
              f"({r['full_objective_start']:.4f}) | {r['median_abs_dex']:.3f} ({r['median_abs_dex_start']:.3f}) |")
    for r in rows:
        if r.get("device_peak_mb") is not None:
            print(f"N = {r['n']}: peak device memory {r['device_peak_mb']:.0f} MB; full objective and gradient "
                  f"wall {r['full_gradient_wall_s']:.2f} s")
    ns = [r["n"] for r in rows]
    for key, label in [("wall_s", "fit wall"), ("cpu_s", "fit CPU"), ("s_per_step", "s/step"),
                       ("full_objective_s", "full objective wall"), ("full_objective_cpu_s", "full objective CPU"),
                       ("peak_fit_mb", "peak memory after fit"), ("peak_mb", "peak memory with full objective"),
                       ("full_gradient_cpu_s", "full objective and gradient CPU"),
                       ("peak_grad_mb", "peak memory with the gradient")]:
        print(f"slope d ln({label})/d ln N = {slope(ns, [r[key] for r in rows]):.2f}")
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
