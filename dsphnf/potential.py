"""Relative potential Psi(r) = -Phi(r) of any spherical halo, tabulated for precision.

    Psi(r) = Int_r^inf G M(s) / s^2 ds        [(km/s)^2]

The halo is anything with ``density``, ``mass``, ``dlogrho_dlogr`` and
``rs`` (:class:`dsphnf.halos.Halo`: Zhao, NFW, Burkert, Einasto).  Psi is
tabulated on a fine logarithmic grid twice, as Psi(r) and as Psi(0) - Psi(r),
so that both the outskirts and the centre keep full relative precision; the
parts inside and outside the table are power-law head and tail terms with the
halo's local logarithmic slopes there (the Zhao gamma and beta exactly).
"""
from __future__ import annotations

import numpy as np
from scipy import integrate

from .constants import G
from .errors import DsphnfError
from .profiles import Zhao

__all__ = ["Potential", "interp_extrapolate"]


def interp_extrapolate(x, xp: np.ndarray, fp: np.ndarray, side: str = "right") -> np.ndarray:
    """np.interp, but straight-line extrapolation beyond ``xp[-1]`` (``side="right"``) or ``xp[0]``.

    Used in log-log tables, where it continues the end power law (e.g. the
    Keplerian Psi ~ 1/r beyond the table) instead of a constant.
    """
    x = np.asarray(x, dtype=float)
    out = np.interp(x, xp, fp)
    if side == "right":
        far, slope, x0, f0 = x > xp[-1], (fp[-1] - fp[-2]) / (xp[-1] - xp[-2]), xp[-1], fp[-1]
    else:
        far, slope, x0, f0 = x < xp[0], (fp[1] - fp[0]) / (xp[1] - xp[0]), xp[0], fp[0]
    if np.any(far):
        out = np.where(far, f0 + slope * (x - x0), out)
    return out


def _end_slopes(halo, r0: float, r1: float) -> tuple[float, float]:
    """Inner slope gamma (rho ~ r^-gamma inside r0) and outer slope (rho ~ r^-outer beyond r1)."""
    if isinstance(halo, Zhao):
        return float(halo.gamma), float(halo.beta)
    return float(-halo.dlogrho_dlogr(r0)), float(-halo.dlogrho_dlogr(r1))


class Potential:
    """Relative potential Psi(r) [(km/s)^2] of a spherical mass profile.

    Parameters
    ----------
    halo : Halo
        Mass density [Msun/kpc^3] with a closed-form enclosed mass; needs an
        inner slope gamma < 2 (finite central potential) and an outer slope
        > 2 (finite potential at infinity).  Infinite-mass halos (NFW,
        Burkert) are fine.
    rmin, rmax : float
        Table range in units of the halo scale radius.
    n : int
        Number of logarithmic grid points.

    Examples
    --------
    >>> from dsphnf.halos import Burkert
    >>> pot = Potential(Burkert(1e8, 1.0))
    >>> bool(pot(0.1) > pot(1.0) > 0)
    True
    """

    def __init__(self, halo, rmin: float = 1e-7, rmax: float = 1e7, n: int = 8001) -> None:
        self.halo = halo
        self.lnr = np.linspace(np.log(rmin * halo.rs), np.log(rmax * halo.rs), n)
        r = np.exp(self.lnr)
        gamma, outer = _end_slopes(halo, r[0], r[-1])
        if not gamma < 2.0:
            raise DsphnfError(f"halo inner slope gamma={gamma:g} >= 2 gives an infinite central potential")
        if not outer > 2.0:
            raise DsphnfError(f"halo outer slope {outer:g} <= 2 gives an infinite potential")
        m = G * halo.mass(r)
        if not np.all(np.isfinite(m) & (m > 0)):
            bad = r[~(np.isfinite(m) & (m > 0))][0]
            raise DsphnfError(f"cannot tabulate the potential: the halo mass M(r) is not finite and positive at "
                              f"r = {bad:.3g} kpc")
        # Int m/s^2 ds = Int (m/s) dln s on the grid; power-law head and tail.
        seg = integrate.cumulative_trapezoid(m / r, self.lnr, initial=0.0)
        head = m[0] / r[0] / (2.0 - gamma)  # m ~ r^(3 - gamma) inside r[0]
        tail = m[-1] / r[-1] + 4.0 * np.pi * G * float(halo.density(r[-1])) * r[-1] ** 2 / (outer - 2.0)
        self.depth = head + seg  # Psi(0) - Psi(r), precise at small r
        self.psi = (seg[-1] - seg) + tail  # Psi(r), precise at large r
        self.psi0 = float(head + seg[-1] + tail)
        self.ln_psi = np.log(self.psi)
        self.ln_depth = np.log(self.depth)

    def m(self, r: np.ndarray) -> np.ndarray:
        """G M(<r) [kpc (km/s)^2]."""
        return G * self.halo.mass(r)

    def dlnm_dlnr(self, r: np.ndarray) -> np.ndarray:
        """dln M / dln r = 4 pi r^3 rho / M (3 - gamma at the centre)."""
        r = np.asarray(r, dtype=float)
        return 4.0 * np.pi * r**3 * self.halo.density(r) / self.halo.mass(r)

    def __call__(self, r: np.ndarray | float) -> np.ndarray:
        """Psi(r) [(km/s)^2] at radius r [kpc] (interpolated, log-log; a power law beyond the table)."""
        return np.exp(interp_extrapolate(np.log(r), self.lnr, self.ln_psi))

    def depth_at(self, r: np.ndarray | float) -> np.ndarray:
        """Psi(0) - Psi(r) [(km/s)^2] at radius r [kpc] (interpolated, log-log)."""
        return np.exp(np.interp(np.log(r), self.lnr, self.ln_depth))

    def ln_radius(self, psi: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """ln r [kpc] where the potential is ``psi`` (with ``depth = Psi(0) - psi``).

        Uses whichever of the two tables keeps precision: ln Psi in the
        outskirts, ln(Psi(0) - Psi) near the centre.
        """
        psi = np.asarray(psi, dtype=float)
        depth = np.asarray(depth, dtype=float)
        out = np.empty(np.broadcast(psi, depth).shape)
        psi, depth = np.broadcast_arrays(psi, depth)
        outer = psi <= depth
        with np.errstate(divide="ignore"):
            # ln Psi decreases with r: interpolate on the reversed table.
            out[outer] = interp_extrapolate(np.log(psi[outer]), self.ln_psi[::-1], self.lnr[::-1], "left")
            out[~outer] = np.interp(np.log(depth[~outer]), self.ln_depth, self.lnr)
        return out
