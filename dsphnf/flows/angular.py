"""The ``angular`` velocity family: a speed map and a learned angular law of the velocity direction.

A spherical, non-rotating tracer has f(r, v_r^2, v_t^2) = f(r, s, mu), with
s = |v| and mu = v_r / s: at every radius a speed distribution and, at every
speed, a law p(mu | r, s) of the direction's cosine to the radius vector. The
elliptical family gives every speed one ellipsoidal aspect, so its v_r and v_t
distributions have one shape; a constant-beta model f(E) L^(-2 beta) has
p(mu) prop. to (1 - mu^2)^(-beta) at every speed, which no ellipsoid makes (for
beta < 0 it vanishes along the radius). This family writes

    v = S(s0; r) [mu n + sqrt(1 - mu^2) e_t],   mu = T(mu0; r, s0),

with S the isotropic speed map of the velocity ODE (as for the elliptical
family), mu0 = u_v . n / s0 uniform on [-1, 1] in the base, e_t the base
velocity's tangential direction, and T the monotone map that carries the
uniform law to

    p(mu | r, s0) = sum_k w_k(r, s0) phi_k(mu),   phi_k = C(K, k) mu^(2k) (1 - mu^2)^(K - k) / Z_k,

a mixture of Bernstein polynomials in mu^2 of degree K = :data:`ANGULAR_DEGREE`
(each normalised on [-1, 1]); the weights w = softmax(MLP(ln r, ln s0) + ln Z)
start at w_k = Z_k / 2, the uniform law (the untrained start is isotropic).
Every law is even in mu (no streaming) and non-negative; beta runs from -K
(all weight on (1 - mu^2)^K) to 1 - 1/(2K + 1) (on mu^(2K)): [-4, 0.89] for K = 4.
As K grows the family approaches every f(r, s, mu); constant beta = 0, -1, ...,
-K are exact, other constant betas are approximated by a polynomial law.

Density. The velocity Jacobian at fixed x is |dv/du_v| = (S/s0)^2 (dS/ds0) T'(mu0),
and T'(mu0) = 1 / (2 p(mu)).

Exact LOSVD. By the Funk-Hecke theorem a direction law p(omega . n) has the
projection t = omega . z_hat distributed as

    q(t | c) = sum_l c_l P_l(c) P_l(t),   c_l = (2l + 1)/2 Int p(mu) P_l(mu) dmu,   c = n . z_hat,

a polynomial of degree 2K (only even l); v_z = S t. Convolved with N(0, h^2)
its density at v is Int_{-1}^{1} q(y) phi_h(v - S y) dy, with q = sum_m d_m y^(2m):
in closed form by moments of the Gaussian on the interval for S >= 1.5 h, by
Gauss-Legendre nodes below (:func:`polynomial_mixture`). The likelihood stays
exact (to the quadrature of the line of sight and the base speeds).

Units: standardised (positions in L, velocities in V).
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch
from numpy.polynomial import legendre as npleg
from scipy import special
from torch import nn

from .device_constants import on_device
from .field import MLP, soft_log_radius
from .separable import speed_nodes_on, speed_state_table

__all__ = ["ANGULAR_DEGREE", "AngularLaw", "AngularTable", "angular_table", "is_angular_table", "law_basis",
           "legendre_even", "law_moments", "angular_table_moments", "polynomial_mixture", "law_cdf", "law_quantile",
           "law_log_density"]

#: Degree K of the angular law in mu^2: beta in [-K, 1 - 1/(2K + 1)], the LOSVD a polynomial of degree 2K.
ANGULAR_DEGREE = 4
#: Speeds S of at least this many Gaussian widths h use the moment expansion of :func:`polynomial_mixture`,
#: smaller ones its Gauss-Legendre nodes (each accurate to 1e-7 or better on its side, to 8 h beyond S:
#: the moments lose digits as S/h falls, 7.7e-8 at 1.5 and 7.4e-7 at 1; 12 nodes 1.2e-11 at 1.5).
TAYLOR_SWITCH = 1.5
#: Gauss-Legendre nodes on [0, 1] for speeds below :data:`TAYLOR_SWITCH` widths.
QUADRATURE_NODES = 12
#: rows (stars) of the velocity mixture computed at once (:class:`_TaylorMixture`; a chunk stays in the cache)
MIXTURE_ROWS = 16


@lru_cache(maxsize=None)
def law_basis(degree: int = ANGULAR_DEGREE) -> dict[str, np.ndarray]:
    """Constants of the Bernstein basis phi_k in mu^2 of degree K (module docstring).

    ``log_z`` (K+1,): ln Z_k; ``legendre`` (K+1, K+1): c_(2i) of phi_k;
    ``monomial`` (K+1, K+1): the coefficient of t^(2m) in P_(2i); ``mu2``,
    ``mu4`` (K+1,): <mu^2>, <mu^4> under phi_k.

    >>> b = law_basis(2)
    >>> np.allclose(np.exp(b["log_z"]).sum(), 2.0), np.allclose(b["legendre"][:, 0], 0.5)
    (True, True)
    """
    K = int(degree)
    x, wq = np.polynomial.legendre.leggauss(4 * K + 8)
    k = np.arange(K + 1)[:, None]
    bern = special.comb(K, k) * x**(2 * k) * (1.0 - x * x)**(K - k)  # (K+1, nodes)
    z = bern @ wq
    phi = bern / z[:, None]
    ls = 2 * np.arange(K + 1)
    pl = np.stack([npleg.legval(x, np.eye(2 * K + 1)[l]) for l in ls])  # (K+1, nodes)
    leg = (phi * wq) @ pl.T * (2 * ls + 1) / 2.0
    mono = np.zeros((K + 1, K + 1))
    for i, l in enumerate(ls):
        mono[i, : l // 2 + 1] = npleg.leg2poly(np.eye(l + 1)[l])[::2]
    return {"log_z": np.log(z), "legendre": leg, "monomial": mono,
            "mu2": (phi * x * x) @ wq, "mu4": (phi * x**4) @ wq}


def _basis_on(like: torch.Tensor, degree: int) -> tuple[torch.Tensor, ...]:
    """(log_z, legendre, monomial, mu2, mu4) of :func:`law_basis` on ``like``'s device and dtype."""
    names = ("log_z", "legendre", "monomial", "mu2", "mu4")
    return on_device(("angular_basis", int(degree)), lambda: tuple(law_basis(degree)[n] for n in names),
                     like.dtype, like.device)


