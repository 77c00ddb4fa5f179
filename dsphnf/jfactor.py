"""Dark-matter annihilation J-factor of a spherical halo.

    J(theta) = Int_{cone of half-angle theta} dOmega Int_0^inf rho^2(r(s, psi)) ds

in GeV^2 cm^-5 (density in Msun/kpc^3, distance in kpc, converted with
:data:`dsphnf.constants.J_UNIT`).  The geometry is exact: writing the cone
integral as a volume integral of rho^2 / s^2 (s the distance from the
observer) and integrating each spherical shell of radius r analytically over
the part of it inside the cone gives

    J = 2 pi Int_0^r_max rho^2(r) r^2 w(r) dr,
    w(r) = 2 atanh(r/D) / (D r)                 r <= D sin(theta)   (whole shell)
         = 2 ln[(D + r) / s_+] / (D r)          D sin(theta) < r < D (two caps)
         = ln[(D + r) / s_+] / (D r)            r >= D             (far cap only)
    s_+ = D cos(theta) + sqrt(r^2 - D^2 sin^2(theta)),

which tends to 2/D^2 for r << D (the familiar small-angle limit
J = Int rho^2 dV / D^2).  The radial integral uses composite Gauss-Legendre panels in ln r
inside D sin(theta) and in u = arccosh(r / (D sin(theta))) outside it (which
removes the square-root edge of w), broken at D and at any grid nodes; the part
below ``r_min`` is added analytically for a power-law cusp rho ~ r^-gamma
(finite only for gamma < 3/2).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .constants import J_UNIT

__all__ = ["INNER_GAMMA_MAX", "OUTER_GAMMA_MIN", "inner_slope", "outer_slope", "j_factor", "log10_j_factor",
           "j_factor_tabulated", "shell_weight"]

_GL_X, _GL_W = np.polynomial.legendre.leggauss(10)
_GL_X = 0.5 * (_GL_X + 1.0)
_GL_W = 0.5 * _GL_W

#: Maximum panel width in ln r.
_PANEL = 0.5

#: Steepest inner slope gamma = -dln rho/dln r with which a tabulated density is
#: continued inwards of its first node: the NFW cusp, the steepest that
#: dark-matter-only simulations give at small radii.  Nothing is measured there
#: (the first node is the 2nd percentile of the stars' radii), J diverges for
#: gamma >= 3/2, and near 3/2 the unmeasured centre would dominate J.
INNER_GAMMA_MAX = 1.0

#: Ratio of radii over which the inner slope of a tabulated density is fitted.
INNER_SPAN = 2.0

#: Shallowest outer slope gamma = -dln rho/dln r with which a tabulated density
#: is continued outwards of its last node: the isothermal sphere r^-2.  Beyond
#: the stars nothing is measured; J of a continuation diverges for gamma <= 3/2,
#: and dark haloes steepen outwards (NFW: from 1 to 3), so a density whose
#: fitted slope at the edge is shallower (a core larger than the data) goes on
#: as r^-2, and a steeper one with its own slope.
OUTER_GAMMA_MIN = 2.0

#: Ratio of radii over which the outer slope of a tabulated density is fitted.
OUTER_SPAN = 2.0


def shell_weight(r: np.ndarray, distance: float, theta_deg: float) -> np.ndarray:
    """Exact cone weight w(r) [kpc^-2]: Int over the shell r of 1/s^2 inside the cone, per 2 pi.

    Parameters
    ----------
    r : ndarray
        Galactocentric radii [kpc].
    distance : float
        Distance D to the halo centre [kpc].
    theta_deg : float
        Cone half-angle [deg], 0 < theta < 90.
    """
    r = np.asarray(r, dtype=float)
    D = float(distance)
    th = np.deg2rad(theta_deg)
    st, ct = np.sin(th), np.cos(th)
    inside = r <= D * st
    rr = np.where(r > 0, r, 1e-300)
    whole = 2.0 * np.arctanh(np.minimum(rr / D, 1.0 - 1e-16)) / (D * rr)
    s_plus = D * ct + np.sqrt(np.maximum(rr * rr - (D * st) ** 2, 0.0))
    cap = np.log((D + rr) / s_plus) / (D * rr)
    return np.where(inside, whole, np.where(rr < D, 2.0 * cap, cap))


def _check_angle(distance: float, theta_deg: float) -> None:
    if not (np.isfinite(distance) and distance > 0):
        raise ValueError(f"distance must be > 0 kpc, got {distance}")
    if not (0.0 < theta_deg < 90.0):
        raise ValueError(f"cone half-angle must be in (0, 90) deg, got {theta_deg}")


def _panels(lo: float, hi: float, inner) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre nodes and weights on [lo, hi], broken at ``inner``
    and at most :data:`_PANEL` wide."""
    edges = np.unique(np.concatenate([[lo, hi], np.asarray(inner, dtype=float).ravel()]))
    parts = [np.linspace(a, b, int(np.ceil((b - a) / _PANEL)) + 1)[:-1] for a, b in zip(edges[:-1], edges[1:])]
    left = np.concatenate(parts)
    width = np.append(left[1:], edges[-1]) - left
    x = left[:, None] + width[:, None] * _GL_X[None, :]
    return x.ravel(), (width[:, None] * _GL_W[None, :]).ravel()


