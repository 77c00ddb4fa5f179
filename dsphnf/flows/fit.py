"""End-to-end flow fit of a star catalogue: rho(r), M(r), nu(r) with bands.

:func:`fit_flow` is what ``dsphnf fit``, the demo and the book use. It returns
the shared :class:`~dsphnf.result.Result` (method ``"flow"``) whose
``artefacts`` are a :class:`~dsphnf.flows.artefacts.FlowArtefacts`. Its steps:

1. prepare: check the settings and lay out the output grid, log-spaced from
   the 2nd to the 98th (weighted) percentile of the projected radii R (where
   the data constrain the flow);
2. train the members: each of ``ensemble`` flows on its own resample
   (bootstrap when ensemble > 1), standardised by the scales of that resample
   (L = weighted median projected radius [kpc], V = weighted standard
   deviation of v_z [km/s] after removing the weighted mean v_sys;
   :mod:`~dsphnf.flows.standardise`), by penalised maximum likelihood (the exact
   Abel-projected loss of :mod:`~dsphnf.flows.objective` plus the smoothness
   prior of :mod:`~dsphnf.flows.prior`, and for an inferred anisotropy the
   priors of :mod:`~dsphnf.flows.beta_prior`), a deterministic objective
   minimised by Adam then L-BFGS until its relative change stalls or
   ``steps`` is reached (:mod:`~dsphnf.flows.optimise`); with
   ``FitOptions.val_fraction > 0`` a random part of the stars is held out
   instead and training stops early when their loss stops improving. The
   members train as batches with a member axis (:mod:`~dsphnf.flows.batched_train`)
   or, where the settings do not allow that, as independent tasks
   (:mod:`~dsphnf.flows.member`); either way :func:`dsphnf.executor.run_grid`
   runs them on Ray in parallel, with the local executor's results bit for
   bit for the same batches (:mod:`~dsphnf.flows.member_grid`);
3. read out nu, sigma_r, beta, M, rho of every flow on the grid; at every
   radius the members whose read-out is physical there (M > 0, rho >= 0; the
   prior's positivity term makes it so by construction) give the value (their
   mean, geometric for positive quantities) and the Student-t bootstrap bands
   around it (:mod:`~dsphnf.flows.ensemble`); their number is the column
   ``n_used`` and ``summary["diagnostics"]["readout"]``, and where fewer
   than half of the members survive at a radius inside the data's range the
   fit stops (FitError); with a distance J(0.5 deg) per member and its band
   (members unphysical anywhere on the grid left out and counted);
4. summarise in the common schema of :mod:`dsphnf.result`.

A catalogue without velocities fits the positional flow alone and returns nu.

Fast mode (:mod:`~dsphnf.flows.settings`): with the environment variable
``DSPHNF_FAST=1`` the default number of steps (``steps=None``) drops to
``FAST_STEPS`` and the batch of flow samples to 1024; an explicit ``steps``
always wins.
"""
from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..anisotropy import Inferred, anisotropy_from, require_form
from ..executor import ExecutorSpec
from ..foreground import Foreground
from ..result import Result
from . import ensemble as ens
from .artefacts import FlowArtefacts
from .beta_constraint import beta_constraint
from .cnf import FLOW_FORMS
from .fit_setup import (FitSetup, anchor_setup, batched_reason, centred_on_all_stars, check_arguments, check_centre,
                        check_systematics, check_velocity, check_warm, executor_setting, member_settings,
                        outer_threads, resolved_centre, resolved_velocity, torch_threads, train_config_for,
                        warm_members)
from .fit_summary import centre_record, ensemble_j_record, fit_summary, plot_data
from .member import MemberStars, TrainedMember, rebuild_flow, start_state
from .member_grid import MEMBER_STORE, train_grid
from .settings import FitOptions, FlowConfig
from .standardise import check_device, radial_grid, raw_stars, scales_of
from .train_config import TrainConfig

__all__ = ["fit_flow"]


