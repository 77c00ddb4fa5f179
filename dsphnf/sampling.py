"""Exact vectorised sampling helpers for spherical distribution functions.

:func:`sample_speeds` draws, at each radius, a speed w with density
w^p f(Psi(r) - w^2/2) by rejection from a piecewise envelope; the other two
give random directions.  Used by :class:`dsphnf.df.CuddefordDF`.
"""
from __future__ import annotations

import numpy as np

from .errors import DsphnfError

__all__ = ["sample_speeds", "unit_vectors", "tangent_basis"]

_N_LIN, _N_GEO = 16, 48  # envelope cells: uniform in w, geometric in Psi(0) - eps


def unit_vectors(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` isotropic unit vectors, shape (n, 3)."""
    cos_t = rng.uniform(-1.0, 1.0, size=n)
    phi = rng.uniform(0.0, 2.0 * np.pi, size=n)
    sin_t = np.sqrt(1.0 - cos_t**2)
    return np.column_stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t])


def tangent_basis(rhat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two orthonormal vectors perpendicular to each unit vector of ``rhat`` (n, 3)."""
    # cross with the coordinate axis least aligned with rhat (never degenerate)
    axis = np.zeros_like(rhat)
    axis[np.arange(len(rhat)), np.argmin(np.abs(rhat), axis=1)] = 1.0
    e1 = np.cross(rhat, axis)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    return e1, np.cross(rhat, e1)


def _envelope(df, r: np.ndarray, power: float):
    """Cell edges in w^(p+1) and envelope weights per star (see :func:`sample_speeds`)."""
    pot = df.potential
    psi_r, dep_r = pot(r), pot.depth_at(r)
    vesc = np.sqrt(2.0 * psi_r)
    # cell edges in kinetic energy K = w^2/2 in [0, Psi(r)]
    k_lin = psi_r[:, None] * np.linspace(0.0, 1.0, _N_LIN + 1)
    g = np.linspace(0.0, 1.0, _N_GEO + 1)[1:-1]
    k_geo = dep_r[:, None] * ((pot.psi0 / dep_r)[:, None] ** g - 1.0)  # depth geometric
    k_edges = np.sort(np.hstack([k_lin, np.minimum(k_geo, psi_r[:, None])]), axis=1)
    w_edges = np.sqrt(2.0 * k_edges)
    w_edges[:, -1] = vesc
    lnf_max = np.maximum.accumulate(df.lnf[::-1])[::-1]  # max over r' >= r_j: eps' <= eps_j
    ka = k_edges[:, :-1]
    with np.errstate(divide="ignore"):
        ln_bound = df._ln_f_at(psi_r[:, None] - ka, dep_r[:, None] + ka, lnf_max)
    wp = w_edges ** (power + 1.0) if power != 2.0 else w_edges**3
    wa, wb = wp[:, :-1], wp[:, 1:]
    weight = np.exp(ln_bound - ln_bound.max(axis=1, keepdims=True)) * (wb - wa)
    return psi_r, dep_r, wa, wb, ln_bound, np.cumsum(weight, axis=1)


def sample_speeds(df, r: np.ndarray, rng: np.random.Generator, power: float = 2.0) -> np.ndarray:
    """Speeds w [km/s] with density w^power f(Psi(r) - w^2/2) on [0, sqrt(2 Psi(r))].

    Exact rejection sampling with a piecewise envelope per star: the range
    of w is cut into cells (uniform in w, plus geometric in the depth
    Psi(0) - eps, which resolves the steep rise of f at the centre of
    cuspy models); in cell [w_a, w_b] the envelope is w^power F(eps(w_a)),
    with F the running maximum of f (>= f, non-decreasing in eps).

    Parameters
    ----------
    df : CuddefordDF
        Supplies ``potential``, ``lnf`` and ``_ln_f_at``.
    r : ndarray
        Radii [kpc].
    rng : numpy Generator
        Random source.
    power : float
        Exponent p > 0 of the phase-space volume factor (2 - 2 b0).
    """
    psi_r, dep_r, wa_all, wb_all, ln_bound, cum = _envelope(df, r, power)
    out = np.empty(r.size)
    todo = np.arange(r.size)
    for _ in range(1000):
        if todo.size == 0:
            return out
        c = cum[todo]
        u = rng.uniform(size=todo.size) * c[:, -1]
        cell = np.minimum((c < u[:, None]).sum(axis=1), c.shape[1] - 1)
        a, b = wa_all[todo, cell], wb_all[todo, cell]
        x = a + rng.uniform(size=todo.size) * (b - a)
        w = np.cbrt(x) if power == 2.0 else x ** (1.0 / (power + 1.0))
        kin = 0.5 * w**2
        eps = psi_r[todo] - kin
        with np.errstate(divide="ignore", invalid="ignore"):
            lnf = np.where(eps > 0, df._ln_f_at(np.maximum(eps, 1e-300), dep_r[todo] + kin), -np.inf)
        acc = np.log(rng.uniform(size=todo.size)) < lnf - ln_bound[todo, cell]
        out[todo[acc]] = w[acc]
        todo = todo[~acc]
    raise DsphnfError("velocity rejection sampling did not converge")  # pragma: no cover