def _j_integral(
    rho: Callable[[np.ndarray], np.ndarray],
    distance: float,
    theta_deg: float,
    r_lo: float,
    r_hi: float,
    breaks: np.ndarray | None = None,
    inner_slope: float | None = None,
) -> float:
    """J in Msun^2 kpc^-5: panels in ln r on [r_lo, r_hi] plus the analytic cusp below r_lo."""
    D = float(distance)
    b_tan = D * np.sin(np.deg2rad(theta_deg))  # radius where the shell touches the cone
    extra = [D] if breaks is None else np.append(np.asarray(breaks, dtype=float), D)
    r_nodes, jac = [], []
    # whole shells, r in [r_lo, min(b_tan, r_hi)]: panels in x = ln r, dr = r dx
    top = min(b_tan, r_hi)
    if top > r_lo:
        x, wx = _panels(np.log(r_lo), np.log(top), np.log([e for e in extra if r_lo < e < top]))
        r_nodes.append(np.exp(x))
        jac.append(wx * np.exp(x))
    # partial shells, r in [max(b_tan, r_lo), r_hi]: r = b cosh u removes the
    # square-root edge of w(r) at b_tan; dr = r tanh(u) du
    bot = max(b_tan, r_lo)
    if r_hi > bot:
        ub = np.arccosh(np.array([bot, r_hi] + [e for e in extra if bot < e < r_hi]) / b_tan)
        u, wu = _panels(ub[0], ub[1], ub[2:])
        rr = b_tan * np.cosh(u)
        r_nodes.append(rr)
        jac.append(wu * rr * np.tanh(u))
    r = np.concatenate(r_nodes)
    f = np.asarray(rho(r), dtype=float) ** 2 * r**2 * shell_weight(r, D, theta_deg)
    total = 2.0 * np.pi * float(np.sum(np.concatenate(jac) * f))
    # analytic inner part, rho = rho(r_lo) (r/r_lo)^-gamma, w = 2/D^2
    rho_lo = float(np.asarray(rho(np.array([r_lo])), dtype=float)[0])
    if inner_slope is None:
        rho_up = float(np.asarray(rho(np.array([r_lo * 1.001])), dtype=float)[0])
        inner_slope = -np.log(rho_up / rho_lo) / np.log(1.001) if rho_lo > 0 and rho_up > 0 else 0.0
    if rho_lo > 0:
        if 2.0 * inner_slope >= 3.0:
            raise ValueError(
                f"J-factor diverges: inner density slope {inner_slope:.3g} >= 1.5 at r = {r_lo:.3g} kpc"
            )
        total += 4.0 * np.pi / D**2 * rho_lo**2 * r_lo**3 / (3.0 - 2.0 * inner_slope)
    return total


