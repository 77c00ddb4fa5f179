"""The pieces of the L-BFGS phase of a flow's training: objective, optimiser, stop rule.

After an Adam warm-up, a flow whose objective is deterministic (the exact
loss with Gauss-Hermite smearing nodes, :func:`~dsphnf.flows.objective.is_deterministic`)
is optimised by L-BFGS (:class:`LBFGS`: a capped step and a backtracking
line search, one iteration per training step), until the objective changes by less than a
relative tolerance over a window of iterations (:func:`relative_change`).

:class:`CachedObjective` is the optimiser's closure: it returns the loss and
leaves the gradient in ``.grad``, remembering the last few evaluations, so
that the point a line search accepted is not evaluated again when the next
iteration starts there (the objective being deterministic, a remembered value
is bit for bit the value that would be computed). A non-finite loss or
gradient raises :class:`NonFinite`, which the trainer's NaN guard catches.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Sequence

import torch

__all__ = ["NonFinite", "CachedObjective", "LBFGS", "relative_change", "flat_grad_norm", "read_step", "two_loop"]


class NonFinite(ArithmeticError):
    """The objective or its gradient is not finite at the current parameters."""


def _flat(params: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in params])


def read_step(loss: torch.Tensor, params: Iterable[torch.Tensor]) -> tuple[float, bool]:
    """(the loss, whether every gradient of ``params`` is finite), read from the device at once.

    >>> w = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> loss = (w**2).sum(); loss.backward()
    >>> read_step(loss, [w])
    (5.0, True)
    """
    flags = [torch.isfinite(p.grad).all() for p in params if p.grad is not None]
    ok = torch.stack(flags).all() if flags else torch.ones((), dtype=torch.bool, device=loss.device)
    value, good = torch.stack([loss.detach().reshape(()), ok.to(loss.dtype)]).tolist()
    return value, bool(good)


def flat_grad_norm(params: Sequence[torch.Tensor]) -> float:
    """Euclidean norm of the gradient of all ``params`` (missing gradients count as zero)."""
    sq = [float((p.grad.detach() ** 2).sum()) for p in params if p.grad is not None]
    return math.sqrt(sum(sq))


class CachedObjective:
    """Loss and gradient at the current parameters, with the last ``size`` evaluations remembered.

    Parameters
    ----------
    params : sequence of Parameter
        The parameters the objective depends on.
    compute : callable
        ``compute() -> Tensor``: the scalar objective at the current parameters (with a graph).
    size : int
        Evaluations remembered (a line search of one iteration rarely needs more).

    Attributes
    ----------
    evals : int
        Evaluations actually computed (remembered ones not counted).

    Examples
    --------
    >>> w = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))
    >>> f = CachedObjective([w], lambda: (w * w).sum())
    >>> float(f()), w.grad.tolist(), float(f()), f.evals
    (5.0, [2.0, 4.0], 5.0, 1)
    """

    def __init__(self, params: Sequence[torch.Tensor], compute: Callable[[], torch.Tensor], size: int = 8) -> None:
        self.params, self.compute, self.size = list(params), compute, int(size)
        self.evals = 0
        self._memo: list[tuple[torch.Tensor, torch.Tensor, list]] = []

    def __call__(self) -> torch.Tensor:
        key = _flat(self.params)
        for flat, loss, grads in self._memo:
            if torch.equal(flat, key):
                for p, g in zip(self.params, grads):
                    p.grad = None if g is None else g.clone()
                return loss
        for p in self.params:
            p.grad = None
        with torch.enable_grad():
            loss = self.compute()
            loss.backward()
        value, grads_ok = read_step(loss, self.params)  # one read from the device per evaluation
        if not math.isfinite(value):
            raise NonFinite("non-finite loss")
        if not grads_ok:
            raise NonFinite("non-finite gradient")
        self.evals += 1
        loss = loss.detach()
        self._memo = (self._memo + [(key, loss, [None if p.grad is None else p.grad.clone() for p in self.params])])
        self._memo = self._memo[-self.size:]
        return loss


class LBFGS:
    """Limited-memory BFGS with a capped step and a backtracking (Armijo) line search.

    One iteration per :meth:`step`. The search direction is the two-loop
    recursion over the last ``history`` curvature pairs (a pair whose
    s . y <= 1e-12 |s| |y| is skipped, which keeps the inverse Hessian
    positive definite). The trial step starts at ``lr`` times the
    quasi-Newton step, shortened so that no parameter moves by more than
    ``max_step``, and is halved until the objective decreases by the Armijo
    fraction ``c1`` of the linear prediction; a non-finite trial value counts
    as no decrease, and so does a trial below ``state["floor"]`` (the trainer
    sets it a fixed amount below the objective where L-BFGS started: a drop
    that large is a numerical breakdown of the objective, not a fit).
    Without a decrease after ``max_backtracks`` halvings the
    parameters stay where they were and the step reports no move.

    Why not ``torch.optim.LBFGS``: its strong-Wolfe search extrapolates by up
    to 10x per trial with no bound, and on a tiny kinematic flow it jumped to
    parameters of norm 1.7e71, where the exact loss is numerically broken
    (and -1.7e71): the cap on the step is what a trust region would give.
    With the cap alone, 300 capped iterations on the benchmark file (start
    scaled by 0.7) still walked into such a region (objective -9.4e75 nats
    per star): hence the floor.

    The state (:meth:`state_dict`) is plain tensors and numbers, for checkpoints.

    Examples
    --------
    >>> w = torch.nn.Parameter(torch.tensor([3.0, -2.0], dtype=torch.float64))
    >>> f = CachedObjective([w], lambda: (w[0] - 1) ** 2 + 10 * (w[1] + w[0] ** 2) ** 2)
    >>> opt = LBFGS([w], max_step=1.0)
    >>> for _ in range(60):
    ...     _ = opt.step(f)
    >>> [round(x, 6) for x in w.tolist()]
    [1.0, -1.0]
    """

    def __init__(self, params: Sequence[torch.Tensor], lr: float = 1.0, history: int = 20, max_step: float = 0.5,
                 c1: float = 1e-4, max_backtracks: int = 30) -> None:
        self.params = list(params)
        self.lr, self.history, self.max_step, self.c1, self.max_backtracks = lr, history, max_step, c1, max_backtracks
        self.state: dict = {"s": [], "y": [], "iterations": 0, "rejected": 0, "floor": -math.inf}

    def state_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self.state.items()}

    def load_state_dict(self, state: dict) -> None:
        self.state = {k: (list(v) if isinstance(v, list) else v) for k, v in state.items()}

    def _set(self, x: torch.Tensor) -> None:
        with torch.no_grad():
            i = 0
            for p in self.params:
                n = p.numel()
                p.copy_(x[i: i + n].view_as(p))
                i += n

    def _grad(self) -> torch.Tensor:
        return torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).reshape(-1) for p in self.params])

    def direction(self, g: torch.Tensor) -> torch.Tensor:
        """-H g by the two-loop recursion (steepest descent without curvature pairs)."""
        return two_loop(g, self.state["s"], self.state["y"])

    def step(self, objective: Callable[[], torch.Tensor]) -> tuple[float, bool]:
        """One iteration; (objective at the new iterate, whether the parameters moved).

        ``objective()`` returns the loss and leaves its gradient in ``.grad``
        (:class:`CachedObjective`); a :class:`NonFinite` at the current
        parameters propagates, at a trial point it only rejects the trial.
        """
        x = _flat(self.params).clone()
        f = float(objective())
        g = self._grad()
        d = self.direction(g)
        slope = float(g.dot(d))
        if not slope < 0:  # not a descent direction: forget the curvature pairs
            self.state["s"], self.state["y"] = [], []
            d, slope = -g, -float(g.dot(g))
        t = self.lr * min(1.0, self.max_step / max(float(d.abs().max()), 1e-300))
        for _ in range(self.max_backtracks):
            self._set(x + t * d)
            try:
                f_new = float(objective())
            except NonFinite:
                f_new = math.nan
            if not f_new >= self.state["floor"]:  # non-finite (NaN here), or a breakdown below the floor
                f_new = math.inf
                self.state["rejected"] += 1
            if f_new <= f + self.c1 * t * slope:
                break
            t *= 0.5
        else:
            self._set(x)
            objective()  # the gradient of the current point back in .grad (remembered)
            return f, False
        self._update(t * d, self._grad() - g)
        self.state["iterations"] += 1
        return f_new, True

    def _update(self, s: torch.Tensor, y: torch.Tensor) -> None:
        if float(s.dot(y)) > 1e-12 * float(s.norm() * y.norm()):
            self.state["s"] = (self.state["s"] + [s])[-self.history:]
            self.state["y"] = (self.state["y"] + [y])[-self.history:]


def two_loop(g: torch.Tensor, s: Sequence[torch.Tensor], y: Sequence[torch.Tensor]) -> torch.Tensor:
    """-H g by the L-BFGS two-loop recursion over the curvature pairs (s, y) (steepest descent without any)."""
    q, alpha = -g.clone(), []
    for si, yi in zip(reversed(s), reversed(y)):
        a = si.dot(q) / yi.dot(si)
        alpha.append(a)
        q -= a * yi
    if s:
        q *= s[-1].dot(y[-1]) / y[-1].dot(y[-1])
    for (si, yi), a in zip(zip(s, y), reversed(alpha)):
        q += (a - yi.dot(q) / yi.dot(si)) * si
    return q


def relative_change(values: Sequence[float], window: int) -> float | None:
    """(f[-1 - window] - f[-1]) / |f[-1]|: the relative decrease over the last ``window`` iterations.

    None while fewer than ``window + 1`` values exist.

    >>> relative_change([3.0, 2.0, 1.0], 2), relative_change([2.0, 1.0], 2)
    (2.0, None)
    """
    if window < 1 or len(values) <= window:
        return None
    a, b = float(values[-1 - window]), float(values[-1])
    return (a - b) / max(abs(b), 1e-300)
