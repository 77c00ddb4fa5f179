"""Adam and L-BFGS for K independent members held on one member axis (batched ensemble training).

The parameters of K members (:class:`~dsphnf.flows.batched.BatchedFlow`,
every tensor with a leading member axis) are viewed as one matrix (K, P)
(:class:`MemberParams`). The objective returns one loss per member
(:class:`MemberObjective`); since members never mix, the gradient of their
sum is every member's own gradient. Everything that would couple members
in a single optimiser is kept per member:

- :class:`MemberAdam`: Adam is elementwise, but the step counts (bias
  corrections) and learning rates are per member, so that a member rolled
  back by the NaN guard restarts its own schedule; the gradient clip is per
  member (the norm over that member's parameters);
- :class:`MemberLBFGS`: per member curvature pairs, two-loop recursion
  (:func:`~dsphnf.flows.optimise.two_loop`), trial step, Armijo test,
  floor and rejection count. In one iteration every member still searching
  is evaluated at its own trial point, all at once; a member whose trial is
  rejected halves its own step, one that accepted stays where it is; a member
  with no acceptable trial stays at its iterate and reports no move.

A member not in ``rows`` is not evaluated and its parameters do not change
(frozen: converged, stalled, failed or at its step limit).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from .optimise import two_loop

__all__ = ["MemberParams", "MemberObjective", "MemberAdam", "MemberLBFGS"]


class MemberParams:
    """Parameters with a leading member axis K, viewed as one matrix (K, P).

    >>> a = torch.nn.Parameter(torch.zeros(2, 3)); b = torch.nn.Parameter(torch.ones(2))
    >>> mp = MemberParams([a, b])
    >>> mp.flat().shape, mp.size
    (torch.Size([2, 4]), 4)
    >>> mp.index([1]).tolist(), mp.index([1]) is mp.index((1,))
    ([1], True)
    """

    def __init__(self, params: Sequence[torch.Tensor]) -> None:
        self.params = list(params)
        self.K = int(self.params[0].shape[0])
        self.sizes = [p[0].numel() for p in self.params]
        self.size = sum(self.sizes)
        self._index: dict[tuple[int, ...], torch.Tensor] = {}

    def index(self, rows: Sequence[int]) -> torch.Tensor:
        """The members ``rows`` as a LongTensor on the parameters' device, made once per set of rows
        (on a GPU each new one is a copy from the host)."""
        key = tuple(int(k) for k in rows)
        if key not in self._index:
            self._index[key] = torch.as_tensor(key, dtype=torch.long, device=self.params[0].device)
        return self._index[key]

    def flat(self) -> torch.Tensor:
        """Every member's parameters (K, P) (a copy)."""
        return torch.cat([p.detach().reshape(self.K, -1) for p in self.params], dim=1)

    def grad(self) -> torch.Tensor:
        """Every member's gradient (K, P) (zero where a parameter has none)."""
        return torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).reshape(self.K, -1)
                          for p in self.params], dim=1)

    @torch.no_grad()
    def set(self, x: torch.Tensor, rows: Sequence[int]) -> None:
        """Write ``x`` (len(rows), P) into the members ``rows``."""
        idx = self.index(rows)
        i = 0
        for p, n in zip(self.params, self.sizes):
            p.view(self.K, -1)[idx] = x[:, i: i + n]
            i += n

    def column_factor(self, factors: dict[int, float]) -> torch.Tensor:
        """(P,) multipliers, 1 except ``factors[j]`` for every column of parameter j."""
        p0 = self.params[0]
        out = torch.ones(self.size, dtype=p0.dtype, device=p0.device)
        i = 0
        for j, n in enumerate(self.sizes):
            out[i: i + n] = factors.get(j, 1.0)
            i += n
        return out