def j_factor(
    rho: Callable[[np.ndarray], np.ndarray],
    distance: float,
    theta_deg: float = 0.5,
    r_max: float | None = None,
    r_min: float | None = None,
) -> float:
    """J-factor within a cone of half-angle ``theta_deg`` [GeV^2 cm^-5].

    Parameters
    ----------
    rho : callable
        Vectorised dark-matter density rho(r) [Msun/kpc^3], r in kpc.
    distance : float
        Distance to the halo centre [kpc].
    theta_deg : float
        Cone half-angle [deg] (default 0.5).
    r_max : float, optional
        Truncation radius of the halo [kpc] (default: ``distance``, i.e. the
        whole halo between the observer and the galaxy and as far behind it).
    r_min : float, optional
        Radius [kpc] below which rho is taken as its local power law and
        integrated analytically (default 1e-7 D sin(theta)).
    """
    _check_angle(distance, theta_deg)
    D = float(distance)
    rmax = D if r_max is None else float(r_max)
    rmin = 1e-7 * D * np.sin(np.deg2rad(theta_deg)) if r_min is None else float(r_min)
    if not (0 < rmin < rmax):
        raise ValueError("need 0 < r_min < r_max [kpc]")
    return _j_integral(rho, D, theta_deg, rmin, rmax) * J_UNIT


def log10_j_factor(
    rho: Callable[[np.ndarray], np.ndarray],
    distance: float,
    theta_deg: float = 0.5,
    r_max: float | None = None,
    r_min: float | None = None,
) -> float:
    """log10 of :func:`j_factor` [log10 GeV^2 cm^-5]."""
    return float(np.log10(j_factor(rho, distance, theta_deg, r_max, r_min)))


def inner_slope(r: np.ndarray, rho_values: np.ndarray, span: float = INNER_SPAN) -> float:
    """Inner slope gamma = -dln rho/dln r of a tabulated density, fitted by least
    squares in (ln r, ln rho) over the nodes with r <= ``span`` x r[0] (at least two).

    One noisy innermost node does not set the slope alone, as a two-node slope would.

    >>> r = np.geomspace(0.01, 1.0, 41)
    >>> round(inner_slope(r, 1e8 / r), 6)
    1.0
    >>> noisy = 1e8 / r * np.where(r == r[0], 1.2, 1.0)  # the first node 20 % high
    >>> two_node = -np.log(noisy[1] / noisy[0]) / np.log(r[1] / r[0])  # J would diverge
    >>> round(float(two_node), 2), round(inner_slope(r, noisy), 2)
    (2.58, 1.17)
    """
    lr, lrho = np.log(np.asarray(r, dtype=float)), np.log(np.asarray(rho_values, dtype=float))
    n = max(2, int(np.count_nonzero(lr <= lr[0] + np.log(span))))
    return float(-np.polyfit(lr[:n], lrho[:n], 1)[0])


def outer_slope(r: np.ndarray, rho_values: np.ndarray, span: float = OUTER_SPAN) -> float:
    """Outer slope gamma = -dln rho/dln r of a tabulated density, fitted by least
    squares in (ln r, ln rho) over the nodes with r >= r[-1] / ``span`` (at least two).

    >>> r = np.geomspace(0.01, 1.0, 41)
    >>> round(outer_slope(r, 1e8 / (r * (1 + r) ** 2)), 2)  # NFW with r_s = 1 kpc: 2 at r_s, 1.67 at r_s/2
    1.83
    """
    lr, lrho = np.log(np.asarray(r, dtype=float)), np.log(np.asarray(rho_values, dtype=float))
    n = max(2, int(np.count_nonzero(lr >= lr[-1] - np.log(span))))
    return float(-np.polyfit(lr[-n:], lrho[-n:], 1)[0])


