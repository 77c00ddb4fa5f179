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

Exact LOSVD: :mod:`~dsphnf.flows.angular_losvd`.

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
from .separable import speed_nodes_on, speed_state_table, table_beta, table_moments
from .surface import interp_table

__all__ = ["ANGULAR_DEGREE", "AngularLaw", "AngularTable", "angular_table", "is_angular_table", "law_basis",
           "law_basis_on", "legendre_even", "law_moments", "angular_table_moments", "law_cdf", "law_quantile",
           "law_log_density", "family_table_moments", "family_table_beta",
           "angular_transform", "angular_log_prob", "angular_inverse"]

#: Degree K of the angular law in mu^2: beta in [-K, 1 - 1/(2K + 1)], the LOSVD a polynomial of degree 2K.
ANGULAR_DEGREE = 4


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


def law_basis_on(like: torch.Tensor, degree: int) -> tuple[torch.Tensor, ...]:
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
        return torch.softmax(logits + law_basis_on(logits, self.degree)[0], dim=-1)


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
    _, _, _, mu2, mu4 = law_basis_on(law, law.shape[-1] - 1)
    return law @ mu2, law @ mu4


def angular_table_moments(vtable: AngularTable) -> dict[str, torch.Tensor]:
    """sigma_r^2, sigma_t^2 (one component), <v_r^4>, <v_r^2 v_theta^2>, <v_t^4> and beta on the table's radii.

    With v_r = S mu and v_theta = S sqrt(1 - mu^2) cos phi: sigma_r^2 = <S^2 mu^2>,
    sigma_t^2 = <S^2 (1 - mu^2)>/2, <v_r^4> = <S^4 mu^4>, <v_r^2 v_theta^2> = <S^4 (mu^2 - mu^4)>/2,
    <v_t^4> = <S^4 (1 - mu^2)^2> (v_t^2 = v_theta^2 + v_phi^2).
    """
    mu2, mu4 = law_moments(vtable.law)
    w, s2 = torch.exp(vtable.lw), torch.exp(2.0 * vtable.lns)
    sr2 = (w * s2 * mu2).sum(-1)
    st2 = (w * s2 * (1.0 - mu2)).sum(-1) / 2.0
    m4 = (w * s2 * s2 * mu4).sum(-1)
    m22 = (w * s2 * s2 * (mu2 - mu4)).sum(-1) / 2.0
    t4 = (w * s2 * s2 * (1.0 - 2.0 * mu2 + mu4)).sum(-1)
    return {"sr2": sr2, "st2": st2, "m4": m4, "m22": m22, "t4": t4, "beta": 1.0 - st2 / sr2}


def family_table_moments(vtable) -> tuple[torch.Tensor, torch.Tensor]:
    """(ln sigma_r^2, ln sigma_t^2) on the nodes of an angular or a separable table (sigma_t: one component)."""
    if not is_angular_table(vtable):
        return table_moments(vtable)
    mom = angular_table_moments(vtable)
    return torch.log(mom["sr2"]), torch.log(mom["st2"])


def family_table_beta(vtable):
    """beta(r) of an angular or a separable table at standardised r: linear in ln r between nodes, held beyond."""
    if not is_angular_table(vtable):
        return table_beta(vtable)
    beta = angular_table_moments(vtable)["beta"]
    return lambda r: interp_table(torch.log(r), vtable.lnr, beta, extrapolate=False)


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
    leg = law_basis_on(law, K)[1]
    return 0.5 + ((law @ leg) * _integrated_legendre(mu, K)).sum(-1)


def law_log_density(mu: torch.Tensor, law: torch.Tensor) -> torch.Tensor:
    """ln p(mu) of the laws ``law`` (..., K+1) at ``mu`` (...)."""
    K = law.shape[-1] - 1
    leg = law_basis_on(law, K)[1]
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
