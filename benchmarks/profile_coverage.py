"""Is the baseline's likelihood itself calibrated? Wilks' test of log10 rho(r) over many mocks (issue 16 item 5).

Usage::

    python benchmarks/profile_coverage.py MODEL [--mocks LO HI] [--stars N] [--gaussian-velocities]
                                          [--gamma-min G] [--fit-anisotropy SPEC] [--calibration OUT ...]

For each mock of ``dsphnf calibrate`` (the same random seeds, so the same
stars), the profile-likelihood statistic 2 Delta of the true log10 rho at the
calibrate radii 0.25-4 R_half (:class:`dsphnf.baseline.profile_likelihood.ProfileLikelihood`:
no prior, no sampler, every other parameter maximised inside the default
prior boxes). For a calibrated likelihood 2 Delta follows chi^2_1: mean 1,
below 1 in 68 % and below 3.84 in 95 % of the mocks. Printed per radius: the
mean of 2 Delta, those two fractions, the mean signed root (the likelihood's
own pull), the error of the maximum-likelihood rho (mean and spread [dex]),
and the fraction of mocks whose maximum sits on the lower edge of the halo's
inner slope gamma.

``--gaussian-velocities`` replaces each v_z by a Gaussian draw with the true
model's sigma_los(R) (its own anisotropy included; random seed 10000 + mock
seed): data from the likelihood's own model, which separates the LOSVD's
shape from everything else. ``--fit-anisotropy`` is the anisotropy the
likelihood assumes or fits, in the grammar of :mod:`dsphnf.anisotropy`
(default ``isotropic``; ``om`` fits the Osipkov-Merritt radius).
``--gamma-min`` moves the lower edge of gamma's box (default 0).
``--calibration OUT`` compares, on the mocks that calibrate run fitted, the
posterior pulls z of OUT/calibration.csv (baseline rows) with the signed roots.
"""
from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import numpy as np

from dsphnf.anisotropy import anisotropy_from
from dsphnf.baseline import BaselineLikelihood, BaselineModel, Prior
from dsphnf.baseline.profile_likelihood import ProfileLikelihood
from dsphnf.calibrate import RADII_OVER_RHALF, projected_half_radius
from dsphnf.mocks import draw_mock, get_model
from dsphnf.projection import sigma_los2


def one_mock(name: str, seed: int, stars: int, gaussian: bool, gamma_min: float,
             fit_anisotropy: str = "isotropic") -> list[tuple]:
    """(radius index, 2 Delta, signed root, MLE error [dex], MLE gamma) per calibrate radius of one mock."""
    model = get_model(name)
    tracer, halo = model.tracer, model.halo
    cat = draw_mock(name, stars, seed).catalog
    vz = cat.vz
    if gaussian:
        s2 = sigma_los2(cat.R, tracer.density, halo.mass, model.anisotropy)
        vz = np.random.default_rng(10000 + seed).normal(0.0, np.sqrt(s2))
    priors = {"gamma": Prior("uniform", gamma_min, 2.0)} if gamma_min != 0.0 else None
    like = BaselineLikelihood(BaselineModel("zhao", anisotropy_from(fit_anisotropy), priors=priors), cat.R, vz)
    k_gamma = like.model.names.index("gamma")
    radii = np.asarray(RADII_OVER_RHALF) * projected_half_radius(tracer.density)
    out, best = [], None
    for k, r in enumerate(radii):
        prof = ProfileLikelihood(like, float(r), starts=[best] if best is not None else ())
        y_true = math.log10(float(halo.density(np.array([r]))[0]))
        d2 = prof.statistic(y_true)
        best = prof.best()[0]
        err = float(prof.log10_value(best[None, :])[0]) - y_true
        out.append((k, d2, math.copysign(math.sqrt(d2), err), err, float(best[k_gamma])))
    return out


