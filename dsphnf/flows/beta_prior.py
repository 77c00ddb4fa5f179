"""Priors of a learned anisotropy: smoothness of a free beta(r), and the fourth-order Jeans equation.

Why a fourth-order term. The flow's velocities at radius r are an isotropic
speed distribution (free in shape at every r) stretched by the anisotropy
layer, so its likelihood alone can trade beta(r) against the shape of the
speed distribution: the second-order Jeans equation, which gives M(r), holds
for any beta by construction, and the kurtosis of the model's LOSVD can come
from either. A tracer in equilibrium also obeys the fourth-order Jeans
equation (Merrifield & Kent 1990; Lokas 2002; the information GravSphere's
virial shape parameters and GravSphere2 use). For the flow's family
(v = w_r n + sqrt(1 - beta) w_t, w isotropic) <v_r^2 v_t^2> = (2/3)(1 - beta) <v_r^4>,
and the equation for the v_r^3 moment reads

    E4(r) = d ln(nu m4)/d ln r + 2 beta - (3 sigma_r^4 / m4) [d ln(nu sigma_r^2)/d ln r + 2 beta] = 0,

with m4 = <v_r^4> = <s^4>/5 and sigma_r^2 = <s^2>/3 (s the speed before the
layer); G M(r)/r = -sigma_r^2 [d ln(nu sigma_r^2)/d ln r + 2 beta] is the
second-order read-out. Gaussian speeds of constant width give E4 = 0 for
any beta (the untrained start satisfies it); a flow that trades beta for
kurtosis does not. The prior

    P_4 = Int E4(r)^2 d ln r / (2 tau_4^2),   tau_4 = :data:`EQUILIBRIUM_TAU`,

over the data's radii, penalises departures from equilibrium at fourth
order, so that the LOSVD's shape constrains beta.

The separable velocity family (:mod:`~dsphnf.flows.separable`, semi-axes A
and B of each base shell learned separately) has
<v_r^2 v_theta^2>/<v_r^4> = <A^2 B^2>/(3 <A^4>) instead, and its E4 has
2 - 2 <A^2 B^2>/<A^4> in place of the first 2 beta
(:func:`separable_equilibrium_penalty`); its beta(r) = 1 - <B^2>/<A^2> gets
the same smoothness prior as a free beta.

The v_r v_t^2 moment equation (:func:`tangential_fourth_order_residual`,
E4t) is the other fourth-order Jeans equation of a spherical system; with
E4 it fixes how <v_t^4> and <v_r^2 v_t^2> may change with radius. A
constant-beta L^(-2 beta) f(E) distribution obeys it whenever it obeys E4
(tests/test_flow_beta.py). The elliptical family obeys both only for
isotropy and Osipkov-Merritt-like beta = r^2 / (r^2 + c) (its equilibrium
members are the f(Q) models), so the term would make its free beta a
disguised Osipkov-Merritt fit. The angular family, whose direction laws
hold f(E, L) distributions, and the separable family hold both equations
(P_4 integrates E4^2 + E4t^2); the elliptical family holds E4 only
(:data:`TANGENTIAL_EQUATION`; measured in benchmarks/RESULTS.md, "Both
fourth-order Jeans equations"). The separable family's exact equilibrium
members are the distributions constant on nested ellipses in (v_r, v_t):
f(E, L) = F(c) on E - L^2 / (2 r_a(c)^2) = Q(c), an Osipkov-Merritt model
whose anisotropy radius may change from one level c to the next. With E4t
its free beta leans towards such profiles (radial and rising outwards for
real r_a); where the true beta changes sign (a Cuddeford profile,
tangential inside) it was measured too radial at R_half.

Smoothness of a free beta(r) (:func:`anisotropy_penalty`):

    P_beta = Int (d^2 y / d ln r^2)^2 d ln r / (2 tau_beta^2)
             + Int (d y / d ln r)^2 d ln r / (2 tau_slope^2)
             + Int (d^3 ln sigma_t^2 / d ln r^3)^2 d ln r / (2 tau^2),

y = beta / (2 - beta), sigma_t^2 = (1 - beta) sigma_r^2, tau the smoothness
prior's scale (:mod:`~dsphnf.flows.prior`, which already penalises ln sigma_r^2).

Why a slope term. The curvature term alone leaves a straight line in
y(ln r) free, so where few stars constrain beta (the centre, the outskirts)
a slope set by the stars near R_half is carried on: an Osipkov-Merritt
profile rising through R_half was continued into a tangential centre
(benchmarks/RESULTS.md, "Five public files per OM model"). Every physical
family (constant, Osipkov-Merritt, Cuddeford, Baes) tends to a constant at
both ends; with the slope term an unconstrained beta levels off next to the
data (its slope decays over tau_slope / tau_beta = 0.5 in ln r, the scale of
the two terms' Euler-Lagrange equation). Its price is scale-free: a whole
Osipkov-Merritt transition (Int (dy/d ln r)^2 = 1/3) costs
1/(6 tau_slope^2) nats, 2.7 nats for :data:`BETA_SLOPE_TAU` = 0.25; a
constant beta costs nothing.

All terms are in nats (added to the total negative log-likelihood) and are
divided by the weighted number of stars by :func:`learned_prior_per_star`.
Radii are standardised (units of L).
"""
from __future__ import annotations

