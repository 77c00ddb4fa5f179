"""A foreground population of field stars: a broad Gaussian in v_z, uniform on the sky.

Shared by the baseline's mixture likelihood
(:class:`dsphnf.baseline.mixture.MixtureLikelihood`) and the flow's
(:mod:`dsphnf.flows.foreground`): :func:`velocity_core` finds the members'
velocity peak without membership weights, :class:`Foreground` is the
foreground's v_z Gaussian [km/s] and its fraction (given or free).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Foreground", "velocity_core"]


def velocity_core(v: np.ndarray, start_kms: float = 20.0, clip: float = 3.0, n_iter: int = 20) -> tuple[float, float]:
    """Mean and dispersion [km/s] of the members' velocity peak by iterative ``clip``-sigma clipping.

    Starts at v = 0 (a catalogue's velocities have the systemic velocity
    removed) with ``start_kms``, wider than any dSph's dispersion, so that a
    numerous foreground cannot capture the peak.

    >>> rng = np.random.default_rng(1)
    >>> mu, s = velocity_core(np.concatenate([rng.normal(0, 9, 500), rng.normal(200, 60, 1000)]))
    >>> abs(mu) < 2, 7 < s < 11
    (True, True)
    """
    v = np.asarray(v, dtype=float)
    mu, s = 0.0, float(start_kms)
    for _ in range(n_iter):
        core = v[np.abs(v - mu) < clip * s]
        if core.size < 3:
            break
        mu, s = float(core.mean()), float(core.std())
    return mu, s


@dataclass(frozen=True)
class Foreground:
    """A broad Gaussian foreground in v_z, uniform on the sky inside the data's radial window.

    Attributes
    ----------
    mean_kms, sigma_kms : float
        Mean and dispersion of the foreground's line-of-sight velocities
        [km/s], in the catalogue's frame (systemic velocity removed).
    fraction : float or None
        Fraction of the stars that are foreground; None: a free parameter
        ``f_fg`` with a uniform prior on [0, 1).
    """

    mean_kms: float
    sigma_kms: float
    fraction: float | None = None

    def __post_init__(self) -> None:
        if not (np.isfinite(self.mean_kms) and self.sigma_kms > 0):
            raise ValueError(f"foreground needs a finite mean and sigma > 0 km/s, "
                             f"got {self.mean_kms}, {self.sigma_kms}")
        if self.fraction is not None and not 0.0 <= self.fraction < 1.0:
            raise ValueError(f"foreground fraction must be in [0, 1), got {self.fraction}")

    @classmethod
    def broad(cls, v: np.ndarray, fraction: float | None = None, far: float = 5.0) -> "Foreground":
        """The Gaussian of the stars far from the members' core (|v - mu_core| > ``far`` sigma_core).

        The core is found by :func:`velocity_core`; with fewer than 10 stars
        outside, a Gaussian of mean 0 and 10 sigma_core.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> v = np.concatenate([rng.normal(0, 10, 400), rng.normal(150, 80, 600)])
        >>> fg = Foreground.broad(v)
        >>> 100 < fg.mean_kms < 250, 50 < fg.sigma_kms < 120, fg.fraction is None
        (True, True, True)
        """
        v = np.asarray(v, dtype=float)
        mu, s = velocity_core(v)
        out = v[np.abs(v - mu) > far * s]
        if out.size < 10:
            return cls(0.0, 10.0 * s, fraction)
        return cls(float(out.mean()), float(out.std()), fraction)

    def spec(self) -> dict[str, float | None]:
        """JSON-ready settings."""
        return {"mean_kms": self.mean_kms, "sigma_kms": self.sigma_kms, "fraction": self.fraction}
