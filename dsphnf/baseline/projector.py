"""Jeans solutions and their projections on fixed grids, batched over parameter vectors (the baseline's fast path).

The fast path precomputes everything that does not depend on the parameters:

1. a logarithmic radial grid r_k [kpc] from the smallest projected radius to
   ``r_max`` (default 1000 x the largest);
2. the Jeans solution on that grid,
   nu sigma_r^2 (r) = (1/g(r)) Int_r^inf g nu G M / s^2 ds, with g the
   anisotropy integrating factor (closed forms for every family, batched over
   walkers for an inferred one: :func:`anisotropy_grid`), integrated segment by segment exactly for a
   power law between grid points (log-sum-exp accumulation, so steep g of
   strongly tangential models does not overflow);
3. two fixed projection matrices W0, W1 (projected radii x grid) such that
   Sigma(R) = W0 nu and Sigma sigma_los^2 (R) = W0 (nu sigma_r^2) - W1 (beta nu sigma_r^2),
   i.e. the Abel integrals 2 Int_R^inf f(r) r dr / sqrt(r^2 - R^2) and
   2 Int_R^inf f(r) R^2 / r dr / sqrt(r^2 - R^2) evaluated with r = R cosh t,
   the trapezoidal rule in t and cubic Lagrange interpolation in ln r.

So one evaluation costs a few array operations on the grid, three small
matrix products (``einsum``, deliberately not BLAS: a multi-threaded BLAS on
such small products stalls when the CPU is shared) and a four-point
interpolation onto the stars, and it is batched over parameter vectors (the
emcee walkers).

The reference physics is :func:`dsphnf.projection.sigma_los2`; the tests
compare both with direct quadrature.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
from scipy import special

from ..anisotropy import AnisotropySpec, Inferred
from ..broken import broken_log_density, broken_mass
from ..constants import G
from ..profiles import zhao_mass_inner

__all__ = ["JeansProjector", "anisotropy_grid", "cubic_weights", "zhao_log_density"]


def cubic_weights(u: np.ndarray, u0: float, du: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Four-point Lagrange interpolation on a uniform grid u_k = u0 + k du.

    Returns
    -------
    idx : ndarray of int, shape (m, 4)
        Grid indices of the stencil of each point.
    w : ndarray, shape (m, 4)
        Weights: f(u) ~ sum_j w[:, j] f[idx[:, j]].
    """
    u = np.asarray(u, dtype=float).ravel()
    k = np.floor((u - u0) / du).astype(int)
    i0 = np.clip(k - 1, 0, n - 4)
    s = (u - u0) / du - i0  # position relative to the first stencil point, in [0, 3]
    idx = i0[:, None] + np.arange(4)[None, :]
    w = np.empty((u.size, 4))
    nodes = np.arange(4.0)
    for j in range(4):
        others = [m for m in range(4) if m != j]
        w[:, j] = np.prod([(s - nodes[m]) / (nodes[j] - nodes[m]) for m in others], axis=0)
    return idx, w


def _log_phi(d: np.ndarray) -> np.ndarray:
    """log((e^d - 1)/d), stable for all d (the exact integral of e^(d x) over [0, 1])."""
    d = np.asarray(d, dtype=float)
    small = np.abs(d) < 1e-6
    big = d > 30.0
    safe = np.where(small | big, 1.0, d)
    out = np.log(np.expm1(safe) / safe)
    out = np.where(big, d - np.log(np.where(big, d, 1.0)), out)
    return np.where(small, 0.5 * d, out)


def zhao_log_density(r: np.ndarray, scale: np.ndarray, alpha: np.ndarray, beta: np.ndarray,
                     gamma: np.ndarray) -> np.ndarray:
    """ln of (r/scale)^-gamma [1 + (r/scale)^alpha]^((gamma-beta)/alpha), batched: params (B,), r (n,) -> (B, n)."""
    lx = np.log(r)[None, :] - np.log(scale)[:, None]
    a = alpha[:, None]
    return -gamma[:, None] * lx + ((gamma - beta) / alpha)[:, None] * np.logaddexp(0.0, a * lx)