import math

import torch

from .beta import FreeBeta, symmetrised
from .angular import AngularTable, angular_table_moments, family_table_beta
from .separable import is_separable_table, is_table_family
from .surface import interp_table

__all__ = ["BETA_TAU", "BETA_SLOPE_TAU", "EQUILIBRIUM_TAU", "TANGENTIAL_EQUATION", "anisotropy_penalty",
           "fourth_order_residual", "tangential_fourth_order_residual",
           "equilibrium_penalty", "separable_equilibrium_penalty", "angular_equilibrium_penalty",
           "learned_prior_per_star"]

#: Prior scale of d^2 y / d ln r^2 of a free beta(r).
BETA_TAU = 0.5
#: Prior scale of d y / d ln r of a free beta(r).
BETA_SLOPE_TAU = 0.25
#: Prior scale of the fourth-order Jeans residual E4.
EQUILIBRIUM_TAU = 0.1


def _trapezoid_inside(x: torch.Tensor, f: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    inside = (x.detach() >= lo) & (x.detach() <= hi)
    x, f = x[inside], f[inside]
    if x.numel() < 2:
        return f.sum() * 0.0
    return (0.5 * (f[1:] + f[:-1]) * (x[1:] - x[:-1])).sum()


def _interior_slope(lnr: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """d f / d ln r at the interior nodes (central differences)."""
    return (f[2:] - f[:-2]) / (lnr[2:] - lnr[:-2])


def _squared_integral(x: torch.Tensor, e: torch.Tensor, log_range: tuple[float, float], tau4: float) -> torch.Tensor:
    """Int e^2 d ln r / (2 tau4^2) over ``log_range`` [nats]."""
    return _trapezoid_inside(x, e * e, *log_range) / (2.0 * tau4**2)


def anisotropy_penalty(
    lnr: torch.Tensor, beta: torch.Tensor, lnsr2: torch.Tensor, log_range: tuple[float, float],
    tau: float, beta_tau: float = BETA_TAU, slope_tau: float | None = None,
) -> torch.Tensor:
    """P_beta (module docstring) [nats, up to a constant] on increasing ln r nodes.

    Parameters
    ----------
    lnr : tensor (m,)
        Increasing ln r nodes [ln L].
    beta, lnsr2 : tensor (m,)
        beta and ln sigma_r^2 (any constant offset) at the nodes.
    log_range : (float, float)
        ln r limits of the integrals (divided differences placed at the mean
        of their nodes, trapezoid rule: :func:`~dsphnf.flows.prior.roughness`).
    tau, beta_tau : float
        Prior scales of the third derivative of ln sigma_t^2 and the second of y.
    slope_tau : float or None
        Prior scale of the first derivative of y (None: :data:`BETA_SLOPE_TAU`; inf: no slope term).

    Examples
    --------
    >>> x = torch.linspace(-3, 3, 61, dtype=torch.float64)
    >>> y = 0.1 * x**2                              # d^2 y / d ln r^2 = 0.2
    >>> beta = 2 * y / (1 + y)
    >>> lnsr2 = -torch.log1p(-beta)                 # sigma_t constant: no second term
    >>> round(float(anisotropy_penalty(x, beta, lnsr2, (-2.0, 2.0), 1.0, 1.0, math.inf)), 6)  # 0.2^2 * 4 / 2
    0.08
    >>> round(float(anisotropy_penalty(x, beta, lnsr2, (-2.0, 2.0), 1.0, math.inf, 1.0)), 3)  # Int (0.2 x)^2 / 2
    0.107
    """
    from .prior import roughness

    lo, hi = log_range
    slope_tau = BETA_SLOPE_TAU if slope_tau is None else slope_tau
    y = symmetrised(beta)
    lnst2 = lnsr2 + torch.log1p(-beta.clamp(max=1.0 - 1e-12))
    pen = (roughness(lnr, y, lo, hi, order=2) / (2.0 * beta_tau**2)
           + roughness(lnr, lnst2, lo, hi, order=3) / (2.0 * tau**2))
    if math.isfinite(slope_tau):
        pen = pen + roughness(lnr, y, lo, hi, order=1) / (2.0 * slope_tau**2)
    return pen


def fourth_order_residual(
    lnr: torch.Tensor, lnnu: torch.Tensor, lnm2: torch.Tensor, lnm4: torch.Tensor, beta: torch.Tensor,
    c4: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ln r, E4) at the interior nodes: the fourth-order Jeans residual of the module docstring.

    ``lnm2``, ``lnm4``: ln <s^2>, ln <s^4> of the isotropic speeds (any common
    offset cancels); derivatives are central differences on the nodes.
    ``c4``: the term 2 - 6 <v_r^2 v_theta^2>/<v_r^4> at the nodes where it is
    not 2 beta (the separable family: :func:`separable_equilibrium_penalty`).

    >>> x = torch.linspace(-2, 2, 41, dtype=torch.float64)
    >>> c = torch.zeros_like(x)
    >>> _, e4 = fourth_order_residual(x, -3 * x, c, c + math.log(5 / 3), 0.3 + 0 * x)  # Gaussian: <s^4> = (5/3) <s^2>^2
    >>> float(e4.abs().max()) < 1e-12
    True
    """
    def d(f: torch.Tensor) -> torch.Tensor:
        return _interior_slope(lnr, f)

    b = beta[1:-1]
    a2 = d(lnnu) + d(lnm2)
    a4 = d(lnnu) + d(lnm4)
    # 3 sigma_r^4 / m4 = 3 (<s^2>/3)^2 / (<s^4>/5) = (5/3) <s^2>^2 / <s^4>
    w = (5.0 / 3.0) * torch.exp(2.0 * lnm2[1:-1] - lnm4[1:-1])
    c = 2.0 * b if c4 is None else c4[1:-1]
    return lnr[1:-1], a4 + c - w * (a2 + 2.0 * b)


def tangential_fourth_order_residual(
    lnr: torch.Tensor, lnnu: torch.Tensor, mom: dict[str, torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ln r, E4t) at the interior nodes: the Jeans equation of the v_r v_t^2 moment, divided by nu <v_r^2 v_t^2> / r.

    With v_t^2 = v_theta^2 + v_phi^2, the steady collisionless Boltzmann equation
    times v_r v_t^2, integrated over velocities, gives

        d(nu <v_r^2 v_t^2>)/dr + (nu/r)(4 <v_r^2 v_t^2> - <v_t^4>) + nu <v_t^2> dPhi/dr = 0,

    i.e. E4t = d ln(nu m22)/d ln r + 4 - t4/(2 m22) - (st2 sr2/m22)[d ln(nu sr2)/d ln r + 2 beta] = 0
    with the second-order read-out r dPhi/dr = -sr2 [d ln(nu sr2)/d ln r + 2 beta]. ``mom`` holds
    sr2 = sigma_r^2, st2 = sigma_t^2 (one component), m22 = <v_r^2 v_theta^2>, t4 = <v_t^4> at the nodes.
    For an isotropic distribution E4t is E4; for the elliptical family E4t - E4 = 2 beta + d ln(1 - beta)/d ln r,
    zero only for isotropy and Osipkov-Merritt-like beta = r^2 / (r^2 + c) (its equilibrium members are f(Q)).

    >>> x = torch.linspace(-2, 2, 41, dtype=torch.float64)
    >>> one = torch.ones_like(x)                     # isothermal: isotropic Gaussian, sigma = 1, nu ~ r^-2
    >>> mom = {"sr2": one, "st2": one, "m22": one, "t4": 8 * one}
    >>> _, e4t = tangential_fourth_order_residual(x, -2 * x, mom)
    >>> float(e4t.abs().max()) < 1e-12
    True
    """
    def d(f: torch.Tensor) -> torch.Tensor:
        return _interior_slope(lnr, f)

    sr2, st2, m22, t4 = (mom[k] for k in ("sr2", "st2", "m22", "t4"))
    beta = (1.0 - st2 / sr2)[1:-1]
    a2 = d(lnnu) + d(torch.log(sr2))
    a22 = d(lnnu) + d(torch.log(m22))
    inner = slice(1, -1)
    e = a22 + 4.0 - t4[inner] / (2.0 * m22[inner]) - st2[inner] * sr2[inner] / m22[inner] * (a2 + 2.0 * beta)
    return lnr[1:-1], e


#: Per velocity family: whether its learned-anisotropy prior also holds the v_r v_t^2 moment equation
#: (:func:`tangential_fourth_order_residual`): the angular and separable families do; the elliptical family
#: would be pushed to isotropy or Osipkov-Merritt (module docstring).
TANGENTIAL_EQUATION = {"elliptical": False, "separable": True, "angular": True}


def _tangential_penalty(family: str, lnr, lnnu, moments, log_range, tau4) -> torch.Tensor | float:
    """Int E4t^2 d ln r / (2 tau4^2) where ``family`` holds the equation, else 0; ``moments()`` gives its dict."""
    if not TANGENTIAL_EQUATION[family]:
        return 0.0
    return _squared_integral(*tangential_fourth_order_residual(lnr, lnnu, moments()), log_range, tau4)


def equilibrium_penalty(
    table: tuple[torch.Tensor, torch.Tensor], vtable: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    beta: torch.Tensor, log_range: tuple[float, float], tau4: float = EQUILIBRIUM_TAU,
) -> torch.Tensor:
    """P_4 = Int E4^2 d ln r / (2 tau4^2) [nats] on the speed table's nodes inside ``log_range``.

    ``table``: (ln r, ln nu) of :func:`~dsphnf.flows.surface.radial_table`, interpolated
    to the nodes of ``vtable`` (:func:`~dsphnf.flows.losvd.velocity_table`); ``beta`` at those nodes.
    """
    lnr, lns, lw = vtable
    lnnu = interp_table(lnr, table[0], table[1])
    lnm2 = torch.logsumexp(2.0 * lns + lw, dim=-1)
    lnm4 = torch.logsumexp(4.0 * lns + lw, dim=-1)
    x, e4 = fourth_order_residual(lnr, lnnu, lnm2, lnm4, beta)

    def moments() -> dict[str, torch.Tensor]:  # v = w_r n + sqrt(1 - beta) w_t, w isotropic with speeds s
        s2, s4, ob = torch.exp(lnm2), torch.exp(lnm4), 1.0 - beta
        return {"sr2": s2 / 3.0, "st2": ob * s2 / 3.0, "m22": ob * s4 / 15.0, "t4": ob * ob * s4 * (8.0 / 15.0)}

    return (_squared_integral(x, e4, log_range, tau4)
            + _tangential_penalty("elliptical", lnr, lnnu, moments, log_range, tau4))


def separable_equilibrium_penalty(
    table: tuple[torch.Tensor, torch.Tensor], vtable, log_range: tuple[float, float], tau4: float = EQUILIBRIUM_TAU,
) -> torch.Tensor:
    """P_4 of the separable family (:mod:`~dsphnf.flows.separable`) on its table's nodes [nats].

    With semi-axes A, B and a uniform direction w: <v_r^2> = <A^2>/3,
    <v_r^4> = <A^4>/5, <v_r^2 v_theta^2> = <A^2 B^2>/15 and
    beta = 1 - <B^2>/<A^2>; the v_r^3 moment equation
    d(nu <v_r^4>)/dr + (nu/r)(2 <v_r^4> - 6 <v_r^2 v_theta^2>) + 3 nu sigma_r^2 dPhi/dr = 0
    gives E4 with 2 beta replaced by c4 = 2 - 2 <A^2 B^2>/<A^4> in its first
    bracket (c4 = 2 beta for B = sqrt(1 - beta) A).
    """
    lnr, lna, lnb, lw = vtable
    lnnu = interp_table(lnr, table[0], table[1])
    lnm2 = torch.logsumexp(2.0 * lna + lw, dim=-1)
    lnm4 = torch.logsumexp(4.0 * lna + lw, dim=-1)
    lnm22 = torch.logsumexp(2.0 * (lna + lnb) + lw, dim=-1)
    lnb2 = torch.logsumexp(2.0 * lnb + lw, dim=-1)
    beta = -torch.expm1(lnb2 - lnm2)
    c4 = 2.0 - 2.0 * torch.exp(lnm22 - lnm4)
    x, e4 = fourth_order_residual(lnr, lnnu, lnm2, lnm4, beta, c4)

    def moments() -> dict[str, torch.Tensor]:  # <v_t^4> = (8/15) <B^4>
        return {"sr2": torch.exp(lnm2) / 3.0, "st2": torch.exp(lnb2) / 3.0, "m22": torch.exp(lnm22) / 15.0,
                "t4": torch.exp(torch.logsumexp(4.0 * lnb + lw, dim=-1)) * (8.0 / 15.0)}

    return (_squared_integral(x, e4, log_range, tau4)
            + _tangential_penalty("separable", lnr, lnnu, moments, log_range, tau4))


def angular_equilibrium_penalty(
    table: tuple[torch.Tensor, torch.Tensor], vtable: AngularTable, log_range: tuple[float, float],
    tau4: float = EQUILIBRIUM_TAU,
) -> torch.Tensor:
    """P_4 of the angular family (:mod:`~dsphnf.flows.angular`) on its table's nodes [nats], E4t included.

    Its moments (:func:`~dsphnf.flows.angular.angular_table_moments`) enter
    :func:`fourth_order_residual` as ln <s^2> = ln 3 sigma_r^2 and ln <s^4> = ln 5 <v_r^4>
    (so that 3 sigma_r^4 / <v_r^4> is right), with c4 = 2 - 6 <v_r^2 v_theta^2>/<v_r^4>
    (0 = 2 beta for an isotropic law).
    """
    lnr = vtable.lnr
    mom = angular_table_moments(vtable)
    lnnu = interp_table(lnr, table[0], table[1])
    lnm2, lnm4 = torch.log(3.0 * mom["sr2"]), torch.log(5.0 * mom["m4"])
    c4 = 2.0 - 6.0 * mom["m22"] / mom["m4"]
    x, e4 = fourth_order_residual(lnr, lnnu, lnm2, lnm4, mom["beta"], c4)
    return (_squared_integral(x, e4, log_range, tau4)
            + _tangential_penalty("angular", lnr, lnnu, lambda: mom, log_range, tau4))


def learned_prior_per_star(flow, table, vtable, prior) -> torch.Tensor | float:
    """The priors of a flow's learned anisotropy divided by ``prior.n_eff`` [nats per star].

    Every inferred family: :func:`equilibrium_penalty`; a free beta(r) also
    :func:`anisotropy_penalty` (with ``prior.tau``). The separable velocity
    family (a 4-entry ``vtable``): :func:`separable_equilibrium_penalty` and
    :func:`anisotropy_penalty` on the beta(r) of its table; the angular family likewise with
    :func:`angular_equilibrium_penalty`. Both over ``prior.log_range``
    (a :class:`~dsphnf.flows.prior.SmoothnessPrior`), on the nodes of the speed
    table ``vtable``. 0 for a given anisotropy.
    """
    from .prior import sigma_r2_table

    if is_table_family(vtable) and table is not None:  # separable or angular: beta from its table
        beta = family_table_beta(vtable)(torch.exp(vtable[0]))
        p4 = separable_equilibrium_penalty if is_separable_table(vtable) else angular_equilibrium_penalty
        pen = p4(table, vtable, prior.log_range, EQUILIBRIUM_TAU)
        pen = pen + anisotropy_penalty(vtable[0], beta, sigma_r2_table(vtable), prior.log_range, prior.tau, BETA_TAU)
        return pen / prior.n_eff
    net = getattr(flow, "beta_net", None)
    if net is None or vtable is None or table is None:
        return 0.0
    lnr = vtable[0]
    beta = flow.beta(torch.exp(lnr))
    pen = equilibrium_penalty(table, vtable, beta, prior.log_range, EQUILIBRIUM_TAU)
    if isinstance(net, FreeBeta):
        pen = pen + anisotropy_penalty(lnr, beta, sigma_r2_table(vtable), prior.log_range, prior.tau, BETA_TAU)
    return pen / prior.n_eff

