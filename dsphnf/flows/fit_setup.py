"""The settings of one flow fit, checked and parsed once at :func:`~dsphnf.flows.fit.fit_flow`'s boundary.

:class:`FitSetup` holds them; the ``check_*`` functions turn bad input into
one-line :class:`~dsphnf.errors.FitError` messages before anything is
trained or written; :func:`batched_reason` decides whether the members train
batched and :func:`member_batches` in which batches; :func:`member_settings`
is the picklable part a member's task needs.
"""
from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ..anisotropy import AnisotropySpec, Inferred
from ..errors import FitError
from ..executor import TASK_THREADS, ExecutorError, ExecutorSpec, executor_from
from ..foreground import Foreground
from ..result import MIN_STARS
from .batched import batch_supported
from .field import INNER_MODES
from .member import MemberSettings
from .separable import AUTO_VELOCITY, ENSEMBLE_VELOCITIES, MIXED_FAMILIES, TABLE_FAMILIES
from .settings import CENTRES, FitOptions, FlowConfig, default_steps, fast_mode
from .train_config import TrainConfig

__all__ = ["FitSetup", "batched_reason", "check_arguments", "check_systematics", "check_velocity", "executor_setting",
           "graphs_on", "member_batches", "member_settings", "outer_threads", "torch_threads", "train_config_for",
           "anchor_setup", "centred_on_all_stars", "centre_refusal", "check_centre", "resolved_centre", "check_warm",
           "resolved_velocity", "velocity_refusal", "warm_members", "warm_refusal", "warm_train"]


@dataclass
class FitSetup:
    """The settings of one fit, checked and parsed, shared by every step."""

    anisotropy: AnisotropySpec
    inner: str
    ensemble: int
    seed: int
    device: torch.device
    options: FitOptions
    flow: FlowConfig
    train: TrainConfig
    checkpoints: Path | None
    resume: bool
    progress: bool
    executor: ExecutorSpec
    batched: bool | None = None
    foreground: Foreground | None = None
    distance: tuple[float, float] | None = None


def check_arguments(catalog, inner: str, ensemble: int, steps: int | None, opts: FitOptions) -> None:
    """One-line FitErrors for settings no fit can use."""
    if steps is not None and int(steps) <= 0:
        raise FitError(f"steps must be a positive integer, got {steps}")
    if int(ensemble) < 1:
        raise FitError(f"ensemble must be at least 1, got {ensemble}")
    if inner not in INNER_MODES:
        raise FitError(f"inner must be one of {', '.join(INNER_MODES)}, got {inner!r}")
    b = opts.members_per_batch
    if b is not None and (isinstance(b, bool) or int(b) != b or int(b) < 1):
        raise FitError(f"members_per_batch must be an integer of at least 1, got {b!r}")
    w = opts.warm_start
    if isinstance(w, bool) or int(w) != w or int(w) < 0:
        raise FitError(f"warm_start must be an integer of at least 0 (0: off), got {w!r}")
    if opts.centre not in CENTRES:
        raise FitError(f"centre must be one of {', '.join(CENTRES)}, got {opts.centre!r}")
    if not 0.0 <= opts.val_fraction < 0.9:
        raise FitError(f"val_fraction must be in [0, 0.9), got {opts.val_fraction}")
    if catalog.n < MIN_STARS:
        raise FitError(f"{getattr(catalog, 'source', 'catalogue')}: {catalog.n} stars; "
                       f"the flow fit needs at least {MIN_STARS}")


def velocity_refusal(velocity: str, anisotropy: AnisotropySpec, ensemble: int = 1) -> str | None:
    """Why a fit of stars with velocities cannot use the velocity family ``velocity`` under ``anisotropy``
    with ``ensemble`` members.

    None: it can (:data:`~dsphnf.flows.separable.ENSEMBLE_VELOCITIES`; the separable and angular families
    learn beta(r) themselves, so they need the anisotropy ``free``; so does ``mixed``, whose members
    alternate elliptical and separable, as many of each; ``auto`` always can: :func:`resolved_velocity`).

    >>> from ..anisotropy import anisotropy_from
    >>> velocity_refusal("separable", anisotropy_from("free")) is None
    True
    >>> velocity_refusal("angular", anisotropy_from("om:0.3"))
    "the angular velocity family learns beta(r) itself: use the anisotropy 'free', not 'om:0.3'"
    >>> velocity_refusal("mixed", anisotropy_from("free"), 4) is None
    True
    >>> print(velocity_refusal("mixed", anisotropy_from("free"), 3))
    the mixed velocity families need an ensemble that is a multiple of 2 (members alternate elliptical, ...), got 3
    """
    if velocity == AUTO_VELOCITY:
        return None
    if velocity not in ENSEMBLE_VELOCITIES:
        return f"velocity must be one of {AUTO_VELOCITY}, {', '.join(ENSEMBLE_VELOCITIES)}, got {velocity!r}"
    learns = velocity in TABLE_FAMILIES or velocity in MIXED_FAMILIES
    if learns and anisotropy != Inferred("free"):
        return (f"the {velocity} velocity family learns beta(r) itself: use the anisotropy 'free', "
                f"not {anisotropy.spec()!r}")
    families = MIXED_FAMILIES.get(velocity)
    if families and int(ensemble) % len(families):
        return (f"the {velocity} velocity families need an ensemble that is a multiple of {len(families)} "
                f"(members alternate {', '.join(families)}), got {ensemble}")
    return None