def legendre_even(c: torch.Tensor, degree: int = ANGULAR_DEGREE) -> torch.Tensor:
    """P_0(c), P_2(c), ..., P_2K(c) stacked on a last axis (Bonnet's recursion).

    >>> legendre_even(torch.tensor([1.0, 0.0]), 1).tolist()
    [[1.0, 1.0], [1.0, -0.5]]
    """
    p_prev, p = torch.ones_like(c), c
    out = [p_prev]
    for n in range(1, 2 * degree):
        p_prev, p = p, ((2 * n + 1) * c * p - n * p_prev) / (n + 1)
        if n % 2 == 1:
            out.append(p)
    return torch.stack(out, dim=-1)


class AngularLaw(nn.Module):
    """Weights w_k(r, s0) of the angular law: softmax(MLP(soft ln r, ln s0) + ln Z_k) (module docstring).

    The MLP's last layer starts at zero: the untrained law is uniform (isotropic).

    >>> law = AngularLaw().double()
    >>> w = law.weights(torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    >>> bool(torch.allclose(w @ torch.as_tensor(law_basis()["legendre"]), torch.tensor([0.5, 0, 0, 0, 0]).double()))
    True
    """

    def __init__(self, width: int = 32, depth: int = 2, degree: int = ANGULAR_DEGREE) -> None:
        super().__init__()
        self.degree = int(degree)
        self.mlp = MLP(2, width, depth, n_out=self.degree + 1)

    def weights(self, lnr: torch.Tensor, ls0: torch.Tensor) -> torch.Tensor:
        """w (..., K+1) at standardised ln r and base log-speed ln s0 (broadcast together)."""
        lnr, ls0 = torch.broadcast_tensors(lnr, ls0)
        logits = self.mlp(torch.stack([soft_log_radius(lnr), ls0], dim=-1))
        return torch.softmax(logits + _basis_on(logits, self.degree)[0], dim=-1)


class AngularTable(NamedTuple):
    """The speed table of the angular family: ln r_i (m,), ln S_ij (m, J), log weights (J,), law w_ijk (m, J, K+1)."""

    lnr: torch.Tensor
    lns: torch.Tensor
    lw: torch.Tensor
    law: torch.Tensor


def is_angular_table(vtable) -> bool:
    """True for an :class:`AngularTable`."""
    return isinstance(vtable, AngularTable)


def angular_table(flow, n_speed: int = 24, n_nodes: int = 41,
                  r_range: tuple[float, float] = (1e-2, 1e2)) -> AngularTable:
    """The speed table of :func:`~dsphnf.flows.losvd.velocity_table` and the angular law at its nodes."""
    lnr, lns, lw = speed_state_table(flow, n_speed, n_nodes, r_range)
    ls0, _ = speed_nodes_on(n_speed, lnr)
    law = flow.angular_law.weights(lnr.unsqueeze(-1), ls0)
    return AngularTable(lnr, lns, lw, law)


