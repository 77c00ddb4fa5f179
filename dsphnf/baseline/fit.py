"""End to end: a star catalogue -> the emcee posterior -> the shared :class:`dsphnf.result.Result`.

:func:`fit_baseline` is the public boundary of the baseline: it parses the
anisotropy once (:func:`dsphnf.anisotropy.anisotropy_from`), samples the
parametric Jeans posterior (:mod:`dsphnf.baseline.sampler`) and returns a
result with method ``"baseline"``: posterior percentile bands of the
profiles, a summary in the common schema and the
:class:`~dsphnf.baseline.artefacts.BaselineArtefacts` (model, likelihood,
sampler) that save chain.npz, posterior.nc, corner.png and profiles.png.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ..anisotropy import AnisotropySpec, anisotropy_from
from ..catalog import Catalog
from ..errors import FitError
from ..kinematics import ml_dispersion, weighted_median
from ..provenance import machine, software_versions
from ..result import MIN_STARS, Result
from .artefacts import BaselineArtefacts, percentile_band
from .likelihood import BaselineLikelihood
from .losvd import DEFAULT_LOSVD, kurtosis_of
from .mixture import Foreground, MixtureLikelihood, velocity_core
from .model import DEFAULT_HALO, BaselineModel
from .priors import Prior, read_priors
from .profile_likelihood import profile_bands, profile_refusal
from .sampler import SamplerResult, run_emcee

__all__ = ["fit_baseline"]

#: Units of the profile columns and of J, recorded in summary.json.
UNITS = {"r": "kpc", "rho": "Msun/kpc^3", "M": "Msun", "sigma_r": "km/s", "nu": "kpc^-3 (one star)",
         "J": "log10 GeV^2 cm^-5"}


def fit_baseline(catalog: Catalog, anisotropy: str | AnisotropySpec | Callable | None = "isotropic",
                 halo: str = DEFAULT_HALO, *, priors: str | Path | Mapping[str, Prior] | None = None,
                 max_steps: int = 20000, nwalkers: int = 32, seed: int = 0, distance: float | None = None,
                 progress: bool | None = None, check_every: int = 250, n_draws: int = 1000,
                 foreground: Foreground | None = None, profile_likelihood: int = 0,
                 losvd: str = DEFAULT_LOSVD) -> Result:
    """Sample the parametric Jeans posterior of ``catalog`` and summarise it.

    Parameters
    ----------
    catalog : Catalog
        Stars with x, y [kpc] and vz [km/s] (optional vz_err [km/s], p_member).
    anisotropy : str, Anisotropy, Inferred, callable or None
        In the grammar of :mod:`dsphnf.anisotropy`: any given model
        (``isotropic``, ``constant:B``, ``om:RA``, ``cuddeford:B0,RA``,
        ``baes:B0,BINF,RA,ETA``, a callable beta(r [kpc])) or an inferred
        ``constant``, ``om``, ``cuddeford`` or ``baes``.
    halo : {'zhao-alpha', 'zhao', 'nfw', 'cored'}
        The halo family (:data:`dsphnf.baseline.model.HALOS`): default ``zhao-alpha``, a Zhao
        halo with its transition sharpness free; ``zhao`` the gNFW (alpha_dm = 1).
    priors : path or mapping, optional
        Prior overrides (JSON/TOML file, see :func:`dsphnf.baseline.read_priors`).
        By default the halo prior is flat in the log density at R_half/4,
        R_half and 4 R_half (R_half: the stars' weighted median projected
        radius; :mod:`dsphnf.baseline.halo_measure`); ``halo_measure =
        "flat"`` makes it flat in log10 rho0, log10 r_s and gamma instead.
    max_steps, nwalkers, seed, progress, check_every
        Passed to :func:`dsphnf.baseline.sampler.run_emcee` (``seed`` also
        picks the posterior draws of the bands).
    distance : float, optional
        Distance [kpc]: adds ``summary["jfactor"]``, log10 J(0.5 deg) from 200
        posterior draws (draws whose J diverges are counted as left out).
    n_draws : int
        Posterior draws behind the profile bands.
    foreground : Foreground, optional
        A broad Gaussian foreground in v_z mixed into the likelihood
        (:class:`~dsphnf.baseline.mixture.MixtureLikelihood`); a free
        fraction is sampled as ``f_fg``.  None (the default): members only.
    profile_likelihood : int
        If > 0, also rho(r) and M(<r) from the likelihood alone at this many
        radii, log-spaced over the data's projected range: the maximum with
        68/95 % profile-likelihood intervals (no prior;
        :mod:`dsphnf.baseline.profile_likelihood`), in
        ``artefacts.likelihood_bands`` and profile_likelihood.csv.
        On the calibration mocks these intervals cover nominally where the
        posterior bands undercover (benchmarks/calibration_baseline.md).
        Not with a foreground.
    losvd : {'gaussian', 'kurtosis', 'kurtosis-radial'}
        The line-of-sight velocity distribution (:mod:`dsphnf.baseline.losvd`):
        Gaussian (default), or heavy-tailed with its kurtosis (>= 3) a free
        parameter, for haloes whose stars' velocities have heavy tails (a
        Gaussian likelihood's bands on a dispersion are then too narrow), or
        with its kurtosis at R_half/4 and 4 R_half free (tails that change
        with radius).

    Returns
    -------
    Result
        Method ``"baseline"``; ``profile`` holds ``r`` [kpc] (64 log-spaced
        radii over the data's projected range) and the median with 68 % and
        95 % bands of ``nu``, ``sigma_r``, ``beta``, ``M``, ``rho``;
        ``artefacts`` is a :class:`BaselineArtefacts`.

    Raises
    ------
    FitError, AnisotropyError
        One line, for bad settings, an unsupported anisotropy or unusable data.

    Examples
    --------
    >>> from dsphnf.mocks import draw_mock
    >>> mock = draw_mock("PlumCoreOm", n=200, seed=1, verr=2.0)
    >>> res = fit_baseline(mock.catalog, "om:0.3", "nfw", max_steps=20, nwalkers=16, progress=False, n_draws=50)
    >>> res.method, res.summary["settings"]["anisotropy"], res.artefacts.sampler.chain.shape[:2]
    ('baseline', 'om:0.3', (20, 16))
    """
    t0 = time.perf_counter()
    _check_settings(max_steps, nwalkers, distance, n_draws)
    if profile_likelihood < 0 or (profile_likelihood and foreground is not None):
        raise FitError("profile_likelihood takes a number of radii >= 0, and no foreground")
    if profile_likelihood and profile_refusal(halo.strip().lower()):
        raise FitError(profile_refusal(halo.strip().lower()))
    if isinstance(priors, (str, Path)):
        priors = read_priors(priors)
    catalog, n_centre = usable_stars(catalog)
    like = likelihood_for(catalog, anisotropy, halo, priors=priors, foreground=foreground, losvd=losvd)
    model = like.model
    sampler = _sample(model, like, catalog, max_steps=max_steps, nwalkers=nwalkers, seed=seed,
                      progress=progress, check_every=check_every)
    artefacts = BaselineArtefacts(model, like, sampler)
    timings = {"sampler_s": sampler.wall_s}
    if profile_likelihood:
        t1 = time.perf_counter()
        radii = np.geomspace(like.R_min, like.R_max, profile_likelihood)
        artefacts.likelihood_bands = profile_bands(like, radii, starts=[sampler.theta_map], quantities=("rho", "M"))
        timings["profile_likelihood_s"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    profile = artefacts.profile_at(None, n_draws=n_draws, seed=seed)
    timings["profiles_s"] = time.perf_counter() - t1
    jband = None
    if distance is not None:
        t1 = time.perf_counter()
        jband = artefacts.jfactor(float(distance), seed=seed)
        timings["jfactor_s"] = time.perf_counter() - t1
    timings["total_s"] = time.perf_counter() - t0
    settings = {"anisotropy": model.anisotropy_spec, "halo": model.halo, "losvd": model.losvd,
                "max_steps": int(max_steps),
                "nwalkers": int(sampler.chain.shape[1]), "seed": int(seed), "check_every": int(check_every),
                "n_draws": int(n_draws), "priors": model.describe(), "fixed": model.fixed,
                "profile_likelihood_radii": int(profile_likelihood)}
    if distance is not None:
        settings["distance_kpc"] = float(distance)
    if foreground is not None:
        settings["foreground"] = foreground.spec()
    summary = _summary(catalog, like, sampler, settings, timings, n_centre)
    if jband is not None:
        summary["jfactor"] = jband
    return Result("baseline", profile, summary, artefacts)


def _check_settings(max_steps: int, nwalkers: int, distance: float | None, n_draws: int) -> None:
    """One-line errors for settings no run can use (before any data are touched)."""
    if max_steps < 10:
        raise FitError(f"--steps (max_steps) must be at least 10, got {max_steps}")
    if nwalkers < 4:
        raise FitError(f"--walkers (nwalkers) must be at least 4, got {nwalkers}")
    if distance is not None and not distance > 0:
        raise FitError(f"--distance must be > 0 kpc, got {distance}")
    if n_draws < 10:
        raise FitError(f"n_draws must be at least 10, got {n_draws}")


def usable_stars(catalog: Catalog) -> tuple[Catalog, int]:
    """The stars the likelihood can use (R > 0, velocities) and how many sat at R = 0."""
    if not catalog.has_velocities:
        raise FitError(f"{catalog.source}: the baseline needs line-of-sight velocities (column vz)")
    at_centre = ~(catalog.R > 0)
    if np.any(at_centre):
        catalog = catalog.subset(~at_centre)
    if catalog.n < MIN_STARS:
        raise FitError(f"{catalog.source}: only {catalog.n} stars with R > 0; the baseline needs at least {MIN_STARS}")
    return catalog, int(at_centre.sum())


def likelihood_for(catalog: Catalog, anisotropy: str | AnisotropySpec | Callable | None = "isotropic",
                   halo: str = DEFAULT_HALO, *, priors: Mapping[str, Prior] | None = None,
                   foreground: Foreground | None = None, losvd: str = DEFAULT_LOSVD) -> BaselineLikelihood:
    """The baseline's likelihood of the stars of ``catalog`` (already :func:`usable_stars`).

    The one place that builds it, for :func:`fit_baseline` and for callers
    that need the likelihood alone (``dsphnf calibrate --method profile``):
    the model's prior measure uses the stars' weighted median projected
    radius [kpc]; ``losvd`` is the velocity distribution's shape
    (:data:`dsphnf.baseline.losvd.LOSVD_SHAPES`); with ``foreground`` the likelihood is a
    :class:`~dsphnf.baseline.mixture.MixtureLikelihood`.

    Examples
    --------
    >>> from dsphnf.mocks import draw_mock
    >>> cat, _ = usable_stars(draw_mock("NonPlumCuspIso", n=200, seed=1).catalog)
    >>> like = likelihood_for(cat, "isotropic", "nfw")
    >>> like.model.halo, like.R.size
    ('nfw', 200)
    """
    model = BaselineModel(halo, anisotropy_from(anisotropy), priors,
                          r_half=weighted_median(catalog.R, catalog.weights), losvd=losvd)
    if foreground is None:
        return BaselineLikelihood(model, catalog.R, catalog.vz, catalog.vz_err, catalog.weights)
    return MixtureLikelihood(model, catalog.R, catalog.vz, catalog.vz_err, catalog.weights, foreground)


def _sample(model: BaselineModel, like: BaselineLikelihood, catalog: Catalog, **kwargs: Any) -> SamplerResult:
    """MAP + emcee, started from the data's scales (median radius, ML dispersion and mean)."""
    w = catalog.weights
    mixture = isinstance(like, MixtureLikelihood)
    if mixture:  # start from the members' velocity peak, not the foreground's spread
        mu_c, s_c = velocity_core(catalog.vz)
        w = w * (np.abs(catalog.vz - mu_c) < 3.0 * s_c)
    mu, _, sig, _ = ml_dispersion(catalog.vz, catalog.vz_err, w)
    x0 = model.initial_guess(weighted_median(catalog.R, w), max(sig, 1.0), mu)
    scales = np.array([0.05 * model.priors[n].width() for n in model.names])
    names = list(model.names)
    if mixture and like.foreground.fraction is None:  # the free foreground fraction, started at the stars outside
        f0 = float(np.clip(1.0 - w.sum() / catalog.weights.sum(), 0.02, 0.9))
        x0, scales, names = np.append(x0, f0), np.append(scales, 0.05), like.names
    return run_emcee(like, x0, names, scales, **kwargs)


def _summary(catalog: Catalog, like: BaselineLikelihood, s: SamplerResult, settings: dict,
             timings: dict, n_centre: int) -> dict:
    """summary.json in the common schema of :mod:`dsphnf.result`."""
    samples = s.samples
    q = percentile_band(samples)
    post = {n: {"median": q[""][i], "lo": q["_lo"][i], "hi": q["_hi"][i], "lo95": q["_lo95"][i],
                "hi95": q["_hi95"][i], "map": s.theta_map[i]} for i, n in enumerate(s.names)}
    sampler = {
        "n_steps": int(s.chain.shape[0]), "n_walkers": int(s.chain.shape[1]), "burn": int(s.burn),
        "thin": int(s.thin), "acceptance_fraction": s.acceptance, "converged": bool(s.converged),
        "tau": dict(zip(s.names, s.tau.tolist())), "ess": dict(zip(s.names, s.ess.tolist())),
        "ess_min": float(np.min(s.ess)), "n_samples": int(len(samples)),
    }
    data = {"R_min_kpc": like.R_min, "R_max_kpc": like.R_max, "n_stars_left_out": n_centre,
            "left_out_because": "R = 0 (no projected radius)" if n_centre else ""}
    w = like.w * (like.member_probability(s.theta_map)[0] if isinstance(like, MixtureLikelihood) else 1.0)
    losvd = {"shape": like.model.losvd,  # the velocities' kurtosis about the MAP model (Gaussian LOSVD: 3)
             "kurtosis_about_map": kurtosis_of(like.standardised_velocities(s.theta_map), w)}
    return {"method": "baseline", "source": str(catalog.source), "n_stars": int(catalog.n),
            "n_eff": float(catalog.weights.sum()), "kinematic": True, "settings": settings, "timings_s": timings,
            "diagnostics": {"sampler": sampler, "parameters": post, "data": data, "losvd": losvd}, "units": UNITS,
            "versions": software_versions(), "machine": machine()}