def posterior_pulls(outs: list[str]) -> dict[tuple[int, int], float]:
    """(seed, radius index) -> the baseline's z in calibrate outputs."""
    z = {}
    for out in outs:
        with open(Path(out) / "calibration.csv") as f:
            for row in csv.DictReader(f):
                if row["method"] == "baseline":
                    k = RADII_OVER_RHALF.index(float(row["r_over_rhalf"]))
                    z[(int(row["seed"]), k)] = float(row["z"])
    return z


def report(rows: np.ndarray, gamma_min: float, pulls: dict) -> None:
    print("| r/R_half | mocks | mean 2 Delta (chi^2_1: 1) | 2 Delta < 1 (0.68) | < 3.84 (0.95) | mean signed root "
          "| MLE error mean / sd [dex] | MLE gamma on its lower edge |")
    print("|---|---|---|---|---|---|---|---|")
    for k, x in enumerate(RADII_OVER_RHALF):
        s = rows[rows[:, 1] == k]
        print(f"| {x:g} | {len(s)} | {s[:, 2].mean():.2f} | {np.mean(s[:, 2] < 1):.2f} | {np.mean(s[:, 2] < 3.84):.2f} "
              f"| {s[:, 3].mean():+.2f} | {s[:, 4].mean():+.3f} / {s[:, 4].std():.3f} "
              f"| {np.mean(s[:, 5] < gamma_min + 1e-3):.2f} |")
    print(f"pooled over the radii: 2 Delta < 1 in {np.mean(rows[:, 2] < 1):.3f}, < 3.84 in {np.mean(rows[:, 2] < 3.84):.3f}")
    if not pulls:
        return
    print("\nposterior pull z (calibrate) against the likelihood's signed root, same mocks:")
    print("| r/R_half | mocks | corr | root mean / sd | z mean / sd | median abs(z) / abs(root) |")
    print("|---|---|---|---|---|---|")
    for k, x in enumerate(RADII_OVER_RHALF):
        pairs = np.array([(r[3], pulls[(int(r[0]), k)]) for r in rows[rows[:, 1] == k] if (int(r[0]), k) in pulls])
        if len(pairs) < 3:
            continue
        ratio = np.median(np.abs(pairs[:, 1]) / np.maximum(np.abs(pairs[:, 0]), 1e-3))
        print(f"| {x:g} | {len(pairs)} | {np.corrcoef(pairs.T)[0, 1]:.2f} | {pairs[:, 0].mean():+.2f} / "
              f"{pairs[:, 0].std():.2f} | {pairs[:, 1].mean():+.2f} / {pairs[:, 1].std():.2f} | {ratio:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--mocks", nargs=2, type=int, default=(0, 100), metavar=("LO", "HI"))
    ap.add_argument("--stars", type=int, default=1000)
    ap.add_argument("--gaussian-velocities", action="store_true")
    ap.add_argument("--gamma-min", type=float, default=0.0)
    ap.add_argument("--fit-anisotropy", default="isotropic")
    ap.add_argument("--calibration", nargs="*", default=[])
    a = ap.parse_args()
    t0, rows = time.perf_counter(), []
    for seed in range(*a.mocks):
        rows += [(seed, *row) for row in one_mock(a.model, seed, a.stars, a.gaussian_velocities, a.gamma_min,
                                                       a.fit_anisotropy)]
        print(f"\rmock {seed + 1 - a.mocks[0]}/{a.mocks[1] - a.mocks[0]}  {time.perf_counter() - t0:.0f} s",
              end="", flush=True)
    velocities = "Gaussian velocities" if a.gaussian_velocities else "the model's velocities"
    print(f"\n{a.model}, {a.stars} stars, mocks {a.mocks[0]}-{a.mocks[1] - 1}, "
          f"{velocities}, gamma >= {a.gamma_min:g}, anisotropy {a.fit_anisotropy}; "
          f"{time.perf_counter() - t0:.0f} s\n")
    report(np.array(rows), a.gamma_min, posterior_pulls(a.calibration))


if __name__ == "__main__":
    main()
