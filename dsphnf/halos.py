"""Spherical dark-matter halos beyond the Zhao family: Burkert and Einasto.

Every halo (these and :class:`dsphnf.profiles.Zhao`, of which NFW is the
(1, 3, 1) member) offers the same small interface, :class:`Halo`:
``density(r)`` [Msun/kpc^3], ``mass(r)`` = M(<r) [Msun] (closed forms, exact
to rounding at every radius), ``dlogrho_dlogr(r)`` and the scale radius
``rs`` [kpc].  :class:`dsphnf.potential.Potential` turns any of them into a
relative potential.

    Burkert:  rho = rho0 / ((1 + x)(1 + x^2)),                 x = r / rs
    Einasto:  rho = rho_s exp(-(2/alpha) (x^alpha - 1)),        x = r / r_s

Examples
--------
>>> b = Burkert(1e8, 0.5)
>>> round(float(b.mass(0.5)) / 1e6, 3)  # pi rho0 rs^3 (ln 2 + 2 ln 2 - pi/2)
19.974
>>> e = Einasto(1e7, 1.0, 0.17)
>>> float(e.density(1.0))
10000000.0
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from scipy import special

__all__ = ["Halo", "Burkert", "Einasto"]


@runtime_checkable
class Halo(Protocol):
    """What a spherical mass profile offers (lengths kpc, masses Msun)."""

    rs: float

    def density(self, r: np.ndarray | float) -> np.ndarray:
        """Mass density [Msun/kpc^3] at r [kpc]."""

    def mass(self, r: np.ndarray | float) -> np.ndarray:
        """Enclosed mass M(<r) [Msun]."""

    def dlogrho_dlogr(self, r: np.ndarray | float) -> np.ndarray:
        """Logarithmic density slope at r [kpc]."""


def _positive(name: str, **values: float) -> None:
    for key, v in values.items():
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"{name} halo needs {key} > 0, got {v:g}")


#: Coefficients c_n of 1/((1+x)(1+x^2)) = sum c_n x^n (period 4: 1, -1, 0, 0).
_BURKERT_SERIES = np.array([(1.0, -1.0, 0.0, 0.0)[n % 4] / (n + 3.0) for n in range(40)])


@dataclass(frozen=True)
class Burkert:
    """Burkert (1995) cored halo rho0 / ((1 + r/rs)(1 + (r/rs)^2)).

    Parameters
    ----------
    rho0 : float
        Central density [Msun/kpc^3].
    rs : float
        Core radius [kpc].
    """

    rho0: float
    rs: float

    def __post_init__(self) -> None:
        _positive("Burkert", rho0=self.rho0, rs=self.rs)

    def density(self, r):
        x = np.asarray(r, dtype=float) / self.rs
        return self.rho0 / ((1.0 + x) * (1.0 + x * x))

    __call__ = density

    def dlogrho_dlogr(self, r):
        x = np.asarray(r, dtype=float) / self.rs
        return -x / (1.0 + x) - 2.0 * x * x / (1.0 + x * x)

    def mass(self, r):
        """M(<r) = pi rho0 rs^3 [ln(1 + x^2) + 2 ln(1 + x) - 2 arctan x]; a series below x = 0.1."""
        x = np.asarray(r, dtype=float) / self.rs
        closed = np.log1p(x * x) + 2.0 * np.log1p(x) - 2.0 * np.arctan(x)
        xs = np.minimum(x, 0.1)
        series = 4.0 * xs**3 * np.polynomial.polynomial.polyval(xs, _BURKERT_SERIES)
        return np.pi * self.rho0 * self.rs**3 * np.where(x < 0.1, series, closed)


@dataclass(frozen=True)
class Einasto:
    """Einasto halo rho_s exp(-(2/alpha) ((r/r_s)^alpha - 1)); r_s is where the slope is -2.

    Parameters
    ----------
    rho_s : float
        Density at r_s [Msun/kpc^3].
    rs : float
        Radius r_s of logarithmic slope -2 [kpc].
    alpha : float
        Shape (0.1-0.3 for simulated halos).
    """

    rho_s: float
    rs: float
    alpha: float

    def __post_init__(self) -> None:
        _positive("Einasto", rho_s=self.rho_s, rs=self.rs, alpha=self.alpha)

    def density(self, r):
        x = np.asarray(r, dtype=float) / self.rs
        return self.rho_s * np.exp(-(2.0 / self.alpha) * (x**self.alpha - 1.0))

    __call__ = density

    def dlogrho_dlogr(self, r):
        return -2.0 * (np.asarray(r, dtype=float) / self.rs) ** self.alpha

    def mass(self, r):
        """M(<r) = 4 pi rho_s r_s^3 e^(2/a) / a (a/2)^(3/a) gamma(3/a, (2/a) x^a) (lower incomplete gamma)."""
        a = self.alpha
        x = np.asarray(r, dtype=float) / self.rs
        s = (2.0 / a) * x**a
        pref = 4.0 * np.pi * self.rho_s * self.rs**3 * np.exp(2.0 / a) / a * (a / 2.0) ** (3.0 / a)
        return pref * special.gamma(3.0 / a) * special.gammainc(3.0 / a, s)
