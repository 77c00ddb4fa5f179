"""Draws from a :class:`~dsphnf.flows.cnf.SphericalFlow` and its exact densities.

The flow's maps (:meth:`~dsphnf.flows.cnf.SphericalFlow.transform`,
:meth:`~dsphnf.flows.cnf.SphericalFlow.radial_map` and the fixed pre- and
cusp maps) live in :mod:`~dsphnf.flows.cnf`; this mixin turns them into a
distribution: samples of base points pushed forward, the radial map inverted
by safeguarded Newton steps, and ln nu and ln f from the triangular Jacobian
(derivatives by autograd through the solver, so exact for the discretised
map actually used). Units: standardised (L, V).
"""
from __future__ import annotations

import math

import torch

from .angular import angular_log_prob
from .field import log_normal_radius
from .separable import shell_log_prob

__all__ = ["FlowDistribution"]


class FlowDistribution:
    """Sampling and exact log-densities, mixed into :class:`~dsphnf.flows.cnf.SphericalFlow`.

    Needs of the host: ``kinematic``, ``separable``, ``transform``,
    ``radial_map``, ``premap_inverse``, ``_power_inverse``, ``beta`` and
    ``parameters``.

    Examples
    --------
    The positional density integrates to one: the mean of 1/nu over the
    flow's own samples is the volume of the sphere that holds them.

    >>> import torch
    >>> from dsphnf.flows import random_flow
    >>> flow = random_flow(0, kinematic=False, weights="replace")
    >>> x = flow.sample(2000, torch.Generator().manual_seed(0))
    >>> r = torch.linalg.vector_norm(x, dim=-1)
    >>> inside = r < 2.0
    >>> volume = (torch.exp(-flow.log_prob_x(x[inside])).sum() / len(x)).item()
    >>> abs(volume / (4 / 3 * torch.pi * 2.0**3) - 1) < 0.1
    True
    """

    def sample(self, n: int, generator: torch.Generator | None = None):
        """Draw ``n`` stars: ``x`` (n, 3) and, if kinematic, ``v`` (n, 3) [standardised]."""
        p = next(self.parameters())
        ux = torch.randn(n, 3, generator=generator, dtype=p.dtype, device=p.device)
        if not self.kinematic:
            return self.transform(ux)
        uv = torch.randn(n, 3, generator=generator, dtype=p.dtype, device=p.device)
        return self.transform(ux, uv)

    def sample_projected(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Observable columns of ``n`` flow stars: (x, y, v_z), or (x, y) without kinematics."""
        return self.sample_projected_weighted(n, generator)[0]

    def sample_projected_weighted(
        self, n: int, generator: torch.Generator | None = None, base_scale: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Projected flow stars drawn with a widened positional base, and their log-weights.

        Base positions come from N(0, base_scale^2 I_3) instead of N(0, I_3),
        which puts more samples into the sparse outskirts; the importance
        weights ln w = ln N(u; 1) - ln N(u; base_scale) (None for 1) restore
        the flow's distribution in weighted averages.
        """
        p = next(self.parameters())
        ux = torch.randn(n, 3, generator=generator, dtype=p.dtype, device=p.device) * base_scale
        if self.kinematic:
            uv = torch.randn(n, 3, generator=generator, dtype=p.dtype, device=p.device)
            x, v = self.transform(ux, uv)
            obs = torch.cat([x[:, :2], v[:, 2:3]], dim=-1)
        else:
            obs = self.transform(ux)[:, :2]
        if base_scale == 1.0:
            return obs, None
        u2 = (ux * ux).sum(-1)
        logw = 3.0 * math.log(base_scale) - 0.5 * u2 * (1.0 - 1.0 / base_scale**2)
        return obs, logw

    # ------------------------------------------------------------------ densities
    def inverse_radius(self, r: torch.Tensor, iters: int = 60) -> torch.Tensor:
        """Base radius u with T(u) = r, by safeguarded Newton steps in ln u (no gradient).

        The bracket is u in [1e-30, 60]; radii whose root is not found to
        1e-10 in ln r (1e-4 in float32) come back as NaN rather than as a wrong radius.
        """
        target = torch.log(r.detach())
        lo = torch.full_like(target, math.log(1e-30))
        hi = torch.full_like(target, math.log(60.0))
        lu = torch.log(self.premap_inverse(self._power_inverse(r.detach())).clamp(1e-6, 30.0))
        tol = 1e-10 if target.dtype == torch.float64 else 1e-4
        f = torch.full_like(target, math.inf)
        f_prev = torch.full_like(target, math.inf)
        for _ in range(iters):
            with torch.enable_grad():
                x = lu.detach().requires_grad_(True)
                lr = torch.log(self.radial_map(torch.exp(x)))
                (d,) = torch.autograd.grad(lr.sum(), x)
            lr = lr.detach()
            f = lr - target
            if bool(torch.all(f.abs() < tol * 1e-2)):
                break
            lo = torch.where(f < 0, lu, lo)
            hi = torch.where(f >= 0, lu, hi)
            step = lu - f / d
            # bisect when Newton leaves the bracket or stalls (|f| not halved: it can
            # oscillate inside the bracket where the map bends sharply)
            bad = (step < lo) | (step > hi) | ~torch.isfinite(step) | (f.abs() > 0.5 * f_prev)
            f_prev = f.abs()
            lu = torch.where(f == 0, lu, torch.where(bad, 0.5 * (lo + hi), step))
        return torch.where(f.abs() < tol, torch.exp(lu), torch.full_like(lu, math.nan))

    def log_det_radial(self, u: torch.Tensor, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(r, ln|det dT/du_x|) for base radii ``u``: ln(dr/du) + 2 ln(r/u), exact."""
        with torch.enable_grad():
            uu = u if u.requires_grad else u.detach().requires_grad_(True)
            r = self.radial_map(uu)
            (d,) = torch.autograd.grad(r.sum(), uu, create_graph=create_graph or u.requires_grad)
        return r, torch.log(d) + 2.0 * (torch.log(r) - torch.log(uu))

    def log_nu(self, r: torch.Tensor) -> torch.Tensor:
        """Exact ln nu at standardised radius ``r`` (nu normalised to one, per L^3)."""
        u = self.inverse_radius(r)
        _, logdet = self.log_det_radial(u)
        return log_normal_radius(u) - logdet

    def log_prob_base(self, ux: torch.Tensor, uv: torch.Tensor | None = None):
        """Images of base points and the exact log-density there.

        Returns ``(x, ln nu(x))`` for a positions-only flow and
        ``(x, v, ln f(x, v))`` for a kinematic one (f normalised in 6-D).
        The triangular Jacobian is det(dx/du_x) det(dv/du_v | u_x): radial
        factors (dr/du)(r/u)^2 for positions; (ds/ds0)(s/s0)^2 (1 - beta) for the
        isotropic velocity field with the anisotropy layer, and
        :func:`~dsphnf.flows.separable.shell_log_det` for the separable family
        (:func:`~dsphnf.flows.angular.angular_log_prob` for the angular one);
        derivatives by autograd.
        """
        with torch.enable_grad():
            u = torch.linalg.vector_norm(ux, dim=-1).detach().requires_grad_(True)
            n = (ux / u.unsqueeze(-1)).detach()
            lp = log_normal_radius(u)
            if not self.kinematic:
                r = self.radial_map(u)
                (d,) = torch.autograd.grad(r.sum(), u, create_graph=torch.is_grad_enabled())
                x = n * r.unsqueeze(-1)
                logp = lp - torch.log(d) - 2.0 * (torch.log(r) - torch.log(u))
                return x.detach(), logp.detach()
            lp = lp + log_normal_radius(torch.linalg.vector_norm(uv, dim=-1))
            if self.separable:
                return tuple(t.detach() for t in shell_log_prob(self, u, n, uv, lp))
            if self.angular:
                return tuple(t.detach() for t in angular_log_prob(self, u, n, uv, lp))
            s0 = torch.linalg.vector_norm(uv, dim=-1).detach().requires_grad_(True)
            r, vs = self.radial_map(u, torch.log(s0).unsqueeze(-1))
            s1 = torch.exp(vs[:, 0])
            (d,) = torch.autograd.grad(r.sum(), u, retain_graph=True)
            (ds,) = torch.autograd.grad(s1.sum(), s0)
            beta = self.beta(r)
            logdet_v = torch.log(ds) + 2.0 * (torch.log(s1) - torch.log(s0)) + torch.log1p(-beta.clamp(max=1.0 - 1e-12))
            v = uv * (s1 / s0).unsqueeze(-1)
            vr = (v * n).sum(-1, keepdim=True)
            v = vr * n + torch.sqrt(1.0 - beta).unsqueeze(-1) * (v - vr * n)
            logdet_x = torch.log(d) + 2.0 * (torch.log(r) - torch.log(u))
            x = n * r.unsqueeze(-1)
        return x.detach(), v.detach(), (lp - logdet_x - logdet_v).detach()

    def log_prob_x(self, x: torch.Tensor) -> torch.Tensor:
        """Exact ln nu(x) of positions ``x`` (n, 3)."""
        return self.log_nu(torch.linalg.vector_norm(x, dim=-1))
