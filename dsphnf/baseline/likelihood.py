"""Vectorised unbinned Jeans likelihood of the parametric baseline.

Positions and velocities of the stars, with membership weights, evaluated for
batches of parameter vectors (the emcee walkers) through the precomputed
grids of :class:`~dsphnf.baseline.projector.JeansProjector`: one evaluation
costs a few array operations and a four-point interpolation onto the stars.
:class:`~dsphnf.baseline.mixture.MixtureLikelihood` adds a foreground.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .losvd import kurtosis_at, log_losvd
from .model import BaselineModel
from .projector import JeansProjector, cubic_weights

__all__ = ["BaselineLikelihood"]


class BaselineLikelihood:
    """Unbinned log-likelihood of positions and velocities, batched over parameters.

    log L = sum_i w_i [ ln Sigma(R_i) - ln N_win ]
          + sum_i w_i ln f(v_i - v_sys | sigma_los^2(R_i), err_i^2),

    with f the LOSVD convolved with the star's error (a Gaussian of variance
    sigma_los^2 + err_i^2 by default, or the scale mixture of
    :mod:`dsphnf.baseline.losvd` with the model's free kurtosis,
    ``BaselineModel(losvd="kurtosis")``, or its kurtosis at each star's R,
    ``losvd="kurtosis-radial"``), N_win = Int_{R_min}^{R_max} 2 pi R
    Sigma dR the model's number of stars inside the data's radial window (so
    positions are a normalised density in the window), and w_i the
    membership probabilities.

    Parameters
    ----------
    model : BaselineModel
    R : ndarray
        Projected radii [kpc].
    v : ndarray
        Line-of-sight velocities [km/s].
    verr : ndarray or None
        Velocity errors [km/s].
    weights : ndarray or None
        Membership probabilities (default ones).
    n_R : int
        Projected-radius grid size (odd; Simpson's rule for N_win).
    """

    def __init__(self, model: BaselineModel, R: np.ndarray, v: np.ndarray, verr: np.ndarray | None = None,
                 weights: np.ndarray | None = None, n_R: int = 65, n_r: int = 256, n_t: int = 128) -> None:
        self.model = model
        R = np.asarray(R, dtype=float)
        self.R = R
        self.v = np.asarray(v, dtype=float)
        self.e2 = np.zeros_like(self.v) if verr is None else np.asarray(verr, dtype=float) ** 2
        self.w = np.ones_like(self.v) if weights is None else np.asarray(weights, dtype=float)
        self.wsum = float(self.w.sum())
        self.R_min, self.R_max = float(R.min()), float(R.max())
        if not self.R_min > 0:
            raise ValueError("every star needs a projected radius R > 0 kpc")
        n_R += 1 - n_R % 2
        self.Rg = np.geomspace(self.R_min, self.R_max, n_R)
        self.proj = JeansProjector(self.Rg, n_r=n_r, n_t=n_t)
        lg = np.log(self.Rg)
        idx, w = cubic_weights(np.log(np.clip(R, self.R_min, self.R_max)), lg[0], lg[1] - lg[0], n_R)
        self.star_idx = [np.ascontiguousarray(idx[:, j]) for j in range(4)]
        self.star_w = [np.ascontiguousarray(w[:, j]) for j in range(4)]
        h = lg[1] - lg[0]
        simpson = np.ones(n_R)
        simpson[1:-1:2], simpson[2:-1:2] = 4.0, 2.0
        self.win = 2.0 * np.pi * self.Rg**2 * simpson * h / 3.0  # N_win = Sigma @ win

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        return self.log_posterior(theta)

    def at_stars(self, grid_values: np.ndarray) -> np.ndarray:
        """Cubic interpolation in ln R from the projected-radius grid (B, n_R) to the stars (B, N)."""
        i, w = self.star_idx, self.star_w
        g = grid_values
        return g[:, i[0]] * w[0] + g[:, i[1]] * w[1] + g[:, i[2]] * w[2] + g[:, i[3]] * w[3]

    def _star_terms(self, sub: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """ln Sigma at the stars (B, N), ln N_win (B,) and each star's ln LOSVD term (B, N)."""
        prof = self.proj.profiles(sub, self.model.anisotropy)
        Sigma = prof["Sigma"]
        lS = self.at_stars(np.log(Sigma))
        log_nwin = np.log(np.einsum("bj,j->b", Sigma, self.win))
        s2 = np.exp(self.at_stars(np.log(prof["sigma_los2"])))
        dv = self.v[None, :] - sub["v_sys"][:, None]
        return lS, log_nwin, log_losvd(dv, s2, self.e2, self._kurtosis(sub))

    def _kurtosis(self, sub: dict[str, np.ndarray]) -> np.ndarray | None:
        """The LOSVD's kurtosis: None (Gaussian), one per row (B,) or one per row and star (B, N)."""
        if "kurtosis_inner" in sub:
            return kurtosis_at(self.R, self.model.r_half, sub["kurtosis_inner"], sub["kurtosis_outer"])
        return sub.get("kurtosis")

    def standardised_velocities(self, theta: np.ndarray) -> np.ndarray:
        """(v - v_sys) / sqrt(sigma_los^2 + err^2) of every star (N,) for one parameter vector ``theta``.

        Their kurtosis (:func:`~dsphnf.baseline.losvd.kurtosis_of`) says how
        far the stars' velocities are from the Gaussian LOSVD: ~3 for a
        Gaussian, larger for heavy tails.
        """
        params = self.model.unpack(np.atleast_2d(theta)[:1])
        s2 = np.exp(self.at_stars(np.log(self.proj.profiles(params, self.model.anisotropy)["sigma_los2"])))[0]
        return (self.v - params["v_sys"][0]) / np.sqrt(s2 + self.e2)

    def log_likelihood(self, theta: np.ndarray) -> np.ndarray:
        """Log-likelihood for ``theta`` of shape (B, ndim) or (ndim,) -> (B,) (-inf where invalid)."""
        theta = np.atleast_2d(theta)
        params = self.model.unpack(theta)
        out = np.full(theta.shape[0], -np.inf)
        ok = params["valid"]
        if not np.any(ok):
            return out
        sub = {k: v[ok] for k, v in params.items()}
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            lS, log_nwin, lvel = self._star_terms(sub)
            lpos = np.einsum("bn,n->b", lS, self.w) - self.wsum * log_nwin
            ll = lpos + np.einsum("bn,n->b", lvel, self.w)
        out[ok] = np.where(np.isfinite(ll), ll, -np.inf)
        return out

    def log_likelihood_per_star(self, theta: np.ndarray) -> np.ndarray:
        """Each star's weighted term of :meth:`log_likelihood`, (B, ndim) -> (B, N); rows sum to it.

        For diagnostics such as the information-matrix equality (the outer
        product of the per-star scores against the Hessian), which checks that
        the likelihood's curvature, and so the width of the posterior, is right.
        """
        return self._per_star(theta, lambda sub, th: self.w * self._log_member(sub))

    def _per_star(self, theta: np.ndarray, term: Callable[[dict, np.ndarray], np.ndarray]) -> np.ndarray:
        """``term(params, theta)`` (B', N) on the valid rows of ``theta`` (B, ndim), -inf on the others."""
        theta = np.atleast_2d(theta)
        params = self.model.unpack(theta)
        out = np.full((theta.shape[0], self.v.size), -np.inf)
        ok = params["valid"]
        if np.any(ok):
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                out[ok] = term({k: v[ok] for k, v in params.items()}, theta[ok])
        return out

    def _log_member(self, sub: dict[str, np.ndarray]) -> np.ndarray:
        """Each star's unweighted ln p(R, v_z | member) (B, N): ln Sigma/N_win plus the LOSVD term."""
        lS, log_nwin, lvel = self._star_terms(sub)
        return lS - log_nwin[:, None] + lvel

    def log_posterior(self, theta: np.ndarray) -> np.ndarray:
        """Log prior + log-likelihood (the likelihood is skipped outside the prior)."""
        theta = np.atleast_2d(theta)
        lp = self.model.log_prior(theta)
        out = np.full(theta.shape[0], -np.inf)
        ok = np.isfinite(lp)
        if np.any(ok):
            out[ok] = lp[ok] + self.log_likelihood(theta[ok])
        return out