def fit_flow(
    catalog,
    anisotropy: Any = "isotropic",
    inner: str = "free",
    *,
    ensemble: int = 1,
    steps: int | None = None,
    seed: int = 0,
    distance: float | None = None,
    device: str = "cpu",
    progress: bool = True,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    options: FitOptions | None = None,
    flow_config: FlowConfig | None = None,
    train_config: TrainConfig | None = None,
    executor: ExecutorSpec | str = "local",
    ray_address: str | None = None,
    workers: int | None = None,
    batched: bool | None = None,
    distance_err: float | None = None,
    foreground: Foreground | None = None,
) -> Result:
    """Fit an ensemble of equivariant flows to a catalogue and read off the profiles.

    Parameters
    ----------
    catalog : Catalog
        Stars with ``x``, ``y`` [kpc], ``vz`` [km/s] or None, optional
        ``vz_err`` [km/s] and membership ``weights`` (see :mod:`dsphnf.catalog`).
    anisotropy : str, Anisotropy, Inferred or callable
        Any given beta(r) of :mod:`dsphnf.anisotropy` (``"isotropic"``,
        ``"constant:B"``, ``"om:RA"`` with RA in kpc, ..., a model or a
        callable beta(r [kpc])), or an inferred one learned by every member
        (``"free"``: a smooth beta(r); ``"constant"``, ``"om"``, ``"cuddeford"``,
        ``"baes"``: that family's parameters), see :mod:`dsphnf.flows.beta`.
    inner : {"free", "cored", "cuspy"}
        Inner-slope variant.
    ensemble : int
        Number of flows; > 1 trains each on a bootstrap resample.
    steps : int or None
        Maximum training steps per flow (None: :func:`default_steps`).
    seed : int
        Random seed of everything random.
    distance : float or None
        Distance [kpc]; adds ``summary["jfactor"]``, log10 J(0.5 deg) with its band.
    device : str
        ``cpu`` or ``cuda``.
    progress : bool
        tqdm progress bars (on a terminal only).
    checkpoint_dir : path or None
        Folder for the finished members and per-member checkpoints;
        ``resume=True`` continues from them (see Notes).
    options : FitOptions or None
        Output grid, kernel widths, validation, precision and threads.
    flow_config, train_config : FlowConfig, TrainConfig
        Architecture and optimisation settings (``steps`` overrides ``train_config.steps``).
    executor : {"local", "ray"} or ExecutorSpec
        Where the members train (:mod:`dsphnf.executor`): ``"local"`` one
        after the other in this process, ``"ray"`` in parallel on Ray (a
        local Ray instance, or the cluster at ``ray_address``). The profiles
        are bit-identical for the same seed. ``"ray"`` is CPU only for now.
    ray_address : str or None
        Address of a running Ray cluster (``"auto"``, ``"HOST:6379"``); only with ``executor="ray"``.
    workers : int or None
        With ``executor="ray"``: at most this many members at once (default:
        every CPU of the Ray instance or cluster).
    batched : bool or None
        Train the members as one vectorised model with a member axis
        (:mod:`~dsphnf.flows.batched`, :mod:`~dsphnf.flows.batched_train`):
        the same members as trained one by one, to rounding (not bit for
        bit); in batches of ``options.members_per_batch``
        (:class:`~dsphnf.flows.settings.FitOptions`), one after another here
        or side by side on Ray. None (default): batched when ``ensemble > 1``
        (on a CUDA device with graphs also a single flow) and the settings allow it
        (:func:`~dsphnf.flows.batched.batch_supported`: the deterministic
        objective, Adam then L-BFGS, no held-out stars, a given anisotropy);
        otherwise one by one, and ``diagnostics.grid.not_batched`` says why.
        True: batched or a FitError; False: one by one (grid tasks).
    distance_err : float or None
        Error of ``distance`` [kpc]: every member gets its own distance
        D_k ~ N(distance, distance_err) (clipped at distance / 2,
        :func:`~dsphnf.flows.member.member_distance`), its stars' positions
        are D_k / distance times those given, so that the bands include the
        distance error: the same standardised stars, every length of member k
        times D_k / distance, its rho / (D_k / distance)^2, its M x D_k /
        distance, its J at D_k. The catalogue's x, y are taken at ``distance``.
    foreground : Foreground or None
        Mix a field population (a broad Gaussian in v_z, uniform on the sky,
        :class:`dsphnf.foreground.Foreground`) into the likelihood, with a
        fraction learned per member (``Foreground.fraction`` None) or given
        (:mod:`~dsphnf.flows.foreground`); the members then standardise v_z by
        their velocity peak (:func:`dsphnf.foreground.velocity_core`). Meant
        for unit weights (a catalogue without membership probabilities);
        needs velocities and the exact loss. The fractions are in
        ``summary["diagnostics"]["foreground"]``.

    Returns
    -------
    Result
        Method ``"flow"``: ``profile`` (``r`` [kpc], ``nu`` [kpc^-3], and with
        velocities ``sigma_r`` [km/s], ``beta``, ``M`` [Msun], ``rho``
        [Msun/kpc^3], each with ``_lo``/``_hi`` (68 %) and ``_lo95``/``_hi95``
        (95 %) bands, NaN for a single flow; ``n_used``: members used at each
        radius), ``summary`` in the common schema (``diagnostics``: the
        members' steps, losses, kernel widths, scales, J, and ``readout``,
        the count of physical members) and ``artefacts`` a
        :class:`~dsphnf.flows.artefacts.FlowArtefacts`.

    Raises
    ------
    FitError
        Bad settings, too few stars, a diverged training, or a read-out where
        fewer than half of the members are physical at a radius inside the
        data's range (nothing is returned).
    ExecutorError
        Bad executor settings, Ray not installed or not reachable, ``device="cuda"`` with Ray.
    TaskError
        A member's Ray worker died more often than Ray retries it.

    Notes
    -----
    Members trained one by one run as the tasks ``member_0`` ... of
    :func:`dsphnf.executor.run_grid` (:mod:`~dsphnf.flows.member`), batched
    ones on Ray as the tasks ``members_0-3`` ... (one per batch). With
    ``checkpoint_dir`` every finished member is kept in ``checkpoint_dir/members/`` and, with the local
    executor, every member's training state in ``checkpoint_dir/member_k.pt``
    (every ``checkpoint_every`` steps); ``resume=True`` reuses the finished
    members and continues the unfinished ones. Timings: ``members_s`` is the
    wall time of the members' grid, ``train_s`` and ``readout_s`` are summed
    over the members (on Ray they run in parallel, so they may exceed
    ``total_s``); batched members each carry 1/K of their batch's training
    time, so ``train_s`` sums the batches'. Batched members are kept in the
    member store too (resume reuses them and trains the missing ones in
    batches) but have no per-step checkpoints; with the thread count chosen
    by the probe (``threads="auto"``) a rerun may pick another count and
    differ in the last digits. ``summary["settings"]["executor"]`` is ``"local"`` or
    ``"ray"``; ``summary["diagnostics"]["grid"]`` records the executor, the
    workers used, the members resumed and computed and the grid's wall time.

    Examples
    --------
    >>> from dsphnf.mocks import draw_mock
    >>> stars = draw_mock("PlumCuspIso", n=40, seed=0).catalog
    >>> res = fit_flow(stars, steps=2, ensemble=2, distance=76.0, progress=False)
    >>> res.method, res.summary["settings"]["anisotropy"], len(res.artefacts.flows)
    ('flow', 'isotropic', 2)
    >>> res.summary["jfactor"]["n_used"] + res.summary["jfactor"]["n_left_out"]
    2
    >>> res.summary["settings"]["executor"], res.summary["diagnostics"]["grid"]["n_computed"]
    ('local', 2)
    """
    t_all = time.perf_counter()
    opts = options or FitOptions()
    check_arguments(catalog, inner, ensemble, steps, opts)
    check_systematics(catalog, distance, distance_err, foreground, train_config)
    where = executor_setting(executor, ray_address, workers, device)
    beta = require_form(anisotropy_from(anisotropy), FLOW_FORMS, "the flow fit")
    kinematic = catalog.vz is not None
    opts = replace(opts, centre=resolved_centre(opts.centre, beta, kinematic))
    flow = flow_config or FlowConfig()
    flow = replace(flow, velocity=resolved_velocity(flow.velocity, beta, int(ensemble), kinematic))
    setup = FitSetup(
        anisotropy=beta, inner=inner,
        ensemble=int(ensemble), seed=int(seed), device=check_device(device), options=opts,
        flow=flow, train=train_config_for(steps, train_config),
        checkpoints=None if checkpoint_dir is None else Path(checkpoint_dir), resume=resume, progress=progress,
        executor=where, batched=batched, foreground=foreground,
        distance=None if distance_err is None else (float(distance), float(distance_err)),
    )
    check_velocity(setup, kinematic)
    check_warm(setup, kinematic)
    check_centre(setup, kinematic)
    batched_reason(setup, kinematic)  # batched=True that cannot be: refused before anything is written
    with torch_threads(outer_threads(opts.threads)):
        t0 = time.perf_counter()
        stars = _prepare(catalog, setup)
        timings = {"prepare_s": time.perf_counter() - t0}
        trained, grid, anchor = _train_members(setup, stars)
        timings["members_s"] = grid["wall_s"]
        timings["train_s"] = sum(m.train_s for m in trained) + (0.0 if anchor is None else anchor.train_s)
        t0 = time.perf_counter()
        settings = member_settings(setup)
        flows = [rebuild_flow(m, stars, settings) for m in trained]
        centre = anchor if centred_on_all_stars(setup) else None
        members, profile = _read_out(stars, trained, centre)
        accounting = ens.readout_accounting(members, _data_range(stars))
        ens.check_survival(accounting)
        timings["readout_s"] = sum(m.readout_s for m in trained) + time.perf_counter() - t0
        jband = None
        if distance is not None and stars.kinematic:
            t0 = time.perf_counter()
            jband = ensemble_j_record(members, trained, float(distance), None if centre is None else centre.profile)
            timings["jfactor_s"] = time.perf_counter() - t0
        timings["total_s"] = time.perf_counter() - t_all
    summary = fit_summary(catalog, setup, stars, trained, timings, distance, jband)
    summary["diagnostics"]["grid"] = grid
    summary["diagnostics"]["readout"] = accounting
    if centre is not None:
        summary["diagnostics"]["centre"] = centre_record(profile)
    if isinstance(setup.anisotropy, Inferred) and stars.kinematic:
        summary["diagnostics"]["beta_constrained"] = beta_constraint(
            profile, np.hypot(catalog.x, catalog.y), catalog.weights)
    artefacts = FlowArtefacts(flows, members, [m.history for m in trained], stars.scales, plot_data(catalog, stars),
                              [m.scales for m in trained])
    return Result("flow", profile, summary, artefacts)


