"""Radon (Abel) projection and deprojection of spherical systems, and sample projection.

A spherical 3-D density nu(r) seen from any direction has the same sky
density Sigma(R) (its Abel projection). The inverse Abel transform

    nu(r) = -(1/pi) Int_r^inf dSigma/dR dR / sqrt(R^2 - r^2)

recovers nu(r) from a single projection: "tomography from one angle" is
solvable only because of spherical symmetry. It needs dSigma/dR, so noise in
a binned Sigma is amplified; this is why dsphnf fits a forward model to the
projected data instead of inverting them.

Units: R, r in kpc; velocities in km/s.
"""
from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline

__all__ = ["random_rotation", "project_stars", "abel_deproject"]


def random_rotation(rng: np.random.Generator | int | None = None) -> np.ndarray:
    """A rotation matrix drawn uniformly (Haar measure) from SO(3).

    Parameters
    ----------
    rng : Generator or int, optional
        Random generator or seed.

    Returns
    -------
    ndarray, shape (3, 3)
        Orthogonal matrix with determinant +1.
    """
    rng = np.random.default_rng(rng)
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def project_stars(stars: np.ndarray, rotation: np.ndarray | None = None) -> np.ndarray:
    """Observe 6-D stars (x, y, z, vx, vy, vz) along z, optionally after a rotation.

    The rotation acts jointly on positions and velocities, as a change of the
    observer's viewing direction does.

    Parameters
    ----------
    stars : ndarray, shape (N, 6)
        Positions [kpc] and velocities [km/s].
    rotation : ndarray, shape (3, 3), optional
        Rotation applied to x and v before projecting.

    Returns
    -------
    ndarray, shape (N, 3)
        The observables x, y [kpc] and v_z [km/s].
    """
    stars = np.asarray(stars, dtype=float)
    x, v = stars[:, :3], stars[:, 3:6]
    if rotation is not None:
        x, v = x @ rotation.T, v @ rotation.T
    return np.column_stack([x[:, 0], x[:, 1], v[:, 2]])


def abel_deproject(R: np.ndarray, Sigma: np.ndarray, r: np.ndarray, n_t: int = 400) -> np.ndarray:
    """Inverse Abel transform of a tabulated surface density.

    Sigma is interpolated by a cubic spline in (ln R, ln Sigma) and extrapolated
    beyond the last point with the outermost logarithmic slope.

    Parameters
    ----------
    R : ndarray
        Increasing projected radii [kpc] where Sigma is known.
    Sigma : ndarray
        Positive surface density at R [any units per kpc^2].
    r : ndarray
        3-D radii [kpc] where nu is wanted (within or near the R range).
    n_t : int
        Number of trapezoid nodes in t (R = r cosh t).

    Returns
    -------
    ndarray
        nu(r) [units of Sigma per kpc].
    """
    R = np.asarray(R, dtype=float)
    lnS = np.log(np.asarray(Sigma, dtype=float))
    spl = CubicSpline(np.log(R), lnS)
    slope_out = float(spl(np.log(R[-1]), 1))

    def dSigma_dR(Rq: np.ndarray) -> np.ndarray:
        lnR = np.log(Rq)
        inside = lnR <= np.log(R[-1])
        lnR_c = np.clip(lnR, np.log(R[0]), np.log(R[-1]))
        ln_s = np.where(inside, spl(lnR_c), spl(np.log(R[-1])) + slope_out * (lnR - np.log(R[-1])))
        slope = np.where(inside, spl(lnR_c, 1), slope_out)
        return np.exp(ln_s) * slope / Rq

    r = np.atleast_1d(np.asarray(r, dtype=float))
    t_max = np.arccosh(max(1e3 * R[-1] / r.min(), 10.0))
    t = np.linspace(0.0, t_max, n_t)
    Rq = r[:, None] * np.cosh(t)[None, :]
    # dR / sqrt(R^2 - r^2) = dt  for R = r cosh t
    return -np.trapezoid(dSigma_dR(Rq), t, axis=1) / np.pi
