"""Training K ensemble members as one batch: the member-wise version of :class:`~dsphnf.flows.train.Trainer`.

:func:`train_members_batched` builds every member exactly as
:func:`~dsphnf.flows.member.train_member` does (its resample, its scales,
its initial weights from the seed ``seed * 1009 + k``), stacks them into a
:class:`~dsphnf.flows.batched.BatchedFlow` and trains them together with
:class:`BatchedTrainer`: ``adam_steps`` Adam steps with the cosine decay,
then L-BFGS until each member's own stop rule fires (relative change below
``tol`` over ``window`` iterations: converged; no acceptable trial: stalled;
``steps``: max_steps). The optimisers are those of
:mod:`~dsphnf.flows.optimise_members`: per member step counts, learning
rates, gradient clip, curvature pairs and line searches, so that member k's
trajectory is the one it would follow alone (to rounding). A member that
has stopped is frozen: it is no longer evaluated and its parameters stay.

NaN guard, per member: a non-finite loss or gradient of member k rolls
member k alone back to its last snapshot (taken every ``val_every`` steps, as
the single trainer does without validation stars), halves its learning rates
and logs the event in its history; the other members go on. After
``max_failures`` roll-backs of one member a :class:`~dsphnf.errors.FitError`
names it, as the single trainer's does.

Not in the batched path (the fit falls back to training members one by one,
:func:`~dsphnf.flows.batched.batch_supported`): stochastic objectives, Adam
alone, held-out validation stars, learned anisotropies; and there are no
per-step checkpoints (a fit with ``checkpoint_dir`` trains member by member).
"""
from __future__ import annotations

import copy
import logging
import math
import sys
import time
from typing import Any, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..errors import FitError
from .allocator import keep_freed_memory
from .batched import BatchedFlow, MemberBatch, member_batch
from .cuda_graph import GraphedMemberObjective
from .member import MemberSettings, MemberStars, TrainedMember, _member_info, member_data, member_profile, start_flow
from .nu_mean import describe
from .objective import flow_loss
from .optimise import relative_change
from .optimise_members import MemberAdam, MemberLBFGS, MemberObjective, MemberParams
from .train import FAST_PARAMETERS
from .train_config import TrainConfig

__all__ = ["BatchedTrainer", "train_members_batched", "choose_threads"]

log = logging.getLogger("dsphnf.flows")