# ---------------------------------------------------------------------------- prepare
def _prepare(catalog, setup: FitSetup) -> MemberStars:
    """Standardise the stars, lay out the output grid and clear stale checkpoints and members (unless resuming)."""
    raw = raw_stars(catalog)
    source = str(getattr(catalog, "source", "catalogue"))
    scales = scales_of(raw, source=source)
    R_kpc = np.hypot(raw["x"], raw["y"])
    r_grid = setup.options.r_grid
    r_out = np.asarray(r_grid, dtype=float) if r_grid is not None else radial_grid(R_kpc, raw["w"],
                                                                                    setup.options.n_grid)
    ck = setup.checkpoints
    if ck is not None and not setup.resume and ck.exists():
        for old in [*ck.glob("member_*.pt"), *(ck / MEMBER_STORE).glob("member_*.pkl")]:
            old.unlink()
    return MemberStars(raw, scales, raw["vz"] is not None, r_out, source)


# ---------------------------------------------------------------------------- train
def _train_members(setup: FitSetup, stars: MemberStars
                   ) -> tuple[list[TrainedMember], dict[str, Any], TrainedMember | None]:
    """Train the members, and the all-star flow where one is needed; also the record.

    The all-star flow (:func:`~dsphnf.flows.fit_setup.anchor_setup`) trains first
    when the members are warm-started from it (``options.warm_start`` > 0) or
    the bands are centred on it (``options.centre == "all-stars"``); the record
    then gains ``anchor`` (its diagnostics and times) and, with a warm start,
    ``warm_start`` (the members' step limit); ``wall_s`` covers both.
    """
    warm = warm_members(setup)
    if not (warm or centred_on_all_stars(setup)):
        trained, record = train_grid(setup, stars, member_settings(setup))
        return trained, record, None
    t0 = time.perf_counter()
    first = anchor_setup(setup)
    (anchor,), anchor_record = train_grid(first, stars, member_settings(first))
    trained, record = train_grid(setup, stars, member_settings(setup, start_state(anchor) if warm else None))
    record["anchor"] = {"info": anchor.info, "wall_s": anchor_record["wall_s"], "train_s": anchor.train_s,
                        "resumed": anchor_record.get("n_resumed", 0)}
    if warm:
        record["warm_start"] = {"steps": setup.options.warm_start}
    record["wall_s"] = time.perf_counter() - t0
    return trained, record, anchor


# ---------------------------------------------------------------------------- read out
def _read_out(stars: MemberStars, trained: list[TrainedMember],
              centre: TrainedMember | None) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Every member's profiles on the output grid, and the value with bootstrap bands (around ``centre``'s if given)."""
    members = [m.profile for m in trained]
    keys = ["nu", "sigma_r", "sigma_t", "beta", "M", "rho", "dlnnu_dlnr"] if stars.kinematic else ["nu", "dlnnu_dlnr"]
    return members, ens.band_profiles(members, keys, None if centre is None else centre.profile)


def _data_range(stars: MemberStars) -> tuple[float, float]:
    """Radii [kpc] where the stars constrain the flows: the 2nd-98th weighted percentile of R (the default grid)."""
    grid = radial_grid(np.hypot(stars.raw["x"], stars.raw["y"]), stars.raw["w"], 2)
    return float(grid[0]), float(grid[-1])
