"""Benchmark: why the baseline's posterior bands are narrower than its likelihood's (not a test).

Three diagnostics on the mocks of ``dsphnf calibrate MODEL --method baseline``
(the same seeds, so the same stars and the same emcee chains), with the
default baseline (``zhao-alpha`` halo, isotropy given):

``jeffreys``
    Fits each mock, takes the 1000 posterior draws that
    :meth:`~dsphnf.baseline.artefacts.BaselineArtefacts.profile_at` uses and
    importance-reweights them from the default prior (boxes x the halo's
    density measure) to the boxes x sqrt(det I(theta)) (Jeffreys), I the
    expected Fisher information of the likelihood: the positions on the data's
    window plus the Gaussian LOSVD at the observed radii, by central
    differences. If the posterior were narrower than the likelihood's
    intervals through the volume of the nuisance directions (the Laplace
    factor |H|^(-1/2)), the Jeffreys prior would widen the bands to the
    profile likelihood's. Prints per mock which bands hold the truth, then
    the pooled coverage and the median 68 % half-widths of both.
``edges``
    Where the likelihood's free maximum
    (:class:`~dsphnf.baseline.profile_likelihood.ProfileLikelihood`) sits in
    the prior box, per mock, beside the posterior's 68 % hits of a
    ``jeffreys`` run (``--rows``) or of a calibrate folder (``--calibration``),
    and the posterior's coverage pooled by where the halo's maximum lies.
``shape``
    For one mock and radius: 2 Delta(y) of the profile likelihood against
    -2 ln p(y) of the posterior's marginal (a kernel estimate from every
    post-burn-in sample), with the constrained maximum's parameters and the
    posterior mean of the samples near each y. ``--prior NAME:LO:HI`` widens a
    box.
``inverse-alpha``
    A trial prior, not in the package (:class:`InverseAlphaModel`): the
    transition sharpness sampled as s = 1/alpha_dm, flat in [0.02, 2], so
    that the broken power law has prior volume; the posterior's coverage
    beside the default's calibrate rows.

Usage::

    python benchmarks/posterior_vs_likelihood.py jeffreys PlumCuspIso --seeds 0 20 --rows rows.json
    python benchmarks/posterior_vs_likelihood.py edges PlumCuspIso --seeds 0 20 --rows rows.json
    python benchmarks/posterior_vs_likelihood.py edges NonPlumCuspIso --seeds 0 20 --calibration CALIBRATE_OUT
    python benchmarks/posterior_vs_likelihood.py shape PlumCuspIso --seed 13 --r-over-rhalf 1 [--prior alpha_dm:0.5:10]
    python benchmarks/posterior_vs_likelihood.py inverse-alpha PlumCuspIso --seeds 0 20 --calibration CALIBRATE_OUT
    python benchmarks/posterior_vs_likelihood.py inverse-alpha --halo burkert:4e8,1 --tracer plummer:0.25 \
        --calibration CALIBRATE_OUT

(reads ``_draws`` and ``_draw_profiles`` of :mod:`dsphnf.baseline.artefacts`,
which ``profile_at`` uses, to weight the draws).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dsphnf.anisotropy import Isotropic  # noqa: E402
from dsphnf.baseline import Prior, fit_baseline  # noqa: E402
from dsphnf.baseline.artefacts import _draws  # noqa: E402
from dsphnf.baseline.fit import likelihood_for, usable_stars  # noqa: E402
from dsphnf.baseline.model import BaselineModel  # noqa: E402
from dsphnf.baseline.profile_likelihood import ProfileLikelihood  # noqa: E402
from dsphnf.calibrate.score import RADII_OVER_RHALF  # noqa: E402
from dsphnf.calibrate.spec import MockSource, calibration_spec  # noqa: E402
from dsphnf.compare import compare  # noqa: E402

HALO = "zhao-alpha"
QUANTILES = (0.025, 0.16, 0.5, 0.84, 0.975)


def mock_source(args) -> tuple[MockSource, float]:
    """The mocks (a named model, or ``--halo``/``--tracer`` with isotropic orbits) and R_half [kpc] of their
    true tracer, as ``dsphnf calibrate`` takes them."""
    if args.halo:
        spec = calibration_spec(halo=args.halo, tracer=args.tracer, anisotropy="isotropic", realisations=2,
                                methods="baseline")
    else:
        spec = calibration_spec(args.model, realisations=2, methods="baseline")
    return spec.source, spec.r_half


def fit(source: MockSource, seed: int, priors: dict | None = None):
    """The calibrate fit of realisation ``seed`` (1000 stars), and its mock."""
    mock = source.draw(1000, seed)
    res = fit_baseline(mock.catalog, Isotropic(), HALO, max_steps=20000, nwalkers=32, seed=seed, progress=False,
                       priors=priors)
    return res.artefacts, mock


def log_sqrt_det_fisher(like, theta: np.ndarray, h: float = 1e-3) -> np.ndarray:
    """0.5 ln det I(theta) for parameter rows ``theta`` (B, ndim) of a BaselineLikelihood."""
    B, d = theta.shape
    shifted = [theta] + [theta + s * h * np.eye(d)[j] for j in range(d) for s in (1.0, -1.0)]
    prof = like.proj.profiles(like.model.unpack(np.concatenate(shifted)), like.model.anisotropy)
    S = prof["Sigma"]
    nwin = S @ like.win
    lnp = (np.log(S) - np.log(nwin)[:, None]).reshape(2 * d + 1, B, -1)
    s = (np.exp(like.at_stars(np.log(prof["sigma_los2"]))) + like.e2).reshape(2 * d + 1, B, -1)
    q = (S * like.win / nwin[:, None]).reshape(2 * d + 1, B, -1)[0]  # p(R) on the window's grid
    dlnp = (lnp[1::2] - lnp[2::2]) / (2 * h)
    dlnp -= np.einsum("jbn,bn->jb", dlnp, q)[:, :, None]
    ds = (s[1::2] - s[2::2]) / (2 * h)
    info = like.wsum * np.einsum("jbn,kbn,bn->bjk", dlnp, dlnp, q)
    info += 0.5 * np.einsum("jbi,kbi,bi->bjk", ds, ds, like.w / s[0] ** 2)
    if "v_sys" in like.model.names:
        k = like.model.names.index("v_sys")
        info[:, k, k] += np.sum(like.w / s[0], axis=1)
    sign, logdet = np.linalg.slogdet(info)
    return np.where(sign > 0, 0.5 * logdet, -np.inf)


def weighted_quantiles(x: np.ndarray, w: np.ndarray, qs=QUANTILES) -> np.ndarray:
    o = np.argsort(x)
    c = np.cumsum(w[o]) / w.sum() - 0.5 * w[o] / w.sum()
    return np.interp(qs, c, x[o])


def true_log10_rho(truth, radii: np.ndarray) -> np.ndarray:
    dummy = {"r": radii, "rho": np.ones_like(radii), "M": np.ones_like(radii)}
    return np.log10([c["rho_true"] for c in compare({"x": dummy}, truth=truth, radii=radii)])


def posterior_draws(art, radii: np.ndarray, seed: int) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """The 1000 posterior draws ``profile_at`` uses, in chunks of ~50, and log10 rho at ``radii`` [kpc] of each."""
    theta = _draws(art.sampler.samples, 1000, seed)
    chunks = np.array_split(theta, max(1, len(theta) // 50))
    return theta, chunks, np.concatenate([np.log10(art._draw_profiles(c, np.log(radii))["rho"]) for c in chunks])


def band_row(seed: int, r_over_rhalf: float, q: np.ndarray, truth: float) -> dict:
    """One radius's row: ``q`` the :data:`QUANTILES` of log10 rho, ``truth`` the true log10 rho there."""
    return {"seed": seed, "r_over_rhalf": r_over_rhalf, "log10_err": q[2] - truth, "w68": 0.5 * (q[3] - q[1]),
            "in68": bool(q[1] <= truth <= q[3]), "in95": bool(q[0] <= truth <= q[4])}


