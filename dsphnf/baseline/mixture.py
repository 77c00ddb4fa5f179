"""A foreground population in the baseline likelihood.

:class:`MixtureLikelihood` adds a :class:`Foreground` (a broad Gaussian in
v_z, uniform on the sky) with a free or given fraction, for catalogues whose
non-members are not removed by membership weights; without one,
:func:`dsphnf.baseline.fit_baseline` uses
:class:`~dsphnf.baseline.likelihood.BaselineLikelihood`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .likelihood import BaselineLikelihood
from .model import BaselineModel

__all__ = ["Foreground", "MixtureLikelihood", "velocity_core"]


def velocity_core(v: np.ndarray, start_kms: float = 20.0, clip: float = 3.0, n_iter: int = 20) -> tuple[float, float]:
    """Mean and dispersion [km/s] of the members' velocity peak by iterative ``clip``-sigma clipping.

    Starts at v = 0 (a catalogue's velocities have the systemic velocity
    removed) with ``start_kms``, wider than any dSph's dispersion, so that a
    numerous foreground cannot capture the peak.

    >>> rng = np.random.default_rng(1)
    >>> mu, s = velocity_core(np.concatenate([rng.normal(0, 9, 500), rng.normal(200, 60, 1000)]))
    >>> abs(mu) < 2, 7 < s < 11
    (True, True)
    """
    v = np.asarray(v, dtype=float)
    mu, s = 0.0, float(start_kms)
    for _ in range(n_iter):
        core = v[np.abs(v - mu) < clip * s]
        if core.size < 3:
            break
        mu, s = float(core.mean()), float(core.std())
    return mu, s


@dataclass(frozen=True)
class Foreground:
    """A broad Gaussian foreground in v_z, uniform on the sky inside the data's radial window.

    Attributes
    ----------
    mean_kms, sigma_kms : float
        Mean and dispersion of the foreground's line-of-sight velocities
        [km/s], in the catalogue's frame (systemic velocity removed).
    fraction : float or None
        Fraction of the stars that are foreground; None: a free parameter
        ``f_fg`` with a uniform prior on [0, 1).
    """

    mean_kms: float
    sigma_kms: float
    fraction: float | None = None

    def __post_init__(self) -> None:
        if not (np.isfinite(self.mean_kms) and self.sigma_kms > 0):
            raise ValueError(f"foreground needs a finite mean and sigma > 0 km/s, "
                             f"got {self.mean_kms}, {self.sigma_kms}")
        if self.fraction is not None and not 0.0 <= self.fraction < 1.0:
            raise ValueError(f"foreground fraction must be in [0, 1), got {self.fraction}")

    @classmethod
    def broad(cls, v: np.ndarray, fraction: float | None = None, far: float = 5.0) -> "Foreground":
        """The Gaussian of the stars far from the members' core (|v - mu_core| > ``far`` sigma_core).

        The core is found by :func:`velocity_core`; with fewer than 10 stars
        outside, a Gaussian of mean 0 and 10 sigma_core.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> v = np.concatenate([rng.normal(0, 10, 400), rng.normal(150, 80, 600)])
        >>> fg = Foreground.broad(v)
        >>> 100 < fg.mean_kms < 250, 50 < fg.sigma_kms < 120, fg.fraction is None
        (True, True, True)
        """
        v = np.asarray(v, dtype=float)
        mu, s = velocity_core(v)
        out = v[np.abs(v - mu) > far * s]
        if out.size < 10:
            return cls(0.0, 10.0 * s, fraction)
        return cls(float(out.mean()), float(out.std()), fraction)

    def spec(self) -> dict[str, float | None]:
        """JSON-ready settings."""
        return {"mean_kms": self.mean_kms, "sigma_kms": self.sigma_kms, "fraction": self.fraction}


class MixtureLikelihood(BaselineLikelihood):
    """:class:`BaselineLikelihood` with a foreground: each star is a member or a foreground star.

    log L = sum_i w_i ln[ (1 - f) Sigma(R_i)/N_win N(v_i | v_sys, sigma_los^2 + err_i^2)
                          + f / A N(v_i | mu_fg, sigma_fg^2 + err_i^2) ],

    A = pi (R_max^2 - R_min^2) the window's area (the foreground is uniform
    on the sky).  A free fraction is the last parameter, ``f_fg`` (uniform
    prior on [0, 1)); :attr:`names` lists the sampled parameters.  Used with
    weights of one, it replaces membership weights by the mixture.
    """

    def __init__(self, model: BaselineModel, R: np.ndarray, v: np.ndarray, verr: np.ndarray | None = None,
                 weights: np.ndarray | None = None, foreground: Foreground | None = None, **kwargs) -> None:
        super().__init__(model, R, v, verr, weights, **kwargs)
        if foreground is None:
            raise ValueError("MixtureLikelihood needs a Foreground")
        self.foreground = foreground
        self.names = list(model.names) + (["f_fg"] if foreground.fraction is None else [])
        var = foreground.sigma_kms**2 + self.e2
        area = np.pi * (self.R_max**2 - self.R_min**2)
        self.log_fg = -np.log(area) - 0.5 * (np.log(2.0 * np.pi * var) + (self.v - foreground.mean_kms) ** 2 / var)

    def fraction(self, theta: np.ndarray) -> np.ndarray:
        """The foreground fraction of each row of ``theta`` (B,)."""
        if self.foreground.fraction is not None:
            return np.full(theta.shape[0], self.foreground.fraction)
        return theta[:, -1]

    def log_likelihood_per_star(self, theta: np.ndarray) -> np.ndarray:
        """Each star's weighted mixture term, (B, ndim) -> (B, N)."""
        def mixed(sub: dict[str, np.ndarray], th: np.ndarray) -> np.ndarray:
            f = self.fraction(th)[:, None]
            return self.w * np.logaddexp(np.log1p(-f) + self._log_member(sub), np.log(f) + self.log_fg[None, :])

        return self._per_star(theta, mixed)

    def log_likelihood(self, theta: np.ndarray) -> np.ndarray:
        """Log-likelihood (B,) (-inf where invalid)."""
        ll = self.log_likelihood_per_star(theta).sum(axis=1)
        return np.where(np.isfinite(ll), ll, -np.inf)

    def member_probability(self, theta: np.ndarray) -> np.ndarray:
        """Posterior probability that each star is a member, for each row of ``theta`` (B, N)."""
        theta = np.atleast_2d(theta)
        params = self.model.unpack(theta)
        member = self._log_member(params)
        f = self.fraction(theta)[:, None]
        a, b = np.log1p(-f) + member, np.log(f) + self.log_fg[None, :]
        return np.exp(a - np.logaddexp(a, b))

    def log_posterior(self, theta: np.ndarray) -> np.ndarray:
        """Log prior (the model's, and U[0, 1) for a free fraction) + log-likelihood."""
        theta = np.atleast_2d(theta)
        lp = self.model.log_prior(theta)
        if self.foreground.fraction is None:
            f = theta[:, -1]
            lp = np.where((f >= 0.0) & (f < 1.0), lp, -np.inf)
        out = np.full(theta.shape[0], -np.inf)
        ok = np.isfinite(lp)
        if np.any(ok):
            out[ok] = lp[ok] + self.log_likelihood(theta[ok])
        return out
