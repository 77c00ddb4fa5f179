"""Multi-population stellar tracers: a weighted sum of normalised Zhao components.

Each population k has number fraction w_k, density nu_k(r) (one star) and its
own anisotropy beta_k(r).  The mixture behaves like one tracer:

    nu(r) = sum_k w_k nu_k(r),
    nu sigma_r^2 = sum_k w_k nu_k sigma_r,k^2,
    beta(r) = sum_k beta_k w_k nu_k sigma_r,k^2 / sum_k w_k nu_k sigma_r,k^2,

the last being the nu-weighted combination of sigma_r^2 and sigma_t^2 (not a
mean of beta).  Because the Jeans equation and its projection are linear in
(nu sigma_r^2, beta nu sigma_r^2), the mixture's Sigma(R) and sigma_los(R)
follow from (:class:`TracerMixture`, :class:`MixtureAnisotropy`) with the
ordinary one-tracer functions of :mod:`dsphnf.jeans` and :mod:`dsphnf.projection`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .anisotropy import Anisotropy
from .jeans import nu_sigma_r2
from .profiles import Zhao

__all__ = ["TracerMixture", "MixtureAnisotropy", "population_pressures"]


@dataclass(frozen=True)
class TracerMixture:
    """nu(r) = sum_k w_k nu_k(r) [kpc^-3], one star in total.

    Parameters
    ----------
    weights : tuple of float
        Number fractions (sum 1).
    components : tuple of Zhao
        Normalised component densities.

    Examples
    --------
    >>> from dsphnf.profiles import tracer_zhao
    >>> mix = TracerMixture((0.3, 0.7), (tracer_zhao(0.15), tracer_zhao(0.6)))
    >>> round(float(mix.mass(1e4)), 6), mix.rs
    (1.0, 0.6)
    """

    weights: tuple[float, ...]
    components: tuple[Zhao, ...]

    def density(self, r: np.ndarray | float) -> np.ndarray:
        """Number density [kpc^-3] at r [kpc]."""
        return sum(w * c.density(r) for w, c in zip(self.weights, self.components))

    __call__ = density

    def mass(self, r: np.ndarray | float) -> np.ndarray:
        """Number of stars (fraction of one) inside r [kpc]."""
        return sum(w * c.mass(r) for w, c in zip(self.weights, self.components))

    @property
    def rs(self) -> float:
        """Largest component scale radius [kpc] (the truth grid reaches 10 of these)."""
        return max(c.rs for c in self.components)

    @property
    def rs_min(self) -> float:
        """Smallest component scale radius [kpc] (the truth grid starts at 0.01 of these)."""
        return min(c.rs for c in self.components)


def population_pressures(r: np.ndarray, mixture: TracerMixture, anisotropies, mass) -> np.ndarray:
    """w_k nu_k sigma_r,k^2 [kpc^-3 (km/s)^2] per population, shape (K, len(r)), from the Jeans equation."""
    return np.array([w * nu_sigma_r2(r, c.density, mass, a)
                     for w, c, a in zip(mixture.weights, mixture.components, anisotropies)])


class MixtureAnisotropy(Anisotropy):
    """beta(r) of a mixture: the pressure-weighted mean of the populations' beta_k (tabulated in ln r).

    Parameters
    ----------
    mixture : TracerMixture
        The populations.
    anisotropies : sequence of Anisotropy
        One per population.
    mass : callable
        Enclosed halo mass M(r) [Msun].
    """

    name: ClassVar[str] = "mixture"

    def __init__(self, mixture: TracerMixture, anisotropies, mass, n: int = 241) -> None:
        self.anisotropies = tuple(anisotropies)
        self.lnr = np.linspace(np.log(1e-4 * mixture.rs_min), np.log(1e3 * mixture.rs), n)
        r = np.exp(self.lnr)
        p = population_pressures(r, mixture, self.anisotropies, mass)
        b = np.array([a.beta(r) for a in self.anisotropies])
        self.table = np.sum(b * p, axis=0) / np.sum(p, axis=0)

    def beta(self, r):
        return np.interp(np.log(np.asarray(r, dtype=float)), self.lnr, self.table)

    @property
    def beta_centre(self) -> float:
        return float(self.table[0])

    def spec(self) -> str:
        """The per-population spellings joined by ';' (as given to ``--anisotropy``)."""
        return ";".join(a.spec() for a in self.anisotropies)
