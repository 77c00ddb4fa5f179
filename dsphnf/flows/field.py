"""SO(3)-equivariant vector fields of the continuous normalizing flow.

All quantities here are in *standardised* units: positions in units of the
length scale L [kpc], velocities in units of the velocity scale V [km/s]
(see :mod:`dsphnf.flows.cnf`).

Positions. The field is radial, dx/dt = x_hat g(|x|, t), so a point keeps its
direction and only its radius moves; the flow is equivariant under every
rotation by construction. It is written for the state ln r as
d ln r/dt = h(r, t) = g/r, with three inner-slope variants:

``free``
    h = MLP(lambda(r), t) with lambda = ln r between 1e-6 L and 10 L and
    smoothly saturating outside (:func:`soft_log_radius`): inside that range
    the network's (asymptotically linear) behaviour in ln r can produce any
    inner power law, cusp or core; the data decide. Outside it h is constant,
    the map is a pure scaling, and the density keeps the base's flat centre
    (below 1e-6 L, far inside any data) and r^-5 outskirts (beyond 10 L). An
    unbounded feature let h grow linearly in ln r at large radii, where a few
    training steps could make the outer trajectories run away (overflow).
``cored`` and ``cuspy``
    g = tanh(r / r0) f(ln(r + r0), t) (the suppression of the paper,
    arXiv:2505.00763): near the centre d ln r/dt -> f / r0 is independent of r,
    the map is a pure scaling there and the density keeps the flat (Gaussian or
    Plummer) core of the base.
    ``cuspy`` adds a power-law radial map after the flow (see ``cnf``).

The divergence needed by the instantaneous change of variables is
div F = dg/dr + 2 g/r = 3 h + dh/dln r (cheap: one radial derivative).

Velocities (phase space). With v_r = v . x_hat and v_t = v - v_r x_hat, the
field dv/dt = a v_r x_hat + b v_t, a and b functions of the invariants
(r, |v_r|, |v_t|, t), is equivariant under joint rotations of (x, v) and odd
in v, so f(x, v) = f(x, -v): no streaming or rotation, as for a dSph.
Since x_hat is constant along a trajectory, the state reduces to
(v_r, ln |v_t|). The ``isotropic`` velocity field has a = b = b(r, |v|, t):
dv/dt = b v, the state is ln |v| and the velocity ellipsoid stays isotropic.

The ``split`` field drives two speeds of a base velocity shell, its radial
and tangential semi-axes A and B (state (ln A, ln B), both starting at the
base speed), by two independent one-dimensional ODEs,
d ln A/dt = a(r, A, t) and d ln B/dt = b(r, B, t): each final semi-axis is a
strictly increasing function of the base speed, so the shells stay nested
ellipsoids and the velocity map of :mod:`~dsphnf.flows.separable` is a bijection.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["MLP", "MemberLinear", "RadialField", "VelocityField", "INNER_MODES", "log_normal_radius", "soft_log_radius"]

INNER_MODES = ("free", "cored", "cuspy")
_TINY = 1e-30
_LOG_R_LO, _LOG_R_HI = math.log(1e-6), math.log(10.0)


def soft_log_radius(logr: torch.Tensor) -> torch.Tensor:
    """ln r, smoothly saturated below ln(1e-6) and above ln(10) (r in units of L)."""
    sp = nn.functional.softplus
    return _LOG_R_LO + sp(logr - _LOG_R_LO) - sp(logr - _LOG_R_HI)


class MemberLinear(nn.Module):
    """``members`` independent affine maps applied at once: (K, n, n_in) -> (K, n, n_out).

    ``weight`` has shape (K, n_in, n_out) (member k's ``nn.Linear`` weight,
    transposed) and ``bias`` (K, 1, n_out); one batched matrix product
    (``torch.baddbmm``) applies all of them. Member k's output depends on
    member k's weights and inputs only, so the gradient of a sum over members
    is every member's own gradient.

    >>> lin = MemberLinear(3, 2, 4)
    >>> tuple(lin(torch.ones(3, 5, 2)).shape)
    (3, 5, 4)
    """

    def __init__(self, members: int, n_in: int, n_out: int) -> None:
        super().__init__()
        self.in_features, self.out_features = int(n_in), int(n_out)
        self.weight = nn.Parameter(torch.zeros(members, n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(members, 1, n_out))
        self.rows: torch.Tensor | None = None  # evaluate only these members (set by BatchedFlow.select)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.rows is None:
            return torch.baddbmm(self.bias, z, self.weight)
        return torch.baddbmm(self.bias[self.rows], z, self.weight[self.rows])


class MLP(nn.Module):
    """Small fully connected network with SiLU activations.

    The last layer starts at zero so that a freshly built flow is the identity
    map (the model starts at its base distribution). With ``members`` = K the
    network is K independent networks (:class:`MemberLinear` layers, all
    starting at zero: they are filled from K single networks, see
    :mod:`~dsphnf.flows.batched`) applied to inputs (K, n, n_in).
    """

    def __init__(self, n_in: int, width: int = 32, depth: int = 2, n_out: int = 1, members: int | None = None) -> None:
        super().__init__()
        linear = nn.Linear if members is None else (lambda a, b: MemberLinear(members, a, b))
        layers: list[nn.Module] = []
        d = n_in
        for _ in range(depth):
            layers += [linear(d, width), nn.SiLU()]
            d = width
        last = linear(d, n_out)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        layers.append(last)
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def _time_column(t: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """The time as a feature column shaped like ``like`` (..., n) plus a last axis of 1."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return t.expand(like.shape).unsqueeze(-1) if t.dim() == 0 else t.reshape(*like.shape, 1)


