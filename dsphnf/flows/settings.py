"""What a flow fit can be told besides the catalogue: architecture, output options, default steps.

:class:`FlowConfig` is the architecture of every flow, :class:`FitOptions`
the rarely changed knobs of :func:`~dsphnf.flows.fit.fit_flow` (output grid,
kernel widths, validation, precision, threads); the optimisation settings
are :class:`~dsphnf.flows.train_config.TrainConfig`. Without an explicit number of
steps a fit trains each flow for at most :data:`DEFAULT_STEPS` steps (100 Adam
steps, then L-BFGS iterations until its stop rule fires), or :data:`FAST_STEPS`
in fast mode (environment variable ``DSPHNF_FAST=1``, used by the tests and the
book's quick builds).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import torch

__all__ = ["FlowConfig", "FitOptions", "fast_mode", "default_steps", "DEFAULT_STEPS", "FAST_STEPS", "CENTRES"]

#: what an ensemble's value and bands are centred on (:attr:`FitOptions.centre`)
CENTRES = ("auto", "members", "all-stars")

#: Most training steps per flow by default (Adam steps plus L-BFGS iterations).
DEFAULT_STEPS = 400
#: Training steps per flow by default in fast mode.
FAST_STEPS = 120


def fast_mode() -> bool:
    """True when the environment asks for quick runs (``DSPHNF_FAST=1``)."""
    return os.environ.get("DSPHNF_FAST", "").strip() not in ("", "0", "false", "no")


def default_steps() -> int:
    """Training steps used when none are given (smaller in fast mode)."""
    return FAST_STEPS if fast_mode() else DEFAULT_STEPS


@dataclass
class FlowConfig:
    """Architecture of each flow (see :class:`~dsphnf.flows.cnf.SphericalFlow`).

    ``velocity`` is the velocity family: ``"elliptical"`` (one speed map and
    the anisotropy layer), ``"separable"`` (radial and tangential semi-axis
    maps learned separately, beta(r) with them: :mod:`~dsphnf.flows.separable`)
    or ``"angular"`` (one speed map and a learned law of the velocity's angle to
    the radius: :mod:`~dsphnf.flows.angular`); the last two need the anisotropy ``free``.
    ``"mixed"`` names an ensemble whose members alternate the elliptical and
    separable families (:func:`~dsphnf.flows.separable.member_velocity`; the
    anisotropy ``free``, an even ensemble). ``"auto"`` (the default) is
    resolved by each fit (:func:`~dsphnf.flows.fit_setup.resolved_velocity`):
    ``mixed`` for an even ensemble with the anisotropy ``free``, ``elliptical``
    otherwise; the summary records the family used.
    """

    base: str = "plummer"
    r0: float = 0.1
    rv0: float = 0.1
    cusp_c: float | None = None
    width: int = 32
    depth: int = 2
    n_steps: int = 4
    method: str = "rk4"
    velocity: str = "auto"


@dataclass
class FitOptions:
    """Rarely changed knobs of :func:`fit_flow`: output grid, kernel widths, validation, precision, threads.

    Attributes
    ----------
    n_grid : int
        Radii of the output grid (log-spaced over the 2nd-98th percentile of R).
    r_grid : sequence of float or None
        Explicit output radii [kpc] instead.
    bandwidth_factor : float
        Multiplies the Silverman-like kernel widths (:func:`~dsphnf.flows.kde.bandwidths`).
    val_fraction : float
        Fraction of stars held out for validation and early stopping (default
        0: every star is used for training, for the full number of steps).
        Early stopping on a held-out fifth of 1000 stars could not tell
        trained flows from the untrained start (the held-out loss moves by
        ~0.02 nats per star, as much as its noise) and kept the start in half
        of the ensemble members (benchmarks/RESULTS.md); the smoothness prior,
        not early stopping, is what keeps the flows from over-fitting.
    dtype : torch.dtype
        Training precision (the read-out is always float64). float64 by
        default: the tables of the exact loss take differences of nearby
        radii, and on the CPU it costs only ~5 % more time than float32
        (the networks are tiny); float32 may pay off on a GPU.
    threads : int, "auto" or None
        torch intra-op threads during the fit (None: leave torch's setting;
        ``"auto"``, the default: 1 for members trained one by one, and for
        members trained as one batch the faster of 1 and 2, measured by a
        short probe, :func:`~dsphnf.flows.batched_train.choose_threads`, and
        recorded in ``summary["diagnostics"]["grid"]``).
        The default is 1: the per-step tensors are small, and on the shared
        2-core benchmark machine 2 threads made a step 20x slower (thread
        oversubscription) while 1 thread never lost much (benchmarks/RESULTS.md).
    members_per_batch : int or None
        Most members in one batch when the members train batched: the
        ensemble is split into balanced batches of at most this many, trained
        one after another on the local executor and side by side on Ray (one
        task per batch). None (default): one batch on the local executor; on
        Ray ceil(ensemble / workers) members per batch, so that every worker
        has one (workers: the executor's ``workers``, else this machine's
        CPUs). A member's result depends on its batch to rounding only (1e-10
        relative), and is the same bit for bit on either executor for the
        same batches: give this number to get one result everywhere.
    warm_start : int
        0 (default): every bootstrap member starts from fresh weights and
        trains the full schedule (Adam, then L-BFGS). N > 0: a k-step
        bootstrap (Andrews 2002, Econometrica 70, 119): one flow is first
        trained on all stars with the full schedule, then every member starts
        from its weights and takes at most N L-BFGS iterations on its own
        resample (its own standardisation; no Adam). The members then cost a
        fraction of a flow each; whether their bands are calibrated is
        measured with ``dsphnf calibrate --warm-start N``
        (benchmarks/RESULTS.md, "Warm-started members"). Ignored for a single flow.
        Refused (a FitError) with velocities and a learned anisotropy: the
        members stay near the all-star flow on the nearly flat ridge that a
        learned beta(r) opens, and their bands under-cover.
    centre : {"auto", "members", "all-stars"}
        What an ensemble's value and bands are centred on
        (:func:`~dsphnf.flows.ensemble.band_profiles`). ``"members"``: the
        mean of the bootstrap members, bands m -+ t s sqrt(1 + 1/K).
        ``"all-stars"``: one more flow trained on all stars (the warm start's
        all-star flow, so free with ``warm_start``), bands around its
        read-out of t s, s the members' spread: the usual bootstrap interval
        around the full-sample estimate. ``"auto"`` (default): ``"all-stars"``
        for stars with velocities and a given anisotropy (members trained
        from scratch or warm-started), ``"members"`` otherwise (a learned
        anisotropy, positions only:
        :func:`~dsphnf.flows.fit_setup.resolved_centre`; the summary records
        which). Over 80 mocks of four models the all-star centre's bands held
        the truth 0.685 / 0.955 of the time (68 % / 95 %), the members'
        mean's 0.655 / 0.953, with an rms error no larger on any model
        (benchmarks/RESULTS.md, "Twenty mocks per model for both centres");
        with warm-started members 0.650 / 0.950, as around their mean
        (0.655 / 0.945), and 0.600 / 0.930 on an Einasto halo with radial
        orbits, where their mean's covered 0.570 / 0.890 ("Warm-started
        members around their all-star flow"). Ignored for a single flow.
        ``"all-stars"`` is refused (a FitError) with velocities and a
        learned anisotropy: one all-star flow leans further along the nearly
        flat direction of beta than the members' mean. Without velocities it
        was not measured.
    """

    n_grid: int = 40
    r_grid: Sequence[float] | None = None
    bandwidth_factor: float = 1.0
    val_fraction: float = 0.0
    dtype: torch.dtype = torch.float64
    threads: int | str | None = "auto"
    members_per_batch: int | None = None
    warm_start: int = 0
    centre: str = "auto"
