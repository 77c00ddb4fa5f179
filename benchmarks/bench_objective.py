"""Cost and quadrature error of one evaluation of the exact objective (not a test).

On the 1000-star NonPlumCuspIso mock (:func:`dsphnf.draw_mock`, seed 0),
isotropy given, default settings:

``--timing``: one objective evaluation (loss and gradient, as the trainers
do it) of one flow (:class:`~dsphnf.flows.cnf.SphericalFlow`) and of K = 1
and 8 batched members (:class:`~dsphnf.flows.batched.BatchedFlow`, each
member on its bootstrap resample as multiplicity weights); wall and CPU time,
the median of ``--repeat`` evaluations after a warm-up, first with glibc's
default malloc settings, then with freed memory kept
(:func:`~dsphnf.flows.allocator.keep_freed_memory`, as the trainers do); with ``--profile``
also the torch profiler's table of the operators that take the most CPU time.

``--quadrature``: the exact velocity likelihood's quadrature against a
high-order reference, for an untrained flow (the random start of the
fit) and a trained one (a default fit of the same stars): per node count of
the line-of-sight rule for v_z (``n_s_v``, Simpson) and of the base-speed
rule (``n_speed``, generalised Gauss-Laguerre), the difference of the
objective from the reference [nats per star] and the largest difference of
the gradient relative to the reference's largest component.

Usage::

    .venv/bin/python benchmarks/bench_objective.py --timing [--profile]
    python benchmarks/bench_objective.py --timing --device cuda   # with synchronisations and copies counted
    .venv/bin/python benchmarks/bench_objective.py --quadrature

Prints Markdown tables for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dsphnf.anisotropy import anisotropy_from  # noqa: E402
from dsphnf.flows import FitOptions, fit_flow  # noqa: E402
from dsphnf.flows.allocator import keep_freed_memory  # noqa: E402
from dsphnf.flows.batched import BatchedFlow, member_batch  # noqa: E402
from dsphnf.flows.losvd import log_losvd, velocity_table  # noqa: E402
from dsphnf.flows.kde import bandwidths  # noqa: E402
from dsphnf.flows.member import MemberSettings, MemberStars, _star_data, member_data, new_flow  # noqa: E402
from dsphnf.flows.objective import flow_loss, smearing_nodes  # noqa: E402
from dsphnf.flows.prior import SmoothnessPrior  # noqa: E402
from dsphnf.flows.settings import FlowConfig  # noqa: E402
from dsphnf.flows.standardise import raw_stars, scales_of  # noqa: E402
from dsphnf.flows.surface import radial_table, weighted_mean  # noqa: E402
from dsphnf.flows.train_config import TrainConfig  # noqa: E402
from dsphnf.mocks import draw_mock  # noqa: E402


def _setup(K: int, device: str = "cpu") -> tuple[MemberStars, MemberSettings]:
    cat = draw_mock("NonPlumCuspIso", n=1000, seed=0).catalog
    raw = raw_stars(cat)
    stars = MemberStars(raw, scales_of(raw), True, np.logspace(-1, 0, 21))
    settings = MemberSettings(anisotropy_from("isotropic"), "free", K, 0, FlowConfig(velocity="elliptical"),
                              TrainConfig(), 0.0, 1.0, torch.float64, device, 1)
    return stars, settings


def _members(K: int, device: str = "cpu"):
    """(model, StarData, prior) built as the fit builds them: K batched members, or (K = 0) one plain flow."""
    stars, st = _setup(max(K, 1), device)
    if K == 0:  # the single flow's trainer: its resample is the catalogue (1000 rows)
        tr, _, sc, std = member_data(stars, st, 0)
        torch.manual_seed(st.seed * 1009)
        flow = new_flow(stars, st, sc["L"])
        data = _star_data(std, st, tr, bandwidths(std["obs"][tr], std["w"][tr], st.bandwidth_factor))
        return flow, data, SmoothnessPrior.of(st.train, data.R, data.weights)
    flows, trs, stds, scs = [], [], [], []
    for k in range(K):
        tr, _, sc, std = member_data(stars, st, k)
        torch.manual_seed(st.seed * 1009 + k)
        flows.append(new_flow(stars, st, sc["L"]))
        trs.append(tr), stds.append(std), scs.append(sc)
    batch = member_batch(trs, stds, scs, st.bandwidth_factor, st.train, torch.float64, torch.device(device))
    return BatchedFlow(flows), *batch.take(None)


def _evaluate(model, data, prior, cfg: TrainConfig) -> float:
    for p in model.parameters():
        p.grad = None
    loss = flow_loss(model, data, cfg, None, 0, prior=prior)
    loss.sum().backward()
    return float(loss.detach().sum())  # a read of the device: the evaluation has finished when it returns


def _device_traffic(model, data, prior, cfg: TrainConfig) -> str:
    """Host-device traffic of one evaluation on a GPU: the profiler's counts of synchronisations and copies."""
    from torch.profiler import ProfilerActivity, profile as prof

    with prof(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
        _evaluate(model, data, prior, cfg)
    events = p.key_averages()
    count = lambda word: sum(e.count for e in events if word in e.key)  # noqa: E731
    kernels = sum(e.count for e in events if e.device_type == torch.autograd.DeviceType.CUDA)
    return (f"cudaStreamSynchronize {count('cudaStreamSynchronize')}, cudaMemcpy* {count('cudaMemcpy')}, "
            f"kernels {kernels}, cudaLaunchKernel {count('cudaLaunchKernel')}")


def _graphed(model, data, prior, cfg: TrainConfig, repeat: int) -> str:
    """One evaluation captured as a CUDA graph and replayed: median time, and its gradient against eager's.

    An experiment for the scaling issue: an evaluation launches thousands of
    small kernels, so on a GPU its cost is the launches; a graph replays them
    all at once. Capture needs an evaluation without host reads or copies.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    _evaluate(model, data, prior, cfg)
    eager = [p.grad.clone() for p in params]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as torch.cuda.graph asks
        for _ in range(3):
            _evaluate(model, data, prior, cfg)
    torch.cuda.current_stream().wait_stream(side)
    for p in params:
        p.grad = None
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            loss = flow_loss(model, data, cfg, None, 0, prior=prior)
            loss.sum().backward()
    except Exception as exc:  # noqa: BLE001 -- reported: what stops a capture is the finding
        return f"capture failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    times = []
    for _ in range(repeat):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        graph.replay()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    diff = max(float((p.grad - e).abs().max() / e.abs().max().clamp_min(1e-300)) for p, e in zip(params, eager))
    return f"graph replay {np.median(times):.4f} s; largest gradient difference from eager {diff:.1e} (relative)"


def timing(repeat: int, profile: bool, device: str = "cpu") -> None:
    """Median wall and CPU time of one loss-and-gradient evaluation, one flow and K = 1, 8 batched members,
    first with glibc's default malloc settings, then with freed memory kept (:mod:`dsphnf.flows.allocator`).

    On a GPU (``device="cuda"``) only the kept-memory pass runs (malloc concerns the host), and each row
    also counts the evaluation's synchronisations, copies and kernels (the torch profiler)."""
    cfg = TrainConfig()
    print(f"load average {os.getloadavg()[0]:.2f} at start; torch threads {torch.get_num_threads()}")
    print("\n| model | rows per member | malloc | wall [s] | CPU [s] |\n|---|---|---|---|---|")
    for kept in (False, True) if device == "cpu" else (True,):
        if kept and not keep_freed_memory():
            print("(freed memory cannot be kept here: glibc's settings unchanged)")
            break
        for K in (0, 1, 8):
            model, data, prior = _members(K, device)
            _evaluate(model, data, prior, cfg)
            walls, cpus = [], []
            for _ in range(repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                _evaluate(model, data, prior, cfg)
                walls.append(time.perf_counter() - t0), cpus.append(time.process_time() - c0)
            name = "one flow" if K == 0 else f"{K} batched members"
            print(f"| {name} | {data.obs.shape[-2]} | {'kept' if kept else 'default'} | {np.median(walls):.3f} | "
                  f"{np.median(cpus):.3f} |")
            if device != "cpu":
                print(f"  {name} on {device}: {_device_traffic(model, data, prior, cfg)}")
                print(f"  {name} on {device}: {_graphed(model, data, prior, cfg, repeat)}")
            if profile:
                from torch.profiler import ProfilerActivity, profile as prof

                with prof(activities=[ProfilerActivity.CPU]) as p:
                    _evaluate(model, data, prior, cfg)
                print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    print(f"load average {os.getloadavg()[0]:.2f} at end")


def _objective(flow, data, n_s_v: int, n_speed: int, cfg: TrainConfig) -> tuple[float, torch.Tensor]:
    """The exact objective (no prior) with the given velocity nodes, and its gradient (flattened)."""
    for p in flow.parameters():
        p.grad = None
    x, w = (torch.as_tensor(t, dtype=torch.float64) for t in smearing_nodes(cfg.n_gh))
    v = data.obs[..., 2:3] + cfg.h_v * x
    h = torch.sqrt(cfg.h_v**2 + data.err2)
    ls, lp = log_losvd(flow, data.R, v, h, radial_table(flow), velocity_table(flow, n_speed=n_speed),
                       n_s_v=n_s_v, node_weights=w)
    loss = weighted_mean(-(ls + lp), data.weights)
    loss.backward()
    return float(loss.detach()), torch.cat([p.grad.reshape(-1) for p in flow.parameters() if p.grad is not None])


def quadrature(ref: tuple[int, int]) -> None:
    """Objective and gradient against the reference nodes ``ref`` = (n_s_v, n_speed), untrained and trained."""
    cfg = TrainConfig()
    flow0, data, _ = _members(0)
    cat = draw_mock("NonPlumCuspIso", n=1000, seed=0).catalog
    t0 = time.perf_counter()
    res = fit_flow(cat, "isotropic", seed=0, progress=False, options=FitOptions(r_grid=np.logspace(-1, 0, 21)))
    print(f"trained flow: default fit of the same stars, seed 0, {time.perf_counter() - t0:.0f} s")
    trained = res.artefacts.flows[0]
    cases = [(s, ref[1]) for s in (9, 13, 17, 21, 25, 33, 65)] + [(ref[0], j) for j in (12, 16, 20, 24, 32, 48)]
    cases += [(33, 24), (17, 24), (21, 24), (25, 24)]
    print(f"reference: n_s_v = {ref[0]}, n_speed = {ref[1]}")
    print("\n| flow | n_s_v | n_speed | objective - reference [nats/star] | max abs gradient difference / max abs "
          "gradient |\n|---|---|---|---|---|")
    for name, flow in (("untrained", flow0), ("trained", trained)):
        L0, g0 = _objective(flow, data, *ref, cfg)
        for S, J in dict.fromkeys(cases):
            L, g = _objective(flow, data, S, J, cfg)
            print(f"| {name} | {S} | {J} | {L - L0:+.2e} | {float((g - g0).abs().max() / g0.abs().max()):.1e} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--timing", action="store_true")
    ap.add_argument("--profile", action="store_true", help="with --timing: the torch profiler's table")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--device", default="cpu", help="with --timing: cpu or cuda")
    ap.add_argument("--quadrature", action="store_true")
    ap.add_argument("--ref", type=int, nargs=2, default=[257, 96], metavar=("N_S_V", "N_SPEED"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    if not (args.timing or args.quadrature):
        print("nothing to do: give --timing and/or --quadrature", file=sys.stderr)
        sys.exit(2)
    if args.timing:
        timing(args.repeat, args.profile, args.device)
    if args.quadrature:
        quadrature(tuple(args.ref))


if __name__ == "__main__":
    main()
