"""Projections of spherical Jeans models onto the sky.

    Sigma(R)              = 2 Int_R^inf nu(r) r dr / sqrt(r^2 - R^2)
    sigma_los^2 Sigma (R) = 2 Int_R^inf (1 - beta R^2/r^2) nu sigma_r^2 r dr / sqrt(r^2 - R^2)

For isotropic, constant-beta and Osipkov-Merritt models the double integral
collapses to one (Mamon & Lokas 2005, MNRAS 363, 705, appendix):

    sigma_los^2 Sigma (R) = 2 G Int_R^inf K(r/R, r_a/R) nu(r) M(r) dr / r .

Numerics.  With r = R cosh t both integrands are smooth *even* functions of
t, analytic in a strip |Im t| < pi/2 for Zhao-type profiles, so the
trapezoidal rule on a uniform t grid converges geometrically
(error ~ exp(-pi^2 / h)); h = 0.3 gives ~1e-8 or better.  The t grid is shared by all
R, so the constant-beta kernel (a function of t only) is computed once per call.
Any other anisotropy (e.g. :class:`~dsphnf.anisotropy.CallableBeta`) uses the
general double integral with nu sigma_r^2 from :func:`dsphnf.jeans.nu_sigma_r2`.

Units: R, r in kpc; M in Msun; velocities in km/s.  Results do not depend on
the normalisation of the tracer ``nu``, except :func:`sky_profiles` and
:func:`annulus_averages`, which expect ``nu`` normalised to one star and
return Sigma in stars/kpc^2 for a given number of stars (what a catalogue of
that many stars measures, e.g. with :func:`dsphnf.binned.binned_profiles`).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .anisotropy import Anisotropy, ConstantBeta, Isotropic, OsipkovMerritt
from .constants import G
from .jeans import check_model, nu_sigma_r2

__all__ = [
    "surface_density",
    "sigma_los2",
    "sigma_los",
    "surface_density_and_sigma_los2",
    "constant_beta_kernel",
    "om_kernel",
    "sky_profiles",
    "annulus_averages",
]

ArrayFn = Callable[[np.ndarray], np.ndarray]

#: Default trapezoid step in t (r = R cosh t).
STEP: float = 0.3

_GL8_X, _GL8_W = np.polynomial.legendre.leggauss(8)
_GL8_X = 0.5 * (_GL8_X + 1.0)
_GL8_W = 0.5 * _GL8_W


def _prepare(R, r_max: float | None, step: float | None):
    """Flatten R, check it and build the shared t grid and trapezoid weights."""
    R = np.asarray(R, dtype=float)
    shape = R.shape
    Rf = np.atleast_1d(R.ravel())
    if Rf.size == 0:
        raise ValueError("no projected radii given")
    if np.any(Rf <= 0) or not np.all(np.isfinite(Rf)):
        raise ValueError("projected radii R must be finite and > 0 kpc")
    rmax = float(max(1.0e3, 1.0e3 * Rf.max())) if r_max is None else float(r_max)
    if rmax <= Rf.max():
        raise ValueError(f"r_max = {rmax} kpc must exceed the largest projected radius")
    h = STEP if step is None else float(step)
    T = np.arccosh(rmax / Rf.min())
    n = int(np.ceil(T / h)) + 1
    t = h * np.arange(n)
    w = np.full(n, h)
    w[0] = w[-1] = 0.5 * h
    return Rf, shape, t, w


def constant_beta_kernel(t: np.ndarray, beta: float) -> np.ndarray:
    """Mamon & Lokas kernel K(u) for constant beta at u = cosh t (t >= 0, sorted).

        K(u) = u^(2 beta - 1) Int_1^u (1 - beta/w^2) w^(1 - 2 beta) / sqrt(w^2 - 1) dw
             = cosh^(2b-1)(t) Int_0^t (1 - b/cosh^2 s) cosh^(1-2b)(s) ds

    evaluated by 8-point Gauss-Legendre on each interval of ``t``, cumulated.
    Valid for every beta < 1 (including the half-integers where the closed
    form in incomplete beta functions needs special cases).
    """
    t = np.asarray(t, dtype=float)
    lo = np.concatenate([[0.0], t[:-1]])
    dt = t - lo
    s = lo[:, None] + dt[:, None] * _GL8_X[None, :]
    ch = np.cosh(s)
    f = (1.0 - beta / ch**2) * ch ** (1.0 - 2.0 * beta)
    C = np.cumsum(dt * (f @ _GL8_W))
    return np.cosh(t) ** (2.0 * beta - 1.0) * C


def om_kernel(u: np.ndarray, ua: np.ndarray) -> np.ndarray:
    """Mamon & Lokas (2005, eq. A16) Osipkov-Merritt kernel K(u, u_a), u = r/R >= 1, u_a = r_a/R."""
    u = np.asarray(u, dtype=float)
    ua2 = np.asarray(ua, dtype=float) ** 2
    root = np.sqrt(np.maximum(u * u - 1.0, 0.0))
    return (ua2 + 0.5) / (ua2 + 1.0) ** 1.5 * (u * u + ua2) / u * np.arctan(root / np.sqrt(ua2 + 1.0)) - (
        0.5 / (ua2 + 1.0)
    ) * root / u


def _project(R, nu, mass, anisotropy, r_max, step, want_sigma2: bool):
    Rf, shape, t, w = _prepare(R, r_max, step)
    ch = np.cosh(t)
    r = Rf[:, None] * ch[None, :]  # (n_R, n_t)
    nu_r = np.asarray(nu(r), dtype=float)
    Sigma = 2.0 * Rf * ((nu_r * ch) @ w)
    if not want_sigma2:
        return Sigma.reshape(shape), None
    aniso = check_model(anisotropy)
    th = np.tanh(t)
    if isinstance(aniso, (Isotropic, ConstantBeta, OsipkovMerritt)):
        if isinstance(aniso, Isotropic) or (isinstance(aniso, ConstantBeta) and aniso.beta0 == 0.0):
            kt = (th * th)[None, :]
        elif isinstance(aniso, ConstantBeta):
            kt = (constant_beta_kernel(t, aniso.beta0) * th)[None, :]
        else:
            kt = om_kernel(ch[None, :], aniso.ra / Rf[:, None]) * th[None, :]
        P = 2.0 * G * ((kt * nu_r * np.asarray(mass(r), dtype=float)) @ w)
    else:
        p = nu_sigma_r2(r, nu, mass, aniso, r_max=None if r_max is None else 10.0 * float(r_max))
        b = np.asarray(aniso.beta(r), dtype=float)
        P = 2.0 * Rf * (((1.0 - b / (ch * ch)[None, :]) * p * ch[None, :]) @ w)
    return Sigma.reshape(shape), (P / Sigma).reshape(shape)


def surface_density(R, nu: ArrayFn, *, r_max: float | None = None, step: float | None = None) -> np.ndarray:
    """Abel projection Sigma(R) = 2 Int_R^inf nu(r) r dr / sqrt(r^2 - R^2).

    Parameters
    ----------
    R : array_like
        Projected radii [kpc], > 0.
    nu : callable
        Vectorised 3-D density nu(r), r in kpc.
    r_max : float, optional
        Truncation radius [kpc] (default max(1000 kpc, 1000 max(R))).
    step : float, optional
        Trapezoid step in t, r = R cosh t (default :data:`STEP`).

    Returns
    -------
    ndarray
        Sigma(R) in units of nu x kpc, shaped like ``R``.
    """
    return _project(R, nu, None, None, r_max, step, False)[0]


def surface_density_and_sigma_los2(
    R,
    nu: ArrayFn,
    mass: ArrayFn,
    anisotropy: Anisotropy | None = None,
    *,
    r_max: float | None = None,
    step: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sigma(R) [nu x kpc] and sigma_los^2(R) [(km/s)^2] from one set of evaluations.

    See :func:`sigma_los2` for the parameters.
    """
    return _project(R, nu, mass, anisotropy, r_max, step, True)


