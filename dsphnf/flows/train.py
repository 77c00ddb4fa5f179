"""Training one flow: loss, schedule, validation, checkpoints, NaN guard.

Loss (``TrainConfig.loss``): the exact projected likelihood by default,
``"kde"`` for the smeared-KDE cross-entropy of the paper (Lim et al. 2025,
arXiv:2505.00763); see
:mod:`dsphnf.flows.objective`.

The optimiser is Adam with a cosine learning-rate decay from ``lr`` to
``lr * lr_final`` over ``steps``. Every ``val_every`` steps the loss of the
held-out stars is evaluated with *fixed* smearing draws and *fixed* base draws
(common random numbers, so that it changes only when the flow does); the best
state is kept and training stops after ``patience`` evaluations without
improvement. What is validated, kept and returned is the exponential moving
average of the parameters (``ema``), which is much less noisy than the last
step of a stochastic optimisation.

Checkpoints (every ``checkpoint_every`` steps and at the end) hold the model,
optimiser, random-number state, step, learning-rate scale, history and best
state, written atomically; ``resume=True`` continues from one and reproduces
the uninterrupted run.

NaN guard: a non-finite loss or gradient rolls the model, optimiser and random
state back to the last good snapshot (taken at every validation), halves the
learning rate and logs it; after ``max_failures`` roll-backs a
:class:`~dsphnf.errors.FitError` is raised, so no diverged flow is ever written.
"""
from __future__ import annotations

import copy
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm  # text bar (shown on terminals only); tqdm.auto warns in notebooks without ipywidgets

from ..errors import FitError
from .cnf import SphericalFlow
from .objective import LOSSES, flow_loss
from .prior import SmoothnessPrior
from .stars import StarData

__all__ = ["TrainConfig", "Trainer"]

log = logging.getLogger("dsphnf.flows")


