"""What a baseline fit leaves beside its profiles: the model, the likelihood and the emcee chain.

:class:`BaselineArtefacts` implements the :class:`dsphnf.result.Artefacts`
protocol: it saves the chain as ``chain.npz`` and as an ArviZ InferenceData
netCDF file ``posterior.nc`` (posterior and warm-up draws, log-posterior
``lp`` as a sample statistic), so that ArviZ's diagnostics (``az.ess``,
``az.rhat``, ``az.plot_trace``, ...) work on a saved run, and draws
``corner.png`` (the ``corner`` package) and ``profiles.png``.  It also reads
posterior quantities off the chain: profile bands at any radii
(:meth:`~BaselineArtefacts.profile_at`) and the J-factor band
(:meth:`~BaselineArtefacts.jfactor`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import special

from ..result import band_columns, j_band
from .likelihood import BaselineLikelihood
from .model import BaselineModel
from .sampler import SamplerResult

if TYPE_CHECKING:  # pragma: no cover
    from ..result import Result

__all__ = ["BaselineArtefacts", "BAND_PERCENTILES", "percentile_band"]

#: Percentiles of a posterior band: 95 % low, 68 % low, median, 68 % high, 95 % high.
BAND_PERCENTILES = (2.5, 16.0, 50.0, 84.0, 97.5)
#: Profile quantities with bands.
BAND_KEYS = ("nu", "sigma_r", "sigma_t", "beta", "M", "rho")


def _draws(samples: np.ndarray, n_draws: int, seed: int) -> np.ndarray:
    """At most ``n_draws`` posterior samples, chosen without replacement with ``seed``."""
    rng = np.random.default_rng(seed)
    if len(samples) > n_draws:
        samples = samples[rng.choice(len(samples), n_draws, replace=False)]
    return samples


def percentile_band(values: np.ndarray) -> dict[str, np.ndarray]:
    """Median and 68/95 % percentile limits along axis 0, keyed by band suffix ('' is the median)."""
    q = np.percentile(values, BAND_PERCENTILES, axis=0)
    return {"_lo95": q[0], "_lo": q[1], "": q[2], "_hi": q[3], "_hi95": q[4]}


@dataclass
class BaselineArtefacts:
    """Model, likelihood and sampler output of a baseline fit (see the module docstring).

    Attributes
    ----------
    model : BaselineModel
    likelihood : BaselineLikelihood
    sampler : SamplerResult
        The chain (burn-in included), log-posterior, tau, ESS, MAP point.
    likelihood_bands : dict or None
        rho(r) and M(<r) from the likelihood alone, the maximum with 68/95 % profile-likelihood
        intervals (:func:`~dsphnf.baseline.profile_likelihood.profile_bands`), when asked for.
    """

    model: BaselineModel
    likelihood: BaselineLikelihood
    sampler: SamplerResult
    likelihood_bands: dict[str, np.ndarray] | None = None

    def profile_at(self, r: np.ndarray | None = None, n_draws: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
        """Posterior median and 68/95 % bands of the profiles at radii ``r`` [kpc].

        Parameters
        ----------
        r : ndarray, optional
            Radii [kpc] inside the likelihood's radial grid (default: 64
            log-spaced points over the data's projected range [R_min, R_max]).
        n_draws : int
            Posterior draws used (chosen with ``seed``).

        Returns
        -------
        dict
            ``r`` and, for ``nu`` [kpc^-3, one star], ``sigma_r``, ``sigma_t`` [km/s],
            ``beta``, ``M`` [Msun] and ``rho`` [Msun/kpc^3], the median and
            the columns ``_lo``/``_hi`` (16/84 %) and ``_lo95``/``_hi95``
            (2.5/97.5 %) of :func:`dsphnf.result.band_columns`.
        """
        like = self.likelihood
        r = np.geomspace(like.R_min, like.R_max, 64) if r is None else np.asarray(r, dtype=float)
        proj = like.proj
        if r.min() < proj.r[0] or r.max() > proj.r[-1]:
            raise ValueError("profile radii must lie inside the likelihood's radial grid")
        theta = _draws(self.sampler.samples, n_draws, seed)
        cols: dict[str, list[np.ndarray]] = {k: [] for k in BAND_KEYS}
        for chunk in np.array_split(theta, max(1, len(theta) // 100)):
            for k, v in self._draw_profiles(chunk, np.log(r)).items():
                cols[k].append(v)
        out = {"r": r}
        for k in BAND_KEYS:
            for suffix, v in percentile_band(np.concatenate(cols[k], axis=0)).items():
                out[k + suffix] = v
        return {k: out[k] for k in ["r"] + [c for key in BAND_KEYS for c in band_columns(key)]}

    def _draw_profiles(self, theta: np.ndarray, ur: np.ndarray) -> dict[str, np.ndarray]:
        """nu (normalised to one star), sigma_r, sigma_t (one tangential component,
        sigma_r sqrt(1 - beta)) [km/s], beta, M and rho of each draw at ln r = ``ur``."""
        model, proj = self.model, self.likelihood.proj
        p = model.unpack(theta)
        prof = proj.profiles(p, model.anisotropy)
        a, g, b = p["alpha_star"], p["gamma_star"], p["beta_star"]
        log_ntot = np.log(4.0 * np.pi * p["rstar"] ** 3 / a) + special.betaln((3.0 - g) / a, (b - 3.0) / a)
        interp = lambda f: np.array([np.interp(ur, proj.u, row) for row in f])  # noqa: E731
        lnu = interp(prof["log_nu"])
        sigma_r, beta = np.sqrt(np.exp(interp(prof["log_p"]) - lnu)), interp(prof["beta"])
        return {"nu": np.exp(lnu - log_ntot[:, None]), "sigma_r": sigma_r,
                "sigma_t": sigma_r * np.sqrt(np.clip(1.0 - beta, 0.0, None)), "beta": beta,
                "M": np.exp(interp(prof["log_M"])), "rho": np.exp(interp(prof["log_rho"]))}

    def jfactor(self, distance: float, theta_deg: float = 0.5, n_draws: int = 200, seed: int = 0) -> dict[str, Any]:
        """log10 J(theta) [GeV^2 cm^-5] of posterior halos at ``distance`` [kpc], in the :func:`dsphnf.result.j_band` schema.

        Draws whose J diverges (inner slope >= 1.5: :func:`dsphnf.jfactor.log10_j_factor`
        raises) are counted in ``n_left_out``, so that a prior allowing steep
        cusps cannot abort the analysis; a large count means the upper tail of
        J is unbounded and the band is a lower bound.  Limits are percentiles.
        """
        from ..jfactor import log10_j_factor
        from .halo_family import halo_object

        theta = _draws(self.sampler.samples, n_draws, seed)
        p = self.model.unpack(theta)
        values = []
        for i in range(len(theta)):
            halo = halo_object(p, i)
            try:
                values.append(log10_j_factor(halo.density, distance, theta_deg))
            except ValueError:  # the J integral diverges at the centre
                continue
        limits = lambda v: {k: float(x) for k, x in percentile_band(v).items() if k}  # noqa: E731
        return j_band(values, distance, theta_deg, len(theta), limits)

    def inference_data(self):
        """The chain as ArviZ InferenceData (walkers as chains; burn-in as the warm-up groups)."""
        with warnings.catch_warnings():  # arviz 0.x announces its 1.0 refactor on import
            warnings.simplefilter("ignore", FutureWarning)
            import arviz as az
        s = self.sampler
        chain, lp = np.swapaxes(s.chain, 0, 1), s.log_prob.T  # (walker, step, ...)
        groups = {
            "posterior": {n: chain[:, s.burn:, i] for i, n in enumerate(s.names)},
            "sample_stats": {"lp": lp[:, s.burn:]},
            "warmup_posterior": {n: chain[:, :s.burn, i] for i, n in enumerate(s.names)},
            "warmup_sample_stats": {"lp": lp[:, :s.burn]},
        }
        attrs = {"inference_library": "emcee", "burn": int(s.burn), "thin": int(s.thin),
                 "anisotropy": self.model.anisotropy_spec, "halo": self.model.halo}
        with warnings.catch_warnings():  # a short run has more walkers than draws, which arviz flags
            warnings.filterwarnings("ignore", message="More chains", category=UserWarning)
            if int(az.__version__.split(".")[0]) < 1:  # InferenceData (Python 3.11 gets arviz 0.x)
                return az.from_dict(**groups, save_warmup=True, attrs=attrs)
            return az.from_dict(groups, save_warmup=True, attrs={"/": attrs, "posterior": attrs})  # DataTree

    def write_into(self, folder: Path) -> list[str]:
        """chain.npz (chain, log_prob, names, burn, thin, tau), posterior.nc (ArviZ, netCDF via h5netcdf)
        and, when computed, profile_likelihood.csv (:attr:`likelihood_bands`)."""
        from ..outputs import write_csv

        folder, s = Path(folder), self.sampler
        np.savez_compressed(folder / "chain.npz", chain=s.chain, log_prob=s.log_prob, names=np.array(s.names),
                            burn=s.burn, thin=s.thin, tau=s.tau)
        self.inference_data().to_netcdf(str(folder / "posterior.nc"), engine="h5netcdf")
        names = ["chain.npz", "posterior.nc"]
        if self.likelihood_bands is not None:
            write_csv(folder / "profile_likelihood.csv", self.likelihood_bands)
            names.append("profile_likelihood.csv")
        return names

    def plot_into(self, result: "Result", folder: Path) -> list[str]:
        """corner.png of the posterior samples and profiles.png of the bands."""
        from .plots import corner_plot, profile_plot

        folder, s, settings = Path(folder), self.sampler, result.summary.get("settings", {})
        corner_plot(s.samples, s.names, folder / "corner.png")
        title = f"baseline: {settings.get('halo', self.model.halo)} halo, {settings.get('anisotropy', '')}"
        profile_plot(result.profile, folder / "profiles.png", title=title)
        return ["corner.png", "profiles.png"]
