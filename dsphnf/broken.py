"""A broken power-law halo: the density a power law of r between fixed radii, continuous at them.

With nodes r_1 < ... < r_K and ln rho_k the log density at node k,

    ln rho(r) = ln rho_k - gamma_k ln(r / r_k)        between r_k and r_(k+1),
    gamma_k   = -(ln rho_(k+1) - ln rho_k) / ln(r_(k+1) / r_k),

continued inwards of r_1 with the slope ``inner`` and outwards of r_K with
``outer`` (the logarithmic slopes are gamma = -d ln rho / d ln r >= 0).  The
enclosed mass is a sum of closed forms, exact at every radius: a shell of a
power law anchored at (r_k, rho_k) holds

    4 pi rho_k r_k^3 [x^(3 - gamma) / (3 - gamma)] between its radii x r_k,

with its limit 4 pi rho_k r_k^3 ln x at gamma = 3 (so ``inner`` must be < 3).
Every function here is batched over rows (halos) so that a sampler's walkers go
through at once; :class:`BrokenPowerLaw` is one halo with the interface of
:class:`dsphnf.halos.Halo`.  The baseline's ``broken`` family
(:mod:`dsphnf.baseline.halo_family`) puts the nodes at fixed multiples of the
stars' half-light radius, as GravSphere's binned power-law mass model does
(Read & Steger 2017), so the family holds cusps, cores and sharp turns alike.

Examples
--------
>>> h = BrokenPowerLaw((0.1, 1.0), (1e8, 1e7), inner=0.0, outer=3.0)
>>> round(float(h.dlogrho_dlogr(0.3)), 12), round(float(h.density(0.05)) / 1e8, 12)
(-1.0, 1.0)
>>> round(float(h.mass(0.1)) / (4 / 3 * np.pi * 1e8 * 0.1**3), 12)  # a uniform core inside r_1
1.0
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BrokenPowerLaw", "broken_slopes", "broken_log_density", "broken_log_slope", "broken_mass"]


def broken_slopes(ln_nodes: np.ndarray, ln_rho: np.ndarray, inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """Slopes gamma of every piece, (B, K + 1): ``inner``, the K - 1 between the nodes, ``outer``.

    ``ln_nodes`` and ``ln_rho`` are (B, K) (ln of radii [kpc] and densities
    [Msun/kpc^3]); ``inner`` and ``outer`` (B,).
    """
    between = -np.diff(ln_rho, axis=1) / np.diff(ln_nodes, axis=1)
    return np.concatenate([np.asarray(inner, float)[:, None], between, np.asarray(outer, float)[:, None]], axis=1)


def _log_radii(r: np.ndarray, B: int) -> np.ndarray:
    """ln r [ln kpc] as (B, n), from radii (n,) shared by B halos or (B, n) of their own."""
    return np.broadcast_to(np.log(np.asarray(r, dtype=float)), (B, np.shape(r)[-1]))


def _pieces(ln_r: np.ndarray, ln_nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Piece index j (0 inside r_1, K outside r_K) and its anchor node, for ln_r (B, n)."""
    j = np.sum(ln_r[:, :, None] >= ln_nodes[:, None, :], axis=2)
    return j, np.clip(j - 1, 0, ln_nodes.shape[1] - 1)


def broken_log_density(r: np.ndarray, ln_nodes: np.ndarray, ln_rho: np.ndarray, inner: np.ndarray,
                       outer: np.ndarray) -> np.ndarray:
    """ln rho [Msun/kpc^3] at radii ``r`` [kpc] ((n,) shared, or (B, n)) of B halos -> (B, n).

    Examples
    --------
    >>> ln_n, ln_rho = np.log([[1.0, 2.0]]), np.log([[8.0, 1.0]])
    >>> np.exp(broken_log_density(np.array([0.5, 1.5, 4.0]), ln_n, ln_rho, np.array([1.0]), np.array([4.0])))
    array([[16.        ,  2.37037037,  0.0625    ]])
    """
    B = ln_nodes.shape[0]
    ln_r = _log_radii(r, B)
    gamma = broken_slopes(ln_nodes, ln_rho, inner, outer)
    j, a = _pieces(ln_r, ln_nodes)
    rows = np.arange(B)[:, None]
    return ln_rho[rows, a] - gamma[rows, j] * (ln_r - ln_nodes[rows, a])


