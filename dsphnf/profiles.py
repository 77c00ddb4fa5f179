"""Zhao (alpha, beta, gamma) density profiles and their enclosed masses.

    rho(r) = rho0 (r/rs)^-gamma [1 + (r/rs)^alpha]^((gamma - beta)/alpha)

Lengths in kpc; ``rho0`` in Msun/kpc^3 for a mass profile, or kpc^-3 for a
tracer number density.  NFW is (1, 3, 1), the Gaia Challenge cored halo is
(1, 3, 0), Plummer is (2, 5, 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import integrate, special

__all__ = ["Zhao", "nfw", "cored", "plummer", "tracer_zhao", "zhao_mass_inner"]


@dataclass(frozen=True)
class Zhao:
    """Spherical Zhao (alpha, beta, gamma) profile.

    Parameters
    ----------
    rho0 : float
        Normalisation [Msun/kpc^3, or kpc^-3 for tracers].
    rs : float
        Scale radius [kpc].
    alpha, beta, gamma : float
        Transition sharpness, outer and inner logarithmic slopes.
    """

    rho0: float
    rs: float
    alpha: float = 1.0
    beta: float = 3.0
    gamma: float = 1.0

    def __post_init__(self) -> None:
        if not (self.rs > 0 and self.alpha > 0):
            raise ValueError("Zhao profile needs rs > 0 and alpha > 0")
        if self.gamma >= 3:
            raise ValueError("Zhao profile needs gamma < 3 for a finite central mass")

    # ------------------------------------------------------------------
    def density(self, r: np.ndarray | float) -> np.ndarray:
        """Density at radius ``r`` [kpc] (units of ``rho0``)."""
        x = np.asarray(r, dtype=float) / self.rs
        return self.rho0 * x ** (-self.gamma) * (1.0 + x**self.alpha) ** (
            (self.gamma - self.beta) / self.alpha
        )

    __call__ = density

    def dlogrho_dlogr(self, r: np.ndarray | float) -> np.ndarray:
        """Logarithmic slope dln rho / dln r at ``r`` [kpc]."""
        xa = (np.asarray(r, dtype=float) / self.rs) ** self.alpha
        return -self.gamma + (self.gamma - self.beta) * xa / (1.0 + xa)

    def mass(self, r: np.ndarray | float) -> np.ndarray:
        """Enclosed mass M(<r) = 4 pi Int_0^r rho r'^2 dr' (units rho0 kpc^3).

        Uses the regularised incomplete beta function where beta > 3, a
        closed form for beta = 3 with integer (3 - gamma)/alpha, and
        :func:`zhao_mass_inner` (a Gauss hypergeometric function, then
        quadrature as x^alpha/(1 + x^alpha) -> 1) otherwise.

        Examples
        --------
        >>> halo = Zhao(1e8, 1.0, alpha=2.65, beta=3.0, gamma=0.0)
        >>> bool(np.isclose(halo.mass(15.5), halo.mass_quad(15.5), rtol=1e-8))
        True
        """
        r = np.asarray(r, dtype=float)
        x = r / self.rs
        a, b, g = self.alpha, self.beta, self.gamma
        p = (3.0 - g) / a
        pref = 4.0 * np.pi * self.rho0 * self.rs**3
        if b > 3.0:
            q = (b - 3.0) / a
            xa = x**a
            u = xa / (1.0 + xa)
            return pref * special.beta(p, q) * special.betainc(p, q, u) / a
        p_int = round(p)
        if b == 3.0 and abs(p - p_int) < 1e-12 and p_int >= 1:
            # fast exact path (NFW, cored, ...): Int_0^u s^(p-1)/(1-s) ds
            #   = -ln(1-u) - sum_{n<p} u^n/n,  with -ln(1-u) = ln(1 + x^a);
            # a short series sum_{n>=p} u^n/n where that would cancel.
            xa = x**a
            u = xa / (1.0 + xa)
            exact = np.log1p(xa)
            for n in range(1, p_int):
                exact = exact - u**n / n
            small = u < 0.1
            if np.any(small):
                us = u[small]
                series = np.zeros_like(us)
                for k in range(17, -1, -1):  # Horner: u^p sum_k u^k / (p + k)
                    series = series * us + 1.0 / (p_int + k)
                exact = np.where(small, 0.0, exact)
                exact[small] = us**p_int * series
            return pref * exact / a
        # beta <= 3: the total mass diverges; a hypergeometric function, then quadrature near u -> 1
        return pref * zhao_mass_inner(x, a, b, g)

    def total_mass(self) -> float:
        """Total mass (finite only for beta > 3)."""
        if self.beta <= 3.0:
            return float("inf")
        a, b, g = self.alpha, self.beta, self.gamma
        p, q = (3.0 - g) / a, (b - 3.0) / a
        return float(4.0 * np.pi * self.rho0 * self.rs**3 * special.beta(p, q) / a)

    def normalised(self) -> "Zhao":
        """The same shape scaled to unit total mass (one star for a tracer)."""
        return Zhao(self.rho0 / self.total_mass(), self.rs, self.alpha, self.beta, self.gamma)

    def mass_quad(self, r: float) -> float:
        """Enclosed mass by direct quadrature (slow; for tests)."""
        f = lambda s: 4.0 * np.pi * s**2 * float(self.density(s))
        return integrate.quad(f, 0.0, r, limit=200, epsrel=1e-11)[0]


def nfw(rho0: float, rs: float) -> Zhao:
    """NFW halo rho0 / [(r/rs)(1 + r/rs)^2] (Msun/kpc^3, kpc)."""
    return Zhao(rho0, rs, 1.0, 3.0, 1.0)


def cored(rho0: float, rs: float) -> Zhao:
    """Cored halo rho0 / (1 + r/rs)^3, the Gaia Challenge core (Msun/kpc^3, kpc)."""
    return Zhao(rho0, rs, 1.0, 3.0, 0.0)


def plummer(mass: float, a: float) -> Zhao:
    """Plummer sphere of total ``mass`` [Msun or stars] and scale ``a`` [kpc]."""
    return Zhao(3.0 * mass / (4.0 * np.pi * a**3), a, 2.0, 5.0, 0.0)


def tracer_zhao(rs: float, gamma: float = 0.0, beta: float = 5.0, alpha: float = 2.0) -> Zhao:
    """Stellar tracer nu(r) of the Gaia Challenge family, normalised to one star."""
    return Zhao(1.0, rs, alpha, beta, gamma).normalised()


#: Where u = x^alpha / (1 + x^alpha) the hypergeometric form of the mass hands over to quadrature: scipy's 2F1
#: at c - a - b <= 0 (beta <= 3) loses accuracy as u -> 1 (a non-integer alpha = 2.65 gave a negative mass at x = 15).
U_SWITCH = 0.9


def zhao_mass_inner(x: np.ndarray, alpha: np.ndarray, beta: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """Int_0^x t^(2-gamma) (1+t^alpha)^((gamma-beta)/alpha) dt, broadcast over the arguments.

    Exact (hypergeometric) where u = x^alpha / (1 + x^alpha) <= :data:`U_SWITCH`;
    beyond, that value at u = U_SWITCH plus Gauss-Legendre quadrature in ln t.

    Examples
    --------
    >>> x = np.array([0.5, 15.5, 200.0])  # NFW's closed form: ln(1 + x) - x / (1 + x)
    >>> bool(np.allclose(zhao_mass_inner(x, 1.0, 3.0, 1.0), np.log1p(x) - x / (1 + x), rtol=1e-10))
    True
    """
    x, alpha, beta, gamma = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, alpha, beta, gamma)))
    xa = x**alpha
    u = np.minimum(xa / (1.0 + xa), U_SWITCH)
    p = (3.0 - gamma) / alpha
    q = (beta - 3.0) / alpha
    out = u**p / (alpha * p) * special.hyp2f1(p, 1.0 - q, p + 1.0, u)
    x0 = (U_SWITCH / (1.0 - U_SWITCH)) ** (1.0 / alpha)  # where u = U_SWITCH
    near = x > x0
    if np.any(near):
        out = out + np.where(near, _zhao_shell(x0, np.where(near, x, x0), alpha, beta, gamma), 0.0)
    return out


def _zhao_shell(x0: np.ndarray, x: np.ndarray, alpha: np.ndarray, beta: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """Int_x0^x t^(2-gamma) (1+t^alpha)^((gamma-beta)/alpha) dt (x >= x0), 12-point Gauss-Legendre panels of width
    <= 0.25 in ln t."""
    span = np.log(x / x0)
    n_panel = max(1, int(np.ceil(np.max(span) / 0.25)))
    z, w = np.polynomial.legendre.leggauss(12)
    t = ((np.arange(n_panel)[:, None] + 0.5 * (z + 1.0)[None, :]) / n_panel).ravel()
    lt = np.log(x0)[..., None] + span[..., None] * t  # ln of the nodes, (..., n_panel * 12)
    a, b, g = alpha[..., None], beta[..., None], gamma[..., None]
    f = np.exp((3.0 - g) * lt + (g - b) / a * np.logaddexp(0.0, a * lt))  # t^3 rho(t) / rho0: dt = t d(ln t)
    return span * np.sum(np.tile(0.5 * w / n_panel, n_panel) * f, axis=-1)
