"""The settings of training one flow (:class:`TrainConfig`): loss, optimiser, stop rule, validation, checkpoints.

What each setting does is told in :mod:`dsphnf.flows.train`, which runs the
training; this module holds the settings only, so that a fit's setup, its
members and the batched trainer share them without importing the trainer.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .nu_mean import NU_MEANS
from .objective import LOSSES

__all__ = ["TrainConfig", "OPTIMISERS"]

#: Optimisers of :class:`TrainConfig` (:mod:`dsphnf.flows.train`).
OPTIMISERS = ("adam+lbfgs", "adam")


@dataclass
class TrainConfig:
    """Optimisation settings (the defaults are the measured benchmark settings).

    Attributes
    ----------
    steps : int
        Maximum number of optimiser steps (Adam steps plus L-BFGS iterations).
    optimiser : {"adam+lbfgs", "adam"}
        Adam warm-up then L-BFGS to convergence (deterministic objectives; a
        stochastic one falls back to Adam alone), or Adam alone (module docstring).
    adam_steps : int
        Adam steps before L-BFGS takes over (``"adam+lbfgs"``).
    tol, window : float, int
        Convergence: L-BFGS stops when the objective decreased by less than
        ``tol`` relative to its value over the last ``window`` iterations.
    lbfgs_lr, lbfgs_history, lbfgs_max_step : float, int, float
        L-BFGS first trial step (1: the quasi-Newton step), memory, and the
        largest change of any parameter in one iteration
        (:class:`~dsphnf.flows.optimise.LBFGS`).
    lbfgs_max_gain : float
        A trial point more than this below the objective where L-BFGS started
        [nats per star] is rejected as a numerical breakdown (legitimate
        L-BFGS phases gained < 4e-3 on the benchmark mocks; a runaway reached -9e75).
    lr, lr_final : float
        Adam learning rate and the final fraction of it (cosine decay over
        ``adam_steps``, or over ``steps`` with Adam alone).
    n_model : int
        N_G, flow samples per step for the model-side KDE.
    batch : int or None
        Data stars per step (None: all training stars).
    n_smear : int
        Smearing draws per data star and step.
    val_every, patience : int
        Validation interval [steps] and early-stopping patience [evaluations]
        (early stopping: Adam alone only).
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
        removes most of the step-to-step noise of the stochastic loss (Adam alone only).
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
    nu_mean : {"none", "zhao"}
        What the roughness of ln nu is measured from: ``"none"`` (default),
        ln nu itself (a log-slope linear in ln r costs nothing, which makes
        Plummer cores 0.04 dex too dense at R_half/4); ``"zhao"``, a Zhao
        profile fitted to the training stars' projected radii before training
        (:mod:`dsphnf.flows.nu_mean`), so that a turnover as sharp as the
        stars' costs nothing: unbiased cores, but a larger scatter of rho in
        the centre (benchmarks/RESULTS.md), so not the default.
    h_v : float
        Velocity kernel of the exact ``"abel"`` loss [units of the velocity
        scale V]: the model's v_z is convolved with it (and each star's error)
        and the data are smeared by it. It keeps the quadrature over base
        speeds smooth (error < 0.01 nats per star at 0.25 with 24 nodes).
    n_gh : int
        Gauss-Hermite nodes of the data-side smearing of the exact loss (its
        expectation over eps ~ N(0, 1); 0: one fresh random draw per star
        and step, the former stochastic loss). With 3 nodes the loss of the
        benchmark's 1000 stars is within 1.5e-5 nats per star of 64 nodes,
        and the difference between two flows within 3e-6 (benchmarks/RESULTS.md).
    cuda_graphs : bool
        On a CUDA device, batched members (a single flow too: a batch of
        one) evaluate their objective by replaying a captured CUDA graph
        (:mod:`~dsphnf.flows.cuda_graph`): on an H200 a single flow of 1000
        stars trained in 5-8 s against 82-86 s without, 8 members in 24 s
        against more than 190 s (benchmarks/RESULTS.md).
        A failed capture falls back to eager evaluation and is recorded.
        Ignored on the CPU.
    """

    steps: int = 400
    optimiser: str = "adam+lbfgs"
    adam_steps: int = 100
    tol: float = 1e-6
    window: int = 20
    lbfgs_lr: float = 1.0
    lbfgs_history: int = 20
    lbfgs_max_step: float = 0.5
    lbfgs_max_gain: float = 0.1
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
    n_gh: int = 3
    cusp_lr_factor: float = 10.0
    keep_start: bool = True
    smooth_tau: float | None = 1.0
    nu_mean: str = "none"
    cuda_graphs: bool = True

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.optimiser not in OPTIMISERS:
            raise ValueError(f"optimiser must be one of {OPTIMISERS}, got {self.optimiser!r}")
        if self.n_gh < 0 or self.window < 1 or not self.tol >= 0:
            raise ValueError(f"need n_gh >= 0, window >= 1, tol >= 0; got {self.n_gh}, {self.window}, {self.tol}")
        if self.nu_mean not in NU_MEANS:
            raise ValueError(f"nu_mean must be one of {NU_MEANS}, got {self.nu_mean!r}")
        if self.smooth_tau is not None and not self.smooth_tau > 0:
            raise ValueError(f"smooth_tau must be positive or None, got {self.smooth_tau!r}")

    def lbfgs_objective_gap(self, kinematic: bool = True) -> str | None:
        """What this schedule lacks of the deterministic exact objective trained by Adam then L-BFGS (None: nothing).

        Batched members and warm starts both need it; ``kinematic=False`` (positions only) needs no
        velocity smearing nodes.

        >>> TrainConfig().lbfgs_objective_gap() is None
        True
        >>> TrainConfig(optimiser="adam").lbfgs_objective_gap()
        "optimiser='adam+lbfgs'"
        """
        if self.loss != "abel" or self.batch is not None or (kinematic and self.n_gh < 1):
            return "the deterministic exact objective (loss='abel', n_gh >= 1, no minibatches)"
        if self.optimiser != "adam+lbfgs":
            return "optimiser='adam+lbfgs'"
        return None

    def to_dict(self) -> dict:
        return asdict(self)
