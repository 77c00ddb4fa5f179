"""The SO(3)-equivariant continuous normalizing flow for a spherical dSph.

Units: standardised. Positions are in units of a length scale L [kpc] and
velocities in units of a velocity scale V [km/s]; :class:`SphericalFlow`
stores L (``length_scale``) only to evaluate a physical anisotropy beta(r).

The map T from the base (u_x, u_v) ~ N(0, I_3) x N(0, I_3) to phase space is
triangular and radial:

1. base radius u = |u_x|, direction n = u_x / u (kept by every step);
2. optional fixed base reshaping (``base="plummer"``): the radius is mapped by
   matching cumulative fractions, so that before any learning the positions
   follow a Plummer sphere of scale radius 1 L (heavy r^-5 tails, as dSphs
   have), instead of a Gaussian;
3. the ODE (torchdiffeq) on the state (ln r, velocity state) from t = 0 to 1,
   with the radial field of :class:`~dsphnf.flows.field.RadialField` and the
   velocity field of :class:`~dsphnf.flows.field.VelocityField`; dx/dt does
   not depend on v, so the x-marginal is itself a flow with exact density;
4. ``inner="cuspy"``: the inner power-law map r -> r (r / (r + 1))^c, c >= 0
   (r in L): r^(1 + c) well inside one length scale, where its Jacobian
   makes the inner slope dln nu/dln r -> -3c / (1 + c), and the identity
   outside, so that c acts on the centre only (a global r^(1 + c) also
   stretched the outskirts, which the network then had to undo, and c hardly
   moved during training);
5. the anisotropy layer (``velocity="elliptical"``, the default): the tangential velocity is scaled by
   sqrt(1 - beta(r)), which imposes beta(r) exactly on the isotropic
   velocity field. beta(r) is either given (a model of
   :mod:`dsphnf.anisotropy`) or inferred (``Inferred(family)``: a module of
   :mod:`~dsphnf.flows.beta` whose parameters are trained with the flow,
   through the same exact likelihood).
   ``velocity="separable"`` has no such layer: the velocity ODE maps the
   radial and tangential semi-axes of each base speed shell separately, and
   beta(r) is read from the map (:mod:`~dsphnf.flows.separable`; needs
   ``anisotropy=Inferred("free")``). ``velocity="angular"`` keeps the isotropic
   speed map and replaces the layer by a learned law of the velocity's angle to
   the radius vector at each radius and speed (:mod:`~dsphnf.flows.angular`;
   also ``anisotropy=Inferred("free")``).

Because the positional map is radial, its Jacobian determinant is
(dr/du) (r/u)^2, and dr/du is obtained exactly (for the discretised solver
actually used) by automatic differentiation through the solver. Sampling and the exact
densities are the mixin :class:`~dsphnf.flows.distribution.FlowDistribution`.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torchdiffeq import odeint

from ..anisotropy import AnisotropySpec, Inferred, Isotropic, require_form
from .angular import AngularLaw, angular_inverse, angular_table, angular_transform, family_table_beta
from .beta import LearnedAnisotropy, learned_anisotropy
from .device_constants import on_device
from .distribution import FlowDistribution
from .field import INNER_MODES, RadialField, VelocityField
from .layers import plummer_inverse, plummer_radius
from .rk4 import rk4_solve
from .separable import TABLE_FAMILIES, VELOCITY_FAMILIES, separable_table, shell_inverse, shell_transform, table_beta

__all__ = ["SphericalFlow", "FLOW_FORMS", "random_flow"]

#: Foreground fraction of an untrained flow that learns one (:mod:`~dsphnf.flows.foreground`).
F_START = 0.1

#: Anisotropy forms the flow supports (see :func:`dsphnf.anisotropy.require_form`).
FLOW_FORMS = ("given:*", "inferred:free", "inferred:constant", "inferred:om", "inferred:cuddeford", "inferred:baes")



# ---------------------------------------------------------------------------
class SphericalFlow(FlowDistribution, nn.Module):
    """Triangular, rotation-equivariant CNF for positions (and velocities).

    Parameters
    ----------
    kinematic : bool
        True: phase-space flow for (x, v). False: positions only (nu alone).
    inner : {"free", "cored", "cuspy"}
        Inner-slope variant of the positional field.
    anisotropy : Anisotropy or Inferred
        A given model (:mod:`dsphnf.anisotropy`) imposed exactly, or an
        ``Inferred(family)`` whose beta(r) (``free``) or parameters are learned
        (:mod:`~dsphnf.flows.beta`).
    length_scale : float
        L [kpc]: the physical length of one standardised unit (for beta(r)).
    base : {"plummer", "gaussian"}
        Radial shape of the base before the ODE (module docstring).
    r0 : float
        Core radius of the cored suppression and offset of the radial feature
        ln(r + r0) of the positional field [L].
    rv0 : float or None
        Offset of the radial feature ln(r + rv0) of the velocity field [L]
        (None: ``r0``); inside ~rv0 the velocity field varies only weakly with
        r. (Measured on the benchmark: 0.5 did not help over 0.1.)
    cusp_c : float or None
        Power of the cuspy map; None learns c >= 0 (starting at 0.5).
    velocity : {"elliptical", "separable", "angular"}
        Velocity family: the isotropic speed map with the anisotropy layer,
        the separate radial and tangential semi-axis maps of :mod:`~dsphnf.flows.separable`, or
        the speed map with the angular law of :mod:`~dsphnf.flows.angular`; the last two
        learn beta(r) themselves (``anisotropy`` must then be ``Inferred("free")``).
    width, depth : int
        MLP size of each field.
    n_steps : int
        Fixed steps of the solver (``method="rk4"``); ignored by adaptive solvers.
    method : str
        torchdiffeq method, e.g. ``"rk4"`` (default) or ``"dopri5"``.
    foreground : bool
        Learn a foreground fraction f = sigmoid(``fg_raw``) for the mixture
        likelihood of :mod:`~dsphnf.flows.foreground` (starting at
        :data:`F_START`); the fields do not depend on it.
    """

    def __init__(
        self,
        kinematic: bool = True,
        inner: str = "free",
        anisotropy: AnisotropySpec = Isotropic(),
        length_scale: float = 1.0,
        base: str = "plummer",
        r0: float = 0.1,
        rv0: float | None = None,
        cusp_c: float | None = None,
        width: int = 32,
        depth: int = 2,
        n_steps: int = 8,
        method: str = "rk4",
        velocity: str = "elliptical",
        foreground: bool = False,
    ) -> None:
        super().__init__()
        if inner not in INNER_MODES:
            raise ValueError(f"inner must be one of {', '.join(INNER_MODES)}, got {inner!r}")
        if base not in ("plummer", "gaussian"):
            raise ValueError(f"base must be 'plummer' or 'gaussian', got {base!r}")
        self.kinematic = bool(kinematic)
        rv0 = r0 if rv0 is None else rv0
        self.inner = inner
        self.base = base
        self.length_scale = float(length_scale)
        self.n_steps = int(n_steps)
        self.method = method
        require_form(anisotropy, FLOW_FORMS, "the flow")
        if velocity not in VELOCITY_FAMILIES:
            raise ValueError(f"velocity must be one of {', '.join(VELOCITY_FAMILIES)}, got {velocity!r}")
        self.velocity = velocity
        separable = self.kinematic and velocity == "separable"
        tabled = self.kinematic and velocity in TABLE_FAMILIES
        if tabled and anisotropy != Inferred("free"):
            raise ValueError(f"the {velocity} velocity family learns beta(r) itself: it needs anisotropy 'free'")
        self.table_anisotropy = anisotropy if tabled else None
        learned = self.kinematic and isinstance(anisotropy, Inferred) and not tabled
        self.beta_model = None if learned or tabled else (anisotropy if kinematic else Isotropic())
        self.beta_net: LearnedAnisotropy | None = learned_anisotropy(anisotropy.family) if learned else None
        self.pos_field = RadialField("free" if inner == "free" else "cored", r0=r0, width=width, depth=depth)
        vmode = "split" if separable else "isotropic"
        self.vel_field = VelocityField(vmode, r0=rv0, width=width, depth=depth) if self.kinematic else None
        angular = self.kinematic and velocity == "angular"
        self.angular_law = AngularLaw(width=width, depth=depth) if angular else None
        self.fixed_c = None if cusp_c is None else float(cusp_c)
        if inner == "cuspy" and cusp_c is None:
            self.c_raw = nn.Parameter(torch.tensor(math.log(math.expm1(0.5))))
        else:
            self.register_parameter("c_raw", None)
        if foreground:  # after every field: it draws no random numbers, so the fields start as without it
            self.fg_raw = nn.Parameter(torch.tensor(math.log(F_START / (1.0 - F_START))))
        else:
            self.register_parameter("fg_raw", None)

    # ------------------------------------------------------------------ pieces
    @property
    def n_vstate(self) -> int:
        return 0 if self.vel_field is None else self.vel_field.n_state

    def cusp_power(self) -> torch.Tensor | None:
        """c of the cuspy map r -> r (r / (r + 1))^c (None unless ``inner="cuspy"``)."""
        if self.inner != "cuspy":
            return None
        if self.c_raw is None:
            return torch.tensor(self.fixed_c)
        return nn.functional.softplus(self.c_raw)

    def foreground_raw(self) -> torch.Tensor | None:
        """The learned foreground fraction's logit (None without one)."""
        return self.fg_raw

    def foreground_fraction(self) -> float | None:
        """The learned foreground fraction f (None without one)."""
        return None if self.fg_raw is None else float(torch.sigmoid(self.fg_raw.detach()))

    def spec(self) -> dict:
        """The settings that rebuild this flow (for checkpoints and summaries)."""
        return {
            "kinematic": self.kinematic,
            "inner": self.inner,
            "anisotropy": next(a for a in (self.beta_net, self.beta_model, self.table_anisotropy)
                               if a is not None).spec(),
            "length_scale": self.length_scale,
            "base": self.base,
            "r0": self.pos_field.r0,
            "rv0": None if self.vel_field is None else self.vel_field.r0,
            "cusp_c": self.fixed_c,
            "width": self.pos_field.mlp.net[0].out_features,
            "depth": (len(self.pos_field.mlp.net) - 1) // 2,
            "n_steps": self.n_steps,
            "method": self.method,
            "velocity": self.velocity,
            **({"foreground": True} if self.fg_raw is not None else {}),  # absent: the specs of flows without one
        }

    def _rhs(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logr = y[..., 0]
        dl = self.pos_field.log_rate(logr, t).unsqueeze(-1)
        if y.shape[-1] == 1:  # positions only
            return dl
        return torch.cat([dl, self.vel_field.rates(logr, y[..., 1:], t)], dim=-1)

    def solve(self, y0: torch.Tensor, reverse: bool = False, rhs=None) -> torch.Tensor:
        """Integrate the state (ln r[, velocity state]) from t = 0 to 1 (or back).

        A state with a single column is integrated with the positional field
        alone; ``rhs`` (default :meth:`_rhs`) may give another layout of the state.
        """
        if self.method == "rk4":  # torchdiffeq's steps, without its host reads (:mod:`~dsphnf.flows.rk4`)
            return rk4_solve(self._rhs if rhs is None else rhs, y0, self.n_steps, reverse)
        times = (1.0, 0.0) if reverse else (0.0, 1.0)
        (ts,) = on_device(("ode_times", times), lambda: (np.array(times),), y0.dtype, y0.device)
        opts = {"step_size": 1.0 / self.n_steps} if self.method in ("euler", "midpoint", "explicit_adams") else None
        kw = {"rtol": 1e-7, "atol": 1e-9} if opts is None else {}
        return odeint(self._rhs if rhs is None else rhs, y0, ts, method=self.method, options=opts, **kw)[-1]

    def _grid_rhs(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """:meth:`_rhs` for the state (..., m, 1 + J c) of :meth:`speed_grid`: ln r once per radius, J speeds
        of c = ``vel_field.n_state`` columns each."""
        logr, c = y[..., 0], self.vel_field.n_state
        J = (y.shape[-1] - 1) // c
        dl = self.pos_field.log_rate(logr, t)
        flat = (*logr.shape[:-1], -1)
        lr = logr.unsqueeze(-1).expand(*logr.shape, J).reshape(flat)
        dv = self.vel_field.rates(lr, y[..., 1:].reshape(*flat, c), t).reshape(y[..., 1:].shape)
        return torch.cat([dl.unsqueeze(-1), dv], dim=-1)

    def speed_grid(self, u: torch.Tensor, ls0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Final radii r (m,) of base radii ``u`` (m,) and velocity states (m, J, c) of base log-speeds ``ls0`` (J,).

        The same as ``radial_map(u.repeat_interleave(J), ls0.repeat(m)[:, None])``
        reshaped to (m, J, c), every one of the c = ``vel_field.n_state``
        state columns starting at the base log-speed (the isotropic state ln s,
        or the separable family's (ln A, ln B)), but the positional field,
        which does not depend on the speed, is evaluated once per radius
        instead of once per (radius, speed). With members: (K, m), (K, m, J, c).
        """
        m, J, c = u.shape[-1], ls0.shape[-1], self.vel_field.n_state
        logr0 = torch.log(self.premap(u).clamp_min(1e-300)).unsqueeze(-1)
        y0 = torch.cat([logr0, ls0.to(logr0).repeat_interleave(c).expand(m, J * c)], dim=-1)
        y1 = self.solve(y0.expand(*self.member_lead, m, J * c + 1), rhs=self._grid_rhs)
        return self._power(torch.exp(y1[..., 0])), y1[..., 1:].reshape(*y1.shape[:-1], J, c)

    #: leading member axes of the outputs (none for one flow)
    member_lead: tuple[int, ...] = ()

    def premap(self, u: torch.Tensor) -> torch.Tensor:
        """Fixed base reshaping of the radius (identity for the Gaussian base)."""
        return plummer_radius(u) if self.base == "plummer" else u

    def premap_inverse(self, r: torch.Tensor) -> torch.Tensor:
        return plummer_inverse(r) if self.base == "plummer" else r

    def _power(self, r: torch.Tensor) -> torch.Tensor:
        c = self.cusp_power()
        if c is None:
            return r
        lr = torch.log(r)
        c = c.to(r)
        c = c.reshape(*c.shape, *([1] * (r.dim() - c.dim())))  # one c per member, if members
        return torch.exp(lr + c * (lr - torch.log1p(r)))

    def _power_inverse(self, r: torch.Tensor) -> torch.Tensor:
        """Inverse of the cuspy map by Newton steps in ln r (monotone: dln r'/dln r = 1 + c/(1 + r))."""
        c = self.cusp_power()
        if c is None:
            return r
        c = c.to(r)
        target = torch.log(r)
        x = target / (1.0 + c)  # exact where r << 1
        x = torch.where(target > 0, target, x)
        for _ in range(40):
            ex = torch.exp(x)
            f = x + c * (x - torch.log1p(ex)) - target
            x = x - f / (1.0 + c / (1.0 + ex))
        return torch.exp(x)

    def radial_map(self, u: torch.Tensor, vstate0: torch.Tensor | None = None):
        """Final radius (and velocity state) of base radius ``u`` (shape (n,)).

        Returns ``r`` or ``(r, vstate)`` when ``vstate0`` (n, n_vstate) is given.
        """
        logr0 = torch.log(self.premap(u).clamp_min(1e-300)).unsqueeze(-1)
        y0 = logr0 if vstate0 is None else torch.cat([logr0, vstate0], dim=-1)
        y1 = self.solve(y0)
        r = self._power(torch.exp(y1[:, 0]))
        return r if vstate0 is None else (r, y1[:, 1:])

    @property
    def anisotropy_learned(self) -> bool:
        """True when beta(r) (or its parameters) is trained with the flow."""
        return self.beta_net is not None or self.separable or self.angular

    @property
    def angular(self) -> bool:
        """True for the angular velocity family (:mod:`~dsphnf.flows.angular`)."""
        return self.angular_law is not None

    @property
    def separable(self) -> bool:
        """True for the separable velocity family (:mod:`~dsphnf.flows.separable`)."""
        return self.kinematic and self.velocity == "separable"

    def beta(self, r: torch.Tensor) -> torch.Tensor:
        """beta at standardised radius ``r``: the given model's, or the learned one (differentiable).

        The separable and angular families read it from a fresh velocity table (one solver pass).
        """
        if self.separable:
            return table_beta(separable_table(self))(r)
        if self.angular:
            return family_table_beta(angular_table(self))(r)
        if self.beta_net is not None:
            return self.beta_net(r)
        return self.beta_model.beta_torch(r * self.length_scale)

    def anisotropy_parameters(self) -> dict[str, float]:
        """The learned anisotropy parameters in physical units (r_a in kpc); empty if none."""
        return {} if self.beta_net is None else self.beta_net.describe(self.length_scale)

    # ------------------------------------------------------------------ maps
    def transform(self, ux: torch.Tensor, uv: torch.Tensor | None = None):
        """Push base points through the flow: ``x`` (n, 3) and, if kinematic, ``v`` (n, 3)."""
        u = torch.linalg.vector_norm(ux, dim=-1).clamp_min(1e-30)
        n = ux / u.unsqueeze(-1)
        if not self.kinematic:
            return n * self.radial_map(u).unsqueeze(-1)
        if uv is None:
            raise ValueError("a kinematic flow needs base velocities uv")
        if self.separable:
            return shell_transform(self, u, n, uv)
        if self.angular:
            return angular_transform(self, u, n, uv)
        s0 = torch.linalg.vector_norm(uv, dim=-1, keepdim=True).clamp_min(1e-30)
        r, vs = self.radial_map(u, torch.log(s0))
        v = uv * torch.exp(vs[:, :1] - torch.log(s0))
        vr = (v * n).sum(-1, keepdim=True)
        scale = torch.sqrt((1.0 - self.beta(r)).clamp_min(1e-12)).unsqueeze(-1)
        v = vr * n + scale * (v - vr * n)
        return n * r.unsqueeze(-1), v

    def inverse(self, x: torch.Tensor, v: torch.Tensor | None = None):
        """Approximate inverse by integrating the ODE backwards (same solver)."""
        r = torch.linalg.vector_norm(x, dim=-1).clamp_min(1e-30)
        n = x / r.unsqueeze(-1)
        r1 = self._power_inverse(r)
        if not self.kinematic:
            y0 = self.solve(torch.log(r1).unsqueeze(-1), reverse=True)
            return n * self.premap_inverse(torch.exp(y0[:, 0])).unsqueeze(-1)
        if self.separable:
            return shell_inverse(self, r1, n, v)
        if self.angular:
            return angular_inverse(self, r, r1, n, v)
        vr = (v * n).sum(-1, keepdim=True)
        scale = torch.sqrt((1.0 - self.beta(r)).clamp_min(1e-12)).unsqueeze(-1)
        viso = vr * n + (v - vr * n) / scale
        s1 = torch.linalg.vector_norm(viso, dim=-1, keepdim=True).clamp_min(1e-30)
        y0 = self.solve(torch.cat([torch.log(r1).unsqueeze(-1), torch.log(s1)], dim=-1), reverse=True)
        uv = viso * torch.exp(y0[:, 1:2] - torch.log(s1))
        u = self.premap_inverse(torch.exp(y0[:, 0]))
        return n * u.unsqueeze(-1), uv


def random_flow(seed: int, std: float = 0.3, *, weights: str = "add", **settings) -> SphericalFlow:
    """A float64 flow with random, non-trivial weights: for demonstrations and tests.

    Parameters
    ----------
    seed : int
        Random seed of the weights.
    std : float
        Standard deviation of the Gaussian draws.
    weights : {"add", "replace"}
        ``"add"``: N(0, std) is added to every weight of the fresh flow (whose
        last layers start at zero, the identity map); the first layers keep
        torch's default initialisation, so the fields are strong.
        ``"replace"``: every weight of the vector fields is drawn from
        N(0, std) instead (a learned cusp power is left as it is); the fields
        stay gentle, as a smooth stand-in for a trained flow.
    **settings
        Passed to :class:`SphericalFlow` (e.g. ``kinematic=False``,
        ``inner="cored"``, ``anisotropy=OsipkovMerritt(0.3)``).

    Examples
    --------
    >>> flow = random_flow(0, kinematic=False, inner="cored")
    >>> x = flow.sample(4, torch.Generator().manual_seed(1))
    >>> tuple(x.shape)
    (4, 3)
    """
    if weights not in ("add", "replace"):
        raise ValueError(f"weights must be 'add' or 'replace', got {weights!r}")
    torch.manual_seed(seed)
    flow = SphericalFlow(**settings).double()
    with torch.no_grad():
        if weights == "add":
            for p in flow.parameters():
                p.add_(torch.randn_like(p) * std)
            return flow
        for field in (flow.pos_field, flow.vel_field):
            for p in [] if field is None else field.parameters():
                p.normal_(0.0, std)
    return flow
