"""The ``separable`` velocity family: radial and tangential speed maps learned separately.

The default (``elliptical``) family of :class:`~dsphnf.flows.cnf.SphericalFlow`
maps the base speed s0 = |u_v| isotropically, S(s0; r), and then scales v_t by
sqrt(1 - beta(r)): every base shell |u_v| = s0 becomes an ellipsoid with
semi-axes S and sqrt(1 - beta) S, the same aspect for every s0, so
f = nu(r) g_r(v_r^2 + v_t^2 / (1 - beta)) and the v_r and v_t marginals have
the same shape. The ``separable`` family learns the two semi-axes separately,

    v = A(s0; r) w_r x_hat + B(s0; r) w_t,   w = u_v / s0 (a uniform direction),

with A and B two strictly increasing maps of the base speed (the ``split``
:class:`~dsphnf.flows.field.VelocityField`: two one-dimensional ODEs in
ln A and ln B, both starting at ln s0, along the trajectory of the base
radius). The shells stay nested ellipsoids, so the map is a bijection, but
their aspect B/A now changes with the speed: the radial and tangential
velocity marginals (each a mixture of uniform laws, on [-A, A] and [-B, B])
have shapes of their own, and beta(r) = 1 - <B^2>/<A^2> is learned with
them. The map is equivariant under joint rotations of (x, v) and odd in v
(f(x, v) = f(x, -v)). The elliptical family is the special case
B = sqrt(1 - beta(r)) A.

Density. In spherical coordinates about x_hat (w_r = cos theta) the velocity
Jacobian at fixed x is |dv/du_v| = B (A' B cos^2 theta + A B' sin^2 theta) / s0^2,
with A' = dA/ds0 and B' = dB/ds0 by autograd through the solver.

Priors. The likelihood alone trades beta against the speed distributions
(the first tangential-mock fit without them ran beta to +0.4 against a truth
of -0.5, benchmarks/RESULTS.md); the family's beta(r) gets the smoothness
prior of a free beta and its own fourth-order Jeans residual
(:func:`~dsphnf.flows.beta_prior.separable_equilibrium_penalty`).

Exact LOSVD. v_z = v . z_hat = A w_r n_z + B w_t . z_hat, and w uniform on
the sphere makes v_z = w . e with e = (A n_z, B sqrt(1 - n_z^2)) in the
(x_hat, tangential) frame: by Archimedes, v_z given s0 is uniform on [-|e|, |e|],
as for the elliptical family, with |e|^2 = n_z^2 A^2 + (1 - n_z^2) B^2. The
likelihood of :func:`~dsphnf.flows.losvd.log_losvd` therefore keeps its
closed form and its cost; only the table (:func:`separable_table`) has two
columns of semi-axes instead of one speed.

Units: standardised (positions in L, velocities in V).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy import special

from .device_constants import on_device
from .surface import base_radii, interp_table

__all__ = ["VELOCITY_FAMILIES", "TABLE_FAMILIES", "MIXED_FAMILIES", "ENSEMBLE_VELOCITIES", "AUTO_VELOCITY",
           "member_velocity",
           "is_table_family", "speed_nodes", "speed_nodes_on", "speed_state_table", "separable_table",
           "is_separable_table",
           "table_moments", "table_beta", "shell_transform", "shell_inverse", "shell_log_prob", "shell_log_det"]

#: Velocity families of the flow: one speed map and an anisotropy layer, two separate semi-axis maps, or one
#: speed map and a learned angular law of the direction (:mod:`~dsphnf.flows.angular`).
VELOCITY_FAMILIES = ("elliptical", "separable", "angular")
#: The families that carry beta(r) in their velocity table and need the anisotropy 'free'.
TABLE_FAMILIES = ("separable", "angular")
#: Ensembles whose members alternate between families: member k has ``MIXED_FAMILIES[name][k % n]``. ``mixed``
#: puts the elliptical and separable families, whose beta(r) lean in opposite ways on some dwarfs, in one
#: ensemble, so that its bands span both (benchmarks/RESULTS.md, "Both velocity families in one ensemble").
MIXED_FAMILIES = {"mixed": ("elliptical", "separable")}
#: What a fit's ``FlowConfig.velocity`` may name: one family for every member, or a mixture.
ENSEMBLE_VELOCITIES = VELOCITY_FAMILIES + tuple(MIXED_FAMILIES)
#: ``FlowConfig.velocity``'s default, which each fit resolves into one of ``ENSEMBLE_VELOCITIES``
#: (:func:`~dsphnf.flows.fit_setup.resolved_velocity`).
AUTO_VELOCITY = "auto"


def member_velocity(velocity: str, k: int) -> str:
    """The velocity family of ensemble member ``k`` of a fit whose ``FlowConfig.velocity`` is ``velocity``.

    ``"auto"`` must be resolved first (:func:`~dsphnf.flows.fit_setup.resolved_velocity`: it needs the fit's
    anisotropy and ensemble).

    >>> member_velocity("separable", 3), [member_velocity("mixed", k) for k in range(3)]
    ('separable', ['elliptical', 'separable', 'elliptical'])
    """
    if velocity == AUTO_VELOCITY:
        raise ValueError("velocity 'auto' is resolved per fit (fit_setup.resolved_velocity), not per member")
    families = MIXED_FAMILIES.get(velocity, (velocity,))
    return families[int(k) % len(families)]


def speed_nodes(n: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Base speeds ln s0 (n,) and weights (n,) summing to one: s0^2/2 ~ Gamma(3/2) (generalised Gauss-Laguerre).

    >>> ls, w = speed_nodes(4)
    >>> round(float((w * np.exp(2 * ls)).sum()), 12)   # <s0^2> = 3
    3.0
    """
    x, w = special.roots_genlaguerre(int(n), 0.5)
    return np.log(np.sqrt(2.0 * x)), w / w.sum()