def broken_log_slope(r: np.ndarray, ln_nodes: np.ndarray, ln_rho: np.ndarray, inner: np.ndarray,
                     outer: np.ndarray) -> np.ndarray:
    """d ln rho / d ln r (minus the slope of the piece each radius lies in) at ``r`` [kpc] ((n,) or (B, n)) -> (B, n).

    Examples
    --------
    >>> ln_n, ln_rho = np.log([[1.0, 2.0]]), np.log([[8.0, 1.0]])
    >>> broken_log_slope(np.array([0.5, 1.5, 4.0]), ln_n, ln_rho, np.array([1.0]), np.array([4.0]))
    array([[-1., -3., -4.]])
    """
    j, _ = _pieces(_log_radii(r, ln_nodes.shape[0]), ln_nodes)
    return -np.take_along_axis(broken_slopes(ln_nodes, ln_rho, inner, outer), j, axis=1)


def _power_integral(u: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(e^(c u) - 1) / c, with its limit u at c = 0: Int_0^u e^(c t) dt."""
    small = np.abs(c) < 1e-8
    safe = np.where(small, 1.0, c)
    return np.where(small, u * (1.0 + 0.5 * c * u), np.expm1(safe * u) / safe)


def broken_mass(r: np.ndarray, ln_nodes: np.ndarray, ln_rho: np.ndarray, inner: np.ndarray,
                outer: np.ndarray) -> np.ndarray:
    """Enclosed mass M(<r) [Msun] at radii ``r`` [kpc] ((n,) or (B, n)) of B halos -> (B, n).

    Needs ``inner`` < 3 (a finite mass at the centre).

    Examples
    --------
    >>> ln_n, ln_rho = np.log([[1.0, 2.0]]), np.log([[1.0, 1.0]])
    >>> round(float(broken_mass(np.array([2.0]), ln_n, ln_rho, np.array([0.0]), np.array([3.0]))[0, 0] / np.pi), 12)
    10.666666666667
    """
    B, K = ln_nodes.shape
    ln_r = _log_radii(r, B)
    gamma = broken_slopes(ln_nodes, ln_rho, inner, outer)
    c = 3.0 - gamma  # (B, K + 1)
    amp = 4.0 * np.pi * np.exp(ln_rho + 3.0 * ln_nodes)  # 4 pi rho_k r_k^3, (B, K)
    u = np.minimum(ln_r - ln_nodes[:, :1], 0.0)  # the inner piece, anchored at node 1
    total = amp[:, :1] * np.exp(c[:, :1] * u) / c[:, :1]
    for k in range(K):
        hi = ln_nodes[:, k + 1:k + 2] if k + 1 < K else np.full((B, 1), np.inf)
        u = np.clip(np.minimum(ln_r, hi) - ln_nodes[:, k:k + 1], 0.0, None)
        total = total + amp[:, k:k + 1] * _power_integral(u, c[:, k + 1:k + 2])
    return total


@dataclass(frozen=True)
class BrokenPowerLaw:
    """One broken power-law halo (see the module): densities at nodes, slopes beyond them.

    Parameters
    ----------
    nodes : tuple of float
        Increasing radii r_k [kpc].
    rho_nodes : tuple of float
        Density at each node [Msun/kpc^3], > 0.
    inner : float
        Slope -d ln rho / d ln r inwards of the first node, in [0, 3).
    outer : float
        Slope outwards of the last node.
    """

    nodes: tuple[float, ...]
    rho_nodes: tuple[float, ...]
    inner: float
    outer: float

    def __post_init__(self) -> None:
        n, rho = np.asarray(self.nodes, float), np.asarray(self.rho_nodes, float)
        if n.ndim != 1 or n.size < 1 or n.shape != rho.shape:
            raise ValueError("a broken power law needs as many node densities as nodes, at least one")
        if not (np.all(n > 0) and np.all(np.diff(n) > 0) and np.all(rho > 0) and np.all(np.isfinite(rho))):
            raise ValueError("broken power-law nodes must increase from > 0 kpc and their densities be > 0")
        if not 0.0 <= self.inner < 3.0:
            raise ValueError(f"the inner slope must be in [0, 3) for a finite mass, got {self.inner:g}")

    @property
    def rs(self) -> float:
        """The middle node [kpc] (the halo's scale)."""
        return float(self.nodes[len(self.nodes) // 2])

    def _args(self) -> tuple[np.ndarray, ...]:
        return (np.log(np.asarray(self.nodes, float))[None, :], np.log(np.asarray(self.rho_nodes, float))[None, :],
                np.array([self.inner]), np.array([self.outer]))

    def _apply(self, f, r) -> np.ndarray:
        r = np.asarray(r, dtype=float)
        return f(r.reshape(-1), *self._args())[0].reshape(r.shape)

    def density(self, r):
        """Density [Msun/kpc^3] at r [kpc]."""
        return np.exp(self._apply(broken_log_density, r))

    __call__ = density

    def mass(self, r):
        """M(<r) [Msun], closed form."""
        return self._apply(broken_mass, r)

    def dlogrho_dlogr(self, r):
        """Logarithmic slope d ln rho / d ln r (the slope of the piece r lies in)."""
        return self._apply(broken_log_slope, r)
