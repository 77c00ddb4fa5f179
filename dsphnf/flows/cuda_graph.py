"""Batched members' objective replayed as CUDA graphs (``TrainConfig(cuda_graphs=True)``, the default; CUDA only).

On a GPU one evaluation of the objective (loss and gradient) launches
thousands of small kernels, and their launches, not their arithmetic, are
its cost. Since nothing in an evaluation reads the device (the solver is
:mod:`~dsphnf.flows.rk4`), it can be captured once as a CUDA graph and
replayed: on an H200, 0.012 s for 8 members of 1000 stars against 0.066 s
launched one by one, with the same gradient to 1e-13, and a whole fit of
8 members in 24 s against more than 190 s (benchmarks/RESULTS.md, "A second
lease: CUDA graphs in the trainer"). The trainers' own steps (Adam, the
L-BFGS directions and line search) stay outside the graph; they write the
parameters in place (:meth:`~dsphnf.flows.optimise_members.MemberParams.set`),
which is what a replay reads.

One graph is captured, of all members: when only some are asked for (the
others have stopped, or the L-BFGS phase steps a subset), the graph still
evaluates all of them and their rows are taken from its outputs. On a GPU
the extra members cost arithmetic that launches hide; a graph per subset
would cost a capture (four evaluations) each time a member stops. Members
are independent in the objective, so the values are those of the subset's
own evaluation to rounding. Where a capture fails, the
objective says so once in the log, records why (:attr:`GraphedMemberObjective.fallback`)
and evaluates eagerly from then on. On the CPU it is the plain objective.
"""
from __future__ import annotations

import logging
from typing import Callable, Sequence

import torch

from .optimise_members import MemberObjective, MemberParams

__all__ = ["GraphedMemberObjective"]

log = logging.getLogger("dsphnf.flows")

#: Eager evaluations on a side stream before a capture (torch.cuda.graph's warm-up).
WARMUP = 3


class GraphedMemberObjective(MemberObjective):
    """:class:`~dsphnf.flows.optimise_members.MemberObjective` replaying one CUDA graph of all members.

    ``compute(all rows)`` must not create tensors from host data (a capture
    cannot copy from the host). Returned tensors are copies: the graph's own
    outputs are overwritten by the next replay.

    >>> p = torch.nn.Parameter(torch.ones(2, 3, dtype=torch.float64))
    >>> obj = GraphedMemberObjective(MemberParams([p]), lambda rows: (p[rows] ** 2).sum(dim=1))
    >>> loss, g, ok = obj([0, 1])       # on the CPU: the plain objective
    >>> loss.tolist(), g[0].tolist(), obj.captured
    ([3.0, 3.0], [2.0, 2.0, 2.0], 0)
    """

    def __init__(self, params: MemberParams, compute: Callable[[list[int]], torch.Tensor]) -> None:
        super().__init__(params, compute)
        # (graph, its outputs, its inputs made for it): a replay reads its inputs at their addresses, so they are
        # kept alive with the graph (a freed member index, reused memory: an index out of bounds on the GPU)
        self._graph: tuple[torch.cuda.CUDAGraph, tuple[torch.Tensor, ...], torch.Tensor] | None = None
        self._all = list(range(params.K))
        self.fallback: str | None = None
        self.on_gpu = params.params[0].device.type == "cuda"

    @property
    def captured(self) -> int:
        """Number of graphs captured so far (0 or 1)."""
        return int(self._graph is not None)

    def __call__(self, rows: Sequence[int], count: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = list(rows)
        if not self.on_gpu or self.fallback is not None:
            return super().__call__(rows, count)
        if self._graph is None:
            try:
                self._graph = self._capture(self._all)
            except Exception as exc:  # noqa: BLE001 -- any failure to capture: recorded, and eager from here on
                self.fallback = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}" if str(exc) else type(
                    exc).__name__
                log.warning(f"CUDA graph capture failed ({self.fallback}); evaluating without graphs")
                torch.cuda.synchronize()
                return super().__call__(rows, count)
        graph, outputs, _ = self._graph
        graph.replay()
        for k in rows if count else ():
            self.evals[k] += 1
        if rows == self._all:
            return tuple(t.clone() for t in outputs)  # type: ignore[return-value]
        sel = self.params.index(rows)
        return tuple(t[sel] for t in outputs)  # type: ignore[return-value]

    def _body(self, rows: list[int], idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One evaluation as :meth:`MemberObjective.__call__` does it, with the member index ``idx`` made beforehand."""
        loss = self.compute(rows)
        ok = torch.isfinite(loss)
        torch.where(ok, loss, torch.zeros_like(loss)).sum().backward()
        g = self.params.grad()[idx]
        return loss.detach(), g, ok & torch.isfinite(g).all(dim=1)

    def _capture(self, rows: list[int]) -> tuple[torch.cuda.CUDAGraph, tuple[torch.Tensor, ...], torch.Tensor]:
        """Warm up on a side stream, then capture one evaluation of the members ``rows``; the graph, its outputs
        and the member index it reads."""
        p0 = self.params.params[0]
        idx = self.params.index(rows)
        side = torch.cuda.Stream(device=p0.device)
        side.wait_stream(torch.cuda.current_stream(p0.device))
        with torch.cuda.stream(side), torch.enable_grad():
            for _ in range(WARMUP):
                for p in self.params.params:
                    p.grad = None
                self._body(rows, idx)
        torch.cuda.current_stream(p0.device).wait_stream(side)
        for p in self.params.params:
            p.grad = None
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), torch.enable_grad():
            outputs = self._body(rows, idx)
        return graph, outputs, idx
