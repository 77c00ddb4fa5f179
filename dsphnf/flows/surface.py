"""Exact projected positional likelihood of a radial flow (Abel projection on a table).

Because the positional part of :class:`~dsphnf.flows.cnf.SphericalFlow` is a
monotone radial map r = T(u) of the base radius u, its whole 3-D density is
one-dimensional and cheap to tabulate: on a fixed grid of base radii u_i one
solver pass gives r_i = T(u_i), and differences on the uniform grid give dr/du
(see :func:`radial_table`), hence

    ln nu(r_i) = ln N_3(u_i) - ln(dr/du)_i - 2 ln(r_i / u_i).

The surface density of a star at projected radius R follows from the Abel
integral with the substitution r = R cosh s, which removes the 1/sqrt(r^2 - R^2)
singularity:

    Sigma(R) = 2 Int_R^inf nu(r) r dr / sqrt(r^2 - R^2) = 2 Int_0^inf nu(R cosh s) R cosh s ds,

evaluated with a fixed Simpson rule in s and ln nu interpolated linearly in
ln r between the table nodes (linear extrapolation beyond them). Sigma is the
exact probability density of a star's sky position (x, y) under the flow
(normalised to one star), differentiable with respect to every parameter
through the node values.

Why: the smeared-KDE loss of the paper (arXiv:2505.00763) estimates log Sigma
by the log of a Monte Carlo mean over a few thousand flow samples. That estimate is biased low
where samples are sparse and cannot see structure narrower than the kernel,
which favoured too spread-out nu(r) and left cored/cuspy fits blind to
holes (benchmarks/RESULTS.md). The exact term replaces the positional part of
the loss; the velocities come from :mod:`dsphnf.flows.losvd` (given beta)
or from the KDE conditional (free beta; see :mod:`dsphnf.flows.objective`).

Units: standardised (positions in units of L); Sigma per L^2, nu per L^3.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

from .device_constants import on_device
from .field import log_normal_radius

__all__ = ["radial_table", "base_radii", "interp_table", "line_of_sight_terms", "top_radius", "log_surface_density",
           "weighted_mean", "positional_nll"]

#: range of the table in radii of the fixed base reshaping [L]
TABLE_RANGE = (1e-4, 1e4)
#: floor on dln r/dln rho in the table (see radial_table)
G_FLOOR = 0.05


def radial_table(flow, n: int = 321) -> tuple[torch.Tensor, torch.Tensor]:
    """(ln r_i, ln nu_i) of a positional flow on ``n`` nodes ((K, n) each for a flow with K members).

    The base radii u_i are chosen so that the fixed base reshaping maps them
    to radii rho_i log-spaced over :data:`TABLE_RANGE`; the nodes stay roughly
    log-spaced in r as long as the learned map is not too far from the
    identity. One solver pass gives ln r_i; the Jacobian follows from
    d ln r/d ln u = (d ln r/d ln rho)(d ln rho/d ln u), the first factor by
    fourth-order central differences on the uniform ln rho grid (error
    ~1e-6 for smooth maps, second order at the two end nodes), the second exact.
    """
    p = next(flow.parameters())
    host = _base_nodes(flow.base, n)
    u, lnrho, dlnrho = on_device(("base_nodes", flow.base, n, TABLE_RANGE), lambda: host, p.dtype, p.device)
    lnr = torch.log(flow.radial_map(u))
    g = _uniform_derivative(lnr, float(host[1][1] - host[1][0]))
    lnu = torch.log(u)
    # ln nu = ln N3(u) - ln(dr/du) - 2 ln(r/u), dr/du = (r/u) g dln rho/dln u
    # Floor on the local stretch g = dln r/dln rho. The maximum-likelihood density of a
    # finite sample is unbounded: a map that almost stops (g -> 0) at one radius makes a
    # thin shell of high density, whose projection diverges at R = r_shell, and training
    # found such shells (then g <= 0 in the differences, NaN). Smooth dSph profiles have
    # g ~ 0.5-2 relative to the Plummer base; below G_FLOOR the loss stops rewarding it.
    lnnu = log_normal_radius(u) - torch.log(g.clamp_min(G_FLOOR)) - torch.log(dlnrho) - 3.0 * (lnr - lnu)
    return lnr, lnnu


def base_radii(base: str, n: int, r_range: tuple[float, float], like: torch.Tensor) -> torch.Tensor:
    """The base radii u of :func:`_base_nodes` on ``like``'s device and dtype (made once per device)."""
    return on_device(("base_nodes", base, n, tuple(r_range)), lambda: _base_nodes(base, n, tuple(r_range)),
                     like.dtype, like.device)[0]