class RadialField(nn.Module):
    """Radial positional field, returned as the log-rate h = d ln r/dt.

    Parameters
    ----------
    inner : {"free", "cored", "cuspy"}
        Inner-slope variant (module docstring). ``cuspy`` uses the cored field.
    r0 : float
        Core radius of the tanh suppression [standardised units, L].
    width, depth : int
        MLP size.
    members : int or None
        K independent fields evaluated at once on a leading member axis
        (inputs (K, n)); None: one field (inputs (n,)).
    """

    def __init__(self, inner: str = "free", r0: float = 0.1, width: int = 32, depth: int = 2,
                 members: int | None = None) -> None:
        super().__init__()
        if inner not in INNER_MODES:
            raise ValueError(f"inner must be one of {INNER_MODES}, got {inner!r}")
        self.inner = inner
        self.r0 = float(r0)
        self.mlp = MLP(2, width, depth, 1, members)

    def log_rate(self, logr: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """d ln r/dt at ln r = ``logr`` (shape (n,), or (K, n) with members) and time ``t``."""
        tc = _time_column(t, logr)
        if self.inner == "free":
            return self.mlp(torch.cat([soft_log_radius(logr).unsqueeze(-1), tc], dim=-1)).squeeze(-1)
        r = torch.exp(logr)
        feat = torch.log(r + self.r0).unsqueeze(-1)
        f = self.mlp(torch.cat([feat, tc], dim=-1)).squeeze(-1)
        x = r / self.r0
        # tanh(x)/x, with its series near 0 so that the field stays smooth at the centre
        small = x < 1e-3
        xs = torch.where(small, torch.ones_like(x), x)
        ratio = torch.where(small, 1.0 - x * x / 3.0, torch.tanh(xs) / xs)
        return f * ratio / self.r0

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The 3-D vector field F(x, t) = x h(|x|, t) for points ``x`` of shape (n, 3)."""
        r = torch.linalg.vector_norm(x, dim=-1).clamp_min(_TINY)
        return x * self.log_rate(torch.log(r), t).unsqueeze(-1)

    def divergence(self, logr: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """div F = 3 h + dh/dln r at ln r = ``logr`` (exact, by autograd)."""
        with torch.enable_grad():
            lr = logr if logr.requires_grad else logr.detach().requires_grad_(True)
            h = self.log_rate(lr, t)
            (dh,) = torch.autograd.grad(h.sum(), lr, create_graph=torch.is_grad_enabled())
        return 3.0 * h + dh


class VelocityField(nn.Module):
    """Equivariant, v-odd velocity field for the phase-space flow.

    Parameters
    ----------
    mode : {"isotropic", "free", "split"}
        ``isotropic``: dv/dt = b(r, |v|, t) v, state ln|v| (one column).
        ``free``: dv/dt = a v_r x_hat + b v_t, state (v_r, ln|v_t|) (two columns).
        ``split``: state (ln A, ln B) of two shell semi-axes with independent
        rates a(r, A, t), b(r, B, t) (two columns; no 3-D field, see the module docstring).
    r0 : float
        Offset of the radial feature ln(r + r0) [L].
    members : int or None
        K independent fields on a leading member axis (as :class:`RadialField`).
    """

    def __init__(self, mode: str = "isotropic", r0: float = 0.1, width: int = 32, depth: int = 2,
                 members: int | None = None) -> None:
        super().__init__()
        if mode not in ("isotropic", "free", "split"):
            raise ValueError(f"velocity mode must be 'isotropic', 'free' or 'split', got {mode!r}")
        self.mode = mode
        self.r0 = float(r0)
        self.n_state = 1 if mode == "isotropic" else 2
        self.mlp = MLP(4 if mode == "free" else 3, width, depth, 2 if mode == "free" else 1, members)
        # the tangential semi-axis of the split field has a network of its own
        self.mlp_t = MLP(3, width, depth, 1, members) if mode == "split" else None

    def coefficients(self, logr: torch.Tensor, vstate: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """Invariant coefficients: (n, 1) b for ``isotropic``, (n, 2) (a, b) for ``free`` (leading member axis kept)."""
        tc = _time_column(t, logr)
        feat_r = torch.log(torch.exp(logr) + self.r0).unsqueeze(-1)
        # speeds enter as log1p(|v|): the log-rates then grow at most like ln|v|, so
        # ln|v| obeys a (sub)linear ODE and no trajectory can blow up in finite time
        if self.mode == "isotropic":
            s = torch.exp(vstate[..., :1])
            return self.mlp(torch.cat([feat_r, torch.log1p(s), tc], dim=-1))
        if self.mode == "split":
            s = torch.exp(vstate[..., :2])
            return torch.cat([self.mlp(torch.cat([feat_r, torch.log1p(s[..., :1]), tc], dim=-1)),
                              self.mlp_t(torch.cat([feat_r, torch.log1p(s[..., 1:2]), tc], dim=-1))], dim=-1)
        vr = vstate[..., :1]
        st = torch.exp(vstate[..., 1:2])
        return self.mlp(torch.cat([feat_r, torch.log1p(vr.abs()), torch.log1p(st), tc], dim=-1))

    def rates(self, logr: torch.Tensor, vstate: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """Time derivative of the velocity state (n, n_state) at radius exp(logr)."""
        c = self.coefficients(logr, vstate, t)
        if self.mode != "free":
            return c
        return torch.cat([vstate[..., :1] * c[..., :1], c[..., 1:2]], dim=-1)

    def forward(self, t: torch.Tensor, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The 3-D field dv/dt at phase-space points (x, v), both of shape (n, 3) (not for ``split``)."""
        if self.mode == "split":
            raise ValueError("the split field drives shell semi-axes and has no closed-form 3-D field")
        r = torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(_TINY)
        xh = x / r
        logr = torch.log(r).squeeze(-1)
        if self.mode == "isotropic":
            s = torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(_TINY)
            return self.coefficients(logr, torch.log(s), t) * v
        vr = (v * xh).sum(-1, keepdim=True)
        vt = v - vr * xh
        st = torch.linalg.vector_norm(vt, dim=-1, keepdim=True).clamp_min(_TINY)
        c = self.coefficients(logr, torch.cat([vr, torch.log(st)], dim=-1), t)
        return c[:, :1] * vr * xh + c[:, 1:2] * vt


def log_normal_radius(u: torch.Tensor) -> torch.Tensor:
    """ln of the 3-D standard normal density at radius ``u`` (per unit volume)."""
    return -0.5 * u * u - 1.5 * math.log(2.0 * math.pi)
