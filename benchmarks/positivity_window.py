"""Trial outside the package (not a test): the positivity term with a C1 window at the ends of its range.

The default integrates max(0, -c)^2 of the four density conditions over the stars' range [lo, hi] in ln r,
counting each trapezoid segment by its overlap with the range (``dsphnf.flows.prior._integral_inside``):
zero while a violating segment lies just outside, linear in the overlap once its end crosses in. So the
objective has a corner where a flow breaks a condition just beyond the stars, and L-BFGS can stop on it
(benchmarks/RESULTS.md, "The stall traced"). Here the integrand is multiplied by a window that is 1 on
[lo, hi] and falls to 0 as 1 - smoothstep over ``MARGIN`` (in ln r) outside each end, and the trapezoid runs
over every node: C1 in the node positions. The window replaces ``prior.positivity_penalty`` for the fits of
:func:`bench_start.run` (single flows or batched ensembles alike).

Usage (results appended to ``positivity_window_MARGIN_sSEED.json``; finished fits are skipped)::

    DSPHNF_DATA=../shared/data python benchmarks/positivity_window.py --margin 0.5 --seed 0 \\
        --mocks NonPlumCuspIso PlumCuspIso burkert PlumCoreIso --starts ref x0.7 x1.4 gaussian
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_start  # noqa: E402
from dsphnf.flows import prior  # noqa: E402


def window(x: torch.Tensor, lo, hi, margin: float) -> torch.Tensor:
    """1 on [lo, hi], 1 - smoothstep((distance outside) / margin) beyond, 0 further than ``margin`` (ln r)."""
    s = torch.maximum(((lo - x) / margin).clamp(0.0, 1.0), ((x - hi) / margin).clamp(0.0, 1.0))
    return 1.0 - s * s * (3.0 - 2.0 * s)


def windowed_positivity(margin: float):
    """A drop-in for ``prior.positivity_penalty`` with the C1 window of width ``margin``."""
    def positivity_penalty(table, vtable, lo, hi, beta=None):
        x, c = prior.density_conditions(table, vtable, beta)
        f = window(x, lo, hi, margin) * (torch.relu(-c) ** 2).sum(dim=0)
        return (0.5 * (f[..., 1:] + f[..., :-1]) * (x[..., 1:] - x[..., :-1])).sum(dim=-1)
    return positivity_penalty


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--margin", type=float, default=0.5, help="width of the window's fall outside the range [ln r]")
    ap.add_argument("--seed", type=int, default=0, help="fit seed")
    ap.add_argument("--mocks", nargs="+", default=list(bench_start.MOCKS))
    ap.add_argument("--starts", nargs="+", default=list(bench_start.STARTS), choices=list(bench_start.STARTS))
    args = ap.parse_args()
    prior.positivity_penalty = windowed_positivity(args.margin)  # smoothness_penalty looks it up at call time
    torch.set_num_threads(1)
    out = Path(f"positivity_window_{args.margin:g}_s{args.seed}.json")
    results = json.loads(out.read_text()) if out.exists() else []
    for name in args.mocks:
        for start in args.starts:
            if any(r["mock"] == name and r["start"] == start for r in results):
                continue
            r = {**bench_start.run(name, start, None, 1, args.seed), "positivity_margin": args.margin}
            results.append(r)
            out.write_text(json.dumps(results, indent=1))
            c = r["convergence"]
            print(f"{name} {start}: {r['wall_s']:.0f} s, {c['stop_reason']}, {c['adam_steps']} + {c['lbfgs_steps']}, "
                  f"objective {c['objective']:.6f}, median |dex| {r['median_abs_dex']:.3f}", flush=True)


if __name__ == "__main__":
    main()
