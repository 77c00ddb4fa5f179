"""Checkpoints of a :class:`~dsphnf.flows.train.Trainer`: its whole state, saved atomically and resumed.

A checkpoint holds the model, the optimisers (Adam and, once started,
L-BFGS), the random-number state, the step, learning-rate scale, failure
count, history, best and averaged states, the L-BFGS trace and stop reason,
and the flow's spec, training config, seed and data fingerprint. Resuming
refuses a checkpoint made with other settings; the resumed run reproduces
the uninterrupted one. The same state, kept in memory, is the NaN guard's
snapshot to roll back to.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

import torch

from ..errors import FitError

__all__ = ["TrainerState"]


def _atomic_torch_save(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class TrainerState:
    """The state of a training run as a dict, and its checkpoint file (mixed into the Trainer).

    Needs of the host: the attributes listed in :meth:`_state`, ``opt``,
    ``gen``, ``objective``, ``flow``, ``cfg``, ``checkpoint``, ``device``,
    ``seed``, ``fingerprint`` and ``_new_lbfgs``.
    """

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
            "lbfgs": None if self.lbfgs is None else copy.deepcopy(self.lbfgs.state_dict()),
            "trace": list(self.trace),
            "stop_reason": self.stop_reason,
            "grad_norm": self.grad_norm,
            "evals": self.objective.evals,
        }

    def _load_state(self, st: dict, keep_failures: bool = False) -> None:
        self.flow.load_state_dict(st["model"])
        self.opt.load_state_dict(st["opt"])
        self.gen.set_state(st["gen"].cpu())
        self.step, self.best_val, self.best_step = st["step"], st["best_val"], st["best_step"]
        self.best_state = copy.deepcopy(st["best_state"])
        self.ema_state = copy.deepcopy(st["ema_state"])
        self.bad_evals, self.done, self.wall = st["bad_evals"], st["done"], st.get("wall", 0.0)
        self.lbfgs = None
        if st["lbfgs"] is not None:
            self._new_lbfgs()
            self.lbfgs.load_state_dict(st["lbfgs"])
        self.trace, self.stop_reason, self.grad_norm = list(st["trace"]), st["stop_reason"], st["grad_norm"]
        self.objective.evals = st["evals"]
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