@dataclass
class TrainConfig:
    """Optimisation settings (the defaults are the measured benchmark settings).

    Attributes
    ----------
    steps : int
        Maximum number of optimiser steps.
    lr, lr_final : float
        Adam learning rate and the final fraction of it (cosine decay).
    n_model : int
        N_G, flow samples per step for the model-side KDE.
    batch : int or None
        Data stars per step (None: all training stars).
    n_smear : int
        Smearing draws per data star and step.
    val_every, patience : int
        Validation interval [steps] and early-stopping patience [evaluations].
    min_steps : int
        No early stop before this step.
    val_n_model, val_n_smear : int
        Fixed flow samples and smearing draws of the validation loss.
    checkpoint_every : int
        Checkpoint interval [steps] (0: only at the end).
    max_failures : int
        Roll-backs allowed before :class:`FitError`.
    grad_clip : float
        Clip of the global gradient norm.
    base_scale : float
        Width of the positional base used to draw the KDE samples, with
        importance weights (> 1 puts more samples into the sparse outskirts).
    ema : float
        Decay of the exponential moving average of the parameters (0: none);
        the averaged flow is the one validated, kept and returned, which
        removes most of the step-to-step noise of the stochastic loss.
    loss : {"abel", "kde"}
        Training objective (module docstring).
    cusp_lr_factor : float
        Learning-rate multiplier of the cuspy map's power c.
    keep_start : bool
        Whether early stopping may select the untrained starting state (step 0).
    smooth_tau : float or None
        Scale of the smoothness prior on ln nu(r) and ln sigma_r^2(r) (third
        logarithmic derivatives, :mod:`dsphnf.flows.prior`) over the training
        stars' range of projected radii, plus its fixed one-sided term against a
        density rising outwards; smaller is smoother, None switches both off.
    h_v : float
        Velocity kernel of the exact ``"abel"`` loss [units of the velocity
        scale V]: the model's v_z is convolved with it (and each star's error)
        and the data are smeared by it. It keeps the quadrature over base
        speeds smooth (error < 0.01 nats per star at 0.25 with 24 nodes).
    """

    steps: int = 400
    lr: float = 1e-2
    lr_final: float = 0.05
    n_model: int = 2048
    batch: int | None = None
    n_smear: int = 1
    val_every: int = 25
    patience: int = 8
    min_steps: int = 200
    val_n_model: int = 8192
    val_n_smear: int = 4
    checkpoint_every: int = 200
    max_failures: int = 3
    grad_clip: float = 10.0
    base_scale: float = 1.0
    ema: float = 0.98
    loss: str = "abel"
    h_v: float = 0.25
    cusp_lr_factor: float = 10.0
    keep_start: bool = True
    smooth_tau: float | None = 1.0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.smooth_tau is not None and not self.smooth_tau > 0:
            raise ValueError(f"smooth_tau must be positive or None, got {self.smooth_tau!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def _atomic_torch_save(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class Trainer:
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
        self.seed = int(seed)
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.progress, self.desc, self.fingerprint = progress, desc, fingerprint
        p = next(flow.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.gen = torch.Generator(device=self.device).manual_seed(self.seed)
        # the single cusp power c gets a larger step than the network weights: it is one
        # number with a small gradient (only the innermost stars feel it), and with the
        # common step it barely moved from its start while the network bent around it
        cusp = [p for n, p in flow.named_parameters() if n == "c_raw"]
        rest = [p for n, p in flow.named_parameters() if n != "c_raw"]
        groups = [{"params": rest, "lr_factor": 1.0}] + ([{"params": cusp, "lr_factor": config.cusp_lr_factor}] if cusp else [])
        self.opt = torch.optim.Adam(groups, lr=config.lr)
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
        self._prior = (None if config.smooth_tau is None
                       else SmoothnessPrior.for_stars(train.R, train.weights, config.smooth_tau))
        if val is not None:
            g = torch.Generator(device=self.device).manual_seed(self.seed + 7919)
            self._val_rows = val.smeared(g, config.val_n_smear)
            self._val_eps = torch.randn(val.R.shape, generator=g, dtype=self.dtype, device=self.device)
        self._snapshot = self._state()

    # ------------------------------------------------------------------ state
    def _state(self) -> dict:
        return {
            "model": copy.deepcopy(self.flow.state_dict()),
            "opt": copy.deepcopy(self.opt.state_dict()),
            "gen": self.gen.get_state().clone(),
            "step": self.step,
            "lr_scale": self.lr_scale,
            "failures": self.failures,
            "best_val": self.best_val,
            "best_state": copy.deepcopy(self.best_state),
            "ema_state": copy.deepcopy(self.ema_state),
            "best_step": self.best_step,
            "bad_evals": self.bad_evals,
            "history": copy.deepcopy(self.history),
            "done": self.done,
            "wall": self.wall,
        }

    def _load_state(self, st: dict, keep_failures: bool = False) -> None:
        self.flow.load_state_dict(st["model"])
        self.opt.load_state_dict(st["opt"])
        self.gen.set_state(st["gen"].cpu())
        self.step, self.best_val, self.best_step = st["step"], st["best_val"], st["best_step"]
        self.best_state = copy.deepcopy(st["best_state"])
        self.ema_state = copy.deepcopy(st["ema_state"])
        self.bad_evals, self.done, self.wall = st["bad_evals"], st["done"], st.get("wall", 0.0)
        if not keep_failures:
            self.lr_scale, self.failures = st["lr_scale"], st["failures"]
            self.history = copy.deepcopy(st["history"])
        else:
            events = self.history["events"]
            self.history = copy.deepcopy(st["history"])
            self.history["events"] = events

    def save_checkpoint(self) -> None:
        if self.checkpoint is None:
            return
        st = self._state()
        st.update(spec=self.flow.spec(), config=self.cfg.to_dict(), seed=self.seed, fingerprint=self.fingerprint)
        _atomic_torch_save(st, self.checkpoint)

    def try_resume(self) -> bool:
        """Load the checkpoint if it exists; True when one was loaded."""
        if self.checkpoint is None or not self.checkpoint.exists():
            return False
        st = torch.load(self.checkpoint, map_location=self.device, weights_only=False)
        mine = dict(spec=self.flow.spec(), config=self.cfg.to_dict(), seed=self.seed, fingerprint=self.fingerprint)
        for key, value in mine.items():
            if st.get(key) != value:
                raise FitError(
                    f"checkpoint {self.checkpoint} was made with different {key}; remove it or run without --resume"
                )
        self._load_state(st)
        self._snapshot = self._state()
        return True

    # ------------------------------------------------------------------ pieces
    def lr_at(self, step: int) -> float:
        c = self.cfg
        frac = min(step / max(c.steps, 1), 1.0)
        return self.lr_scale * c.lr * (c.lr_final + (1 - c.lr_final) * 0.5 * (1 + math.cos(math.pi * frac)))

    def compute_loss(self) -> torch.Tensor:
        """The training loss of one step (fresh smearing and base draws)."""
        data = self.train
        if self.cfg.batch is not None and self.cfg.batch < data.n:
            idx = torch.randperm(data.n, generator=self.gen, device=self.device)[: self.cfg.batch]
            data = data.subset(idx)
        return flow_loss(self.flow, data, self.cfg, self.gen, self.cfg.n_model, prior=self._prior)

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
            return float(flow_loss(self.flow, self.val, self.cfg, g, self.cfg.val_n_model,
                                   rows=self._val_rows, eps=self._val_eps))
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
        v = self.validation_loss(self.ema_state)
        if not math.isfinite(v):
            self._fail("non-finite validation loss")
            return False
        self.history["val_step"].append(self.step)
        self.history["val_loss"].append(v)
        if self.step == 0 and not self.cfg.keep_start:
            pass  # recorded for the diagnostics, never selected
        elif v < self.best_val - 1e-4:
            self.best_val, self.best_step, self.bad_evals = v, self.step, 0
            self.best_state = copy.deepcopy(self.ema_state)
        else:
            self.bad_evals += 1
        self._snapshot = self._state()
        return self.bad_evals >= self.cfg.patience and self.step >= self.cfg.min_steps

    # ------------------------------------------------------------------ loop
    def run(self, resume: bool = False, callback: Callable[["Trainer"], None] | None = None) -> dict:
        """Train until ``steps``, early stop or a FitError; returns the history.

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
                for group in self.opt.param_groups:
                    group["lr"] = self.lr_at(self.step) * group.get("lr_factor", 1.0)
                self.opt.zero_grad(set_to_none=True)
                loss = self.compute_loss()
                if not torch.isfinite(loss):
                    self._fail("non-finite loss")
                    self._bar.n = self.step
                    continue
                loss.backward()
                grads = [p.grad for p in self.flow.parameters() if p.grad is not None]
                if not all(bool(torch.isfinite(g).all()) for g in grads):
                    self._fail("non-finite gradient")
                    self._bar.n = self.step
                    continue
                torch.nn.utils.clip_grad_norm_(self.flow.parameters(), cfg.grad_clip)
                self.opt.step()
                self._update_ema()
                self.step += 1
                lv = float(loss.detach())
                self.history["step"].append(self.step)
                self.history["loss"].append(lv)
                self._bar.update(1)
                if self.step % 10 == 0:
                    post = {"loss": f"{lv:.4f}"}
                    if self.history["val_loss"]:
                        post["val"] = f"{self.history['val_loss'][-1]:.4f}"
                    self._bar.set_postfix(post)
                stop = False
                if self.step % cfg.val_every == 0 or self.step == cfg.steps:
                    stop = self._validate()
                if stop or self.step >= cfg.steps:
                    self.done = True
                self.wall = time.perf_counter() - t_start
                if self.done or (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0):
                    self.save_checkpoint()
                if callback is not None:
                    callback(self)
        finally:
            self._bar.close()
            self._bar = None
        if self.val is None:  # no validation: the returned state is the final average
            self.best_step = self.step
        self.flow.load_state_dict(self.best_state if self.val is not None else self.ema_state)
        self.wall = time.perf_counter() - t_start
        return self.history

    _bar = None