def anisotropy_grid(anisotropy: AnisotropySpec, params: Mapping[str, np.ndarray], r: np.ndarray,
                    u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ln g(r) (the Jeans integrating factor, up to a constant) and beta(r) on a radial grid.

    Closed forms, batched over the rows of ``params`` for an inferred family
    (parameters ``beta0``, ``ra``, ``b0``, ``binf``, ``eta`` as unpacked by
    :meth:`BaselineModel.unpack`) and taken from the model's fields for a
    given one; any other given model (a callable beta) uses its own
    ``log_g`` and ``beta``.

    Parameters
    ----------
    anisotropy : Anisotropy or Inferred
    params : mapping
        Unpacked parameters, arrays of shape (B,) (only read when inferred).
    r, u : ndarray
        Grid radii [kpc] and u = ln r, shape (n,).

    Returns
    -------
    L, beta : ndarray
        Shapes (B, n) or (1, n) (a given model: the same for every row).

    Examples
    --------
    >>> from dsphnf.anisotropy import Cuddeford, Inferred
    >>> r, model = np.geomspace(0.1, 10.0, 5), Cuddeford(0.2, 1.0)
    >>> L, beta = anisotropy_grid(Inferred("cuddeford"), {"b0": np.array([0.2]), "ra": np.array([1.0])}, r, np.log(r))
    >>> np.allclose(beta[0], model.beta(r)), np.allclose(np.diff(L[0]), np.diff(model.log_g(r)))
    (True, True)
    """
    if isinstance(anisotropy, Inferred):
        family = anisotropy.family
        get = lambda k: np.asarray(params[k], dtype=float)[:, None]  # noqa: E731
    else:
        family = anisotropy.name
        get = lambda k: np.full((1, 1), float(getattr(anisotropy, k)))  # noqa: E731
    r, u = r[None, :], u[None, :]
    if family == "isotropic":
        return np.zeros_like(u), np.zeros_like(u)
    if family == "constant":
        beta0 = get("beta0")
        return 2.0 * beta0 * u, beta0 + np.zeros_like(u)
    if family in ("om", "cuddeford"):
        r2, ra2 = r**2, get("ra") ** 2
        if family == "om":
            return np.log(r2 + ra2), r2 / (r2 + ra2)
        b0 = get("b0")
        return 2.0 * b0 * u + (1.0 - b0) * np.log(r2 + ra2), (b0 * ra2 + r2) / (r2 + ra2)
    if family == "baes":
        b0, binf, eta = get("b0"), get("binf"), get("eta")
        x = eta * (u - np.log(get("ra")))  # ln (r / r_a)^eta; stable forms for any eta
        return 2.0 * b0 * u + 2.0 * (binf - b0) / eta * np.logaddexp(0.0, x), b0 + (binf - b0) * special.expit(x)
    if isinstance(anisotropy, Inferred):
        raise ValueError(f"the baseline cannot infer the anisotropy family {family!r}")
    return np.asarray(anisotropy.log_g(r), dtype=float), np.asarray(anisotropy.beta(r), dtype=float)


class JeansProjector:
    """Sigma(R) and sigma_los^2(R) at fixed projected radii for batches of models.

    Parameters
    ----------
    R : array_like
        Projected radii [kpc] where the projections are wanted (> 0).
    r_max : float, optional
        Outer end of the radial grid [kpc] (default 1000 max(R)).
    n_r : int
        Radial grid points (log-spaced from min(R) to r_max).
    n_t : int
        Trapezoid nodes in t (r = R cosh t) per projected radius.
    """

    def __init__(self, R: np.ndarray, r_max: float | None = None, n_r: int = 256, n_t: int = 128) -> None:
        R = np.asarray(R, dtype=float).ravel()
        if R.size == 0 or not np.all(R > 0):
            raise ValueError("projected radii must be > 0 kpc")
        self.R = R
        r_lo = R.min() * (1.0 - 1e-9)
        self.r_max = float(r_max if r_max is not None else 1000.0 * R.max())
        self.u0 = np.log(r_lo)
        self.du = (np.log(self.r_max) - self.u0) / (n_r - 1)
        self.u = self.u0 + self.du * np.arange(n_r)
        self.r = np.exp(self.u)
        n_R = R.size
        tmax = np.arccosh(np.maximum(self.r_max / R, 1.0 + 1e-12))
        t = tmax[:, None] * np.linspace(0.0, 1.0, n_t)[None, :]
        wt = np.full((n_R, n_t), 1.0)
        wt[:, 0] = wt[:, -1] = 0.5
        wt *= (tmax / (n_t - 1))[:, None]
        rn = R[:, None] * np.cosh(t)
        rn = np.minimum(rn, self.r_max)
        idx, w = cubic_weights(np.log(rn), self.u0, self.du, n_r)
        rows = np.repeat(np.arange(n_R), n_t)
        W0 = np.zeros((n_R, n_r))
        W1 = np.zeros((n_R, n_r))
        f0 = (2.0 * wt * rn).ravel()
        f1 = (2.0 * wt * R[:, None] ** 2 / rn).ravel()
        for j in range(4):
            np.add.at(W0, (rows, idx[:, j]), f0 * w[:, j])
            np.add.at(W1, (rows, idx[:, j]), f1 * w[:, j])
        self.W0T = np.ascontiguousarray(W0.T)
        self.W1T = np.ascontiguousarray(W1.T)

    # ------------------------------------------------------------------
    def log_mass(self, rho0: np.ndarray, rs: np.ndarray, alpha: np.ndarray, beta: np.ndarray,
                 gamma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ln rho [Msun/kpc^3] and ln M(<r) [Msun] of a Zhao halo on the grid, (B, n_r) each."""
        logrho = np.log(rho0)[:, None] + zhao_log_density(self.r, rs, alpha, beta, gamma)
        f = logrho + 3.0 * self.u[None, :]  # ln(rho r^3): dM = 4 pi rho r^3 du
        seg = 4.0 * np.pi * self.du * np.exp(f[:, :-1] + _log_phi(f[:, 1:] - f[:, :-1]))
        m0 = 4.0 * np.pi * rho0 * rs**3 * zhao_mass_inner(self.r[0] / rs, alpha, beta, gamma)
        M = np.concatenate([m0[:, None], m0[:, None] + np.cumsum(seg, axis=1)], axis=1)
        return logrho, np.log(M)

    def log_nu_sigma_r2(self, log_nu: np.ndarray, log_M: np.ndarray, L: np.ndarray) -> np.ndarray:
        """ln(nu sigma_r^2) [units of nu x (km/s)^2] on the grid, (B, n_r).

        ``L`` is ln g, the log integrating factor of the anisotropy on the grid
        ((B, n_r) or (1, n_r); see :func:`anisotropy_grid`).
        """
        f = L + log_nu + np.log(G) + log_M - self.u[None, :]  # ln(g nu G M / s^2 * s)
        d = f[:, 1:] - f[:, :-1]
        logc = np.empty_like(f)
        logc[:, :-1] = f[:, :-1] + np.log(self.du) + _log_phi(d)
        slope = np.minimum(d[:, -1] / self.du, -0.5)
        logc[:, -1] = f[:, -1] - np.log(-slope)  # power-law tail beyond r_max
        acc = np.logaddexp.accumulate(logc[:, ::-1], axis=1)[:, ::-1]
        return acc - L

    def project(self, nu: np.ndarray, p: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sigma(R) and Sigma sigma_los^2 (R) from nu, p = nu sigma_r^2 and beta on the grid."""
        # einsum (no BLAS): multi-threaded BLAS on these small products stalls on a shared CPU
        Sigma = np.einsum("bk,kj->bj", nu, self.W0T)
        P = np.einsum("bk,kj->bj", p, self.W0T) - np.einsum("bk,kj->bj", beta * p, self.W1T)
        return Sigma, P

    def profiles(self, params: dict[str, np.ndarray], anisotropy: AnisotropySpec) -> dict[str, np.ndarray]:
        """Grid profiles for unpacked parameters (see :meth:`BaselineModel.unpack`).

        ``anisotropy`` is the model's (:attr:`BaselineModel.anisotropy`): a
        given model, or an inferred family whose parameters are in ``params``.

        Returns ``log_nu`` (unnormalised), ``log_p`` (ln nu sigma_r^2),
        ``log_rho``, ``log_M``, ``beta`` (all (B, n_r)), ``Sigma`` and
        ``sigma_los2`` [(km/s)^2] at the projected radii (B, n_R).
        """
        log_nu = zhao_log_density(self.r, params["rstar"], params["alpha_star"], params["beta_star"],
                                  params["gamma_star"])
        if "ln_nodes" in params:  # the broken power law: closed forms on the grid
            halo = (params["ln_nodes"], params["ln_rho_nodes"], params["inner"], params["outer"])
            log_rho, log_M = broken_log_density(self.r, *halo), np.log(broken_mass(self.r, *halo))
        else:
            log_rho, log_M = self.log_mass(params["rho0"], params["rs"], params["alpha_dm"], params["beta_dm"],
                                           params["gamma"])
        L, beta = anisotropy_grid(anisotropy, params, self.r, self.u)
        log_p = self.log_nu_sigma_r2(log_nu, log_M, L)
        beta = np.broadcast_to(beta, log_nu.shape)
        Sigma, P = self.project(np.exp(log_nu), np.exp(log_p), beta)
        return {"log_nu": log_nu, "log_p": log_p, "log_rho": log_rho, "log_M": log_M, "beta": beta,
                "Sigma": Sigma, "sigma_los2": P / Sigma}
