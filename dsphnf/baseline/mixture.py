"""A foreground population in the baseline likelihood.

:class:`MixtureLikelihood` adds a :class:`~dsphnf.foreground.Foreground` (a broad Gaussian in
v_z, uniform on the sky; shared with the flow's mixture) with a free or given fraction, for catalogues whose
non-members are not removed by membership weights; without one,
:func:`dsphnf.baseline.fit_baseline` uses
:class:`~dsphnf.baseline.likelihood.BaselineLikelihood`.
"""
from __future__ import annotations

import numpy as np

from ..foreground import Foreground, velocity_core
from .likelihood import BaselineLikelihood
from .model import BaselineModel

__all__ = ["Foreground", "MixtureLikelihood", "velocity_core"]


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