class MemberObjective:
    """Per-member losses and gradients of the members ``rows``.

    ``compute(rows) -> Tensor (len(rows),)`` evaluates those members (with a
    graph). Calling returns (losses, gradients (len(rows), P), finite) with
    ``finite`` False for a member whose loss or gradient is not finite: that
    member's values are not to be used, the others' are unaffected.
    ``evals[k]`` counts the evaluations that included member k (those
    called with ``count=True``: the L-BFGS phase, as the single trainer counts).
    """

    def __init__(self, params: MemberParams, compute: Callable[[list[int]], torch.Tensor]) -> None:
        self.params, self.compute = params, compute
        self.evals = [0] * params.K

    def __call__(self, rows: Sequence[int], count: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = list(rows)
        for p in self.params.params:
            p.grad = None
        with torch.enable_grad():
            loss = self.compute(rows)
            ok = torch.isfinite(loss)
            torch.where(ok, loss, torch.zeros_like(loss)).sum().backward()
        g = self.params.grad()[self.params.index(rows)]
        for k in rows if count else ():
            self.evals[k] += 1
        return loss.detach(), g, ok & torch.isfinite(g).all(dim=1)


class MemberAdam:
    """Adam (as ``torch.optim.Adam``) on the rows of a (K, P) matrix, one step count per member."""

    def __init__(self, K: int, P: int, like: torch.Tensor, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.m = torch.zeros(K, P, dtype=like.dtype, device=like.device)
        self.v = torch.zeros_like(self.m)
        self.t = [0] * K
        self.betas, self.eps = betas, eps

    @torch.no_grad()
    def step(self, x: torch.Tensor, g: torch.Tensor, rows: Sequence[int], idx: torch.Tensor, lr: Sequence[float],
             factor: torch.Tensor) -> torch.Tensor:
        """New parameters (len(rows), P) of the members ``rows`` from theirs ``x`` and gradients ``g``.

        ``idx``: ``rows`` as an index tensor (:meth:`MemberParams.index`); ``lr`` per member, ``factor`` (P,)
        per column (a parameter group's learning-rate factor).
        """
        b1, b2 = self.betas
        m = self.m[idx].lerp_(g, 1 - b1)
        v = self.v[idx].mul_(b2).addcmul_(g, g, value=1 - b2)
        self.m[idx], self.v[idx] = m, v
        size, bc2 = [], []
        for k, lr_k in zip(rows, lr):
            self.t[k] += 1
            size.append(lr_k / (1 - b1 ** self.t[k]))
            bc2.append((1 - b2 ** self.t[k]) ** 0.5)
        size = torch.tensor(size, dtype=x.dtype, device=x.device).unsqueeze(-1) * factor
        bc2 = torch.tensor(bc2, dtype=x.dtype, device=x.device).unsqueeze(-1)
        return x - size * m / (v.sqrt() / bc2 + self.eps)

    def member_state(self, k: int) -> dict:
        return {"m": self.m[k].clone(), "v": self.v[k].clone(), "t": self.t[k]}

    @torch.no_grad()
    def load_member_state(self, k: int, st: dict) -> None:
        self.m[k], self.v[k], self.t[k] = st["m"], st["v"], st["t"]


class MemberLBFGS:
    """:class:`~dsphnf.flows.optimise.LBFGS`, one per member, iterated together (module docstring).

    Per member k: ``lr[k]`` (first trial step), ``floor[k]``, curvature pairs,
    ``f[k]`` and ``g[k]`` (objective and gradient at its iterate), ``iterations``
    and ``rejected`` trials.
    """

    def __init__(self, K: int, lr: float = 1.0, history: int = 20, max_step: float = 0.5, c1: float = 1e-4,
                 max_backtracks: int = 30) -> None:
        self.history, self.max_step, self.c1, self.max_backtracks = history, max_step, c1, max_backtracks
        self.lr = [float(lr)] * K
        self.s: list[list[torch.Tensor]] = [[] for _ in range(K)]
        self.y: list[list[torch.Tensor]] = [[] for _ in range(K)]
        self.f: list[float | None] = [None] * K
        self.g: list[torch.Tensor | None] = [None] * K
        self.floor = [-math.inf] * K
        self.iterations, self.rejected = [0] * K, [0] * K

    def started(self, k: int) -> bool:
        return self.f[k] is not None

    def start(self, k: int, f: float, g: torch.Tensor, floor: float) -> None:
        """Member k starts L-BFGS at objective ``f`` with gradient ``g``."""
        self.f[k], self.g[k], self.floor[k] = float(f), g.clone(), float(floor)

    def _directions(self, rows: Sequence[int]) -> tuple[dict, dict, dict]:
        """Every member's direction d, slope g.d and first trial step, with one read from the device.

        Each member's numbers are those of its own dot product and maximum (stacked, not re-associated).
        """
        d = {k: two_loop(self.g[k], self.s[k], self.y[k]) for k in rows}
        slopes, sizes = torch.stack([torch.stack([self.g[k].dot(d[k]), d[k].abs().max()]) for k in rows]).T.tolist()
        slope, t = {}, {}
        for k, sl, size in zip(rows, slopes, sizes):
            if not sl < 0:  # not a descent direction: forget the curvature pairs (rare: its own reads)
                self.s[k], self.y[k] = [], []
                d[k], sl, size = -self.g[k], -float(self.g[k].dot(self.g[k])), float(self.g[k].abs().max())
            slope[k], t[k] = sl, self.lr[k] * min(1.0, self.max_step / max(size, 1e-300))
        return d, slope, t

    def step(self, params: MemberParams, objective: MemberObjective, rows: Sequence[int]) -> dict[int, tuple[float, bool]]:
        """One iteration of the members ``rows``: {k: (objective at the new iterate, moved)}.

        Host reads: one for the directions, two per trial step (the losses and their finiteness,
        for the Armijo tests), one for the curvature checks, whatever the number of members.
        """
        x = params.flat()
        accepted: dict[int, tuple[float, torch.Tensor]] = {}
        d, slope, t = self._directions(rows)
        searching = list(rows)
        for _ in range(self.max_backtracks):
            if not searching:
                break
            params.set(torch.stack([x[k] + t[k] * d[k] for k in searching]), searching)
            f_new, g_new, finite = objective(searching)
            values, good = f_new.tolist(), finite.tolist()  # one read from the device per trial
            still = []
            for j, k in enumerate(searching):
                val = values[j] if good[j] else math.nan
                if not val >= self.floor[k]:  # non-finite, or a breakdown below the floor
                    val = math.inf
                    self.rejected[k] += 1
                if val <= self.f[k] + self.c1 * t[k] * slope[k]:
                    accepted[k] = (val, g_new[j])
                else:
                    t[k] *= 0.5
                    still.append(k)
            searching = still
        if searching:  # no acceptable trial: these members stay at their iterate
            params.set(torch.stack([x[k] for k in searching]), searching)
        moved = [k for k in rows if k in accepted]
        self._update(moved, {k: t[k] * d[k] for k in moved}, {k: accepted[k][1] - self.g[k] for k in moved})
        out = {}
        for k in rows:
            if k not in accepted:
                out[k] = (self.f[k], False)
                continue
            self.f[k], self.g[k] = accepted[k]
            self.iterations[k] += 1
            out[k] = (self.f[k], True)
        return out

    def _update(self, rows: Sequence[int], s: dict[int, torch.Tensor], y: dict[int, torch.Tensor]) -> None:
        """Keep each member's curvature pair (s, y) where s.y > 1e-12 |s| |y| (one read for all)."""
        if not rows:
            return
        checks = torch.stack([torch.stack([s[k].dot(y[k]), s[k].norm() * y[k].norm()]) for k in rows]).tolist()
        for k, (sy, scale) in zip(rows, checks):
            if sy > 1e-12 * scale:
                self.s[k] = (self.s[k] + [s[k]])[-self.history:]
                self.y[k] = (self.y[k] + [y[k]])[-self.history:]

    def member_state(self, k: int) -> dict:
        return {"lr": self.lr[k], "s": list(self.s[k]), "y": list(self.y[k]), "f": self.f[k], "g": self.g[k],
                "floor": self.floor[k], "iterations": self.iterations[k], "rejected": self.rejected[k]}

    def load_member_state(self, k: int, st: dict) -> None:
        self.lr[k], self.s[k], self.y[k] = st["lr"], list(st["s"]), list(st["y"])
        self.f[k], self.g[k], self.floor[k] = st["f"], st["g"], st["floor"]
        self.iterations[k], self.rejected[k] = st["iterations"], st["rejected"]