def jeffreys(args) -> None:
    source, r_half = mock_source(args)
    radii = np.asarray(RADII_OVER_RHALF) * r_half
    rows = []
    for seed in range(*args.seeds):
        t0 = time.perf_counter()
        art, mock = fit(source, seed)
        theta, chunks, lr = posterior_draws(art, radii, seed)
        lj = np.concatenate([log_sqrt_det_fisher(art.likelihood, c) for c in chunks])
        lw = lj - art.model.log_prior(theta)
        w = np.where(np.isfinite(lw), np.exp(lw - np.max(lw[np.isfinite(lw)])), 0.0)
        ess = w.sum() ** 2 / (w**2).sum()
        lt = true_log10_rho(mock.truth, radii)
        for i, x in enumerate(RADII_OVER_RHALF):
            for name, ww in (("posterior", np.ones_like(w)), ("jeffreys", w)):
                row = band_row(seed, x, weighted_quantiles(lr[:, i], ww), lt[i])
                rows.append({**row, "method": name, "ess": float(ess)})
        hits = " ".join(f"{r['method'][0]}{int(r['in68'])}{int(r['in95'])}" for r in rows[-10:])
        print(f"seed {seed}: {time.perf_counter() - t0:.0f} s, ESS {ess:.0f}/{len(w)}, {hits}", flush=True)
        if args.rows:
            Path(args.rows).write_text(json.dumps(rows))
    for name in ("posterior", "jeffreys"):
        sel = [r for r in rows if r["method"] == name]
        w68 = [float(np.median([r["w68"] for r in sel if r["r_over_rhalf"] == x])) for x in RADII_OVER_RHALF]
        print(f"{name}: pooled 68 / 95 % {np.mean([r['in68'] for r in sel]):.3f} / "
              f"{np.mean([r['in95'] for r in sel]):.3f}; median w68 [dex] " + " / ".join(f"{v:.3f}" for v in w68))