def _uniform_derivative(f: torch.Tensor, dx: float) -> torch.Tensor:
    """df/dx on a uniform grid (the last axis): 4th-order central differences inside, 2nd order next to the ends."""
    d = torch.empty_like(f)
    d[..., 2:-2] = (f[..., :-4] - 8.0 * f[..., 1:-3] + 8.0 * f[..., 3:-1] - f[..., 4:]) / (12.0 * dx)
    d[..., 1] = (f[..., 2] - f[..., 0]) / (2.0 * dx)
    d[..., -2] = (f[..., -1] - f[..., -3]) / (2.0 * dx)
    d[..., 0] = (-3.0 * f[..., 0] + 4.0 * f[..., 1] - f[..., 2]) / (2.0 * dx)
    d[..., -1] = (3.0 * f[..., -1] - 4.0 * f[..., -2] + f[..., -3]) / (2.0 * dx)
    return d


@functools.lru_cache(maxsize=16)
def _base_nodes(base: str, n: int, r_range: tuple[float, float] = TABLE_RANGE) -> tuple[torch.Tensor, ...]:
    """Base radii u whose reshaped radii rho are log-spaced over ``r_range``.

    Returns (u, ln rho, d ln rho/d ln u), float64 (cached: Newton inversions).
    The Gaussian base has no reshaping (rho = u), and its range stops at 8.5.
    """
    from .layers import plummer_inverse, plummer_radius

    hi = r_range[1] if base == "plummer" else min(r_range[1], 8.5)
    lnrho = torch.linspace(math.log(r_range[0]), math.log(hi), n, dtype=torch.float64)
    if base != "plummer":
        return torch.exp(lnrho), lnrho, torch.ones_like(lnrho)
    u = plummer_inverse(torch.exp(lnrho)).requires_grad_(True)
    with torch.enable_grad():
        lr = torch.log(plummer_radius(u))
        (d,) = torch.autograd.grad(lr.sum(), u)
    u = u.detach()
    return u, lnrho, (d * u).detach()


def interp_table(q: torch.Tensor, lnr: torch.Tensor, values: torch.Tensor, extrapolate: bool = True) -> torch.Tensor:
    """A table over ln r interpolated linearly at ln r = ``q`` (any shape).

    ``values`` (m,) or (m, J) on the increasing nodes ``lnr`` (m,); returns
    q.shape (+ (J,)). Beyond the end nodes the end segments are continued
    linearly (``extrapolate``) or the end values held. Differentiable in
    ``q``, ``lnr`` and ``values`` (the bracketing nodes are found without gradient).

    With a leading member axis, ``lnr`` (K, m), ``values`` (K, m) or (K, m, J)
    and ``q`` (K, ...): every member interpolates its own table.

    >>> lnr = torch.tensor([[0.0, 1.0], [0.0, 2.0]])
    >>> interp_table(torch.tensor([[0.5], [0.5]]), lnr, torch.tensor([[0.0, 1.0], [0.0, 1.0]])).tolist()
    [[0.5], [0.25]]
    """
    if lnr.dim() == 1:  # one table: the same arithmetic on a member axis of one
        return interp_table(q.unsqueeze(0), lnr.unsqueeze(0), values.unsqueeze(0), extrapolate)[0]
    lead, n = lnr.shape[:-1], lnr.shape[-1]
    qf = q.reshape(*lead, -1)
    idx = torch.searchsorted(lnr.detach().contiguous(), qf.detach().contiguous()).clamp(1, n - 1)
    x0, x1 = lnr.gather(-1, idx - 1), lnr.gather(-1, idx)
    t = (qf - x0) / (x1 - x0).clamp_min(1e-12)
    if not extrapolate:
        t = t.clamp(0.0, 1.0)
    if values.dim() == lnr.dim() + 1:  # (K, m, J): gather whole rows
        t = t.unsqueeze(-1)
        ij = idx.unsqueeze(-1).expand(*idx.shape, values.shape[-1])
        f0, f1 = values.gather(-2, ij - 1), values.gather(-2, ij)
    else:
        f0, f1 = values.gather(-1, idx - 1), values.gather(-1, idx)
    return (f0 + t * (f1 - f0)).reshape(*q.shape, *values.shape[lnr.dim():])


