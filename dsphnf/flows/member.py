"""One ensemble member of a flow fit as a self-contained task: train it, read it out, return plain data.

:func:`~dsphnf.flows.fit.fit_flow` runs its members through
:func:`dsphnf.executor.run_grid` (one after the other in this process, or in
parallel on Ray), so a member is a call of the top-level, picklable
:func:`train_member` whose arguments are plain data: the stars shared by
every member (:class:`MemberStars`, sent to the workers once), the settings
of the fit (:class:`MemberSettings`) and the member's index ``k``. It
returns a :class:`TrainedMember` (the flow's weights and settings, its
profile on the output grid, its training history and diagnostics), from
which the driver rebuilds the :class:`~dsphnf.flows.cnf.SphericalFlow`
(:func:`rebuild_flow`).

Everything random in a member is seeded by the fit's seed and ``k`` alone,
and the member trains with the torch thread count of the fit
(:attr:`MemberSettings.threads`), so a member is bit-identical wherever it
runs. Where the per-step training checkpoint goes and whether a progress
bar is drawn do not change the result; they belong to the
:class:`MemberRunner` that calls :func:`train_member`, not to the task, so
that a finished member stored by an interrupted fit is reused however the
fit is resumed.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..anisotropy import AnisotropySpec
from ..foreground import Foreground, velocity_core
from . import ensemble as ens
from .cnf import SphericalFlow
from .foreground import foreground_term
from .kde import bandwidths
from .moments import flow_profiles
from .nu_mean import describe
from .separable import member_velocity
from .settings import FlowConfig
from .standardise import fingerprint, scales_of, standardise_stars
from .stars import StarData
from .train import Trainer
from .train_config import TrainConfig

__all__ = ["MemberStars", "MemberSettings", "TrainedMember", "MemberRunner", "train_member", "member_split",
           "member_data", "member_distance", "member_profile", "rebuild_flow", "start_flow", "start_state",
           "TASK_NAME"]

#: The name a member task is stored under (:func:`dsphnf.taskstore.task_fingerprint`).
TASK_NAME = "train_member"


@dataclass(frozen=True)
class MemberStars:
    """The catalogue in physical units and the output grid, shared by every member.

    Every member standardises its own resample (:func:`member_data`), so the
    stars travel in kpc and km/s.

    Attributes
    ----------
    raw : dict of ndarray
        ``x``, ``y`` [kpc], ``vz``, ``verr`` [km/s] (or None) and weights ``w``
        (:func:`~dsphnf.flows.standardise.raw_stars`).
    scales : dict
        ``L`` [kpc], ``V`` [km/s], ``v_sys`` [km/s] of the whole catalogue.
    kinematic : bool
        Whether the stars have velocities.
    r_out : ndarray
        Output grid [kpc].
    source : str
        Name of the catalogue, for error messages.
    """

    raw: dict[str, Any]
    scales: dict[str, float]
    kinematic: bool
    r_out: np.ndarray
    source: str = "catalogue"


@dataclass(frozen=True)
class MemberSettings:
    """Everything of a fit's settings that decides a member's result (all picklable).

    ``foreground``: a :class:`~dsphnf.foreground.Foreground` mixed into the
    likelihood (:mod:`~dsphnf.flows.foreground`); ``distance``: (D, sigma_D)
    [kpc] to draw each member's own distance (:func:`member_distance`), None: no draw;
    ``start``: the weights every member starts from (a warm start: the
    all-star flow's ``state_dict`` as arrays, :func:`start_flow`), None: fresh
    weights from the seed.
    """

    anisotropy: AnisotropySpec
    inner: str
    ensemble: int
    seed: int
    flow: FlowConfig
    train: TrainConfig
    val_fraction: float
    bandwidth_factor: float
    dtype: torch.dtype
    device: str
    threads: int | None
    foreground: Foreground | None = None
    distance: tuple[float, float] | None = None
    start: dict[str, np.ndarray] | None = None

    @property
    def mixture(self) -> bool:
        """Whether a foreground is mixed into the likelihood (unit weights, a learned or given fraction)."""
        return self.foreground is not None


@dataclass
class TrainedMember:
    """What a trained member sends back (picklable; tensors on the CPU).

    Attributes
    ----------
    member : int
        Index ``k`` in the ensemble.
    state : dict of Tensor
        The flow's ``state_dict`` after training.
    spec : dict
        The flow's settings (:meth:`~dsphnf.flows.cnf.SphericalFlow.spec`).
    profile : dict of ndarray
        The member's profile on the output grid (:func:`~dsphnf.flows.moments.flow_profiles`).
    history : dict
        Training history (``step``, ``loss``, ``val_step``, ``val_loss``, ``events``).
    info : dict
        JSON-ready diagnostics (steps, losses in nats per star, kernel widths, ...).
    train_s, readout_s : float
        Wall time of training and of the read-out [s].
    scales : dict
        ``L`` [kpc], ``V``, ``v_sys`` [km/s] of the member's own resample (its standardised units).
    """

    member: int
    state: dict[str, torch.Tensor]
    spec: dict[str, Any]
    profile: dict[str, np.ndarray]
    history: dict
    info: dict[str, Any]
    train_s: float
    readout_s: float
    scales: dict[str, float]


def member_split(n: int, seed: int, k: int, ensemble: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation star indices of member ``k`` (with bootstrap duplicates when ensemble > 1).

    The validation stars are a random fraction of the *original* stars, so
    that a bootstrap duplicate never sits in both sets; catalogues under 50
    stars keep every star for training.

    >>> tr, va = member_split(60, 0, 0, 1, 0.2)
    >>> len(tr), len(va), len(set(tr) | set(va))
    (48, 12, 60)
    """
    idx = ens.bootstrap_indices(n, seed, k, ensemble)
    rng = np.random.default_rng([int(seed), k, 7])
    n_val = int(round(val_fraction * n)) if n >= 50 else 0
    first = rng.permutation(n)
    is_val = np.zeros(n, bool)
    is_val[first[:n_val]] = True
    perm = first if ensemble == 1 else rng.permutation(idx)
    return perm[~is_val[perm]], perm[is_val[perm]]


def member_data(stars: MemberStars, settings: MemberSettings,
                k: int) -> tuple[np.ndarray, np.ndarray, dict[str, float], dict[str, Any]]:
    """Member ``k``'s training and validation indices, its scales and its stars in its standardised units.

    The scales L, V, v_sys are those of the member's resample (training and
    validation stars together, duplicates counted;
    :func:`~dsphnf.flows.standardise.scales_of`); a single flow's resample is
    the catalogue itself, so it gets the catalogue's scales. With a
    foreground mixture v_sys and V are the velocity peak's
    (:func:`~dsphnf.foreground.velocity_core`: unit weights would let the
    field stars set them); with a distance drawn per member L is times D_k / D
    and ``distance_kpc`` is D_k (:func:`member_distance`).
    """
    tr, va = member_split(len(stars.raw["w"]), settings.seed, k, settings.ensemble, settings.val_fraction)
    resample = np.sort(np.concatenate([tr, va]))
    scales = scales_of(stars.raw, resample, stars.source)
    if settings.mixture and stars.kinematic:  # the members' velocity peak, not the field stars' spread
        v_sys, V = velocity_core(stars.raw["vz"][resample])
        scales = {**scales, "v_sys": v_sys, "V": V}
    std = standardise_stars(stars.raw, scales)
    if settings.distance is not None:  # every length of the member x s: the same standardised stars
        D = member_distance(settings.distance, settings.seed, k, settings.ensemble)
        scales = {**scales, "L": scales["L"] * D / settings.distance[0], "distance_kpc": D}
    return tr, va, scales, std


def member_distance(distance: tuple[float, float], seed: int, k: int, ensemble: int) -> float:
    """Distance [kpc] of member ``k`` of ``ensemble``: D_k ~ N(D, sigma_D) for ``distance`` = (D, sigma_D).

    Stratified (a Latin hypercube in one dimension): the K members take the
    K equal-probability strata of N(D, sigma_D) in an order permuted by the
    seed, member k a uniform draw inside its stratum (clipped at D / 2). Each D_k is still
    distributed as N(D, sigma_D), but the K of them always span the
    distribution: with 4 independent draws the members' spread of distances
    can fall far below sigma_D (Draco, seed 0: 0.27 sigma_D), and the bands
    would then miss most of the distance error. Seeded by the fit's seed and
    k (the baseline draws a distance per posterior draw,
    :func:`dsphnf.survey.quantities.baseline_draws`). At D_k every projected
    position is D_k / D times its value at D; the standardised stars do not
    change, only the member's length unit L_k (and its J, at D_k).

    >>> from scipy.stats import norm
    >>> d = [member_distance((76.0, 6.0), 0, k, 4) for k in range(4)]
    >>> d[1] == member_distance((76.0, 6.0), 0, 1, 4)
    True
    >>> sorted(np.searchsorted(76.0 + 6.0 * norm.ppf([0.25, 0.5, 0.75]), d).tolist())  # one per quartile
    [0, 1, 2, 3]
    >>> member_distance((76.0, 1e3), 0, 0, 1) >= 38.0
    True
    """
    from scipy.stats import norm

    D, err = float(distance[0]), float(distance[1])
    stratum = np.random.default_rng([int(seed), 13]).permutation(int(ensemble))[int(k)]
    u = np.random.default_rng([int(seed), int(k), 13]).uniform()
    return float(np.clip(D + err * norm.ppf((stratum + u) / ensemble), 0.5 * D, None))


def _star_data(std: dict[str, Any], settings: MemberSettings, sel: np.ndarray, h: np.ndarray,
               scales: dict[str, float] | None = None) -> StarData:
    """The standardised stars ``sel`` as tensors on the fit's device and dtype.

    With a foreground mixture, the foreground in the member's units ``scales`` goes with them (``data.fg``).
    """
    dev, dtype = torch.device(settings.device), settings.dtype
    obs = torch.as_tensor(std["obs"][sel], dtype=dtype, device=dev)
    wt = torch.as_tensor(std["w"][sel], dtype=dtype, device=dev)
    ve = None if std["verr"] is None else torch.as_tensor(std["verr"][sel], dtype=dtype, device=dev)
    data = StarData(obs, h, wt, ve)
    if settings.mixture:
        if scales is None:
            raise ValueError("a foreground mixture needs the member's scales")
        data.fg = foreground_term(settings.foreground, scales, dtype, dev, std["obs"])
    return data


def new_flow(stars: MemberStars, settings: MemberSettings, length_scale: float, k: int = 0) -> SphericalFlow:
    """Member ``k``'s untrained flow: the fit's architecture (the member's velocity family,
    :func:`~dsphnf.flows.separable.member_velocity`) and unit ``length_scale`` [kpc] (weights from torch's seed).

    Without velocities a flow has no velocity field, so every member takes member 0's family: one architecture,
    which the batched trainer needs.
    """
    family = member_velocity(settings.flow.velocity, k if stars.kinematic else 0)
    config = replace(settings.flow, velocity=family)
    return SphericalFlow(
        kinematic=stars.kinematic, inner=settings.inner, anisotropy=settings.anisotropy,
        length_scale=length_scale, **asdict(config),
        foreground=settings.mixture and settings.foreground.fraction is None and stars.kinematic,
    ).to(device=torch.device(settings.device), dtype=settings.dtype)


def start_flow(stars: MemberStars, settings: MemberSettings, length_scale: float, k: int = 0) -> SphericalFlow:
    """A member's flow before training: :func:`new_flow`, with the weights of ``settings.start`` when given.

    A warm start keeps the member's own unit ``length_scale`` [kpc] (its
    resample's L; it is not part of the weights), so the start describes the
    all-star flow's stars in this member's units: within the few per cent by
    which the resamples' scales differ, which the member's training absorbs.
    """
    flow = new_flow(stars, settings, length_scale, k)
    if settings.start is not None:  # load_state_dict copies into the flow's own tensors (dtype, device)
        flow.load_state_dict({k: torch.from_numpy(v) for k, v in settings.start.items()})
    return flow


def start_state(member: TrainedMember) -> dict[str, np.ndarray]:
    """A trained member's weights as arrays, for :attr:`MemberSettings.start` (picklable, fingerprinted bit for bit)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in member.state.items()}


def rebuild_flow(trained: TrainedMember, stars: MemberStars, settings: MemberSettings) -> SphericalFlow:
    """The trained flow of a member, rebuilt from its weights (bit-identical to the one trained)."""
    flow = new_flow(stars, settings, trained.scales["L"], trained.member)
    flow.load_state_dict(trained.state)
    return flow


def train_member(k: int, *, stars: MemberStars, settings: MemberSettings, checkpoint: str | None = None,
                 progress: bool = False) -> TrainedMember:
    """Train ensemble member ``k`` on its resample and read out its profile.

    Parameters
    ----------
    k : int
        Index of the member; with the fit's seed it seeds the resample, the
        initial weights and every draw of the training.
    stars : MemberStars
    settings : MemberSettings
    checkpoint : str or None
        Per-step training checkpoint of this member; an existing one is
        continued (the caller removes stale ones when not resuming).
    progress : bool
        Draw the member's tqdm bar over its steps (on a terminal only).

    Returns
    -------
    TrainedMember

    Raises
    ------
    FitError
        When the training diverges.
    """
    old = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(int(settings.threads))
    try:
        return _train(k, stars, settings, checkpoint, progress)
    finally:
        torch.set_num_threads(old)


def _train(k: int, stars: MemberStars, settings: MemberSettings, checkpoint: str | None,
           progress: bool) -> TrainedMember:
    seed = settings.seed
    tr, va, scales, std = member_data(stars, settings, k)
    h = bandwidths(std["obs"][tr], std["w"][tr], settings.bandwidth_factor)
    torch.manual_seed(seed * 1009 + k)
    flow = start_flow(stars, settings, scales["L"], k)
    trainer = Trainer(
        flow, _star_data(std, settings, tr, h, scales),
        _star_data(std, settings, va, h, scales) if len(va) else None,
        settings.train, seed=seed * 7919 + k, checkpoint=checkpoint, progress=progress,
        desc=f"flow {k + 1}/{settings.ensemble}", fingerprint=fingerprint(std["obs"][tr], std["w"][tr], h),
    )
    t0 = time.perf_counter()
    history = trainer.run(resume=checkpoint is not None)
    train_s = time.perf_counter() - t0
    profile, readout_s = member_profile(flow, stars, scales)
    state = {name: t.detach().to("cpu", copy=True) for name, t in flow.state_dict().items()}
    info = {**_member_info(k, trainer, h), "scales": scales, "nu_mean": describe(trainer.nu_mean, scales["L"])}
    return TrainedMember(k, state, flow.spec(), profile, history, info, train_s, readout_s, scales)


def member_profile(flow: SphericalFlow, stars: MemberStars, scales: dict[str, float]) -> tuple[dict, float]:
    """A trained member's profile on the output grid (:func:`~dsphnf.flows.moments.flow_profiles`
    in its own units ``scales``) and the read-out's wall time [s].

    The read-out runs on the CPU (a copy of a flow trained elsewhere): its
    small float64 solves are launch-bound on a GPU, where 8 members took
    3.3 s against 1.0 s on the CPU (benchmarks/RESULTS.md), and the profile
    is then the CPU's arithmetic wherever the flow was trained.
    """
    t0 = time.perf_counter()
    if any(p.device.type != "cpu" for p in flow.parameters()):
        flow = copy.deepcopy(flow).to("cpu")
    profile = flow_profiles(flow, stars.r_out, scales["L"], scales["V"])
    return profile, time.perf_counter() - t0


def _member_info(k: int, trainer: Trainer, h: np.ndarray) -> dict[str, Any]:
    """JSON-ready diagnostics of a trained member (losses in nats per star).

    ``convergence`` is :meth:`~dsphnf.flows.train.Trainer.convergence`: the
    optimiser used, the stop reason, the steps of each phase, the objective's
    change over the last iterations and the gradient norm at the end.
    """
    last = trainer.history["loss"][-25:]
    cusp = trainer.flow.cusp_power()
    return {
        "member": k, "velocity": trainer.flow.velocity, "steps": trainer.step, "best_step": trainer.best_step,
        "early_stopped": trainer.stop_reason == "early_stop",
        "converged": trainer.stop_reason == "converged",
        "convergence": trainer.convergence(),
        "final_train_loss": float(np.mean(last)) if last else None,
        "final_val_loss": None if trainer.val is None else float(trainer.best_val),
        "bandwidths": h.tolist(), "rollbacks": len(trainer.history["events"]), "train_wall_s": trainer.wall,
        "cusp_c": None if cusp is None else float(cusp.detach()),
        "anisotropy": trainer.flow.anisotropy_parameters(),
        "foreground_fraction": trainer.flow.foreground_fraction(),
    }


class MemberRunner:
    """:func:`train_member` with the settings of a run that do not change its result.

    The tasks of a fit's grid are calls of a runner: where member ``k``
    keeps its per-step checkpoint (``checkpoints/member_k.pt``; None: none)
    and whether it draws its own progress bar. A stored member is recognised
    by the task's name (:data:`TASK_NAME`) and its arguments only
    (:func:`dsphnf.taskstore.task_fingerprint`), so these runtime settings
    may differ between an interrupted run and its resumption.

    >>> MemberRunner(None, False).__qualname__
    'train_member'
    """

    def __init__(self, checkpoints: str | Path | None, progress: bool) -> None:
        self.checkpoints = None if checkpoints is None else str(checkpoints)
        self.progress = bool(progress)
        self.__qualname__ = TASK_NAME  # the task's identity in the store: the function, not the runtime settings

    def __call__(self, k: int, *, stars: MemberStars, settings: MemberSettings) -> TrainedMember:
        ck = None if self.checkpoints is None else str(Path(self.checkpoints) / f"member_{k}.pt")
        return train_member(k, stars=stars, settings=settings, checkpoint=ck, progress=self.progress)

    def __repr__(self) -> str:
        return f"MemberRunner(checkpoints={self.checkpoints!r}, progress={self.progress})"