def is_separable_table(vtable) -> bool:
    """True for a :func:`separable_table` (4 entries), False for an elliptical speed table (3) or an angular one."""
    return is_table_family(vtable) and not hasattr(vtable, "law")


def is_table_family(vtable) -> bool:
    """True for a table whose family carries beta(r) itself (separable, or :mod:`~dsphnf.flows.angular`'s)."""
    return vtable is not None and len(vtable) == 4


def separable_table(flow, n_speed: int = 24, n_nodes: int = 41,
                    r_range: tuple[float, float] = (1e-2, 1e2)) -> tuple[torch.Tensor, ...]:
    """(ln r_i (m,), ln A_ij (m, J), ln B_ij (m, J), log weights (J,)) of the semi-axis maps.

    ``n_nodes`` base radii whose reshaped radii are log-spaced over ``r_range``
    [L] and ``n_speed`` base speeds of :func:`speed_nodes`, as
    :func:`~dsphnf.flows.losvd.velocity_table`; one solver pass
    (:meth:`~dsphnf.flows.cnf.SphericalFlow.speed_grid`).
    """
    return speed_state_table(flow, n_speed, n_nodes, r_range)


def speed_state_table(flow, n_speed: int, n_nodes: int, r_range: tuple[float, float]) -> tuple[torch.Tensor, ...]:
    """(ln r_i, one (m, J) table per state column of a base speed, log weights (J,)), from one solver pass.

    The columns are ln S for the elliptical family (a 3-entry table,
    :func:`~dsphnf.flows.losvd.velocity_table`) and ln A, ln B for the
    separable one (4 entries, :func:`separable_table`); a flow with K members
    gives (K, m) and (K, m, J) tables.
    """
    p = next(flow.parameters())
    u = base_radii(flow.base, n_nodes, r_range, p)
    ls0, lw = speed_nodes_on(n_speed, p)
    r, lns = flow.speed_grid(u, ls0)  # (m,), (m, J, columns)
    return (torch.log(r), *lns.unbind(-1), lw)


