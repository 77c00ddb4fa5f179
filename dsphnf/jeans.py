"""The spherical Jeans equation, forwards and inverse.

Forward: given a tracer density nu(r), an enclosed mass M(r) [Msun] and an
anisotropy model beta(r), the radial velocity dispersion follows from

    nu sigma_r^2 (r) = (1/g(r)) Int_r^inf g(s) nu(s) G M(s) / s^2 ds,
    g(r) = exp(Int 2 beta / r dr),

with the boundary condition nu sigma_r^2 -> 0 at ``r_max`` (default far
outside every radius asked for).

Inverse: on a radial grid,

    G M(r) = - r sigma_r^2 [dln nu/dln r + dln sigma_r^2/dln r + 2 beta],
    rho(r) = M'(r) / (4 pi r^2).

Units: r in kpc, velocities in km/s, masses in Msun, G from
:mod:`dsphnf.constants`.  Every callable is vectorised over numpy arrays.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.interpolate import CubicSpline

from .anisotropy import Anisotropy, Isotropic
from .constants import G

__all__ = [
    "check_model",
    "nu_sigma_r2",
    "sigma_r2",
    "mass_from_jeans",
    "density_from_mass",
    "jeans_profiles",
]

ArrayFn = Callable[[np.ndarray], np.ndarray]

#: Gauss-Legendre nodes/weights on [0, 1] used per panel of width <= 1 in ln r.
_GL_X, _GL_W = np.polynomial.legendre.leggauss(12)
_GL_X = 0.5 * (_GL_X + 1.0)
_GL_W = 0.5 * _GL_W


def check_model(anisotropy: Anisotropy | None) -> Anisotropy:
    """None means isotropic; anything else must already be a parsed model."""
    if anisotropy is None:
        return Isotropic()
    if isinstance(anisotropy, Anisotropy):
        return anisotropy
    raise TypeError(f"expected an Anisotropy model (dsphnf.anisotropy), got {type(anisotropy).__name__}")


def _default_rmax(r: np.ndarray) -> float:
    """Outer boundary [kpc]: 1000 kpc, or 1000 times the largest radius if larger."""
    return float(max(1.0e3, 1.0e3 * np.max(r)))


def nu_sigma_r2(
    r: np.ndarray | float,
    nu: ArrayFn,
    mass: ArrayFn,
    anisotropy: Anisotropy | None = None,
    *,
    r_max: float | None = None,
) -> np.ndarray:
    """Radial 'pressure' nu sigma_r^2 at ``r`` [kpc] (units of nu x (km/s)^2).

    Integrates Int_r^r_max g(s)/g(r) nu(s) G M(s) / s^2 ds in v = ln(s/r) with
    composite 12-point Gauss-Legendre panels of width <= 1 (spectrally
    accurate for smooth profiles; the cusp at r = 0 is never touched).

    Parameters
    ----------
    r : array_like
        Radii [kpc], > 0.
    nu : callable
        Tracer density nu(r) (any normalisation).
    mass : callable
        Enclosed mass M(r) [Msun].
    anisotropy : Anisotropy or None
        Anisotropy model (None: isotropic).
    r_max : float, optional
        Outer boundary [kpc] where nu sigma_r^2 = 0 (default
        max(1000 kpc, 1000 max(r))).
    """
    aniso = check_model(anisotropy)
    r = np.asarray(r, dtype=float)
    shape = r.shape
    r = r.ravel()
    if r.size == 0:
        return np.zeros(shape)
    if np.any(r <= 0) or not np.all(np.isfinite(r)):
        raise ValueError("radii must be finite and > 0 kpc")
    rmax = _default_rmax(r) if r_max is None else float(r_max)
    span = np.log(np.maximum(rmax / r, 1.0))  # V_r = ln(r_max / r) >= 0
    n_panel = max(1, int(np.ceil(span.max())))
    width = span / n_panel  # per-radius panel width <= 1
    # v nodes: (n_r, n_panel * n_gl)
    starts = np.arange(n_panel)[:, None] + _GL_X[None, :]
    v = width[:, None] * starts.ravel()[None, :]
    wts = width[:, None] * np.tile(_GL_W, n_panel)[None, :]
    s = r[:, None] * np.exp(v)
    lg = np.asarray(aniso.log_g(s), dtype=float) - np.asarray(aniso.log_g(r), dtype=float)[:, None]
    integrand = np.exp(lg) * np.asarray(nu(s), dtype=float) * G * np.asarray(mass(s), dtype=float) / s
    return np.sum(wts * integrand, axis=1).reshape(shape)


def sigma_r2(
    r: np.ndarray | float,
    nu: ArrayFn,
    mass: ArrayFn,
    anisotropy: Anisotropy | None = None,
    *,
    r_max: float | None = None,
) -> np.ndarray:
    """Radial velocity dispersion squared sigma_r^2(r) [(km/s)^2].

    Solves the spherical Jeans equation with sigma_r^2 -> 0 at ``r_max``;
    see :func:`nu_sigma_r2` for the parameters.  Independent of the
    normalisation of ``nu``.
    """
    r = np.asarray(r, dtype=float)
    return nu_sigma_r2(r, nu, mass, anisotropy, r_max=r_max) / np.asarray(nu(r), dtype=float)


# ----------------------------------------------------------------------------
# inverse Jeans
# ----------------------------------------------------------------------------
def _dln_dlnr(r: np.ndarray, f: np.ndarray) -> np.ndarray:
    """dln f / dln r on a grid: not-a-knot cubic spline in (ln r, ln f).

    Falls back to second-order finite differences of f when f is not
    strictly positive.
    """
    lr = np.log(r)
    if np.all(f > 0) and r.size >= 4:
        return CubicSpline(lr, np.log(f)).derivative()(lr)
    return np.gradient(f, lr, edge_order=2) / f


def _check_grid(r: np.ndarray) -> np.ndarray:
    r = np.asarray(r, dtype=float)
    if r.ndim != 1 or r.size < 3:
        raise ValueError("need a 1-D radial grid with at least 3 points")
    if np.any(r <= 0) or np.any(np.diff(r) <= 0):
        raise ValueError("radial grid must be positive and strictly increasing [kpc]")
    return r


def _beta_values(r: np.ndarray, beta) -> np.ndarray:
    """beta on the grid from an Anisotropy model, a scalar or an array."""
    if isinstance(beta, Anisotropy):
        return np.asarray(beta.beta(r), dtype=float)
    return np.broadcast_to(np.asarray(beta, dtype=float), r.shape).astype(float)


def mass_from_jeans(
    r: np.ndarray,
    nu: np.ndarray,
    sigma_r2: np.ndarray,
    beta,
    dlnnu_dlnr: np.ndarray | None = None,
    dlnsig2_dlnr: np.ndarray | None = None,
) -> np.ndarray:
    """Enclosed mass from the inverse Jeans equation [Msun].

        G M(r) = - r sigma_r^2 [dln nu/dln r + dln sigma_r^2/dln r + 2 beta]

    Parameters
    ----------
    r : ndarray
        Increasing radial grid [kpc].
    nu : ndarray
        Tracer density on the grid (any normalisation).
    sigma_r2 : ndarray
        Radial dispersion squared on the grid [(km/s)^2].
    beta : Anisotropy, float or ndarray
        Anisotropy model, or beta on the grid.
    dlnnu_dlnr, dlnsig2_dlnr : ndarray, optional
        Logarithmic slopes when known (e.g. from automatic differentiation);
        otherwise taken from a cubic spline in (ln r, ln f).
    """
    r = _check_grid(r)
    nu = np.asarray(nu, dtype=float)
    s2 = np.asarray(sigma_r2, dtype=float)
    a = _dln_dlnr(r, nu) if dlnnu_dlnr is None else np.asarray(dlnnu_dlnr, dtype=float)
    b = _dln_dlnr(r, s2) if dlnsig2_dlnr is None else np.asarray(dlnsig2_dlnr, dtype=float)
    return -r * s2 * (a + b + 2.0 * _beta_values(r, beta)) / G


def density_from_mass(r: np.ndarray, M: np.ndarray, dM_dr: np.ndarray | None = None) -> np.ndarray:
    """Density rho = M'(r) / (4 pi r^2) [Msun/kpc^3] from M [Msun] on a grid r [kpc].

    M' comes from a cubic spline in (ln r, ln M) when not given.
    """
    r = _check_grid(r)
    M = np.asarray(M, dtype=float)
    if dM_dr is None:
        dM_dr = M / r * _dln_dlnr(r, M)
    return np.asarray(dM_dr, dtype=float) / (4.0 * np.pi * r**2)


def jeans_profiles(
    r: np.ndarray,
    nu: ArrayFn,
    mass: ArrayFn,
    anisotropy: Anisotropy | None = None,
    *,
    r_max: float | None = None,
) -> dict[str, np.ndarray]:
    """Truth table of a Jeans model on a radial grid.

    Returns a dict with ``r`` [kpc], ``nu`` (units of nu), ``sigma_r``
    [km/s], ``beta``, ``M`` [Msun] and ``rho`` [Msun/kpc^3].  ``rho`` is the
    halo's own ``density`` when ``mass`` is a bound method of (or an object
    with) a ``density`` attribute, e.g. ``Zhao.mass``; otherwise M'/(4 pi r^2).
    """
    r = _check_grid(r)
    aniso = check_model(anisotropy)
    nu_r = np.asarray(nu(r), dtype=float)
    s2 = nu_sigma_r2(r, nu, mass, aniso, r_max=r_max) / nu_r
    M = np.asarray(mass(r), dtype=float)
    owner = getattr(mass, "__self__", mass)
    density = getattr(owner, "density", None)
    rho = np.asarray(density(r), dtype=float) if callable(density) else density_from_mass(r, M)
    return {
        "r": r,
        "nu": nu_r,
        "sigma_r": np.sqrt(s2),
        "beta": np.asarray(aniso.beta(r), dtype=float),
        "M": M,
        "rho": rho,
    }