def sigma_los2(
    R,
    nu: ArrayFn,
    mass: ArrayFn,
    anisotropy: Anisotropy | None = None,
    *,
    r_max: float | None = None,
    step: float | None = None,
) -> np.ndarray:
    """Line-of-sight velocity dispersion squared sigma_los^2(R) [(km/s)^2].

    Parameters
    ----------
    R : array_like
        Projected radii [kpc], > 0.
    nu : callable
        Tracer density nu(r) (any normalisation; e.g. an un-normalised Zhao).
    mass : callable
        Enclosed mass M(r) [Msun] of the potential.
    anisotropy : Anisotropy or None
        Isotropic / ConstantBeta / OsipkovMerritt use the single-integral
        Mamon & Lokas kernels; any other model (CallableBeta) the double
        integral.  None is isotropic.
    r_max : float, optional
        Truncation radius [kpc] (default max(1000 kpc, 1000 max(R))).
    step : float, optional
        Trapezoid step in t (default :data:`STEP`).
    """
    return _project(R, nu, mass, anisotropy, r_max, step, True)[1]


def sigma_los(R, nu: ArrayFn, mass: ArrayFn, anisotropy: Anisotropy | None = None, **kw) -> np.ndarray:
    """Line-of-sight velocity dispersion sigma_los(R) [km/s]; see :func:`sigma_los2`."""
    return np.sqrt(sigma_los2(R, nu, mass, anisotropy, **kw))