def posterior_hits(args) -> list[dict]:
    """The posterior's rows (seed, in68, in95 per radius): of a ``jeffreys`` run, or of a calibrate folder."""
    if args.calibration:
        with open(Path(args.calibration) / "calibration.csv", newline="") as fh:
            return [{"seed": int(r["seed"]), "method": "posterior", "in68": r["in68"] == "1", "in95": r["in95"] == "1",
                     "log10_err": float(r["log10_err"])} for r in csv.DictReader(fh) if r["method"] == "baseline"]
    return json.loads(Path(args.rows).read_text()) if args.rows else []


HALO_SHAPE = ("log10_rs", "gamma", "alpha_dm")


def box_edges(prof: ProfileLikelihood, x: np.ndarray) -> list[tuple[str, str, float]]:
    """(name, 'lo' or 'hi', value) of every parameter of ``x`` within 1 % of its box's edge."""
    out = []
    for name, value, (lo, hi) in zip(prof.likelihood.model.names, x, prof.bounds):
        if lo is not None and value - lo < 0.01 * (hi - lo):
            out.append((name, "lo", value))
        elif hi is not None and hi - value < 0.01 * (hi - lo):
            out.append((name, "hi", value))
    return out


def edges(args) -> None:
    rows = posterior_hits(args)
    by_edge: dict[str, list[dict]] = {}
    source, r_half = mock_source(args)
    for seed in range(*args.seeds):
        cat, _ = usable_stars(source.draw(1000, seed).catalog)
        prof = ProfileLikelihood(likelihood_for(cat, Isotropic(), HALO), r_half)
        on = box_edges(prof, prof.best()[0])
        mine = [r for r in rows if r["seed"] == seed and r["method"] == "posterior"]
        hits = "".join(str(int(r["in68"])) for r in mine)
        print(f"seed {seed}: maximum on the box's edge: {', '.join(f'{n} = {v:.2f}' for n, _, v in on) or '-'}; "
              f"posterior 68 % hits at {'/'.join(f'{v:g}' for v in RADII_OVER_RHALF)} R_half: {hits or '?'}",
              flush=True)
        halo = ", ".join(f"{n} {side}" for n, side, _ in on if n in HALO_SHAPE) or "inside"
        by_edge.setdefault(halo, []).extend(mine)
    for where, sel in sorted(by_edge.items()):
        if sel:
            print(f"halo maximum {where}: {len({r['seed'] for r in sel})} mocks, posterior pooled 68 / 95 % "
                  f"{np.mean([r['in68'] for r in sel]):.2f} / {np.mean([r['in95'] for r in sel]):.2f}")


def shape(args) -> None:
    priors = {}
    for p in args.prior:
        name, lo, hi = p.split(":")
        priors[name] = Prior("uniform", float(lo), float(hi))
    source, r_half = mock_source(args)
    r = args.r_over_rhalf * r_half
    art, _ = fit(source, args.seed, priors or None)
    like, names, S = art.likelihood, art.model.names, art.sampler.samples
    prof = ProfileLikelihood(like, r, starts=[S[np.argmax(like.log_likelihood(S))]])
    y_s = prof.log10_value(S)
    y0, lo, hi = prof.interval(0.68)
    p16, p50, p84 = np.percentile(y_s, [16, 50, 84])
    half = 0.5 * (hi - lo)
    print(f"r = {r:.4f} kpc: profile maximum {y0:.4f}, 68 % [{lo:.4f}, {hi:.4f}] (half-width {half:.4f}); "
          f"posterior median {p50:.4f}, 16-84 % [{p16:.4f}, {p84:.4f}] (half-width {0.5 * (p84 - p16):.4f})")
    from scipy import stats

    kde = stats.gaussian_kde(y_s)
    ys = y0 + half * np.array([-3, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 3])
    peak = kde(np.linspace(ys[0], ys[-1], 400)).max()
    print("parameters: " + ", ".join(names))
    for y, p in zip(ys, kde(ys)):
        theta, _ = prof._constrained(float(y))
        near = np.abs(y_s - y) < 0.25 * half
        mean = S[near].mean(0) if near.sum() > 5 else np.full(len(names), np.nan)
        print(f"y - y0 {y - y0:+.4f}: 2 Delta {prof.statistic(float(y)):6.2f}, "
              f"-2 ln p/p_max {-2 * np.log(p / peak):6.2f}"
              f" ({near.sum()} samples) | constrained maximum " + " ".join(f"{v:+.2f}" for v in theta)
              + " | posterior mean " + " ".join(f"{v:+.2f}" for v in mean))


