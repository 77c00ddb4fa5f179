"""Training one flow: loss, optimiser, stop rule, validation, checkpoints, NaN guard.

Loss (``TrainConfig.loss``): the exact projected likelihood by default,
``"kde"`` for the smeared-KDE cross-entropy of the paper (Lim et al. 2025,
arXiv:2505.00763); see
:mod:`dsphnf.flows.objective`.

The stated objective. With the exact loss of positions, or of positions and
velocities under a given anisotropy, the objective is a deterministic function
of the parameters: the penalised negative log-likelihood of the training stars
(the smoothness prior included), the data's velocity smearing integrated by
Gauss-Hermite nodes. It is then minimised to convergence
(``optimiser="adam+lbfgs"``, the default): ``adam_steps`` Adam steps with a
cosine learning-rate decay from ``lr`` to ``lr * lr_final`` bring the flow
near the optimum, then L-BFGS with a capped step and a backtracking line
search (:mod:`dsphnf.flows.optimise`, one iteration per step) runs until the
objective decreases by less than ``tol`` (relative) over ``window``
iterations, the line search stalls, or ``steps`` is reached. The flow
returned is the last iterate, the optimum of the objective; no moving average
and no early stopping (a validation loss, when held-out stars are given, is
recorded only). The stop reason, the steps of each phase, the final gradient
norm and the objective's last change are kept for the diagnostics
(:meth:`Trainer.convergence`).

A stochastic objective (``loss="kde"``, a free anisotropy whose velocity term
is a KDE of flow samples, or a ``batch`` of stars) and ``optimiser="adam"``
keep the Adam-only training: Adam with the cosine decay over ``steps``. Every ``val_every`` steps the loss of the
held-out stars is evaluated with *fixed* smearing draws and *fixed* base draws
(common random numbers, so that it changes only when the flow does); the best
state is kept and training stops after ``patience`` evaluations without
improvement. What is validated, kept and returned is the exponential moving
average of the parameters (``ema``), which is much less noisy than the last
step of a stochastic optimisation.

Checkpoints (every ``checkpoint_every`` steps and at the end) hold the model,
optimisers (Adam and, once started, L-BFGS), random-number state, step, learning-rate scale, history and best
state, written atomically; ``resume=True`` continues from one and reproduces
the uninterrupted run (:mod:`~dsphnf.flows.checkpoint`).

NaN guard: a non-finite loss or gradient rolls the model, optimiser and random
state back to the last good snapshot (taken at every validation), halves the
learning rate (of Adam, and the first trial step of L-BFGS) and logs it; after ``max_failures`` roll-backs a
:class:`~dsphnf.errors.FitError` is raised, so no diverged flow is ever written.
"""
from __future__ import annotations

import copy
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm  # text bar (shown on terminals only); tqdm.auto warns in notebooks without ipywidgets

from ..errors import FitError
from .allocator import keep_freed_memory
from .checkpoint import TrainerState
from .cnf import SphericalFlow
from .objective import flow_loss, is_deterministic
from .optimise import LBFGS, CachedObjective, NonFinite, flat_grad_norm, read_step, relative_change
from .nu_mean import ZhaoMean
from .prior import SmoothnessPrior
from .stars import StarData
from .train_config import TrainConfig

__all__ = ["Trainer"]

#: Single-number parameters trained with ``cusp_lr_factor`` times Adam's step: the cusp power, the foreground logit.
FAST_PARAMETERS = ("c_raw", "fg_raw")


log = logging.getLogger("dsphnf.flows")