def speed_nodes_on(n: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(ln s0_j, ln l_j) of :func:`speed_nodes` on ``like``'s device and dtype (made once per device)."""
    def make() -> tuple[np.ndarray, np.ndarray]:
        ls0, w = speed_nodes(n)
        return ls0, np.log(w)

    return on_device(("speed_nodes", int(n)), make, like.dtype, like.device)


def table_moments(vtable) -> tuple[torch.Tensor, torch.Tensor]:
    """(ln sigma_r^2, ln sigma_t^2) on the nodes of a :func:`separable_table` (sigma_t: one component).

    A uniform direction has <w_r^2> = <w_y^2> = 1/3, so sigma_r^2 = <A^2>/3 and
    sigma_t^2 = <B^2>/3 (exact quadrature over the base speeds). For either
    family's table: :func:`~dsphnf.flows.angular.family_table_moments`.
    """
    _, lna, lnb, lw = vtable
    return (torch.logsumexp(2.0 * lna + lw, dim=-1) - math.log(3.0),
            torch.logsumexp(2.0 * lnb + lw, dim=-1) - math.log(3.0))


def table_beta(vtable):
    """beta(r) = 1 - sigma_t^2 / sigma_r^2 of a :func:`separable_table`, as a function of standardised r.

    Linear in ln r between the table's nodes (exact at them), held beyond.

    >>> lnr = torch.linspace(-2.0, 2.0, 5)
    >>> tab = (lnr, torch.zeros(5, 1), torch.full((5, 1), math.log(0.5)), torch.zeros(1))
    >>> round(float(table_beta(tab)(torch.tensor([1.0]))[0]), 6)
    0.75
    """
    lnr = vtable[0]
    ls_r, ls_t = table_moments(vtable)
    beta = -torch.expm1(ls_t - ls_r)
    return lambda r: interp_table(torch.log(r), lnr, beta, extrapolate=False)


# ----------------------------------------------------------------------------- the map
def _split(n: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(v_r (n, 1), tangential vector v_t (n, 3)) of velocities ``v`` at directions ``n``."""
    vr = (v * n).sum(-1, keepdim=True)
    return vr, v - vr * n


def shell_transform(flow, u: torch.Tensor, n: torch.Tensor, uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions and velocities of base points (radii ``u``, directions ``n``, velocities ``uv``)."""
    ls0 = torch.log(torch.linalg.vector_norm(uv, dim=-1, keepdim=True).clamp_min(1e-30))
    r, vs = flow.radial_map(u, torch.cat([ls0, ls0], dim=-1))
    wr, wt = _split(n, uv)
    v = torch.exp(vs[:, :1] - ls0) * wr * n + torch.exp(vs[:, 1:2] - ls0) * wt
    return n * r.unsqueeze(-1), v


def shell_log_det(s0: torch.Tensor, mu: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """ln |dv/du_v| at fixed x: ln[B (A' B mu^2 + A B' (1 - mu^2)) / s0^2] (module docstring).

    ``s0`` (n,) must be a leaf that the semi-axes ``a``, ``b`` (n,) depend on
    row by row; ``mu`` = w_r = cos theta (n,).
    """
    g = torch.is_grad_enabled()
    (da,) = torch.autograd.grad(a.sum(), s0, retain_graph=True, create_graph=g)
    (db,) = torch.autograd.grad(b.sum(), s0, retain_graph=True, create_graph=g)
    mu2 = mu * mu
    return torch.log(b) + torch.log(da * b * mu2 + a * db * (1.0 - mu2)) - 2.0 * torch.log(s0)


def shell_log_prob(flow, u: torch.Tensor, n: torch.Tensor, uv: torch.Tensor, lp: torch.Tensor):
    """(x, v, ln f) of base points, ``lp`` the base log-density and ``u`` a leaf (inside ``enable_grad``)."""
    s0 = torch.linalg.vector_norm(uv, dim=-1).detach().requires_grad_(True)
    wr, wt = _split(n, uv.detach())
    mu = wr[:, 0] / s0.detach()
    ls0 = torch.log(s0).unsqueeze(-1)
    r, vs = flow.radial_map(u, torch.cat([ls0, ls0], dim=-1))
    a, b = torch.exp(vs[:, 0]), torch.exp(vs[:, 1])
    (d,) = torch.autograd.grad(r.sum(), u, retain_graph=True)
    logdet_v = shell_log_det(s0, mu, a, b)
    v = (a / s0).unsqueeze(-1) * wr * n + (b / s0).unsqueeze(-1) * wt
    logdet_x = torch.log(d) + 2.0 * (torch.log(r) - torch.log(u))
    return n * r.unsqueeze(-1), v, lp - logdet_x - logdet_v


def shell_inverse(flow, r1: torch.Tensor, n: torch.Tensor, v: torch.Tensor, iters: int = 80):
    """Base points (u_x, u_v) of phase-space points; ``r1`` the radius before the cuspy map.

    The base radius comes from the reverse solve; the base speed s0 is the
    root of ln[(v_r/A(s0))^2 + (v_t/B(s0))^2] = 0 (decreasing in s0: the
    shells are nested), by safeguarded Newton steps in ln s0.
    """
    lrho = flow.solve(torch.log(r1).unsqueeze(-1), reverse=True)[:, :1]
    vr, vt = _split(n, v)
    q2 = torch.cat([vr * vr, (vt * vt).sum(-1, keepdim=True)], dim=-1)
    x = 0.5 * torch.log((v * v).sum(-1))  # the identity map's answer
    lo, hi = torch.full_like(x, -40.0), torch.full_like(x, 10.0)
    f_prev = torch.full_like(x, math.inf)
    for _ in range(iters):
        with torch.enable_grad():
            xl = x.detach().requires_grad_(True)
            ls = flow.solve(torch.cat([lrho, xl.unsqueeze(-1), xl.unsqueeze(-1)], dim=-1))[:, 1:]
            f = torch.log((q2 * torch.exp(-2.0 * ls)).sum(-1))
            (d,) = torch.autograd.grad(f.sum(), xl)
        f = f.detach()
        if bool(torch.all(f.abs() < 1e-13)):
            break
        hi, lo = torch.where(f < 0, x, hi), torch.where(f >= 0, x, lo)
        step = x - f / d
        bad = (step < lo) | (step > hi) | ~torch.isfinite(step) | (f.abs() > 0.5 * f_prev)
        f_prev = f.abs()
        x = torch.where(f == 0, x, torch.where(bad, 0.5 * (lo + hi), step))
    ls = flow.solve(torch.cat([lrho, x.unsqueeze(-1), x.unsqueeze(-1)], dim=-1))[:, 1:]
    uv = torch.exp(x.unsqueeze(-1) - ls[:, :1]) * vr * n + torch.exp(x.unsqueeze(-1) - ls[:, 1:2]) * vt
    return n * flow.premap_inverse(torch.exp(lrho[:, 0])).unsqueeze(-1), uv