def _simpson(k: int, dtype, device) -> torch.Tensor:
    """Simpson's weights (1, 4, 2, ..., 4, 1) / 3 of ``k`` (odd) nodes, made once per (k, dtype, device)."""
    def make() -> tuple[np.ndarray]:
        w = np.ones(k)
        w[1:-1:2], w[2:-1:2] = 4.0, 2.0
        return (w / 3.0,)

    return on_device(("simpson", k), make, dtype, device)[0]


def top_radius(R: torch.Tensor) -> torch.Tensor:
    """Where every line of sight's quadrature stops: 1000 max(R) [L], per member with a member axis ((K, 1)).

    >>> top_radius(torch.tensor([0.5, 2.0])).tolist()
    [2000.0]
    """
    return 1000.0 * R.detach().amax(dim=-1, keepdim=True)


def line_of_sight_terms(
    lnr: torch.Tensor, lnnu: torch.Tensor, R: torch.Tensor, n_s: int = 65, r_top: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Quadrature of the Abel integral along each star's line of sight.

    Returns ``s`` (n, n_s) nodes in s = arccosh(r / R), ``q`` = ln r at the
    nodes, and the log-terms whose logsumexp over the last axis is
    ln(Sigma(R) / 2): ln nu(r) + ln r + ln(Simpson weight x ds). Each node is a
    point at depth z = R sinh s along the line of sight, where the line of
    sight makes the angle with the radius vector whose cosine is z / r = tanh s.
    ``n_s`` (odd) Simpson nodes run from r = R to r = 1000 max(R) (fixed by
    the data alone, so that the quadrature does not move with the parameters).
    With a member axis (``lnr``, ``lnnu`` (K, m), ``R`` (K, n)) every member
    has its own nodes (its own max(R)) and table; the outputs gain the axis.
    ``r_top`` [L] ((1,) or (K, 1)) replaces 1000 max(R), so that a part of
    the stars gets the nodes that all of them would.
    """
    if n_s % 2 == 0:
        n_s += 1
    R = R.to(lnr)
    if r_top is None:
        r_top = top_radius(R)
    s_max = torch.acosh(r_top / R.detach())  # (n,)
    frac = torch.linspace(0.0, 1.0, n_s, dtype=lnr.dtype, device=lnr.device)
    s = s_max.unsqueeze(-1) * frac  # (n, n_s)
    lncosh = s + torch.log1p(torch.exp(-2.0 * s)) - math.log(2.0)  # ln cosh s, stable for large s
    q = torch.log(R).unsqueeze(-1) + lncosh
    lw = torch.log(_simpson(n_s, lnr.dtype, lnr.device) / (n_s - 1)) + torch.log(s_max).unsqueeze(-1)
    return s, q, interp_table(q, lnr, lnnu) + q + lw


def log_surface_density(
    flow, R: torch.Tensor, table: tuple[torch.Tensor, torch.Tensor] | None = None, n_s: int = 65
) -> torch.Tensor:
    """ln Sigma(R) of the flow's positions at projected radii ``R`` (n,) [L].

    Sigma is normalised so that Int 2 pi R Sigma dR = 1 (one star). ``table``
    may pass a precomputed :func:`radial_table`; ``n_s`` line-of-sight nodes
    (:func:`line_of_sight_terms`).
    """
    lnr, lnnu = radial_table(flow) if table is None else table
    _, _, terms = line_of_sight_terms(lnr, lnnu, R, n_s)
    return math.log(2.0) + torch.logsumexp(terms, dim=-1)


def weighted_mean(x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of per-star values ``x`` (last axis) weighted by membership ``weights`` (None: plain mean).

    Leading axes (members) are kept: (K, n) gives (K,).
    """
    if weights is None:
        return x.mean(dim=-1)
    w = weights.to(x)
    return (w * x).sum(dim=-1) / w.sum(dim=-1)


def positional_nll(
    flow, R: torch.Tensor, weights: torch.Tensor | None = None, table: tuple[torch.Tensor, torch.Tensor] | None = None
) -> torch.Tensor:
    """Weighted mean of -ln Sigma(R_a) over stars [nats per star, standardised units].

    ``table`` may pass a precomputed :func:`radial_table`.
    """
    return weighted_mean(-log_surface_density(flow, R, table), weights)