def resolved_velocity(velocity: str, anisotropy: AnisotropySpec, ensemble: int, kinematic: bool) -> str:
    """The velocity family of a fit: ``velocity``, with ``"auto"`` resolved.

    ``"auto"`` is ``"mixed"`` for stars with velocities (``kinematic``), the
    anisotropy ``free`` and an even ``ensemble``: each family's ensembles lean
    one way on some anisotropy profile with bands that miss the lean, while the
    mixture's 95 % bands on beta held the truth on every profile measured (its
    68 % bands too narrow where the families agree; benchmarks/RESULTS.md,
    "Both families by default for a free beta"). ``"elliptical"`` otherwise: it
    holds a given isotropic or Osipkov-Merritt beta exactly, and one flow or an
    odd ensemble cannot hold as many members of each family.

    >>> from ..anisotropy import anisotropy_from
    >>> free = anisotropy_from("free")
    >>> resolved_velocity("auto", free, 8, True), resolved_velocity("auto", free, 1, True)
    ('mixed', 'elliptical')
    >>> resolved_velocity("auto", anisotropy_from("om:0.3"), 8, True), resolved_velocity("auto", free, 8, False)
    ('elliptical', 'elliptical')
    >>> resolved_velocity("separable", free, 8, True)
    'separable'
    """
    if velocity != AUTO_VELOCITY:
        return velocity
    mixable = kinematic and velocity_refusal("mixed", anisotropy, ensemble) is None  # the mixture's own rule
    return "mixed" if mixable else "elliptical"


def check_velocity(setup: FitSetup, kinematic: bool) -> None:
    """One-line FitErrors for a velocity family the fit cannot use (:func:`velocity_refusal`)."""
    why = velocity_refusal(setup.flow.velocity, setup.anisotropy, setup.ensemble)
    if why is not None and (kinematic or setup.flow.velocity not in ENSEMBLE_VELOCITIES):  # positions: any beta
        raise FitError(why)


def check_systematics(catalog, distance: float | None, distance_err: float | None, foreground: Foreground | None,
                       train_config: TrainConfig | None) -> None:
    """One-line FitErrors for a distance error without a distance and a foreground the fit cannot mix in."""
    if distance_err is not None and (distance is None or not (np.isfinite(distance_err) and distance_err >= 0)
                                     or not distance > 0):
        raise FitError(f"distance_err needs a positive distance and an error >= 0 kpc, got distance={distance}, "
                       f"distance_err={distance_err}")
    if foreground is None:
        return
    if catalog.vz is None:
        raise FitError("a foreground mixture needs velocities: the foreground is a Gaussian in v_z")
    c = train_config or TrainConfig()
    if c.loss != "abel" or c.n_gh < 1:
        raise FitError("a foreground mixture needs the exact loss (loss='abel', n_gh >= 1)")


def executor_setting(executor: ExecutorSpec | str, ray_address: str | None, workers: int | None,
              device: str) -> ExecutorSpec:
    """The executor settings, parsed once; a GPU fit on Ray is refused (one line)."""
    where = executor_from(executor, ray_address, workers)
    if where.kind == "ray" and str(device).strip().lower().startswith("cuda"):
        raise ExecutorError("device='cuda' with executor='ray' is not supported yet: use executor='local' on a GPU")
    return where