class BatchedTrainer:
    """Adam then L-BFGS for the K members of a :class:`BatchedFlow` (module docstring).

    Attributes (one entry per member)
    ---------------------------------
    step, stop_reason, history, trace, grad_norm, lr_scale, failures
        As the single :class:`~dsphnf.flows.train.Trainer`'s.
    wall : float
        Wall time of the whole batch [s].
    """

    def __init__(self, flow: BatchedFlow, batch: MemberBatch, config: TrainConfig, progress: bool = False,
                 desc: str = "members", names: Sequence[str] | None = None) -> None:
        self.flow, self.batch, self.cfg, self.progress, self.desc = flow, batch, config, progress, desc
        keep_freed_memory()  # the loss's tensors are reused, not page-faulted in anew each step (allocator.py)
        K = self.K = flow.members
        self.names = list(names) if names is not None else [f"flow {k + 1}/{K}" for k in range(K)]
        self.params = MemberParams(list(flow.parameters()))
        names = [n for n, _ in flow.named_parameters()]
        self.factor = self.params.column_factor({names.index(n): config.cusp_lr_factor
                                                 for n in FAST_PARAMETERS if n in names})
        graphs = config.cuda_graphs and self.params.params[0].device.type == "cuda"
        self.objective = (GraphedMemberObjective if graphs else MemberObjective)(self.params, self._loss)
        p = self.params.params[0]
        self.adam = MemberAdam(K, self.params.size, p)
        self.lbfgs = MemberLBFGS(K, config.lbfgs_lr, config.lbfgs_history, config.lbfgs_max_step)
        self.adam_end = min(config.adam_steps, config.steps)
        self.step, self.lr_scale, self.failures = [0] * K, [1.0] * K, [0] * K
        self.done, self.stop_reason = [False] * K, [None] * K
        self.trace: list[list[float]] = [[] for _ in range(K)]
        self.grad_norm: list[float | None] = [None] * K
        self.history = [{"step": [], "loss": [], "val_step": [], "val_loss": [], "events": []} for _ in range(K)]
        self.wall = 0.0
        self._snapshot = [self._member_state(k) for k in range(K)]

    # ------------------------------------------------------------------ pieces
    def _loss(self, rows: list[int]) -> torch.Tensor:
        """Losses (len(rows),) of the members ``rows`` [nats per star]."""
        idx = None if rows == list(range(self.K)) else self.params.index(rows)
        self.flow.select(idx)
        try:
            data, prior = self.batch.take(idx)
            return flow_loss(self.flow, data, self.cfg, None, 0, prior=prior)
        finally:
            self.flow.select(None)

    def lr_at(self, k: int) -> float:
        """Member k's Adam learning rate at its step (cosine decay over the Adam phase)."""
        c = self.cfg
        frac = min(self.step[k] / max(self.adam_end, 1), 1.0)
        return self.lr_scale[k] * c.lr * (c.lr_final + (1 - c.lr_final) * 0.5 * (1 + math.cos(math.pi * frac)))

    def _member_state(self, k: int) -> dict:
        return {"x": self.params.flat()[k].clone(), "adam": self.adam.member_state(k),
                "lbfgs": self.lbfgs.member_state(k), "step": self.step[k], "trace": list(self.trace[k]),
                "stop_reason": self.stop_reason[k], "grad_norm": self.grad_norm[k],
                "history": copy.deepcopy({key: v for key, v in self.history[k].items() if key != "events"})}

    def _fail(self, k: int, why: str) -> None:
        """Member k's NaN guard: roll it back to its snapshot and halve its learning rates."""
        self.failures[k] += 1
        name = self.names[k]
        if self.failures[k] > self.cfg.max_failures:
            raise FitError(f"{name}: training diverged ({why}) {self.failures[k]} times; last at step "
                           f"{self.step[k]}. Try a smaller --lr or fewer solver steps")
        st = self._snapshot[k]
        at = self.step[k]
        self.params.set(st["x"].unsqueeze(0), [k])
        self.adam.load_member_state(k, st["adam"])
        self.lbfgs.load_member_state(k, st["lbfgs"])
        self.step[k], self.trace[k], self.stop_reason[k] = st["step"], list(st["trace"]), st["stop_reason"]
        self.grad_norm[k] = st["grad_norm"]
        self.history[k].update(copy.deepcopy(st["history"]))
        self.lr_scale[k] *= 0.5
        self.lbfgs.lr[k] = self.cfg.lbfgs_lr * self.lr_scale[k]
        self.history[k]["events"].append({"step": at, "event": "rollback", "why": why,
                                          "lr_scale": self.lr_scale[k]})
        log.warning(f"{name}: {why} at step {at}; rolled back to step {st['step']}, learning rate halved")

    # ------------------------------------------------------------------ steps
    def _adam_step(self, rows: list[int]) -> dict[int, float]:
        """One Adam step of the members ``rows``; {k: loss before the step} of those that stepped."""
        lr = [self.lr_at(k) for k in rows]
        loss, g, finite = self.objective(rows, count=False)
        values, good = loss.tolist(), finite.tolist()  # one read from the device per step
        ok = []
        for j, k in enumerate(rows):
            if not good[j]:
                self._fail(k, "non-finite loss" if not math.isfinite(values[j]) else "non-finite gradient")
            else:
                ok.append(j)
        if not ok:
            return {}
        jj = torch.as_tensor(ok, dtype=torch.long, device=g.device)
        g = g[jj]
        norm = torch.linalg.vector_norm(g, dim=1, keepdim=True)
        g = g * torch.clamp(self.cfg.grad_clip / (norm + 1e-6), max=1.0)  # per member clip
        krows = [rows[j] for j in ok]
        idx = self.params.index(krows)
        self.params.set(self.adam.step(self.params.flat()[idx], g, krows, idx, [lr[j] for j in ok], self.factor),
                        krows)
        return {k: values[j] for j, k in zip(ok, krows)}

    def _lbfgs_step(self, rows: list[int]) -> dict[int, float]:
        """One L-BFGS iteration of the members ``rows``; {k: objective at the new iterate}."""
        new = [k for k in rows if not self.lbfgs.started(k)]
        if new:
            f, g, finite = self.objective(new)
            values, good = f.tolist(), finite.tolist()
            for j, k in enumerate(new):
                if not good[j]:
                    self._fail(k, "non-finite loss" if not math.isfinite(values[j]) else "non-finite gradient")
                    continue
                self.lbfgs.lr[k] = self.cfg.lbfgs_lr * self.lr_scale[k]
                self.lbfgs.start(k, values[j], g[j], values[j] - self.cfg.lbfgs_max_gain)
                self.trace[k] = [values[j]]
        go = [k for k in rows if self.lbfgs.started(k)]
        out = {}
        results = self.lbfgs.step(self.params, self.objective, go) if go else {}
        norms = torch.stack([self.lbfgs.g[k].norm() for k in results]).tolist() if results else []  # one read
        for (k, (value, moved)), norm in zip(results.items(), norms):
            self.grad_norm[k] = norm
            if not moved:
                self.stop_reason[k] = "stalled"
            self.trace[k].append(value)
            out[k] = value
        return out

    def _finish_step(self, k: int, value: float) -> None:
        """Member k completed a step: record it, snapshot, apply the stop rule."""
        c = self.cfg
        self.step[k] += 1
        self.history[k]["step"].append(self.step[k])
        self.history[k]["loss"].append(value)
        if self.step[k] % c.val_every == 0 or self.step[k] == c.steps:
            self._snapshot[k] = self._member_state(k)
        if self.step[k] > self.adam_end or self.lbfgs.started(k):
            rel = relative_change(self.trace[k], c.window)
            if self.stop_reason[k] is None and rel is not None and rel < c.tol:
                self.stop_reason[k] = "converged"
        if self.stop_reason[k] is not None or self.step[k] >= c.steps:
            self.done[k] = True
            self.stop_reason[k] = self.stop_reason[k] or "max_steps"

    # ------------------------------------------------------------------ loop
    def run(self) -> list[dict]:
        """Train every member until its stop rule fires or ``steps``; returns the members' histories."""
        show = self.progress and sys.stderr.isatty()
        bar = tqdm(total=self.cfg.steps, desc=self.desc, disable=not show, leave=False)
        t0 = time.perf_counter()
        try:
            while not all(self.done):
                active = [k for k in range(self.K) if not self.done[k]]
                adam = [k for k in active if self.step[k] < self.adam_end]
                lbfgs = [k for k in active if self.step[k] >= self.adam_end]
                done = {**(self._adam_step(adam) if adam else {}), **(self._lbfgs_step(lbfgs) if lbfgs else {})}
                for k, value in done.items():
                    self._finish_step(k, value)
                bar.n = max(self.step)
                bar.set_postfix(active=sum(not d for d in self.done))
        finally:
            bar.close()
        self.wall = time.perf_counter() - t0
        return self.history

    def convergence(self, k: int) -> dict:
        """Member k's diagnostics in the form of :meth:`~dsphnf.flows.train.Trainer.convergence`."""
        c, trace = self.cfg, self.trace[k]
        out = {"optimiser": "adam+lbfgs", "deterministic_objective": True, "stop_reason": self.stop_reason[k],
               "adam_steps": min(self.step[k], self.adam_end), "lbfgs_steps": max(self.step[k] - self.adam_end, 0),
               "window": c.window, "tol": c.tol, "objective": None, "objective_change": None,
               "relative_change": None, "grad_norm": self.grad_norm[k],
               "objective_evals": self.objective.evals[k] if self.lbfgs.started(k) else 0,
               "rejected_trials": self.lbfgs.rejected[k], "full_objective": None,  # every step sees every star
               "batched": True}
        if self.lbfgs.started(k) and trace:
            w = min(c.window, len(trace) - 1)
            out.update(objective=trace[-1], objective_change=trace[-1 - w] - trace[-1],
                       relative_change=relative_change(trace, w) if w else None)
        return out


