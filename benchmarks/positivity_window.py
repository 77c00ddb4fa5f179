"""Trial outside the package (not a test): the positivity term with a C1 window at the ends of its range.

The default integrates max(0, -c)^2 of the four density conditions over the stars' range [lo, hi] in ln r,
counting each trapezoid segment by its overlap with the range (``dsphnf.flows.prior._integral_inside``):
zero while a violating segment lies just outside, linear in the overlap once its end crosses in. So the
objective has a corner where a flow breaks a condition just beyond the stars, and L-BFGS can stop on it
(benchmarks/RESULTS.md, "The stall traced"). Here the integrand is multiplied by a window that is 1 on
[lo, hi] and falls to 0 as 1 - smoothstep over ``--margin`` (in ln r) outside each end, and the trapezoid
runs over every node: C1 in the node positions. The window replaces ``prior.positivity_penalty``, then
``bench_start.py`` runs with the remaining arguments (single flows or batched ensembles alike).

Usage (every option but ``--margin`` is ``bench_start.py``'s)::

    DSPHNF_DATA=../shared/data python benchmarks/positivity_window.py --margin 0.5 --seed 0 \\
        --mocks NonPlumCuspIso PlumCuspIso burkert PlumCoreIso --json window_0.5_s0.json
"""
from __future__ import annotations

import argparse
import math
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
        return prior._integral_inside(x, f, -math.inf, math.inf)  # the trapezoid over every node
    return positivity_penalty


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--margin", type=float, default=0.5, help="width of the window's fall outside the range [ln r]")
    args, rest = ap.parse_known_args()
    prior.positivity_penalty = windowed_positivity(args.margin)  # smoothness_penalty looks it up at call time
    sys.argv = [sys.argv[0], *rest]
    bench_start.main()


if __name__ == "__main__":
    main()
