"""Is the baseline's claimed error of a dispersion the true one? Groups of stars, Gaussian against a free kurtosis.

Draws one large mock, takes its stars in a ring of projected radius (0.7-1.4 R_half, where sigma_los is nearly
flat), splits them into groups of N, fits each group's dispersion with both line-of-sight velocity
distributions (:func:`dsphnf.baseline.losvd.fit_dispersion`) and compares the spread of the estimates of
ln sigma^2 over the groups with the mean error the likelihood claims. An honest likelihood claims the spread.

Usage::

    python benchmarks/losvd_honesty.py [--halo burkert:4e8,1 --tracer plummer:0.25 --anisotropy om:0.3]
                                       [--model PlumCuspIso] [--group 250] [--groups 300] [--seed 4]
"""
from __future__ import annotations

import argparse

import numpy as np

from dsphnf.baseline.losvd import LOSVD_SHAPES, fit_dispersion, kurtosis_of
from dsphnf.mocks import draw_mock


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="a Gaia Challenge model instead of --halo/--tracer/--anisotropy")
    ap.add_argument("--halo", default="burkert:4e8,1")
    ap.add_argument("--tracer", default="plummer:0.25")
    ap.add_argument("--anisotropy", default="om:0.3")
    ap.add_argument("--group", type=int, default=250, help="stars per group")
    ap.add_argument("--groups", type=int, default=300)
    ap.add_argument("--seed", type=int, default=4)
    a = ap.parse_args()
    spec = {} if a.model else {"halo": a.halo, "tracer": a.tracer, "anisotropy": a.anisotropy}
    n_draw = 3 * a.group * a.groups  # about a third of the stars fall in the ring
    cat = draw_mock(a.model, n=n_draw, seed=a.seed, **spec).catalog
    rh = np.median(cat.R)
    v = cat.vz[(cat.R > 0.7 * rh) & (cat.R < 1.4 * rh)]
    n_groups = min(a.groups, v.size // a.group)
    v = np.random.default_rng(a.seed).permutation(v)[: n_groups * a.group].reshape(n_groups, a.group)
    print(f"{a.model or spec}: {n_groups} groups of {a.group} stars at 0.7-1.4 R_half; "
          f"kurtosis of all of them {kurtosis_of(v.ravel()):.2f}")
    for losvd in LOSVD_SHAPES:
        fits = [fit_dispersion(g, losvd=losvd) for g in v]
        est = np.log([f.sigma2 for f in fits])
        claimed = np.mean([f.error for f in fits])
        z = (est - np.log(np.mean(v**2))) / np.array([f.error for f in fits])
        print(f"  {losvd:9s} spread of ln sigma^2 {est.std(ddof=1):.3f}, claimed {claimed:.3f} on average "
              f"(ratio {est.std(ddof=1) / claimed:.2f}); pulls: std {z.std(ddof=1):.2f}, "
              f"inside +-1: {np.mean(np.abs(z) < 1):.2f}; median kurtosis {np.median([f.kurtosis for f in fits]):.2f}")


if __name__ == "__main__":
    main()