class _MemberView:
    """What :func:`~dsphnf.flows.member._member_info` reads of a trainer, for member k of a batch."""

    def __init__(self, trainer: BatchedTrainer, k: int, flow) -> None:
        self.history, self.step, self.best_step = trainer.history[k], trainer.step[k], trainer.step[k]
        self.stop_reason, self.val, self.best_val = trainer.stop_reason[k], None, math.inf
        self.wall, self.flow = trainer.wall, flow
        self._conv = trainer.convergence(k)
        p = trainer.batch.prior
        self.nu_mean = None if p is None or p.nu_mean is None else p.nu_mean.take([k])

    def convergence(self) -> dict:
        return self._conv


_THREADS: dict[tuple, tuple[int, dict[int, float]]] = {}


def choose_threads(trainer: BatchedTrainer) -> tuple[int, dict[int, float]]:
    """The faster of 1 and 2 torch threads for an objective evaluation of the batch, and the timings [s].

    A warm-up evaluation, then one timed evaluation with each, of the first
    two members only (the probe costs ~3 evaluations of two members, not of
    all: on a loaded machine one evaluation with 2 threads took up to 30
    times longer than with 1); cached for the rest of the process per device,
    observables and size of the batch to a factor of 2 (members x rows), so
    that a calibration's many fits of similar size probe once.
    """
    d = trainer.batch.data
    key = (str(d.obs.device), d.d, int(math.log2(max(d.obs.shape[0] * d.obs.shape[1], 1))))
    if key not in _THREADS:
        old, rows, times = torch.get_num_threads(), list(range(min(trainer.K, 2))), {}
        try:
            trainer.objective(rows)
            for n in (1, 2):
                torch.set_num_threads(n)
                t0 = time.perf_counter()
                trainer.objective(rows)
                times[n] = time.perf_counter() - t0
        finally:
            torch.set_num_threads(old)
            trainer.objective.evals = [0] * trainer.K
        _THREADS[key] = (min(times, key=times.get), times)
    return _THREADS[key]


