"""Velocity-anisotropy models beta(r) = 1 - sigma_t^2 / (2 sigma_r^2).

Every model provides ``beta(r)`` and the Jeans integrating factor
``g(r) = exp(Int 2 beta / r dr)`` (up to a constant), so that the radial
Jeans equation reads d(g nu sigma_r^2)/dr = -g nu G M / r^2.

The command-line spelling shared by ``dsphnf fit`` and ``dsphnf baseline`` is
parsed by :func:`parse_anisotropy`: ``isotropic``, ``constant:B`` or
``om:RA`` (RA in kpc).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = [
    "Anisotropy",
    "Isotropic",
    "ConstantBeta",
    "OsipkovMerritt",
    "CallableBeta",
    "parse_anisotropy",
]


class Anisotropy:
    """Base class: a spherical anisotropy profile beta(r), r in kpc."""

    name: str = "anisotropy"

    def beta(self, r: np.ndarray | float) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, r: np.ndarray | float) -> np.ndarray:
        return self.beta(r)

    def log_g(self, r: np.ndarray | float) -> np.ndarray:
        """ln of the integrating factor, Int_1^r 2 beta(s)/s ds (r in kpc).

        Vectorised: Int_0^{ln r} 2 beta(e^x) dx by 10-point Gauss-Legendre on
        panels of width 0.5 in x = ln r (cumulated from x = 0), plus a partial
        panel for each radius.  Output has the shape of ``r``.
        """
        r = np.asarray(r, dtype=float)
        x = np.log(r).ravel()
        if x.size == 0:
            return np.zeros(r.shape)
        nodes, weights = np.polynomial.legendre.leggauss(10)
        nodes, weights = 0.5 * (nodes + 1.0), 0.5 * weights
        width = 0.5
        k_lo = int(np.floor(min(0.0, x.min()) / width))
        k_hi = int(np.ceil(max(0.0, x.max()) / width))
        edges = width * np.arange(k_lo, k_hi + 1)
        f = lambda y: 2.0 * np.asarray(self.beta(np.exp(y)), dtype=float)
        panel = width * (f(edges[:-1, None] + width * nodes[None, :]) @ weights)
        cum = np.concatenate([[0.0], np.cumsum(panel)])
        cum -= cum[-k_lo]  # integral from x = 0 (edge index -k_lo)
        k = np.clip(np.floor(x / width).astype(int) - k_lo, 0, len(edges) - 2)
        dx = x - edges[k]
        part = dx * (f(edges[k, None] + dx[:, None] * nodes[None, :]) @ weights)
        return (cum[k] + part).reshape(r.shape)

    def spec(self) -> str:
        """The command-line spelling of this model."""
        return self.name


@dataclass(frozen=True)
class Isotropic(Anisotropy):
    """beta = 0 everywhere."""

    name = "isotropic"

    def beta(self, r):
        return np.zeros_like(np.asarray(r, dtype=float))

    def log_g(self, r):
        return np.zeros_like(np.asarray(r, dtype=float))


@dataclass(frozen=True)
class ConstantBeta(Anisotropy):
    """Constant anisotropy beta0 < 1 (radial > 0, tangential < 0)."""

    beta0: float = 0.0
    name = "constant"

    def __post_init__(self) -> None:
        if not self.beta0 < 1.0:
            raise ValueError(f"constant anisotropy needs beta < 1, got {self.beta0}")

    def beta(self, r):
        return np.full_like(np.asarray(r, dtype=float), self.beta0)

    def log_g(self, r):
        return 2.0 * self.beta0 * np.log(np.asarray(r, dtype=float))

    def spec(self) -> str:
        return f"constant:{self.beta0:g}"


@dataclass(frozen=True)
class OsipkovMerritt(Anisotropy):
    """Osipkov-Merritt beta(r) = r^2 / (r^2 + r_a^2), anisotropy radius r_a [kpc]."""

    ra: float = 1.0
    name = "om"

    def __post_init__(self) -> None:
        if not self.ra > 0:
            raise ValueError(f"Osipkov-Merritt needs r_a > 0 kpc, got {self.ra}")

    def beta(self, r):
        r2 = np.asarray(r, dtype=float) ** 2
        return r2 / (r2 + self.ra**2)

    def log_g(self, r):
        return np.log(np.asarray(r, dtype=float) ** 2 + self.ra**2)

    def spec(self) -> str:
        return f"om:{self.ra:g}"


class CallableBeta(Anisotropy):
    """Any user function beta(r) (vectorised over r in kpc, values < 1)."""

    name = "callable"

    def __init__(self, func: Callable[[np.ndarray], np.ndarray]) -> None:
        self.func = func

    def beta(self, r):
        return np.asarray(self.func(np.asarray(r, dtype=float)), dtype=float)


def parse_anisotropy(spec: str) -> Anisotropy:
    """Parse ``isotropic``, ``constant:B`` or ``om:RA`` (RA in kpc).

    Raises
    ------
    ValueError
        With a one-line message naming the bad spelling.
    """
    s = spec.strip().lower()
    if s in ("isotropic", "iso", "0"):
        return Isotropic()
    kind, _, value = s.partition(":")
    try:
        x = float(value)
    except ValueError:
        raise ValueError(
            f"bad anisotropy {spec!r}: use isotropic, constant:B (B < 1) or om:RA (RA > 0 kpc)"
        ) from None
    if kind in ("constant", "const", "beta"):
        return ConstantBeta(x)
    if kind in ("om", "osipkov-merritt"):
        return OsipkovMerritt(x)
    raise ValueError(f"bad anisotropy {spec!r}: use isotropic, constant:B (B < 1) or om:RA (RA > 0 kpc)")