def sky_profiles(R, nu: ArrayFn, mass: ArrayFn, anisotropy: Anisotropy | None = None,
                 n_stars: float = 1.0) -> dict[str, np.ndarray]:
    """Exact Sigma(R) [stars/kpc^2] and sigma_los(R) [km/s] of a model seen as ``n_stars`` stars.

    Parameters
    ----------
    R : array_like
        Projected radii [kpc], > 0.
    nu : callable
        Tracer density nu(r) [kpc^-3] normalised to one star.
    mass : callable
        Enclosed mass M(r) [Msun].
    anisotropy : Anisotropy or None
        As in :func:`sigma_los2` (None: isotropic).
    n_stars : float
        Number of stars (Sigma scales with it).

    Returns
    -------
    dict
        ``R`` [kpc], ``Sigma`` [stars/kpc^2], ``sigma_los`` [km/s].

    Examples
    --------
    A Plummer sphere of one star (a = 0.2 kpc) seen as 100 stars: Sigma(a) = N / (4 pi a^2).

    >>> from dsphnf.profiles import plummer
    >>> s = sky_profiles([0.2], plummer(1.0, 0.2), plummer(1e7, 0.2).mass, n_stars=100)
    >>> bool(np.isclose(s["Sigma"][0], 100 / (4 * np.pi * 0.2**2), rtol=1e-6))
    True
    """
    R = np.asarray(R, dtype=float)
    sigma, s2 = surface_density_and_sigma_los2(R, nu, mass, anisotropy)
    return {"R": R, "Sigma": n_stars * np.asarray(sigma, dtype=float),
            "sigma_los": np.sqrt(np.asarray(s2, dtype=float))}


def annulus_averages(R_lo, R_hi, nu: ArrayFn, mass: ArrayFn, anisotropy: Anisotropy | None = None,
                     n_stars: float = 1.0, points: int = 128) -> dict[str, np.ndarray]:
    """Exact annulus averages of Sigma [stars/kpc^2] and of sigma_los (Sigma-weighted) [km/s].

    These are what the binned estimators measure: the mean surface density
    over each annulus, and sqrt(<Sigma sigma_los^2> / <Sigma>) over it
    (trapezoid rule on ``points`` log-spaced radii per annulus; an inner edge
    at 0 starts at 1e-5 of the outer edge).

    Parameters
    ----------
    R_lo, R_hi : array_like
        Inner and outer edges [kpc] of the annuli.
    nu, mass, anisotropy, n_stars
        As in :func:`sky_profiles` (``nu`` normalised to one star).
    points : int
        Radii per annulus.

    Returns
    -------
    dict
        ``Sigma`` [stars/kpc^2] and ``sigma_los`` [km/s], one value per annulus.
    """
    sig, los = [], []
    for lo, hi in zip(np.atleast_1d(R_lo), np.atleast_1d(R_hi)):
        lnR = np.linspace(np.log(max(lo, 1e-5 * hi)), np.log(hi), points)
        R = np.exp(lnR)
        S, s2 = surface_density_and_sigma_los2(R, nu, mass, anisotropy)
        dn = 2.0 * np.pi * R**2 * S  # dN / dln R per star
        N = np.trapezoid(dn, lnR)
        sig.append(n_stars * N / (np.pi * (hi**2 - lo**2)))
        los.append(np.sqrt(np.trapezoid(dn * s2, lnR) / N))
    return {"Sigma": np.asarray(sig), "sigma_los": np.asarray(los)}
