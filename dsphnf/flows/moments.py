"""Jeans analysis of a trained flow: nu, sigma_r^2, beta -> M(r), rho(r) by autograd.

Everything is evaluated in float64 on a grid of radii. For each grid radius r
the base radius u with T(u) = r is found (safeguarded Newton), and u becomes the
leaf variable of the computation: every radial function f is a function of u,
and derivatives follow from the chain rule, d f/d ln r = (df/du) / (d ln r/du),
with ``torch.autograd.grad(..., create_graph=True)`` applied as often as needed
(three nested levels for rho). No binning and no finite differences.

- nu(r) = N_3(u) (du/dr) (u/r)^2 exactly (triangular flow, radial map).
- Velocity moments at r: conditional on x the base velocity is N(0, I_3), and
  it is pushed through the velocity ODE along the trajectory of u. The
  expectation over base velocities is a fixed Gauss quadrature (common nodes
  for every r, so the moments are smooth, differentiable functions of r):
  isotropic field: |v|^2 / 2 ~ Gamma(3/2) -> generalised Gauss-Laguerre.
  With the anisotropy layer (beta given or learned): sigma_r^2 = <|v|^2> / 3
  and sigma_t^2 = (1 - beta) sigma_r^2 (one component) exactly; a learned
  beta(r) enters the Jeans equation and its derivative by autograd like nu.
  Separable family (:mod:`~dsphnf.flows.separable`): sigma_r^2 = <A^2>/3
  and sigma_t^2 = <B^2>/3 over the base speeds, beta = 1 - sigma_t^2/sigma_r^2.
  Angular family (:mod:`~dsphnf.flows.angular`): sigma_r^2 = <S^2 mu^2> and
  sigma_t^2 = <S^2 (1 - mu^2)>/2 with the law's <mu^2> at (r, s0).
- G M(r) = -r sigma_r^2 [dln nu/dln r + dln sigma_r^2/dln r + 2 beta],
  rho = (dM/dln r) / (4 pi r^3).

Units of the returned dictionary: r [kpc], nu [kpc^-3, normalised to one star],
sigma_r, sigma_t [km/s] (sigma_t: one tangential component), beta [-],
M [Msun], rho [Msun/kpc^3].
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
from scipy import special

from ..constants import G
from .cnf import SphericalFlow
from .field import log_normal_radius
from .angular import law_moments
from .separable import speed_nodes

__all__ = ["flow_profiles", "velocity_nodes"]


def velocity_nodes(mode: str, n: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Base-velocity quadrature: (nodes (K, k), weights (K,)) summing to one.

    ``isotropic``: nodes are ln|v| (k = 1). ``free``: nodes are (v_r, ln|v_t|).
    """
    if mode == "isotropic":
        ls, w = speed_nodes(n)
        return ls[:, None], w
    xr, wr = special.roots_hermitenorm(max(n // 2 * 2, 2))
    xt, wt = special.roots_laguerre(max(n // 2, 2))
    vr = np.repeat(xr, len(xt))
    lst = np.tile(np.log(np.sqrt(2.0 * xt)), len(xr))
    w = np.outer(wr, wt).ravel()
    return np.column_stack([vr, lst]), w / w.sum()


def _velocity_moments(f64: SphericalFlow, u: torch.Tensor, rr: torch.Tensor, n_nodes: int):
    """(sigma_r^2, sigma_t^2, beta) at base radii ``u`` (final radii ``rr``), differentiable in ``u``.

    Elliptical family: <S^2>/3 over the base speeds and (1 - beta) sigma_r^2.
    Separable family: <A^2>/3 and <B^2>/3 over the same base speeds (semi-axes
    of :mod:`~dsphnf.flows.separable`), and beta = 1 - sigma_t^2 / sigma_r^2.
    """
    nodes, weights = velocity_nodes("isotropic", n_nodes)
    K, n = len(weights), u.shape[0]
    nodes_t = torch.as_tensor(nodes, dtype=torch.float64, device=u.device)
    w_t = torch.as_tensor(weights, dtype=torch.float64, device=u.device)
    # the state of each base speed: ln S, or the separable family's semi-axes (ln A, ln B)
    _, v1 = f64.radial_map(u.repeat_interleave(K), nodes_t.repeat(n, 2 if f64.separable else 1))
    sr2 = (torch.exp(2.0 * v1[:, 0]).reshape(n, K) * w_t).sum(-1) / 3.0
    if f64.separable:
        st2 = (torch.exp(2.0 * v1[:, 1]).reshape(n, K) * w_t).sum(-1) / 3.0
        return sr2, st2, 1.0 - st2 / sr2
    if f64.angular:  # <S^2 mu^2> and <S^2 (1 - mu^2)>/2 with the law at (r, s0)
        mu2, _ = law_moments(f64.angular_law.weights(torch.log(rr).unsqueeze(-1), nodes_t[:, 0]))
        s2 = torch.exp(2.0 * v1[:, 0]).reshape(n, K) * w_t
        sr2, st2 = (s2 * mu2).sum(-1), (s2 * (1.0 - mu2)).sum(-1) / 2.0
        return sr2, st2, 1.0 - st2 / sr2
    beta = f64.beta(rr)
    return sr2, (1.0 - beta) * sr2, beta


def _grad(f: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    (g,) = torch.autograd.grad(f.sum(), u, create_graph=True)
    return g


def flow_profiles(
    flow: SphericalFlow,
    r_kpc: np.ndarray,
    length_scale: float,
    velocity_scale: float = 1.0,
    n_nodes: int = 24,
    need_rho: bool = True,
) -> dict[str, np.ndarray]:
    """Stellar density, velocity moments, mass and density of a trained flow.

    Parameters
    ----------
    flow : SphericalFlow
        Trained flow (any device/dtype; a float64 copy is used).
    r_kpc : ndarray
        Radii [kpc].
    length_scale, velocity_scale : float
        L [kpc] and V [km/s] of the standardised units the flow was trained in.
    n_nodes : int
        Gauss nodes per velocity dimension.
    need_rho : bool
        Skip the third derivative when only M(r) is wanted.

    Returns
    -------
    dict
        ``r``, ``nu``, ``dlnnu_dlnr`` and, for a kinematic flow, ``sigma_r``,
        ``sigma_t``, ``beta``, ``dlnsigma2_dlnr``, ``M``, ``rho``.
    """
    f64 = copy.deepcopy(flow).double()
    f64.requires_grad_(False)
    dev = next(f64.parameters()).device
    L, V = float(length_scale), float(velocity_scale)
    r = torch.as_tensor(np.asarray(r_kpc, dtype=float) / L, dtype=torch.float64, device=dev)
    u = f64.inverse_radius(r).requires_grad_(True)
    with torch.enable_grad():
        rr = f64.radial_map(u)
        drdu = _grad(rr, u)
        log_nu = log_normal_radius(u) - torch.log(drdu) - 2.0 * (torch.log(rr) - torch.log(u))
        dlnr_du = drdu / rr

        def D(fn: torch.Tensor) -> torch.Tensor:
            return _grad(fn, u) / dlnr_du

        dlnnu = D(log_nu)
        out = {
            "r": rr.detach().cpu().numpy() * L,
            "nu": torch.exp(log_nu).detach().cpu().numpy() / L**3,
            "dlnnu_dlnr": dlnnu.detach().cpu().numpy(),
        }
        if not f64.kinematic:
            return out
        sr2, st2, beta = _velocity_moments(f64, u, rr, n_nodes)
        dlns2 = D(torch.log(sr2))
        m_std = -rr * sr2 * (dlnnu + dlns2 + 2.0 * beta)  # G M / (L V^2)
        out.update(
            sigma_r=np.sqrt(sr2.detach().cpu().numpy()) * V,
            sigma_t=np.sqrt(st2.detach().cpu().numpy()) * V,
            beta=beta.detach().cpu().numpy(),
            dlnsigma2_dlnr=dlns2.detach().cpu().numpy(),
            M=m_std.detach().cpu().numpy() * L * V**2 / G,
        )
        if need_rho:
            dm = D(m_std)
            rho_std = dm / (4.0 * math.pi * rr**3)
            out["rho"] = rho_std.detach().cpu().numpy() * V**2 / (G * L**2)
    return out
