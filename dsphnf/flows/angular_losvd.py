"""Exact LOSVD of the ``angular`` velocity family (:mod:`~dsphnf.flows.angular`).

By the Funk-Hecke theorem a direction law p(omega . n) has the projection
t = omega . z_hat distributed as

    q(t | c) = sum_l c_l P_l(c) P_l(t),   c_l = (2l + 1)/2 Int p(mu) P_l(mu) dmu,   c = n . z_hat,

a polynomial of degree 2K (only even l) for the family's polynomial laws; v_z = S t for a speed S.
Convolved with N(0, h^2) its density at v is Int_{-1}^{1} q(y) phi_h(v - S y) dy, q = sum_m d_m y^(2m):
in closed form by moments of the Gaussian on the interval about its point nearest to |v| for
S >= 1.5 h (:func:`_moment_terms`), by Gauss-Legendre nodes below (:func:`_quadrature_terms`), and
summed over the line-of-sight and base-speed nodes of :func:`~dsphnf.flows.losvd.log_losvd` by
:func:`polynomial_mixture`. The likelihood stays exact to the quadrature of the line of sight and the
base speeds.

Units: standardised (positions in L, velocities in V).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from .angular import AngularTable, law_basis_on, legendre_even
from .device_constants import on_device
from .surface import interp_table

__all__ = ["los_coefficients", "polynomial_mixture", "angular_log_mixture", "TAYLOR_SWITCH", "QUADRATURE_NODES"]

#: Speeds S of at least this many Gaussian widths h use the moment expansion of :func:`polynomial_mixture`,
#: smaller ones its Gauss-Legendre nodes (each accurate to 1e-7 or better on its side, to 8 h beyond S:
#: the moments lose digits as S/h falls, 7.7e-8 at 1.5 and 7.4e-7 at 1; 12 nodes 1.2e-11 at 1.5).
TAYLOR_SWITCH = 1.5
#: Gauss-Legendre nodes on [0, 1] for speeds below :data:`TAYLOR_SWITCH` widths.
QUADRATURE_NODES = 12
#: rows (stars) of the velocity mixture computed at once (:class:`_TaylorMixture`; a chunk stays in the cache)
MIXTURE_ROWS = 16


def los_coefficients(law: torch.Tensor, nz: torch.Tensor) -> torch.Tensor:
    """d_m (..., J, K+1) of q(t | c) = sum_m d_m t^(2m) for laws ``law`` (..., J, K+1) at c = ``nz`` (...)."""
    K = law.shape[-1] - 1
    _, leg, mono, _, _ = law_basis_on(law, K)
    g = (law @ leg) * legendre_even(nz, K).unsqueeze(-2)  # c_2i P_2i(c)
    return g @ mono


@lru_cache(maxsize=None)
def _binomial_table(degree: int) -> tuple[tuple[float, ...], ...]:
    """C(2m, j) for m <= K, j <= 2K (nested tuples of floats)."""
    return tuple(tuple(float(math.comb(2 * m, j)) for j in range(2 * degree + 1)) for m in range(degree + 1))


def _moment_terms(va: torch.Tensor, s: torch.Tensor, d: torch.Tensor,
                  h: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """(T_m = Int_{-1}^{1} y^(2m) phi(y* - y) dy for m <= K, phi(y* - 1) + phi(y* + 1)) per element, sigma^2 times.

    In units of S (y* = |v|/S, sigma = h/S, phi the normal density of width sigma), about the
    interval's point nearest to y*, y_c = min(y*, 1): with delta = y* - y_c >= 0 and t = y - y_c on
    [-1 - y_c, 1 - y_c], the moments N_j = Int t^j phi(delta - t) dt follow
    N_(j+1) = delta N_j + j sigma^2 N_(j-1) - sigma^2 [t^j phi(delta - t)], N_0 from erfc (accurate in the
    Gaussian's tail), and T_m = sum_j C(2m, j) y_c^(2m - j) N_j. Accurate to 1e-7 (relative) for
    S >= 1.5 h out to 8 h beyond the interval; an upward recursion about y = 0 lost every digit there.
    The second output is sigma^2 [phi(y* - 1) + phi(y* + 1)], for the derivative in S.
    """
    K = d.shape[-1] - 1
    ys = va / s
    yc = torch.clamp(ys, max=1.0)
    delta, hi, lo, sig = ys - yc, 1.0 - yc, -1.0 - yc, h / s
    sig2, r2 = sig * sig, math.sqrt(2.0) * sig
    c = sig / math.sqrt(2.0 * math.pi)  # sigma^2 times the normal density's factor
    n0 = 0.5 * (torch.erfc((delta - hi) / r2) - torch.erfc((delta - lo) / r2))
    ph, pl = c * torch.exp(-0.5 * ((delta - hi) / sig) ** 2), c * torch.exp(-0.5 * ((delta - lo) / sig) ** 2)
    moments = [n0, delta * n0 - (ph - pl)]
    hp, lp = hi, lo
    for j in range(1, 2 * K):
        moments.append(delta * moments[-1] + j * sig2 * moments[-2] - (hp * ph - lp * pl))
        hp, lp = hp * hi, lp * lo
    binom = _binomial_table(K)
    yc_pow = [None, yc]
    for _ in range(2 * K - 1):
        yc_pow.append(yc_pow[-1] * yc)
    t = [n0]
    for m in range(1, K + 1):
        t_m = moments[2 * m]
        for j in range(2 * m):
            t_m = t_m + binom[m][j] * yc_pow[2 * m - j] * moments[j]
        t.append(t_m)
    return t, ph + pl


def _taylor_terms(va: torch.Tensor, s: torch.Tensor, d: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Int_{-1}^{1} Q(y) phi_h(v - S y) dy = (1/S) sum_m d_m T_m per element (:func:`_moment_terms`)."""
    t, _ = _moment_terms(va, s, d, h)
    return sum(d[..., m] * t_m for m, t_m in enumerate(t)) / s


class _TaylorMixture(torch.autograd.Function):
    """sum_{S,J} w (1/S) sum_m d_m T_m on rows (R, k, 1, 1), (R, 1, S, J), (R, 1, S, J, K+1), (R, 1, S, J),
    (R, 1, 1, 1), in chunks of rows, with the derivatives in closed form (nothing of size R k S J kept).

    With p = (1/S) Int Q(y) phi_h(v - S y) dy: dp/dd_m = T_m / S, and by parts
    dp/dS = (1/S^2) [Q(1) (phi(y* - 1) + phi(y* + 1)) - sum_m (2m + 1) d_m T_m]. The backward pass
    recomputes each chunk's T_m (as :class:`~dsphnf.flows.losvd._UniformMixture` recomputes its erfs).
    """

    @staticmethod
    def forward(ctx, va, s, d, w, h):
        out = va.new_empty(va.shape[:2])
        for sl in _chunks(va.shape[0]):
            out[sl] = (_taylor_terms(va[sl], s[sl], d[sl], h[sl]) * w[sl]).sum(dim=(-2, -1))
        ctx.save_for_backward(va, s, d, w, h)
        return out

    @staticmethod
    def backward(ctx, grad):
        va, s, d, w, h = ctx.saved_tensors
        gs, gd, gw = torch.empty_like(s), torch.empty_like(d), torch.empty_like(w)
        for sl in _chunks(va.shape[0]):
            ss, dd = s[sl], d[sl]
            t, edge = _moment_terms(va[sl], ss, dd, h[sl])
            g = grad[sl].unsqueeze(-1).unsqueeze(-1)
            gw[sl] = (g * (sum(dd[..., m] * t_m for m, t_m in enumerate(t)) / ss)).sum(dim=1, keepdim=True)
            gwel = g * w[sl]
            gd[sl] = torch.stack([(gwel * t_m).sum(dim=1, keepdim=True) for t_m in t], dim=-1) / ss.unsqueeze(-1)
            sig2 = (h[sl] / ss) ** 2
            ds = (dd.sum(-1) * edge / sig2 - sum((2 * m + 1) * dd[..., m] * t_m for m, t_m in enumerate(t))) / (ss * ss)
            gs[sl] = (gwel * ds).sum(dim=1, keepdim=True)
        return None, gs, gd, gw, None


def _chunks(n: int) -> list[slice]:
    """Slices of :data:`MIXTURE_ROWS` rows covering ``n``."""
    return [slice(i, i + MIXTURE_ROWS) for i in range(0, n, MIXTURE_ROWS)]


def _quadrature_terms(va: torch.Tensor, s: torch.Tensor, d: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """The same integral by Gauss-Legendre nodes on [0, 1] (the law is even), for broadcastable ``va``, ``s``,
    ``h`` and ``d`` (..., K+1).

    Accurate to 1e-10 for S <= 1.5 h with 12 nodes (the integrand is smooth on the scale of the interval).
    """
    y, wq = on_device(("angular_gl", QUADRATURE_NODES), lambda: _half_nodes(QUADRATURE_NODES), s.dtype, s.device)
    K = d.shape[-1] - 1
    q = d @ (y.unsqueeze(0) ** (2 * torch.arange(K + 1, device=s.device, dtype=s.dtype)).unsqueeze(-1))
    hh = h.unsqueeze(-1)
    sy = s.unsqueeze(-1) * y
    vv = va.unsqueeze(-1)
    g = torch.exp(-0.5 * ((vv - sy) / hh) ** 2) + torch.exp(-0.5 * ((vv + sy) / hh) ** 2)
    g = g / (math.sqrt(2.0 * math.pi) * hh)
    return (q * g * wq).sum(-1)


def _half_nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1]."""
    x, w = np.polynomial.legendre.leggauss(n)
    return 0.5 * (x + 1.0), 0.5 * w


def polynomial_mixture(va: torch.Tensor, s: torch.Tensor, d: torch.Tensor, w: torch.Tensor,
                       h: torch.Tensor) -> torch.Tensor:
    """sum w Int_{-1}^{1} sum_m d_m y^(2m) phi_h(v - S y) dy over the last two axes of ``s`` (per row and velocity).

    Shapes: ``va`` (R, k, 1, 1) (|v|), ``s`` and ``w`` (R, 1, S, J), ``d``
    (R, 1, S, J, K+1), ``h`` (R, 1, 1, 1) or a scalar; returns (R, k).
    Speeds of at least :data:`TAYLOR_SWITCH` widths by moments of the Gaussian about the interval's point
    nearest to |v| (:class:`_TaylorMixture`, derivatives in closed form), smaller ones by Gauss-Legendre
    nodes (:func:`_quadrature_terms`, on those nodes only); both accurate out to 8 widths beyond the interval.
    Differentiable in ``s``, ``d`` and ``w``.

    >>> va = torch.tensor([0.0], dtype=torch.float64).reshape(1, 1, 1, 1)
    >>> one = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    >>> d = torch.tensor([0.5, 0.0], dtype=torch.float64).reshape(1, 1, 1, 1, 2)   # uniform on [-1, 1]
    >>> round(float(polynomial_mixture(va, one, d, one, torch.tensor(1e-3, dtype=torch.float64))[0, 0]), 6)
    0.5
    """
    R = va.shape[0]
    h = torch.as_tensor(h, dtype=s.dtype, device=s.device).expand(R, 1, 1, 1)
    small = s < TAYLOR_SWITCH * h  # (R, 1, S, J): the same for every velocity of a row
    out = _TaylorMixture.apply(va, torch.maximum(s, TAYLOR_SWITCH * h), d, w.masked_fill(small, 0.0), h)
    if bool(small.any()):
        row, _, si, ji = small.nonzero(as_tuple=True)
        q = _quadrature_terms(va[row, :, 0, 0], s[row, 0, si, ji].unsqueeze(-1), d[row, 0, si, ji].unsqueeze(1),
                              h[row, 0, 0, 0].unsqueeze(-1))  # (n, k)
        out = out.index_add(0, row, q * w[row, 0, si, ji].unsqueeze(-1))
    return out


def angular_log_mixture(vtable: AngularTable, q: torch.Tensor, nz: torch.Tensor, lw_los: torch.Tensor,
                        v: torch.Tensor, h: torch.Tensor, node_weights: torch.Tensor | None = None) -> torch.Tensor:
    """ln p(v_z | R) convolved with N(0, h^2) for stars with line-of-sight nodes (ln r ``q``, n_z ``nz``).

    ``q``, ``nz``, ``lw_los`` (n, n_s) as in :func:`~dsphnf.flows.losvd.log_losvd`;
    ``v`` (n,) or (n, k); ``h`` (n,) or a scalar. Returns v's shape, or (n,)
    with ``node_weights`` (k,) (the weighted sum over the k velocities).
    """
    m, J, k1 = vtable.law.shape
    s = torch.exp(interp_table(q, vtable.lnr, vtable.lns, extrapolate=False))  # (n, n_s, J)
    law = interp_table(q, vtable.lnr, vtable.law.reshape(m, J * k1), extrapolate=False).reshape(*q.shape, J, k1)
    d = los_coefficients(law, nz)
    w = torch.exp(lw_los).unsqueeze(-1) * torch.exp(vtable.lw)
    n = q.shape[0]
    va = v.to(s).abs().reshape(n, -1, 1, 1)
    h = torch.as_tensor(h, dtype=s.dtype, device=s.device)
    hh = h.reshape(n, 1, 1, 1) if h.dim() >= 1 else h.reshape(1, 1, 1, 1).expand(n, 1, 1, 1)
    lp = torch.log(polynomial_mixture(va, s.unsqueeze(1), d.unsqueeze(1), w.unsqueeze(1), hh).clamp_min(1e-30))
    if node_weights is not None:
        return (lp * node_weights.to(lp)).sum(-1)
    return lp.reshape(v.shape)