class InverseAlphaModel(BaselineModel):
    """The baseline's model with the sampled ``alpha_dm`` read as s = 1/alpha_dm (a trial prior, not in the package).

    With the box s in [0.02, 2] (alpha_dm from 0.5 to 50) and the density measure on log10_rs and gamma
    only, the prior is flat in s, so the broken power law (s -> 0), where the default measure has no
    volume, is nearly inside the family.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.measure_on = tuple(n for n in self.measure_on if n != "alpha_dm")

    def unpack(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        p = super().unpack(theta)
        p["alpha_dm"] = 1.0 / p["alpha_dm"]
        return p


def inverse_alpha(args) -> None:
    """Posterior coverage with :class:`InverseAlphaModel`, beside the default's calibrate rows (``--calibration``)."""
    import dsphnf.baseline.fit as baseline_fit

    baseline_fit.BaselineModel = InverseAlphaModel  # fit_baseline builds its model from this name
    source, r_half = mock_source(args)
    radii = np.asarray(RADII_OVER_RHALF) * r_half
    default = {}
    for r in posterior_hits(args):
        default.setdefault(r["seed"], []).append(r)
    rows = []
    for seed in range(*args.seeds):
        t0 = time.perf_counter()
        art, mock = fit(source, seed, {"alpha_dm": Prior("uniform", 0.02, 2.0)})
        theta, _, lr = posterior_draws(art, radii, seed)
        q = np.percentile(lr, [100 * x for x in QUANTILES], axis=0)
        lt = true_log10_rho(mock.truth, radii)
        mine = [band_row(seed, x, q[:, i], lt[i]) for i, x in enumerate(RADII_OVER_RHALF)]
        rows += mine
        alpha = art.model.unpack(theta)["alpha_dm"]
        hits = lambda sel, k: "".join(str(int(r[k])) for r in sel)  # noqa: E731
        mine_d = default.get(seed, [])
        print(f"seed {seed}: {time.perf_counter() - t0:.0f} s; 68 / 95 % hits {hits(mine, 'in68')} / "
              f"{hits(mine, 'in95')} (default {hits(mine_d, 'in68') or '?'} / {hits(mine_d, 'in95') or '?'}); "
              f"alpha_dm median {np.median(alpha):.2f}, P(alpha_dm > 3) {np.mean(alpha > 3):.2f}", flush=True)
        if args.rows:
            Path(args.rows).write_text(json.dumps(rows))
    both = [r for sd in range(*args.seeds) for r in default.get(sd, [])]
    for name, sel in (("1/alpha flat", rows), ("default", both)):
        if sel:
            print(f"{name}: pooled 68 / 95 % {np.mean([r['in68'] for r in sel]):.3f} / "
                  f"{np.mean([r['in95'] for r in sel]):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("jeffreys", "edges", "shape", "inverse-alpha"))
    ap.add_argument("model", nargs="?", default=None, help="a named mock of dsphnf.mocks (e.g. PlumCuspIso)")
    ap.add_argument("--halo", default=None, help="instead of a model: the mocks' halo spec (isotropic orbits)")
    ap.add_argument("--tracer", default=None, help="with --halo: the mocks' tracer spec")
    ap.add_argument("--seeds", type=int, nargs=2, default=(0, 20), help="realisations [a, b)")
    ap.add_argument("--rows", default=None, help="JSON of the jeffreys rows (written by jeffreys, read by edges)")
    ap.add_argument("--calibration", default=None,
                    help="edges, inverse-alpha: a `dsphnf calibrate --method baseline` folder")
    ap.add_argument("--seed", type=int, default=0, help="shape: the realisation")
    ap.add_argument("--r-over-rhalf", type=float, default=1.0, help="shape: the radius in R_half")
    ap.add_argument("--prior", nargs="*", default=[], help="shape: boxes NAME:LO:HI replacing the default")
    args = ap.parse_args()
    {"jeffreys": jeffreys, "edges": edges, "shape": shape, "inverse-alpha": inverse_alpha}[args.what](args)


if __name__ == "__main__":
    main()
