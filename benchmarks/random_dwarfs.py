"""Random dwarf models for a robustness sweep (not a test): one ``HALO TRACER ANISOTROPY`` line per model.

Draws halo (NFW, Burkert, Einasto, Zhao), tracer (Plummer, cusped Zhao, two Plummer populations) and
anisotropy (isotropic, Osipkov-Merritt, constant beta, Cuddeford) parameters from a seeded generator over
dSph-like ranges, and keeps a model only when its distribution function is positive (``dsphnf mock`` refuses
the others; they are counted on stderr). Each line is then given to ``dsphnf calibrate --halo --tracer
--anisotropy`` (benchmarks/RESULTS.md, "Twelve random dwarfs").

Usage::

    python benchmarks/random_dwarfs.py SEED N > specs.txt
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsphnf.errors import DsphnfError  # noqa: E402
from dsphnf.mocks import draw_mock  # noqa: E402


def _halo(rng: np.random.Generator) -> str:
    kind = rng.choice(["nfw", "burkert", "einasto", "zhao"])
    rs = float(np.exp(rng.uniform(np.log(0.3), np.log(2.5))))  # kpc
    if kind == "nfw":
        return f"nfw:{10 ** rng.uniform(7.0, 8.3):.3g},{rs:.3g}"
    if kind == "burkert":
        return f"burkert:{10 ** rng.uniform(7.8, 9.0):.3g},{rs:.3g}"
    if kind == "einasto":
        return f"einasto:{10 ** rng.uniform(6.8, 7.8):.3g},{rs:.3g},{rng.uniform(0.12, 0.3):.2f}"
    return f"zhao:{10 ** rng.uniform(7.0, 8.5):.3g},{rs:.3g},{rng.uniform(1, 2):.2f},3,{rng.uniform(0, 1.2):.2f}"


def _tracer(rng: np.random.Generator) -> tuple[str, float, float]:
    """Spec, inner slope gamma* and scale a [kpc]."""
    u, a = rng.uniform(), float(rng.uniform(0.12, 0.5))
    if u < 0.45:
        return f"plummer:{a:.3g}", 0.0, a
    if u < 0.8:
        g = float(rng.uniform(0, 0.8))
        return f"zhao:{a:.3g},2,5,{g:.2f}", g, a
    w = rng.uniform(0.3, 0.7)
    return f"{w:.2f}*plummer:{a * 0.6:.3g}+{1 - w:.2f}*plummer:{a * 1.6:.3g}", 0.0, a


def _anisotropy(rng: np.random.Generator, gamma: float, a: float) -> str:
    kind = rng.choice(["isotropic", "om", "constant", "cuddeford"])
    if kind == "isotropic":
        return "isotropic"
    ra = float(a * rng.uniform(1.0, 4.0))
    if kind == "om":
        return f"om:{ra:.3g}"
    if kind == "constant":
        return f"constant:{rng.uniform(-0.6, min(0.35, gamma / 2)):.2f}"
    return f"cuddeford:{rng.uniform(-0.4, min(0.0, gamma / 2)):.2f},{ra:.3g}"


def main() -> None:
    rng, n = np.random.default_rng(int(sys.argv[1])), int(sys.argv[2])
    kept = refused = 0
    while kept < n:
        halo = _halo(rng)
        tracer, gamma, a = _tracer(rng)
        beta = _anisotropy(rng, gamma, a)
        try:
            draw_mock(None, 20, 0, halo=halo, tracer=tracer, anisotropy=beta)
        except DsphnfError as exc:
            refused += 1
            print(f"refused: {halo} {tracer} {beta}: {str(exc).splitlines()[0]}", file=sys.stderr)
            continue
        print(halo, tracer, beta, flush=True)
        kept += 1
    print(f"{kept} models kept, {refused} refused (distribution function negative somewhere)", file=sys.stderr)


if __name__ == "__main__":
    main()