def law_moments(law: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(<mu^2>, <mu^4>) of laws with weights ``law`` (..., K+1)."""
    _, _, _, mu2, mu4 = _basis_on(law, law.shape[-1] - 1)
    return law @ mu2, law @ mu4


def angular_table_moments(vtable: AngularTable) -> dict[str, torch.Tensor]:
    """sigma_r^2, sigma_t^2 (one component), <v_r^4>, <v_r^2 v_theta^2> and beta on the table's radii.

    With v_r = S mu and v_theta = S sqrt(1 - mu^2) cos phi: sigma_r^2 = <S^2 mu^2>,
    sigma_t^2 = <S^2 (1 - mu^2)>/2, <v_r^4> = <S^4 mu^4>, <v_r^2 v_theta^2> = <S^4 (mu^2 - mu^4)>/2.
    """
    mu2, mu4 = law_moments(vtable.law)
    w, s2 = torch.exp(vtable.lw), torch.exp(2.0 * vtable.lns)
    sr2 = (w * s2 * mu2).sum(-1)
    st2 = (w * s2 * (1.0 - mu2)).sum(-1) / 2.0
    m4 = (w * s2 * s2 * mu4).sum(-1)
    m22 = (w * s2 * s2 * (mu2 - mu4)).sum(-1) / 2.0
    return {"sr2": sr2, "st2": st2, "m4": m4, "m22": m22, "beta": 1.0 - st2 / sr2}


# ----------------------------------------------------------------------------- the LOSVD
def los_coefficients(law: torch.Tensor, nz: torch.Tensor) -> torch.Tensor:
    """d_m (..., J, K+1) of q(t | c) = sum_m d_m t^(2m) for laws ``law`` (..., J, K+1) at c = ``nz`` (...)."""
    K = law.shape[-1] - 1
    _, leg, mono, _, _ = _basis_on(law, K)
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
    g = (torch.exp(-0.5 * ((vv - sy) / hh) ** 2) + torch.exp(-0.5 * ((vv + sy) / hh) ** 2)) / (math.sqrt(2.0 * math.pi) * hh)
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
        k = va.shape[1]
        q = _quadrature_terms(va[row, :, 0, 0], s[row, 0, si, ji].unsqueeze(-1), d[row, 0, si, ji].unsqueeze(1),
                              h[row, 0, 0, 0].unsqueeze(-1))  # (n, k)
        out = out.index_add(0, row, q * w[row, 0, si, ji].unsqueeze(-1))
        assert q.shape == (row.shape[0], k)
    return out


# ----------------------------------------------------------------------------- the map
def _integrated_legendre(mu: torch.Tensor, K: int) -> torch.Tensor:
    """Int_0^mu P_2i(t) dt for i = 0..K (..., K+1): mu and (P_(l+1) - P_(l-1)) / (2l + 1)."""
    p_prev, p = torch.ones_like(mu), mu
    ps = [p_prev, p]
    for n in range(1, 2 * K + 1):
        p_prev, p = p, ((2 * n + 1) * mu * p - n * p_prev) / (n + 1)
        ps.append(p)
    cols = [mu] + [(ps[l + 1] - ps[l - 1]) / (2 * l + 1) for l in range(2, 2 * K + 1, 2)]
    return torch.stack(cols, dim=-1)


def law_cdf(mu: torch.Tensor, law: torch.Tensor) -> torch.Tensor:
    """P(mu' <= mu) of the laws ``law`` (..., K+1) at ``mu`` (...)."""
    K = law.shape[-1] - 1
    leg = _basis_on(law, K)[1]
    return 0.5 + ((law @ leg) * _integrated_legendre(mu, K)).sum(-1)


def law_log_density(mu: torch.Tensor, law: torch.Tensor) -> torch.Tensor:
    """ln p(mu) of the laws ``law`` (..., K+1) at ``mu`` (...)."""
    K = law.shape[-1] - 1
    leg = _basis_on(law, K)[1]
    return torch.log(((law @ leg) * legendre_even(mu, K)).sum(-1).clamp_min(1e-300))


def law_quantile(p: torch.Tensor, law: torch.Tensor, iters: int = 60) -> torch.Tensor:
    """mu with :func:`law_cdf` = ``p`` (bisection; the CDF is increasing), differentiable by implicit function.

    The returned mu carries the gradient dmu = -dF / p(mu) of F(mu; law) = p at fixed ``p`` and
    dmu/dp = 1 / p(mu).
    """
    with torch.no_grad():
        lo, hi = -torch.ones_like(p), torch.ones_like(p)
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            below = law_cdf(mid, law) < p
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        mu = 0.5 * (lo + hi)
    if not (torch.is_grad_enabled() and (law.requires_grad or p.requires_grad)):
        return mu
    dens = torch.exp(law_log_density(mu, law.detach()))
    return mu - (law_cdf(mu, law) - p) / dens


def _tangent_unit(n: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The unit tangential direction of velocities ``v`` (n, 3) at directions ``n`` (n, 3)."""
    vt = v - (v * n).sum(-1, keepdim=True) * n
    return vt / torch.linalg.vector_norm(vt, dim=-1, keepdim=True).clamp_min(1e-300)


def _direction(mu: torch.Tensor, n: torch.Tensor, et: torch.Tensor) -> torch.Tensor:
    """mu n + sqrt(1 - mu^2) e_t."""
    return mu.unsqueeze(-1) * n + torch.sqrt((1.0 - mu * mu).clamp_min(0.0)).unsqueeze(-1) * et


def angular_transform(flow, u: torch.Tensor, n: torch.Tensor, uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions and velocities of base points (radii ``u``, directions ``n``, velocities ``uv``)."""
    s0 = torch.linalg.vector_norm(uv, dim=-1).clamp_min(1e-30)
    r, vs = flow.radial_map(u, torch.log(s0).unsqueeze(-1))
    law = flow.angular_law.weights(torch.log(r), torch.log(s0))
    mu = law_quantile((0.5 * (uv * n).sum(-1) / s0 + 0.5).clamp(0.0, 1.0), law)
    return n * r.unsqueeze(-1), torch.exp(vs[:, :1]) * _direction(mu, n, _tangent_unit(n, uv))


def angular_log_prob(flow, u: torch.Tensor, n: torch.Tensor, uv: torch.Tensor, lp: torch.Tensor):
    """(x, v, ln f) of base points, ``lp`` the base log-density and ``u`` a leaf (inside ``enable_grad``).

    ln |dv/du_v| = ln(dS/ds0) + 2 ln(S/s0) - ln 2 - ln p(mu) (module docstring).
    """
    s0 = torch.linalg.vector_norm(uv, dim=-1).detach().requires_grad_(True)
    r, vs = flow.radial_map(u, torch.log(s0).unsqueeze(-1))
    s1 = torch.exp(vs[:, 0])
    (d,) = torch.autograd.grad(r.sum(), u, retain_graph=True)
    (ds,) = torch.autograd.grad(s1.sum(), s0, retain_graph=True)
    law = flow.angular_law.weights(torch.log(r), torch.log(s0))
    mu = law_quantile((0.5 * (uv.detach() * n).sum(-1) / s0.detach() + 0.5).clamp(0.0, 1.0), law)
    logdet_v = (torch.log(ds) + 2.0 * (torch.log(s1) - torch.log(s0)) - math.log(2.0)
                - law_log_density(mu, law))
    logdet_x = torch.log(d) + 2.0 * (torch.log(r) - torch.log(u))
    v = s1.unsqueeze(-1) * _direction(mu, n, _tangent_unit(n, uv.detach()))
    return n * r.unsqueeze(-1), v, lp - logdet_x - logdet_v


def angular_inverse(flow, r: torch.Tensor, r1: torch.Tensor, n: torch.Tensor, v: torch.Tensor):
    """Base points (u_x, u_v) of phase-space points at radii ``r`` (``r1`` before the cuspy map)."""
    s = torch.linalg.vector_norm(v, dim=-1).clamp_min(1e-30)
    mu = ((v * n).sum(-1) / s).clamp(-1.0, 1.0)
    y0 = flow.solve(torch.stack([torch.log(r1), torch.log(s)], dim=-1), reverse=True)
    law = flow.angular_law.weights(torch.log(r), y0[:, 1])
    mu0 = (2.0 * law_cdf(mu, law) - 1.0).clamp(-1.0, 1.0)
    uv = torch.exp(y0[:, 1:2]) * _direction(mu0, n, _tangent_unit(n, v))
    return n * flow.premap_inverse(torch.exp(y0[:, 0])).unsqueeze(-1), uv


def angular_log_mixture(vtable: AngularTable, q: torch.Tensor, nz: torch.Tensor, lw_los: torch.Tensor,
                        v: torch.Tensor, h: torch.Tensor, node_weights: torch.Tensor | None = None) -> torch.Tensor:
    """ln p(v_z | R) convolved with N(0, h^2) for stars with line-of-sight nodes (ln r ``q``, n_z ``nz``).

    ``q``, ``nz``, ``lw_los`` (n, n_s) as in :func:`~dsphnf.flows.losvd.log_losvd`;
    ``v`` (n,) or (n, k); ``h`` (n,) or a scalar. Returns v's shape, or (n,)
    with ``node_weights`` (k,) (the weighted sum over the k velocities).
    """
    from .surface import interp_table

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
