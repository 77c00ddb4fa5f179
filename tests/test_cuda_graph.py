"""The graphed members' objective (dsphnf.flows.cuda_graph) without a GPU: a stand-in graph that re-runs
the captured evaluation checks the wrapper's bookkeeping (rows, copies, counts, fallback); tests/test_device.py
checks real graphs against eager training on a GPU."""
from __future__ import annotations

import weakref

import pytest
import torch

from dsphnf.flows.cuda_graph import GraphedMemberObjective
from dsphnf.flows.optimise_members import MemberObjective, MemberParams

TARGET = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [3.0, -2.0]], dtype=torch.float64)


def _objective(cls):
    p = torch.nn.Parameter(torch.zeros(3, 2, dtype=torch.float64))

    def compute(rows):
        return ((p[rows] - TARGET[rows]) ** 2).sum(dim=1)

    return cls(MemberParams([p]), compute), p


class _Replay:
    """Stands in for a CUDA graph: replaying re-runs the evaluation into the captured outputs.

    Like a graph it does not own its inputs (a weak reference to the member index): a replay after the
    objective let the index go fails, as a real one reads freed memory.
    """

    def __init__(self, obj, rows, idx, outputs):
        self.obj, self.rows, self.idx, self.outputs = obj, rows, weakref.ref(idx), outputs

    def replay(self):
        idx = self.idx()
        assert idx is not None, "the graph's member index was freed"
        for q in self.obj.params.params:
            q.grad = None
        with torch.enable_grad():
            for out, new in zip(self.outputs, self.obj._body(self.rows, idx)):
                out.copy_(new)


def _fake_capture(self, rows):
    idx = torch.as_tensor(rows)
    with torch.enable_grad():
        outputs = self._body(rows, idx)
    return _Replay(self, rows, idx, outputs), outputs, idx


@pytest.fixture
def graphed(monkeypatch):
    monkeypatch.setattr(GraphedMemberObjective, "_capture", _fake_capture)
    obj, p = _objective(GraphedMemberObjective)
    obj.on_gpu = True
    return obj, p


@pytest.mark.parametrize("rows", [[0, 1, 2], [0, 2], [1]])
def test_any_set_of_members_gets_its_own_rows_from_the_one_graph(graphed, rows):
    obj, p = graphed
    eager, q = _objective(MemberObjective)
    with torch.no_grad():
        p.copy_(torch.tensor([[0.5, 0.0], [2.0, 1.0], [0.0, 0.0]], dtype=torch.float64))
        q.copy_(p)
    for _ in range(2):  # the capture, then a replay
        got, want = obj(rows), eager(rows)
        for a, b in zip(got, want):
            assert torch.equal(a, b)
    assert obj.captured == 1 and obj.fallback is None
    assert obj.evals == eager.evals


def test_results_are_copies_that_later_replays_leave_alone(graphed):
    obj, p = graphed
    first, g1, _ = obj([0, 1, 2])
    kept = first.clone()
    with torch.no_grad():
        p.add_(1.0)  # the trainers write parameters in place; the replay reads them
    second, g2, _ = obj([0, 1, 2])
    assert torch.equal(first, kept) and not torch.equal(second, first)
    assert torch.allclose(g2 - g1, torch.full_like(g1, 2.0))  # d/dp of (p - t)^2 moves by 2 per unit of p


def test_a_failed_capture_is_recorded_and_the_fit_goes_on_eagerly(monkeypatch, caplog):
    def refuse(self, rows):
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(GraphedMemberObjective, "_capture", refuse)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    obj, _ = _objective(GraphedMemberObjective)
    obj.on_gpu = True
    eager, _ = _objective(MemberObjective)
    with caplog.at_level("WARNING", logger="dsphnf.flows"):
        got = obj([0, 2])
        obj([0, 1, 2])
    assert all(torch.equal(a, b) for a, b in zip(got, eager([0, 2])))
    assert obj.fallback == "RuntimeError: operation not permitted when stream is capturing"
    assert obj.captured == 0 and sum("CUDA graph capture failed" in r.message for r in caplog.records) == 1