def j_factor_tabulated(
    r: np.ndarray,
    rho_values: np.ndarray,
    distance: float,
    theta_deg: float = 0.5,
    gamma_max: float | None = INNER_GAMMA_MAX,
    outer_gamma_min: float | None = OUTER_GAMMA_MIN,
) -> float:
    """J-factor [GeV^2 cm^-5] of a density tabulated on a radial grid.

    The density is interpolated linearly in (ln r, ln rho) between grid
    nodes and continued as power laws on both sides.  Inwards, r^-gamma with
    gamma the :func:`inner_slope` clipped to [0, ``gamma_max``] (no hole at
    the centre, no cusp steeper than NFW by default); ``gamma_max=None``
    continues the fitted slope unclipped.  Outwards, out to r = ``distance``
    (the whole halo, as :func:`j_factor` by default), r^-gamma_out with
    gamma_out the :func:`outer_slope`, no shallower than ``outer_gamma_min``
    (default :data:`OUTER_GAMMA_MIN`, the isothermal r^-2);
    ``outer_gamma_min=None`` truncates the density (rho = 0) outside the last
    node instead, J of the tabulated range alone.  Each grid interval is one
    (or more) Gauss-Legendre panel(s), so the piecewise power law is
    integrated to machine precision.

    Parameters
    ----------
    r : ndarray
        Increasing radii [kpc], at least two.
    rho_values : ndarray
        Density at ``r`` [Msun/kpc^3], > 0.
    distance : float
        Distance [kpc].
    theta_deg : float
        Cone half-angle [deg].
    gamma_max : float or None
        Steepest inward continuation (default :data:`INNER_GAMMA_MAX`, the NFW cusp).
    outer_gamma_min : float or None
        Shallowest outward continuation (default :data:`OUTER_GAMMA_MIN`, r^-2; must
        exceed 1.5); None: no continuation, rho = 0 beyond the last node.

    Raises
    ------
    ValueError
        On a bad grid, non-positive densities, or (``gamma_max`` None or
        >= 1.5) a continuation slope >= 1.5 (divergent J).

    >>> r = np.geomspace(0.05, 1.0, 30)
    >>> steep = 1e8 * r**-1.6  # J of the unclipped cusp diverges; the cap alone, no outer part
    >>> nfw_cap, cap_14 = (j_factor_tabulated(r, steep, 76.0, gamma_max=g, outer_gamma_min=None) for g in (1.0, 1.4))
    >>> round(float(np.log10(nfw_cap / cap_14)), 2)
    -0.36
    >>> nfw = lambda x: 1e8 / (x / 0.8 * (1 + x / 0.8) ** 2)  # an NFW halo tabulated to 0.3 kpc only
    >>> r = np.geomspace(0.02, 0.3, 30)
    >>> whole = log10_j_factor(nfw, 233.0)
    >>> cut = np.log10(j_factor_tabulated(r, nfw(r), 233.0, outer_gamma_min=None))
    >>> continued = np.log10(j_factor_tabulated(r, nfw(r), 233.0))
    >>> round(float(cut - whole), 2), round(float(continued - whole), 2)
    (-0.21, -0.04)
    """
    _check_angle(distance, theta_deg)
    r = np.asarray(r, dtype=float)
    rho_values = np.asarray(rho_values, dtype=float)
    if r.ndim != 1 or r.shape != rho_values.shape or r.size < 2:
        raise ValueError("r and rho_values must be 1-D arrays of the same length >= 2")
    if np.any(r <= 0) or np.any(np.diff(r) <= 0):
        raise ValueError("radial grid must be positive and strictly increasing [kpc]")
    if np.any(~(rho_values > 0)) or not np.all(np.isfinite(rho_values)):
        raise ValueError("tabulated densities must be finite and > 0 Msun/kpc^3")
    if outer_gamma_min is not None and not outer_gamma_min > 1.5:
        raise ValueError(f"outer_gamma_min must exceed 1.5 (J diverges otherwise), got {outer_gamma_min}")
    lr, lrho = np.log(r), np.log(rho_values)
    gamma = inner_slope(r, rho_values)
    if gamma_max is not None:
        gamma = min(max(gamma, 0.0), gamma_max)
    gamma_out = None if outer_gamma_min is None else max(outer_slope(r, rho_values), outer_gamma_min)

    def rho(x: np.ndarray) -> np.ndarray:
        lx = np.log(x)
        out = np.exp(np.interp(lx, lr, lrho))
        out = np.where(lx < lr[0], np.exp(lrho[0] - gamma * (lx - lr[0])), out)
        beyond = 0.0 if gamma_out is None else np.exp(lrho[-1] - gamma_out * (lx - lr[-1]))
        return np.where(lx > lr[-1], beyond, out)

    D = float(distance)
    r_lo = min(1e-7 * D * np.sin(np.deg2rad(theta_deg)), 1e-3 * r[0])
    r_hi = float(r[-1]) if gamma_out is None else max(D, float(r[-1]))
    return _j_integral(rho, D, theta_deg, r_lo, r_hi, breaks=r, inner_slope=gamma) * J_UNIT