class Trainer(TrainerState):
    """Optimise one :class:`SphericalFlow` on training stars, validating on held-out ones.

    Parameters
    ----------
    flow : SphericalFlow
        The model (already on its device and dtype).
    train, val : StarData
        Standardised training and validation stars (``val`` may be None:
        then no early stopping, and the final state is returned).
    config : TrainConfig
    seed : int
        Seed of every random draw of the run.
    checkpoint : path or None
        Checkpoint file for this flow.
    progress : bool
        Show a tqdm bar (only on a terminal).
    desc : str
        Label of the progress bar.
    """

    def __init__(
        self,
        flow: SphericalFlow,
        train: StarData,
        val: StarData | None,
        config: TrainConfig,
        seed: int = 0,
        checkpoint: str | os.PathLike | None = None,
        progress: bool = True,
        desc: str = "flow",
        fingerprint: str = "",
    ) -> None:
        self.flow, self.train, self.val, self.cfg = flow, train, val, config
        keep_freed_memory()  # the loss's tensors are reused, not page-faulted in anew each step (allocator.py)
        self.seed = int(seed)
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.progress, self.desc, self.fingerprint = progress, desc, fingerprint
        p = next(flow.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.gen = torch.Generator(device=self.device).manual_seed(self.seed)
        # the single cusp power c gets a larger step than the network weights: it is one
        # number with a small gradient (only the innermost stars feel it), and with the
        # common step it barely moved from its start while the network bent around it
        # (so does a learned foreground fraction: one number, moved only through the mixture)
        cusp = [p for n, p in flow.named_parameters() if n in FAST_PARAMETERS]
        rest = [p for n, p in flow.named_parameters() if n not in FAST_PARAMETERS]
        groups = [{"params": rest, "lr_factor": 1.0}] + ([{"params": cusp, "lr_factor": config.cusp_lr_factor}] if cusp else [])
        self.opt = torch.optim.Adam(groups, lr=config.lr)
        self.deterministic = is_deterministic(flow, train, config)
        self.two_phase = config.optimiser == "adam+lbfgs" and self.deterministic
        self.adam_end = min(config.adam_steps, config.steps) if self.two_phase else config.steps
        self.lbfgs: LBFGS | None = None
        self.objective = CachedObjective(list(flow.parameters()), lambda: self.compute_loss())
        self.trace: list[float] = []  # the objective at the start of L-BFGS and at each of its iterates
        self.stop_reason: str | None = None
        self.grad_norm: float | None = None
        self.step = 0
        self.lr_scale = 1.0
        self.failures = 0
        self.best_val = math.inf
        self.best_state = copy.deepcopy(flow.state_dict())
        self.ema_state = copy.deepcopy(flow.state_dict())
        self.best_step = 0
        self.bad_evals = 0
        self.history: dict[str, list] = {"step": [], "loss": [], "val_step": [], "val_loss": [], "events": []}
        self.done = False
        self.wall = 0.0
        self._prior = SmoothnessPrior.of(config, train.R, train.weights)
        if val is not None:  # (the smearing draws of the exact loss only when n_gh = 0)
            g = torch.Generator(device=self.device).manual_seed(self.seed + 7919)
            self._val_rows = val.smeared(g, config.val_n_smear)
            self._val_eps = torch.randn(val.R.shape, generator=g, dtype=self.dtype, device=self.device)
        self._snapshot = self._state()

    @property
    def nu_mean(self) -> ZhaoMean | None:
        """The Zhao mean the prior measures ln nu's roughness from (``TrainConfig.nu_mean="zhao"``), else None."""
        return None if self._prior is None else self._prior.nu_mean

    # ------------------------------------------------------------------ pieces
    def lr_at(self, step: int) -> float:
        """Adam's learning rate at ``step``: the cosine decay over the Adam phase."""
        c = self.cfg
        frac = min(step / max(self.adam_end, 1), 1.0)
        return self.lr_scale * c.lr * (c.lr_final + (1 - c.lr_final) * 0.5 * (1 + math.cos(math.pi * frac)))

    def compute_loss(self) -> torch.Tensor:
        """The training loss of one step (fresh smearing and base draws)."""
        data = self.train
        if self.cfg.batch is not None and self.cfg.batch < data.n:
            idx = torch.randperm(data.n, generator=self.gen, device=self.device)[: self.cfg.batch]
            data = data.subset(idx)
        return flow_loss(self.flow, data, self.cfg, self.gen, self.cfg.n_model, prior=self._prior)

    @property
    def minibatched(self) -> bool:
        """Whether a step sees a random batch of the training stars rather than all of them."""
        return self.cfg.batch is not None and self.cfg.batch < self.train.n

    @torch.no_grad()
    def full_objective(self) -> float:
        """The objective of the flow as it stands on every training star at once [nats per star].

        What minibatched training minimises in expectation; its steps see batches only. Catalogues
        of many stars are evaluated in pieces (:func:`~dsphnf.flows.losvd.exact_nll`); a KDE or free-
        anisotropy velocity term draws from its own generator, so the training's is not touched.
        """
        g = torch.Generator(device=self.device).manual_seed(self.seed + 15485863)
        return float(flow_loss(self.flow, self.train, self.cfg, g, self.cfg.n_model, prior=self._prior))

    @torch.no_grad()
    def _update_ema(self) -> None:
        d = self.cfg.ema
        for k, v in self.flow.state_dict().items():
            if d > 0 and v.dtype.is_floating_point:
                self.ema_state[k].mul_(d).add_(v, alpha=1.0 - d)
            else:
                self.ema_state[k].copy_(v)

    @torch.no_grad()
    def validation_loss(self, state: dict | None = None) -> float:
        """Validation loss of the current (or the given, e.g. averaged) parameters."""
        current = None
        if state is not None:
            current = copy.deepcopy(self.flow.state_dict())
            self.flow.load_state_dict(state)
        try:
            g = torch.Generator(device=self.device).manual_seed(self.seed + 104729)
            eps = self._val_eps if self.cfg.n_gh == 0 else None
            return float(flow_loss(self.flow, self.val, self.cfg, g, self.cfg.val_n_model,
                                   rows=self._val_rows, eps=eps))
        finally:
            if current is not None:
                self.flow.load_state_dict(current)

    def _fail(self, why: str) -> None:
        self.failures += 1
        msg = f"{self.desc}: {why} at step {self.step}; rolled back to step {self._snapshot['step']}, learning rate halved"
        if self.failures > self.cfg.max_failures:
            raise FitError(
                f"{self.desc}: training diverged ({why}) {self.failures} times; last at step {self.step}. "
                "Try a smaller --lr or fewer solver steps"
            )
        failures = self.failures
        self._load_state(self._snapshot, keep_failures=True)
        self.failures = failures
        self.lr_scale *= 0.5
        self.history["events"].append({"step": self.step, "event": "rollback", "why": why, "lr_scale": self.lr_scale})
        log.warning(msg)
        if self._bar is not None:
            self._bar.write(f"warning: {msg}")

    def _validate(self) -> bool:
        """Evaluate the validation loss; returns True when training should stop."""
        if self.val is None:
            self._snapshot = self._state()
            return False
        v = self.validation_loss(None if self.two_phase else self.ema_state)
        if not math.isfinite(v):
            self._fail("non-finite validation loss")
            return False
        self.history["val_step"].append(self.step)
        self.history["val_loss"].append(v)
        if self.two_phase:  # the objective's optimum is returned; held-out stars are only watched
            self.best_val, self.best_step = v, self.step
        elif self.step == 0 and not self.cfg.keep_start:
            pass  # recorded for the diagnostics, never selected
        elif v < self.best_val - 1e-4:
            self.best_val, self.best_step, self.bad_evals = v, self.step, 0
            self.best_state = copy.deepcopy(self.ema_state)
        else:
            self.bad_evals += 1
        self._snapshot = self._state()
        stop = not self.two_phase and self.bad_evals >= self.cfg.patience and self.step >= self.cfg.min_steps
        if stop:
            self.stop_reason = "early_stop"
        return stop

    # ------------------------------------------------------------------ steps
    def _adam_step(self) -> float | None:
        """One Adam step; the loss before it, or None after a roll-back."""
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.step) * group.get("lr_factor", 1.0)
        self.opt.zero_grad(set_to_none=True)
        loss = self.compute_loss()
        loss.backward()  # a non-finite loss gives non-finite gradients, which are never applied
        value, grads_ok = read_step(loss, self.flow.parameters())  # one read from the device per step
        if not math.isfinite(value) or not grads_ok:
            self._fail("non-finite loss" if not math.isfinite(value) else "non-finite gradient")
            return None
        torch.nn.utils.clip_grad_norm_(self.flow.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self._update_ema()
        return value

    def _new_lbfgs(self) -> None:
        c = self.cfg
        self.lbfgs = LBFGS(self.flow.parameters(), c.lbfgs_lr * self.lr_scale, c.lbfgs_history, c.lbfgs_max_step)

    def _lbfgs_step(self) -> float | None:
        """One L-BFGS iteration; the objective at the new iterate, or None after a roll-back."""
        params = list(self.flow.parameters())
        try:
            if self.lbfgs is None:
                self._new_lbfgs()
                self.trace = [float(self.objective())]
                self.lbfgs.state["floor"] = self.trace[0] - self.cfg.lbfgs_max_gain
            self.lbfgs.lr = self.cfg.lbfgs_lr * self.lr_scale
            value, moved = self.lbfgs.step(self.objective)
        except NonFinite as err:  # at the current iterate (a trial point is only rejected)
            self._fail(str(err))
            return None
        self.grad_norm = flat_grad_norm(params)
        if not moved:
            self.stop_reason = "stalled"  # the line search found no lower point
        self.trace.append(value)
        return value

    def _converged(self) -> bool:
        """Whether the L-BFGS phase has met its stop rule (sets ``stop_reason``)."""
        if self.lbfgs is None:
            return False
        rel = relative_change(self.trace, self.cfg.window)
        if self.stop_reason is None and rel is not None and rel < self.cfg.tol:
            self.stop_reason = "converged"
        return self.stop_reason is not None

    def convergence(self) -> dict:
        """JSON-ready convergence diagnostics of the run (nats per star).

        ``optimiser`` actually used, ``stop_reason`` (converged, stalled,
        max_steps, early_stop), ``adam_steps`` and ``lbfgs_steps``,
        ``objective`` (at the returned flow; L-BFGS only), ``objective_change``
        and ``relative_change`` over the last ``window`` iterations (L-BFGS) or
        steps (Adam alone, between the means of the last two windows of the
        training loss), ``grad_norm`` at the end and ``objective_evals`` of L-BFGS;
        ``full_objective``: with minibatches (``batch`` below the number of
        training stars), the objective on all of them at the flow as it stands
        (:meth:`full_objective`; call this after :meth:`run`), else None.
        """
        c = self.cfg
        out = {"optimiser": "adam+lbfgs" if self.two_phase else "adam", "deterministic_objective": self.deterministic,
               "stop_reason": self.stop_reason, "adam_steps": min(self.step, self.adam_end),
               "lbfgs_steps": max(self.step - self.adam_end, 0), "window": c.window, "tol": c.tol,
               "objective": None, "objective_change": None, "relative_change": None,
               "grad_norm": self.grad_norm, "objective_evals": self.objective.evals if self.lbfgs else 0,
               "rejected_trials": self.lbfgs.state["rejected"] if self.lbfgs else 0,
               "full_objective": self.full_objective() if self.minibatched else None}
        if self.lbfgs is not None and self.trace:
            w = min(c.window, len(self.trace) - 1)
            out.update(objective=self.trace[-1], objective_change=self.trace[-1 - w] - self.trace[-1],
                       relative_change=relative_change(self.trace, w) if w else None)
        elif len(self.history["loss"]) >= 2 * c.window:
            a = sum(self.history["loss"][-2 * c.window: -c.window]) / c.window
            b = sum(self.history["loss"][-c.window:]) / c.window
            out.update(objective_change=a - b, relative_change=(a - b) / max(abs(b), 1e-300))
        return out

    # ------------------------------------------------------------------ loop
    def run(self, resume: bool = False, callback: Callable[["Trainer"], None] | None = None) -> dict:
        """Train until converged, ``steps``, an early stop or a FitError; returns the history.

        ``callback(trainer)`` is called after every completed step.
        """
        if resume:
            self.try_resume()
        cfg = self.cfg
        show = self.progress and sys.stderr.isatty()
        self._bar = tqdm(total=cfg.steps, initial=self.step, desc=self.desc, disable=not show, leave=False)
        t_start = time.perf_counter() - self.wall
        try:
            if self.step == 0 and not self.done:
                self._validate()
            while not self.done and self.step < cfg.steps:
                lv = self._adam_step() if self.step < self.adam_end else self._lbfgs_step()
                if lv is None:
                    self._bar.n = self.step
                    continue
                self.step += 1
                self._record(lv)
                stop = False
                if self.step % cfg.val_every == 0 or self.step == cfg.steps:
                    stop = self._validate()
                stop = self._converged() or stop
                if stop or self.step >= cfg.steps:
                    self.done = True
                    self.stop_reason = self.stop_reason or "max_steps"
                self.wall = time.perf_counter() - t_start
                if self.done or (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0):
                    self.save_checkpoint()
                if callback is not None:
                    callback(self)
        finally:
            self._bar.close()
            self._bar = None
        if self.two_phase or self.val is None:  # the optimum, or the final average without validation
            self.best_step = self.step
        final = (self.best_state if self.val is not None else self.ema_state) if not self.two_phase else None
        if final is not None:
            self.flow.load_state_dict(final)
        self.wall = time.perf_counter() - t_start
        return self.history

    def _record(self, lv: float) -> None:
        """Log the loss of a completed step and update the bar."""
        self.history["step"].append(self.step)
        self.history["loss"].append(lv)
        self._bar.update(1)
        if self.step % 10 == 0:
            post = {"loss": f"{lv:.4f}"}
            if self.history["val_loss"]:
                post["val"] = f"{self.history['val_loss'][-1]:.4f}"
            self._bar.set_postfix(post)

    _bar = None