def train_config_for(steps: int | None, given: TrainConfig | None) -> TrainConfig:
    """The optimisation settings: ``given`` or the defaults (fast mode: fewer steps and samples).

    Examples
    --------
    >>> cfg = train_config_for(5, None)
    >>> cfg.steps, cfg.min_steps <= 5
    (5, True)
    """
    tcfg = replace(given or TrainConfig())
    if steps is not None:
        tcfg.steps = int(steps)
    elif given is None:
        tcfg.steps = default_steps()
    if given is None and fast_mode():
        tcfg.n_model, tcfg.val_n_model, tcfg.min_steps = 1024, 4096, min(tcfg.min_steps, tcfg.steps // 2)
    tcfg.min_steps = min(tcfg.min_steps, tcfg.steps)
    return tcfg


def outer_threads(threads: int | str | None) -> int | None:
    """Threads for the parts of a fit outside a batch of members (``"auto"``: 1).

    Examples
    --------
    >>> outer_threads("auto"), outer_threads(None), outer_threads(2)
    (1, None, 2)
    """
    if threads == "auto":
        return 1
    if threads is not None and (isinstance(threads, str) or int(threads) < 1):
        raise FitError(f"threads must be a positive integer, 'auto' or None, got {threads!r}")
    return threads


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` torch intra-op threads (None: unchanged), restored afterwards."""
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def member_settings(setup: FitSetup, start: dict[str, np.ndarray] | None = None) -> MemberSettings:
    """The settings that decide a member's result, as plain picklable data for its task.

    With ``start`` (a warm start, :func:`warm_members`) every member starts from
    those weights and trains :func:`warm_train`'s schedule.
    """
    opts = setup.options
    return MemberSettings(
        anisotropy=setup.anisotropy, inner=setup.inner, ensemble=setup.ensemble, seed=setup.seed,
        flow=setup.flow, train=setup.train if start is None else warm_train(setup.train, opts.warm_start),
        val_fraction=opts.val_fraction, bandwidth_factor=opts.bandwidth_factor, dtype=opts.dtype,
        device=str(setup.device), threads=outer_threads(opts.threads) or TASK_THREADS,
        foreground=setup.foreground, distance=setup.distance, start=start,
    )


def warm_members(setup: FitSetup) -> bool:
    """Whether the members are warm-started from an all-star flow (``options.warm_start`` > 0, an ensemble)."""
    return setup.options.warm_start > 0 and setup.ensemble > 1


def centred_on_all_stars(setup: FitSetup) -> bool:
    """Whether an ensemble's value and bands are centred on an all-star flow (``options.centre == "all-stars"``)."""
    return setup.options.centre == "all-stars" and setup.ensemble > 1


def warm_train(train: TrainConfig, steps: int) -> TrainConfig:
    """A warm-started member's schedule: at most ``steps`` L-BFGS iterations, no Adam (it starts near its optimum).

    >>> c = warm_train(TrainConfig(), 50)
    >>> c.steps, c.adam_steps, c.min_steps
    (50, 0, 50)
    """
    return replace(train, steps=int(steps), adam_steps=0, min_steps=min(train.min_steps, int(steps)))


#: Why a warm start is refused with a learned anisotropy (the calibration in benchmarks/RESULTS.md,
#: "A learned beta with warm-started members").
_WARM_LEARNED = ("warm_start needs a given anisotropy: with a learned one ({}) the members stay near the all-star "
                "flow's beta, along a nearly flat direction of the objective, and their bands under-cover "
                "(measured on Osipkov-Merritt and constant-beta mocks); train the members from scratch (warm_start=0)")


def warm_refusal(anisotropy: AnisotropySpec) -> str | None:
    """Why warm-started members cannot fit stars with velocities under ``anisotropy`` (None: they can).

    >>> from ..anisotropy import anisotropy_from
    >>> warm_refusal(anisotropy_from("om:0.3")) is None
    True
    >>> warm_refusal(anisotropy_from("om")).startswith("warm_start needs a given anisotropy: with a learned one (om)")
    True
    """
    return _WARM_LEARNED.format(anisotropy.spec()) if isinstance(anisotropy, Inferred) else None


_CENTRE_LEARNED = ("centre='all-stars' needs a given anisotropy: with a learned one ({}) one flow trained on all "
                   "stars leans further along the nearly flat direction of beta than the members' mean (on a "
                   "tangential constant-beta mock single flows gave beta(R_half) -1.52 in the median, 4-member "
                   "ensembles -0.90, the truth -0.5); centre on the members (centre='members')")


def centre_refusal(centre: str, anisotropy: AnisotropySpec) -> str | None:
    """Why an ensemble fitting stars with velocities under ``anisotropy`` cannot be centred on ``centre``.

    None: it can.

    >>> from ..anisotropy import anisotropy_from
    >>> centre_refusal("all-stars", anisotropy_from("om:0.3")), centre_refusal("members", anisotropy_from("free"))
    (None, None)
    >>> centre_refusal("all-stars", anisotropy_from("free")).startswith("centre='all-stars' needs a given anisotropy")
    True
    """
    learned = centre == "all-stars" and isinstance(anisotropy, Inferred)
    return _CENTRE_LEARNED.format(anisotropy.spec()) if learned else None


def check_warm(setup: FitSetup, kinematic: bool) -> None:
    """A one-line FitError for a warm start its bands are not calibrated for.

    It needs the deterministic objective and L-BFGS it relies on, and, with
    velocities, a given anisotropy: members started at the all-star optimum
    stay in its part of the nearly flat ridge that a learned beta(r) opens
    (measured with 50 and 300 steps), so their spread misses the ridge's.
    """
    c = setup.train
    if not warm_members(setup):
        return
    gap = c.lbfgs_objective_gap(kinematic)
    if gap is not None:
        raise FitError(f"warm_start needs the deterministic exact objective and L-BFGS: {gap}")
    why = warm_refusal(setup.anisotropy) if kinematic else None
    if why is not None:
        raise FitError(why)


def resolved_centre(centre: str, anisotropy: AnisotropySpec, kinematic: bool) -> str:
    """The centre an ensemble's bands use: ``centre``, with ``"auto"`` resolved.

    ``"auto"`` is ``"all-stars"`` for stars with velocities (``kinematic``) and a
    given anisotropy, where it was measured to cover better over realisations
    than the members' mean with members trained from scratch
    (benchmarks/RESULTS.md, "Twenty mocks per model for both centres") and as
    well as their mean or better with warm-started members, whose all-star
    flow it is ("Warm-started members around their all-star flow"); ``"members"``
    otherwise: a learned anisotropy, where the all-star centre is refused;
    positions only, where it was not measured.

    >>> from ..anisotropy import anisotropy_from
    >>> iso = anisotropy_from("isotropic")
    >>> resolved_centre("auto", iso, True), resolved_centre("auto", anisotropy_from("free"), True)
    ('all-stars', 'members')
    >>> resolved_centre("auto", iso, False), resolved_centre("members", iso, True)
    ('members', 'members')
    """
    if centre != "auto":
        return centre
    given = kinematic and not isinstance(anisotropy, Inferred)
    return "all-stars" if given else "members"


def check_centre(setup: FitSetup, kinematic: bool) -> None:
    """A one-line FitError for an all-star centre that was not measured to help (a learned anisotropy)."""
    why = centre_refusal(setup.options.centre, setup.anisotropy) if kinematic and setup.ensemble > 1 else None
    if why is not None:
        raise FitError(why)


def anchor_setup(setup: FitSetup) -> FitSetup:
    """The setup of the all-star flow (warm-started members start from it; ``centre="all-stars"`` centres on it):
    one flow, the full schedule.

    Its finished flow is kept in ``checkpoints/anchor`` (apart from the members' store).
    """
    ck = setup.checkpoints
    return replace(setup, ensemble=1, options=replace(setup.options, warm_start=0),
                   checkpoints=None if ck is None else ck / "anchor")


def batched_reason(setup: FitSetup, kinematic: bool) -> str | None:
    """None when the members train as one batch, else why not (a FitError if ``batched=True`` cannot be)."""
    if setup.batched is False:
        return "batched=False"
    why = batch_supported(setup.anisotropy, setup.train, setup.options.val_fraction, kinematic)
    if setup.batched is True and why is not None:
        raise FitError(f"batched=True is not possible here: {why}")
    if setup.batched is None and why is None and setup.ensemble == 1 and not graphs_on(setup):
        why = "a single flow"
    return why


def member_batches(setup: FitSetup, members: Sequence[int]) -> list[list[int]]:
    """``members`` split into balanced batches of at most ``options.members_per_batch`` (FitOptions).

    Its default: one batch on the local executor; on Ray ceil(ensemble / workers),
    workers being the executor's ``workers`` or this machine's CPU count.

    >>> from dataclasses import replace
    >>> from dsphnf.flows.settings import FitOptions
    >>> s = FitSetup(None, "free", 8, 0, torch.device("cpu"), FitOptions(members_per_batch=3), None, None,
    ...              None, False, False, executor_setting("local", None, None, "cpu"))
    >>> member_batches(s, range(8)), member_batches(s, [5, 6])
    ([[0, 1, 2], [3, 4, 5], [6, 7]], [[5, 6]])
    >>> member_batches(replace(s, options=FitOptions(), executor=executor_setting("ray", None, 2, "cpu")), range(8))
    [[0, 1, 2, 3], [4, 5, 6, 7]]
    """
    members = [int(k) for k in members]
    if not members:
        return []
    size = setup.options.members_per_batch
    if size is None:
        spec = setup.executor
        workers = 1 if spec.kind == "local" else spec.workers or os.cpu_count() or 1
        size = math.ceil(setup.ensemble / workers)
    n = math.ceil(len(members) / int(size))
    return [list(map(int, part)) for part in np.array_split(members, n)]


def graphs_on(setup: FitSetup) -> bool:
    """Whether the batched trainer replays CUDA graphs (a CUDA device and ``cuda_graphs``); then a single flow
    trains as a batch of one, 10-16x faster on an H200 than the plain trainer (benchmarks/RESULTS.md)."""
    return setup.device.type == "cuda" and setup.train.cuda_graphs
