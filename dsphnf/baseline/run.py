"""End-to-end baseline: catalogue -> emcee posterior -> profiles, summary, chain, plots.

:func:`fit_baseline` runs the sampler and returns a :class:`BaselineResult`;
:func:`posterior_profiles` turns posterior draws into the percentile bands of
``profile.csv``; :func:`write_outputs` writes the output folder atomically.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
from scipy import special

from ..anisotropy import anisotropy_from
from ..catalog import Catalog
from ..kinematics import ml_dispersion, weighted_median
from ..errors import FitError
from ..outputs import atomic_dir, write_csv, write_json
from .likelihood import BaselineLikelihood
from .model import BaselineModel, Prior, read_priors
from .sampler import SamplerResult, run_emcee

__all__ = ["BaselineResult", "fit_baseline", "posterior_profiles", "write_outputs", "run_baseline",
           "PROFILE_COLUMNS"]

#: Columns of profile.csv, shared with ``dsphnf fit``.
PROFILE_COLUMNS = ["r", "nu", "sigma_r", "beta", "M", "M_lo", "M_hi", "rho", "rho_lo", "rho_hi",
                   "rho_lo95", "rho_hi95"]


@dataclass
class BaselineResult:
    """A finished baseline fit: the model, likelihood, sampler output and settings."""

    model: BaselineModel
    likelihood: BaselineLikelihood
    sampler: SamplerResult
    settings: dict


def fit_baseline(catalog: Catalog, anisotropy: str = "isotropic", halo: str = "zhao", *,
                 priors: str | Path | Mapping[str, Prior] | None = None, max_steps: int = 20000,
                 nwalkers: int = 32, seed: int = 0, progress: bool | None = None,
                 check_every: int = 250) -> BaselineResult:
    """Sample the parametric Jeans posterior of ``catalog``.

    Parameters
    ----------
    catalog : Catalog
        Stars with x, y [kpc] and vz [km/s] (optional vz_err, p_member).
    anisotropy : str
        ``isotropic``, ``constant:B``, ``constant``, ``om:RA`` or ``om``.
    halo : {'zhao', 'nfw', 'cored'}
    priors : path or mapping, optional
        Prior overrides (JSON/TOML file, see :func:`dsphnf.baseline.read_priors`).
    max_steps, nwalkers, seed, progress, check_every
        Passed to :func:`dsphnf.baseline.sampler.run_emcee`.
    """
    if not catalog.has_velocities:
        raise FitError(f"{catalog.source}: the baseline needs line-of-sight velocities (column vz)")
    if catalog.n < 10:
        raise FitError(f"{catalog.source}: only {catalog.n} stars; the baseline needs at least 10")
    if isinstance(priors, (str, Path)):
        priors = read_priors(priors)
    model = BaselineModel(halo, anisotropy_from(anisotropy), priors)
    R = catalog.R
    if np.any(R <= 0):
        keep = R > 0
        catalog = catalog.subset(keep)
        R = catalog.R
    w = catalog.weights
    like = BaselineLikelihood(model, R, catalog.vz, catalog.vz_err, w)
    mu, _, sig, _ = ml_dispersion(catalog.vz, catalog.vz_err, w)
    x0 = model.initial_guess(weighted_median(R, w), max(sig, 1.0), mu)
    scales = np.array([0.05 * model.priors[n].width() for n in model.names])
    res = run_emcee(like, x0, model.names, scales, nwalkers=nwalkers, max_steps=max_steps, seed=seed,
                    progress=progress, check_every=check_every)
    settings = {"halo": model.halo, "anisotropy": model.anisotropy_spec, "max_steps": int(max_steps),
                "nwalkers": int(res.chain.shape[1]), "seed": int(seed), "n_stars": int(catalog.n),
                "n_eff": float(w.sum()), "R_min_kpc": like.R_min, "R_max_kpc": like.R_max,
                "source": str(catalog.source), "priors": model.describe()}
    return BaselineResult(model, like, res, settings)


def _draws(result: BaselineResult, n_draws: int, seed: int) -> np.ndarray:
    s = result.sampler.samples
    rng = np.random.default_rng(seed)
    if len(s) > n_draws:
        s = s[rng.choice(len(s), n_draws, replace=False)]
    return s


def posterior_profiles(result: BaselineResult, r: np.ndarray | None = None, n_draws: int = 1000,
                       seed: int = 0) -> dict[str, np.ndarray]:
    """Posterior median and percentile bands of the profiles on a radial grid.

    Parameters
    ----------
    result : BaselineResult
    r : ndarray, optional
        Radii [kpc] (default: 64 log-spaced points over the data's projected
        radial range [R_min, R_max]).
    n_draws : int
        Posterior draws used.

    Returns
    -------
    dict
        :data:`PROFILE_COLUMNS`: ``r`` [kpc]; ``nu`` [kpc^-3, one star];
        ``sigma_r`` [km/s]; ``beta``; ``M`` [Msun] with ``M_lo``/``M_hi``
        (16/84%); ``rho`` [Msun/kpc^3] with 16/84% (``rho_lo``/``rho_hi``)
        and 2.5/97.5% (``rho_lo95``/``rho_hi95``) percentiles.
    """
    like, model = result.likelihood, result.model
    if r is None:
        r = np.geomspace(like.R_min, like.R_max, 64)
    r = np.asarray(r, dtype=float)
    proj = like.proj
    if r.min() < proj.r[0] or r.max() > proj.r[-1]:
        raise ValueError("profile radii must lie inside the likelihood's radial grid")
    theta = _draws(result, n_draws, seed)
    ur = np.log(r)
    cols = {k: [] for k in ("nu", "sigma_r", "beta", "M", "rho")}
    for chunk in np.array_split(theta, max(1, len(theta) // 100)):
        p = model.unpack(chunk)
        prof = proj.profiles(p, model.aniso_kind)
        a, g, b = p["alpha_star"], p["gamma_star"], p["beta_star"]
        pp, qq = (3.0 - g) / a, (b - 3.0) / a
        log_ntot = np.log(4.0 * np.pi * p["rstar"] ** 3 / a) + special.betaln(pp, qq)
        interp = lambda f: np.array([np.interp(ur, proj.u, row) for row in f])
        lnu = interp(prof["log_nu"])
        cols["nu"].append(np.exp(lnu - log_ntot[:, None]))
        cols["sigma_r"].append(np.sqrt(np.exp(interp(prof["log_p"]) - lnu)))
        cols["beta"].append(interp(np.broadcast_to(prof["beta"], prof["log_nu"].shape)))
        cols["M"].append(np.exp(interp(prof["log_M"])))
        cols["rho"].append(np.exp(interp(prof["log_rho"])))
    cols = {k: np.concatenate(v, axis=0) for k, v in cols.items()}
    pct = lambda k, q: np.percentile(cols[k], q, axis=0)
    return {
        "r": r, "nu": pct("nu", 50), "sigma_r": pct("sigma_r", 50), "beta": pct("beta", 50),
        "M": pct("M", 50), "M_lo": pct("M", 16), "M_hi": pct("M", 84),
        "rho": pct("rho", 50), "rho_lo": pct("rho", 16), "rho_hi": pct("rho", 84),
        "rho_lo95": pct("rho", 2.5), "rho_hi95": pct("rho", 97.5),
    }


def j_factor_band(result: BaselineResult, distance: float, theta_deg: float = 0.5, n_draws: int = 200,
                  seed: int = 0) -> dict[str, float]:
    """Posterior of log10 J(theta) [GeV^2 cm^-5] for a halo at ``distance`` [kpc].

    Draws whose J diverges (inner slope >= 1.5, detected by
    :func:`dsphnf.jfactor.log10_j_factor`, which raises) are left out and
    counted in ``n_divergent``, as the flow's J band leaves out such members,
    so that a prior allowing steep cusps cannot abort the analysis. A large
    count means the upper tail of J is unbounded and the band is a lower bound.
    """
    from ..jfactor import log10_j_factor
    from ..profiles import Zhao

    theta = _draws(result, n_draws, seed)
    p = result.model.unpack(theta)
    vals, n_div, why = [], 0, ""
    for i in range(len(theta)):
        halo = Zhao(p["rho0"][i], p["rs"][i], p["alpha_dm"][i], p["beta_dm"][i], p["gamma"][i])
        try:
            vals.append(log10_j_factor(halo.density, distance, theta_deg))
        except ValueError as exc:  # the J integral diverges at the centre
            n_div, why = n_div + 1, str(exc)
    if not vals:
        raise FitError(f"no posterior draw has a finite J-factor ({why})")
    q = np.percentile(vals, [2.5, 16, 50, 84, 97.5])
    return {"distance_kpc": float(distance), "theta_deg": float(theta_deg), "n_draws": int(len(vals)),
            "n_divergent": int(n_div), "median": q[2], "lo": q[1], "hi": q[3], "lo95": q[0], "hi95": q[4]}


def summary_dict(result: BaselineResult, wall_s: float, jband: dict | None = None) -> dict:
    """The content of summary.json."""
    s = result.sampler
    post = {}
    samples = s.samples
    for i, n in enumerate(s.names):
        q = np.percentile(samples[:, i], [2.5, 16, 50, 84, 97.5])
        post[n] = {"median": q[2], "lo": q[1], "hi": q[3], "lo95": q[0], "hi95": q[4], "map": s.theta_map[i]}
    out = {
        "method": "parametric Jeans baseline (emcee)",
        "settings": result.settings,
        "fixed": result.model.fixed,
        "parameters": post,
        "sampler": {
            "n_steps": int(s.chain.shape[0]), "n_walkers": int(s.chain.shape[1]), "burn": int(s.burn),
            "thin": int(s.thin), "acceptance_fraction": s.acceptance, "converged": bool(s.converged),
            "tau": dict(zip(s.names, s.tau.tolist())), "ess": dict(zip(s.names, s.ess.tolist())),
            "ess_min": float(np.min(s.ess)), "n_samples": int(len(samples)),
            "sampler_wall_s": s.wall_s,
        },
        "wall_s": wall_s,
        "units": {"r": "kpc", "rho": "Msun/kpc^3", "M": "Msun", "sigma_r": "km/s", "nu": "kpc^-3 (one star)",
                  "J": "log10 GeV^2 cm^-5"},
    }
    if jband is not None:
        out["log10_J"] = jband
    return out


def write_outputs(result: BaselineResult, out: str | Path, wall_s: float, distance: float | None = None,
                  n_draws: int = 1000, seed: int = 0, plots: bool = True) -> dict:
    """Write profile.csv, summary.json, chain.npz, corner.png, profiles.png into ``out`` atomically."""
    prof = posterior_profiles(result, n_draws=n_draws, seed=seed)
    jband = j_factor_band(result, distance, seed=seed) if distance is not None else None
    summary = summary_dict(result, wall_s, jband)
    s = result.sampler
    with atomic_dir(out) as tmp:
        write_csv(tmp / "profile.csv", {k: prof[k] for k in PROFILE_COLUMNS})
        write_json(tmp / "summary.json", summary)
        np.savez_compressed(tmp / "chain.npz", chain=s.chain, log_prob=s.log_prob, names=np.array(s.names),
                            burn=s.burn, thin=s.thin, tau=s.tau)
        if plots:
            from .plots import corner_plot, profile_plot

            corner_plot(s.samples, s.names, tmp / "corner.png")
            profile_plot(prof, tmp / "profiles.png", title=f"baseline: {result.settings['halo']} halo, "
                                                            f"{result.settings['anisotropy']}")
    return summary


def run_baseline(catalog: Catalog, out: str | Path, anisotropy: str = "isotropic", halo: str = "zhao", *,
                 priors=None, max_steps: int = 20000, nwalkers: int = 32, seed: int = 0,
                 distance: float | None = None, progress: bool | None = None) -> dict:
    """Fit and write the output folder; returns the summary dictionary."""
    if distance is not None and not distance > 0:
        raise FitError(f"--distance must be > 0 kpc, got {distance}")
    t0 = time.perf_counter()
    result = fit_baseline(catalog, anisotropy, halo, priors=priors, max_steps=max_steps, nwalkers=nwalkers,
                          seed=seed, progress=progress)
    if distance is not None:
        result.settings["distance_kpc"] = float(distance)
    return write_outputs(result, out, time.perf_counter() - t0, distance=distance, seed=seed)
