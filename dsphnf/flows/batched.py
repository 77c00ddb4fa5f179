"""K ensemble members as one model: a member axis in the fields, the stars and the loss.

The members of a flow ensemble are independent: member k has its own
weights, its own bootstrap resample and its own standardised units (L_k,
V_k, v_sys_k). :class:`BatchedFlow` holds the K flows' weights stacked on a
leading member axis (:class:`~dsphnf.flows.field.MemberLinear` layers, a
cusp power c of shape (K,), a length scale of shape (K,)) and evaluates
every member's fields by one batched matrix product. Every function of the
exact loss (:mod:`~dsphnf.flows.surface`, :mod:`~dsphnf.flows.losvd`,
:mod:`~dsphnf.flows.prior`, :mod:`~dsphnf.flows.objective`) keeps that axis,
so ``flow_loss`` returns K losses, one per member. Members never mix: the
gradient of the sum of the K losses is, member by member, each member's own
gradient (the Jacobians inside the loss, taken as ``autograd.grad`` of sums,
stay per member for the same reason, which is why no ``vmap`` is needed).

The stars of member k are its resample as multiplicity weights on the
catalogue (:func:`member_batch`): a star drawn m times is one row with weight
m w, so the K members share the row layout; rows of stars not drawn are
dropped, and the members are padded to the same number of rows with
weight-zero copies of one of their own stars (which changes neither the
weighted means nor the prior's range of radii). A weighted mean over these
rows equals the mean over the resample with its duplicates, up to rounding.

Units: standardised per member (positions in L_k, velocities in V_k).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from torch import nn

from ..foreground import Foreground
from .cnf import SphericalFlow
from .foreground import foreground_term, stack_terms
from .field import MemberLinear, RadialField, VelocityField
from .kde import bandwidths
from .prior import SmoothnessPrior
from .stars import StarData

if TYPE_CHECKING:
    from .train_config import TrainConfig

__all__ = ["BatchedFlow", "MemberBatch", "member_batch", "batch_supported"]


class BatchedFlow(nn.Module):
    """K flows of one architecture evaluated at once on a leading member axis.

    Built from K :class:`~dsphnf.flows.cnf.SphericalFlow` (their weights are
    copied in; :meth:`write_member` copies member k's back out). It has the
    part of the flow's interface the exact loss uses: ``radial_map``,
    ``beta``, ``cusp_power``, ``kinematic``, ``base``; the inputs carry the
    member axis K first (base radii may also be given once, (n,), for all).
    Learned anisotropies are not batched (``ValueError``).

    With :meth:`select` only the members ``idx`` are evaluated (inputs
    (len(idx), ...)); the gradients land in their rows of the parameters.

    Examples
    --------
    >>> from dsphnf.flows.cnf import random_flow
    >>> flows = [random_flow(s, kinematic=False, inner="cuspy") for s in (0, 1)]
    >>> both = BatchedFlow(flows)
    >>> u = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    >>> r = both.radial_map(u)
    >>> bool(torch.allclose(r[1], flows[1].radial_map(u), rtol=1e-12))
    True
    """

    def __init__(self, flows: Sequence[SphericalFlow]) -> None:
        super().__init__()
        first = flows[0]
        if first.beta_net is not None:
            raise ValueError("a learned anisotropy is not batched: train such members one by one")
        spec = {k: v for k, v in first.spec().items() if k != "length_scale"}
        for f in flows[1:]:
            if {k: v for k, v in f.spec().items() if k != "length_scale"} != spec:
                raise ValueError("batched members need one architecture")
        K = len(flows)
        self.members = K
        self.kinematic, self.inner, self.base = first.kinematic, first.inner, first.base
        self.n_steps, self.method, self.fixed_c = first.n_steps, first.method, first.fixed_c
        self.beta_model, self.beta_net = first.beta_model, None
        w, d = spec["width"], spec["depth"]
        self.pos_field = RadialField(first.pos_field.inner, first.pos_field.r0, w, d, members=K)
        self.vel_field = None if first.vel_field is None else VelocityField("isotropic", first.vel_field.r0, w, d,
                                                                           members=K)
        self.c_raw = None if first.c_raw is None else nn.Parameter(torch.zeros(K))
        self.fg_raw = None if first.fg_raw is None else nn.Parameter(torch.zeros(K))
        p = next(first.parameters())
        self.to(device=p.device, dtype=p.dtype)
        self.register_buffer("length_scale", torch.tensor([f.length_scale for f in flows], dtype=p.dtype,
                                                          device=p.device))
        self._idx: torch.Tensor | None = None
        with torch.no_grad():
            for k, f in enumerate(flows):
                self._copy(k, f, into_batch=True)

    # the single flow's pieces that only broadcast over leading axes
    solve = SphericalFlow.solve
    _rhs = SphericalFlow._rhs
    _grid_rhs = SphericalFlow._grid_rhs
    speed_grid = SphericalFlow.speed_grid
    premap = SphericalFlow.premap
    _power = SphericalFlow._power
    anisotropy_learned = False

    def _copy(self, k: int, flow: SphericalFlow, into_batch: bool) -> None:
        """Member k's weights from ``flow`` into the batch, or back out of it."""
        for name, mod in self.named_modules():
            if isinstance(mod, MemberLinear):
                lin = flow.get_submodule(name)
                if into_batch:
                    mod.weight[k].copy_(lin.weight.T)
                    mod.bias[k, 0].copy_(lin.bias)
                else:
                    lin.weight.copy_(mod.weight[k].T)
                    lin.bias.copy_(mod.bias[k, 0])
        for name in ("c_raw", "fg_raw"):
            mine, theirs = getattr(self, name), getattr(flow, name)
            if mine is not None:
                (mine[k].copy_(theirs) if into_batch else theirs.copy_(mine[k]))

    @torch.no_grad()
    def write_member(self, k: int, flow: SphericalFlow) -> SphericalFlow:
        """Copy member k's weights into ``flow`` (a flow of the same architecture); returns it."""
        self._copy(k, flow, into_batch=False)
        return flow

    # ------------------------------------------------------------------ members evaluated
    def select(self, idx: torch.Tensor | None) -> None:
        """Evaluate only the members ``idx`` (a LongTensor) from now on; None: all of them."""
        self._idx = idx
        for mod in self.modules():
            if isinstance(mod, MemberLinear):
                mod.rows = idx

    def _rows(self, t: torch.Tensor) -> torch.Tensor:
        return t if self._idx is None else t[self._idx]

    @property
    def n_selected(self) -> int:
        return self.members if self._idx is None else int(self._idx.numel())

    @property
    def member_lead(self) -> tuple[int, ...]:
        """The member axis of the outputs: (number of selected members,)."""
        return (self.n_selected,)

    def cusp_power(self) -> torch.Tensor | None:
        """c of the cuspy map per selected member (K,), a fixed c as a scalar, None unless cuspy."""
        if self.inner != "cuspy":
            return None
        if self.c_raw is None:
            return torch.tensor(self.fixed_c)
        return nn.functional.softplus(self._rows(self.c_raw))

    def foreground_raw(self) -> torch.Tensor | None:
        """The learned foreground fractions' logits per selected member (K,), None without them."""
        return None if self.fg_raw is None else self._rows(self.fg_raw)

    def radial_map(self, u: torch.Tensor, vstate0: torch.Tensor | None = None):
        """Final radii (K, n) (and velocity states (K, n, 1)) of base radii ``u`` ((n,) or (K, n))."""
        K = self.n_selected
        logr0 = torch.log(self.premap(u).clamp_min(1e-300)).unsqueeze(-1)
        if logr0.dim() == 2:
            logr0 = logr0.expand(K, *logr0.shape)
        if vstate0 is not None and vstate0.dim() == 2:
            vstate0 = vstate0.expand(K, *vstate0.shape)
        y0 = logr0 if vstate0 is None else torch.cat([logr0, vstate0], dim=-1)
        y1 = self.solve(y0)
        r = self._power(torch.exp(y1[..., 0]))
        return r if vstate0 is None else (r, y1[..., 1:])

    def beta(self, r: torch.Tensor) -> torch.Tensor:
        """The given beta at standardised radii ``r`` (K, ...) of each member (its own L_k)."""
        L = self._rows(self.length_scale)
        return self.beta_model.beta_torch(r * L.reshape(-1, *([1] * (r.dim() - 1))))

    def anisotropy_parameters(self) -> dict[str, float]:
        return {}


class MemberBatch:
    """The stars of K members as one :class:`StarData` with a member axis, and what each member needs.

    Attributes
    ----------
    data : StarData
        ``obs`` (K, n, d), multiplicity ``weights`` (K, n), ``verr`` (K, n).
    prior : SmoothnessPrior or None
        One range of radii and one n_eff per member.
    scales : list of dict
        L [kpc], V, v_sys [km/s] of every member's resample.
    h : list of ndarray
        Kernel widths of every member (from its resample with duplicates).
    """

    def __init__(self, data: StarData, prior: SmoothnessPrior | None, scales: list[dict], h: list[np.ndarray]):
        self.data, self.prior, self.scales, self.h = data, prior, scales, h

    def take(self, idx: torch.Tensor | None) -> tuple[StarData, SmoothnessPrior | None]:
        """The stars and the prior of the members ``idx`` (None: all)."""
        if idx is None:
            return self.data, self.prior
        d = self.data
        out = StarData.__new__(StarData)
        out.obs, out.d, out.h, out.weights, out.R = d.obs[idx], d.d, d.h[idx], d.weights[idx], d.R[idx]
        out.err2 = None if d.err2 is None else d.err2[idx]
        out.inv_hv2 = None if d.inv_hv2 is None else d.inv_hv2[idx]
        out.fg = None if d.fg is None else d.fg.take(idx)
        p = self.prior
        if p is None:
            return out, None
        mean = None if p.nu_mean is None else p.nu_mean.take(idx)
        prior = SmoothnessPrior((p.log_range[0][idx], p.log_range[1][idx]), p.tau, p.n_eff[idx], p.hole_tau,
                                p.positivity_tau, mean)
        return out, prior


def member_batch(resamples: Sequence[np.ndarray], standardised: Sequence[dict[str, Any]], scales: list[dict],
                 bandwidth_factor: float, train_config: TrainConfig | None, dtype: torch.dtype,
                 device: torch.device, foreground: Foreground | None = None) -> MemberBatch:
    """Members' resamples (training indices with duplicates) as multiplicity weights on shared rows.

    ``standardised[k]`` holds the catalogue in member k's units
    (:func:`~dsphnf.flows.standardise.standardise_stars`): ``obs``, ``w``, ``verr``.
    A ``foreground`` [km/s] goes into every member's units (``data.fg``, :mod:`~dsphnf.flows.foreground`).
    The members' smoothness prior is the one ``train_config`` asks for (:meth:`SmoothnessPrior.of`; None: none).

    >>> obs = np.array([[1.0, 0.0, 0.1], [0.0, 2.0, -0.2], [3.0, 0.0, 0.3]])
    >>> std = {"obs": obs, "w": np.ones(3), "verr": None}
    >>> b = member_batch([np.array([0, 0, 2]), np.array([1, 2, 0])], [std, std], [{}, {}], 1.0, None,
    ...                  torch.float64, torch.device("cpu"))
    >>> b.data.weights.tolist()
    [[2.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    """
    n = len(standardised[0]["w"])
    rows, h = [], []
    for tr, std in zip(resamples, standardised):
        counts = np.bincount(tr, minlength=n)
        keep = np.nonzero(counts)[0]
        rows.append((keep, counts[keep]))
        h.append(bandwidths(std["obs"][tr], std["w"][tr], bandwidth_factor))
    width = max(len(keep) for keep, _ in rows)
    obs, wts, verr = [], [], []
    for (keep, m), std in zip(rows, standardised):
        pad = width - len(keep)  # weight-zero copies of the member's first star
        sel = np.concatenate([keep, np.full(pad, keep[0])])
        obs.append(std["obs"][sel])
        wts.append(np.concatenate([std["w"][keep] * m, np.zeros(pad)]))
        verr.append(None if std["verr"] is None else std["verr"][sel])
    as_t = lambda a: torch.as_tensor(np.stack(a), dtype=dtype, device=device)  # noqa: E731
    data = StarData(as_t(obs), np.stack(h), as_t(wts), None if verr[0] is None else as_t(verr))
    if foreground is not None:
        data.fg = stack_terms([foreground_term(foreground, sc, dtype, device, std["obs"])
                               for sc, std in zip(scales, standardised)])
    prior = SmoothnessPrior.of(train_config, data.R, data.weights)
    return MemberBatch(data, prior, scales, h)


def batch_supported(anisotropy, train_config, val_fraction: float, kinematic: bool) -> str | None:
    """Why K members cannot train as one batch with these settings (None: they can).

    The batched path trains the deterministic objective (exact loss with
    Gauss-Hermite smearing, all stars per step) by Adam then L-BFGS, without
    held-out stars, for a given anisotropy.
    """
    from ..anisotropy import Inferred

    c = train_config
    if kinematic and isinstance(anisotropy, Inferred):
        return "a learned anisotropy is trained member by member"
    gap = c.lbfgs_objective_gap(kinematic)
    if gap is not None:
        return f"only {gap} is batched"
    if val_fraction > 0:
        return "held-out validation stars (val_fraction > 0) are trained member by member"
    return None