def train_members_batched(stars: MemberStars, settings: MemberSettings, members: Sequence[int] | None = None,
                          progress: bool = False,
                          threads: int | None = None) -> tuple[list[TrainedMember], dict[str, Any]]:
    """Train members of a fit (default: all ``settings.ensemble``) as one batch; the members and the batch's record.

    Every member is built as :func:`~dsphnf.flows.member.train_member`
    builds it, so the result equals separate training up to rounding.
    ``threads`` None: the faster of 1 and 2 (:func:`choose_threads`).
    The record has the threads used, the probe's timings and the wall time.
    """
    ks = list(range(settings.ensemble)) if members is None else [int(k) for k in members]
    K, dev = len(ks), torch.device(settings.device)
    flows, resamples, std_all, scales = [], [], [], []
    for k in ks:
        tr, va, sc, std = member_data(stars, settings, k)
        if len(va):
            raise FitError("batched members train without held-out stars (val_fraction = 0)")
        torch.manual_seed(settings.seed * 1009 + k)
        flows.append(start_flow(stars, settings, sc["L"], k))
        resamples.append(tr), std_all.append(std), scales.append(sc)
    batch = member_batch(resamples, std_all, scales, settings.bandwidth_factor, settings.train,
                         settings.dtype, dev, settings.foreground if stars.kinematic else None)
    trainer = BatchedTrainer(BatchedFlow(flows), batch, settings.train, progress, f"{K} members",
                             [f"flow {k + 1}/{settings.ensemble}" for k in ks])
    old = torch.get_num_threads()
    probe: dict[int, float] = {}
    if threads is None and dev.type != "cpu":
        threads = 1  # the work is on the accelerator; no probe of CPU threads
    if threads is None:
        threads, probe = choose_threads(trainer)
    torch.set_num_threads(int(threads))
    try:
        trainer.run()
    finally:
        torch.set_num_threads(old)
    out = []
    for j, (k, flow) in enumerate(zip(ks, flows)):
        trainer.flow.write_member(j, flow)
        profile, readout_s = member_profile(flow, stars, scales[j])
        state = {name: t.detach().to("cpu", copy=True) for name, t in flow.state_dict().items()}
        view = _MemberView(trainer, j, flow)
        info = {**_member_info(k, view, np.asarray(batch.h[j])), "scales": scales[j],
                "nu_mean": describe(view.nu_mean, scales[j]["L"])}
        out.append(TrainedMember(k, state, flow.spec(), profile, trainer.history[j], info, trainer.wall / K,
                                 readout_s, scales[j]))
    record = {"batched": True, "threads": int(threads), "thread_probe_s": {str(n): t for n, t in probe.items()},
              "rows_per_member": int(batch.data.obs.shape[1]), "train_wall_s": trainer.wall}
    if isinstance(trainer.objective, GraphedMemberObjective):
        record["cuda_graphs"] = {"captured": trainer.objective.captured, "fallback": trainer.objective.fallback}
    return out, record
