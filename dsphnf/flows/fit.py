"""End-to-end flow fit of a star catalogue: rho(r), M(r), nu(r) with bands.

:func:`fit_catalog` is what ``dsphnf fit``, the demo and the book use:

1. standardise: L = weighted median projected radius [kpc], V = weighted
   standard deviation of v_z [km/s] after removing the weighted mean v_sys;
2. for each of ``ensemble`` members: resample (bootstrap when ensemble > 1)
   and train a :class:`~dsphnf.flows.cnf.SphericalFlow` by penalised maximum
   likelihood (the exact Abel-projected loss of :mod:`~dsphnf.flows.objective`
   plus the smoothness prior of :mod:`~dsphnf.flows.prior`) for a fixed number
   of steps; with ``val_fraction > 0`` a random part of the stars is held out
   instead and training stops early when their loss stops improving;
3. read nu, sigma_r, beta, M, rho off every flow on a log grid from the 2nd to
   the 98th (weighted) percentile of the projected radii R (the radii where
   the data constrain the flow; with sigma_r and its slope known only where
   there are stars); the median across members and Student-t bootstrap bands
   (:mod:`~dsphnf.flows.ensemble`);
4. J(0.5 deg) per member and its band when a distance is given.

A catalogue without velocities fits the positional flow alone and returns nu.

Fast mode: with the environment variable ``DSPHNF_FAST=1`` the default number
of steps (``steps=None``) drops to :data:`FAST_STEPS` and the batch of flow
samples to 1024; an explicit ``steps`` always wins.
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..errors import FitError
from ..outputs import atomic_dir, write_csv, write_json
from . import ensemble as ens
from ..anisotropy import anisotropy_from, parse_anisotropy, require_form
from .cnf import FLOW_FORMS, SphericalFlow
from .kde import bandwidths
from .stars import StarData
from .moments import flow_profiles
from .standardise import check_device, fingerprint, radial_grid, standardise
from .train import TrainConfig, Trainer

__all__ = ["FlowConfig", "FitResult", "fit_catalog", "fast_mode", "default_steps", "load_flows",
           "standardise", "PROFILE_COLUMNS", "NU_COLUMNS", "DEFAULT_STEPS", "FAST_STEPS"]

DEFAULT_STEPS = 400
FAST_STEPS = 120
MIN_STARS = 20
PROFILE_COLUMNS = ["r", "nu", "sigma_r", "beta", "M", "M_lo", "M_hi", "rho", "rho_lo", "rho_hi", "rho_lo95", "rho_hi95"]
NU_COLUMNS = ["r", "nu", "nu_lo", "nu_hi", "nu_lo95", "nu_hi95"]


def fast_mode() -> bool:
    """True when the environment asks for quick runs (``DSPHNF_FAST=1``)."""
    return os.environ.get("DSPHNF_FAST", "").strip() not in ("", "0", "false", "no")


def default_steps() -> int:
    """Training steps used when none are given (smaller in fast mode)."""
    return FAST_STEPS if fast_mode() else DEFAULT_STEPS


@dataclass
class FlowConfig:
    """Architecture of each flow (see :class:`~dsphnf.flows.cnf.SphericalFlow`)."""

    base: str = "plummer"
    r0: float = 0.1
    rv0: float = 0.1
    cusp_c: float | None = None
    width: int = 32
    depth: int = 2
    n_steps: int = 4
    method: str = "rk4"


@dataclass
class FitResult:
    """Outcome of :func:`fit_catalog`.

    Attributes
    ----------
    profile : dict of ndarray
        ``r`` [kpc] and medians/bands: ``nu`` [kpc^-3], and with velocities
        ``sigma_r`` [km/s], ``beta``, ``M`` [Msun], ``rho`` [Msun/kpc^3], each
        with ``_lo``/``_hi`` (68 %) and ``_lo95``/``_hi95`` (95 %) bootstrap bands.
    members : list of dict
        The profile of every ensemble member.
    summary : dict
        Settings, versions, timings, losses, J-factor (JSON-ready).
    flows : list of SphericalFlow
    history : list of dict
        Training history of every member (``step``, ``loss``, ``val_step``, ``val_loss``, ``events``).
    scales : dict
        ``L`` [kpc], ``V`` [km/s], ``v_sys`` [km/s] of the standardisation.
    data : dict
        The standardisation inputs kept for plots (x, y [kpc], vz [km/s], weights).
    """

    profile: dict[str, np.ndarray]
    members: list[dict[str, np.ndarray]]
    summary: dict[str, Any]
    flows: list[SphericalFlow]
    history: list[dict]
    scales: dict[str, float]
    data: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def kinematic(self) -> bool:
        return "rho" in self.profile

    def table(self) -> dict[str, np.ndarray]:
        """The columns of ``profile.csv`` in their order."""
        cols = PROFILE_COLUMNS if self.kinematic else NU_COLUMNS
        return {c: self.profile[c] for c in cols}

    def save(self, out_dir: str | os.PathLike, plots: bool = True) -> Path:
        """Write profile.csv, profile_bands.csv, summary.json, flows/ and plots into ``out_dir`` atomically."""
        out_dir = Path(out_dir)
        with atomic_dir(out_dir) as tmp:
            self.write_into(tmp, plots=plots)
        return out_dir

    def write_into(self, folder: Path, plots: bool = True) -> None:
        folder = Path(folder)
        write_csv(folder / "profile.csv", self.table())
        write_csv(folder / "profile_bands.csv", self.profile)
        write_json(folder / "summary.json", self.summary)
        (folder / "flows").mkdir(exist_ok=True)
        for k, flow in enumerate(self.flows):
            torch.save({"spec": flow.spec(), "state": flow.state_dict(), "scales": self.scales},
                       folder / "flows" / f"flow_{k}.pt")
        if plots:
            from . import plots as fplots

            old = torch.get_num_threads()
            torch.set_num_threads(int(self.summary.get("settings", {}).get("threads") or old))
            try:
                fplots.save_all(self, folder)
            finally:
                torch.set_num_threads(old)


def load_flows(folder: str | os.PathLike) -> tuple[list[SphericalFlow], dict]:
    """Rebuild the flows saved by :meth:`FitResult.save` (and the scales)."""
    files = sorted(Path(folder, "flows").glob("flow_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    flows, scales = [], {}
    for f in files:
        st = torch.load(f, map_location="cpu", weights_only=False)
        flow = SphericalFlow(**{**st["spec"], "anisotropy": parse_anisotropy(st["spec"]["anisotropy"])})
        flow.load_state_dict(st["state"])
        flows.append(flow)
        scales = st["scales"]
    return flows, scales


def fit_catalog(
    catalog,
    anisotropy: Any = "isotropic",
    inner: str = "free",
    steps: int | None = None,
    ensemble: int = 1,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    distance: float | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    n_grid: int = 40,
    r_grid: np.ndarray | None = None,
    bandwidth_factor: float = 1.0,
    val_fraction: float = 0.0,
    flow_config: FlowConfig | None = None,
    train_config: TrainConfig | None = None,
    dtype: torch.dtype = torch.float64,
    threads: int | None = 1,
) -> FitResult:
    """Fit an ensemble of equivariant flows to a catalogue and read off the profiles.

    Parameters
    ----------
    catalog : Catalog
        Stars with ``x``, ``y`` [kpc], ``vz`` [km/s] or None, optional
        ``vz_err`` [km/s] and membership ``weights`` (see :mod:`dsphnf.catalog`).
    anisotropy : str, Anisotropy or callable
        ``"isotropic"``, ``"constant:B"``, ``"om:RA"`` (RA in kpc), an
        :class:`~dsphnf.anisotropy.Anisotropy`, a callable beta(r [kpc]), or
        ``"free"`` (beta read from the flow).
    inner : {"free", "cored", "cuspy"}
        Inner-slope variant.
    steps : int or None
        Maximum training steps per flow (None: :func:`default_steps`).
    ensemble : int
        Number of flows; > 1 trains each on a bootstrap resample.
    seed : int
        Seed of everything random.
    device : str
        ``cpu`` or ``cuda``.
    progress : bool
        tqdm progress bars (on a terminal only).
    distance : float or None
        Distance [kpc]; adds log10 J(0.5 deg) with its band.
    checkpoint_dir : path or None
        Folder for per-member checkpoints; ``resume=True`` continues from them.
    n_grid : int
        Radii of the output grid (log-spaced over the 2nd-98th percentile of R).
    r_grid : ndarray or None
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
    flow_config, train_config : FlowConfig, TrainConfig
        Architecture and optimisation settings (``steps`` overrides ``train_config.steps``).
    dtype : torch.dtype
        Training precision (the read-out is always float64). float64 by
        default: the tables of the exact loss take differences of nearby
        radii, and on the CPU it costs only ~5 % more time than float32
        (the networks are tiny); float32 may pay off on a GPU.
    threads : int or None
        torch intra-op threads during the fit (None: leave torch's setting).
        The default is 1: the per-step tensors are small, and on the shared
        2-core benchmark machine 2 threads made a step 20x slower (thread
        oversubscription) while 1 thread never lost much (benchmarks/RESULTS.md).

    Returns
    -------
    FitResult
    """
    t_all = time.perf_counter()
    timings: dict[str, float] = {}
    if steps is not None and int(steps) <= 0:
        raise FitError(f"steps must be a positive integer, got {steps}")
    if int(ensemble) < 1:
        raise FitError(f"ensemble must be at least 1, got {ensemble}")
    if not 0.0 <= val_fraction < 0.9:
        raise FitError(f"val_fraction must be in [0, 0.9), got {val_fraction}")
    dev = check_device(device)
    beta_model = require_form(anisotropy_from(anisotropy), FLOW_FORMS, "the flow fit")
    fcfg = flow_config or FlowConfig()
    tcfg = replace(train_config or TrainConfig())
    if steps is not None:
        tcfg.steps = int(steps)
    elif train_config is None:
        tcfg.steps = default_steps()
    if train_config is None and fast_mode():
        tcfg.n_model, tcfg.val_n_model, tcfg.min_steps = 1024, 4096, min(tcfg.min_steps, tcfg.steps // 2)
    tcfg.min_steps = min(tcfg.min_steps, tcfg.steps)
    if catalog.n < MIN_STARS:
        raise FitError(f"{getattr(catalog, 'source', 'catalogue')}: {catalog.n} stars; the flow fit needs at least {MIN_STARS}")
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        t0 = time.perf_counter()
        std, scales = standardise(catalog)
        kinematic = std["obs"].shape[1] == 3
        R_kpc = np.hypot(catalog.x, catalog.y)
        r_out = np.asarray(r_grid, dtype=float) if r_grid is not None else radial_grid(R_kpc, std["w"], n_grid)
        ck = None if checkpoint_dir is None else Path(checkpoint_dir)
        if ck is not None and not resume and ck.exists():
            for old in ck.glob("member_*.pt"):
                old.unlink()
        timings["prepare_s"] = time.perf_counter() - t0

        flows, members, histories, member_info = [], [], [], []
        t_train = t_read = 0.0
        for k in range(int(ensemble)):
            idx = ens.bootstrap_indices(catalog.n, seed, k, int(ensemble))
            # validation stars: a random fraction of the *original* stars, so that a
            # bootstrap duplicate never sits in both the training and validation sets
            rng = np.random.default_rng([int(seed), k, 7])
            n_val_orig = int(round(val_fraction * catalog.n)) if catalog.n >= 50 else 0
            first = rng.permutation(catalog.n)
            is_val = np.zeros(catalog.n, bool)
            is_val[first[:n_val_orig]] = True
            perm = first if int(ensemble) == 1 else rng.permutation(idx)
            tr, va = perm[~is_val[perm]], perm[is_val[perm]]
            n_val = len(va)

            def kd(sel):
                obs = torch.as_tensor(std["obs"][sel], dtype=dtype, device=dev)
                wt = torch.as_tensor(std["w"][sel], dtype=dtype, device=dev)
                ve = None if std["verr"] is None else torch.as_tensor(std["verr"][sel], dtype=dtype, device=dev)
                return StarData(obs, h, wt, ve)

            h = bandwidths(std["obs"][tr], std["w"][tr], bandwidth_factor)
            torch.manual_seed(int(seed) * 1009 + k)
            flow = SphericalFlow(
                kinematic=kinematic, inner=inner, anisotropy=beta_model,
                length_scale=scales["L"], **asdict(fcfg),
            ).to(device=dev, dtype=dtype)
            trainer = Trainer(
                flow, kd(tr), kd(va) if n_val else None, tcfg, seed=int(seed) * 7919 + k,
                checkpoint=None if ck is None else ck / f"member_{k}.pt", progress=progress,
                desc=f"flow {k + 1}/{ensemble}", fingerprint=fingerprint(std["obs"][tr], std["w"][tr], h),
            )
            t1 = time.perf_counter()
            hist = trainer.run(resume=resume)
            t_train += time.perf_counter() - t1
            t1 = time.perf_counter()
            prof = flow_profiles(flow, r_out, scales["L"], scales["V"])
            t_read += time.perf_counter() - t1
            last = hist["loss"][-25:]
            member_info.append({
                "member": k, "steps": trainer.step, "best_step": trainer.best_step, "early_stopped": trainer.step < tcfg.steps,
                "final_train_loss": float(np.mean(last)) if last else None,
                "final_val_loss": None if trainer.val is None else float(trainer.best_val),
                "bandwidths": h.tolist(), "rollbacks": len(hist["events"]), "train_wall_s": trainer.wall,
                "cusp_c": None if flow.cusp_power() is None else float(flow.cusp_power().detach()),
            })
            flows.append(flow)
            members.append(prof)
            histories.append(hist)
        timings["train_s"] = t_train
        timings["readout_s"] = t_read
        keys = ["nu", "sigma_r", "beta", "M", "rho", "dlnnu_dlnr"] if kinematic else ["nu", "dlnnu_dlnr"]
        profile = ens.band_profiles(members, keys)
        jband = None
        if distance is not None and kinematic:
            t1 = time.perf_counter()
            jband = ens.j_factor_band(members, float(distance))
            timings["jfactor_s"] = time.perf_counter() - t1
        timings["total_s"] = time.perf_counter() - t_all
    finally:
        torch.set_num_threads(old_threads)

    summary = {
        "dsphnf_version": __version__,
        "versions": {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
                     "torchdiffeq": _version("torchdiffeq")},
        "source": str(getattr(catalog, "source", "<memory>")),
        "n_stars": int(catalog.n),
        "n_eff": float(np.sum(std["w"])),
        "kinematic": kinematic,
        "settings": {
            "anisotropy": beta_model.spec(),
            "inner": inner, "ensemble": int(ensemble), "seed": int(seed), "device": str(dev),
            "dtype": str(dtype).replace("torch.", ""), "bandwidth_factor": bandwidth_factor,
            "val_fraction": val_fraction, "fast_mode": fast_mode(), "threads": torch.get_num_threads() if not threads else threads,
            "flow": asdict(fcfg), "train": tcfg.to_dict(),
            "grid": "log-spaced over the 2nd-98th weighted percentile of R" if r_grid is None else "user",
        },
        "scales": scales,
        "timings_s": timings,
        "members": member_info,
        "final_train_loss": float(np.mean([m["final_train_loss"] for m in member_info])),
        "final_val_loss": (None if member_info[0]["final_val_loss"] is None
                           else float(np.mean([m["final_val_loss"] for m in member_info]))),
    }
    if distance is not None:
        summary["distance_kpc"] = float(distance)
    if jband is not None:
        summary["jfactor"] = jband
        if "log10_J" in jband:
            summary["log10_J_0.5deg"] = jband["log10_J"]
            summary["log10_J_0.5deg_band68"] = [jband["log10_J_lo"], jband["log10_J_hi"]]
            summary["log10_J_0.5deg_band95"] = [jband["log10_J_lo95"], jband["log10_J_hi95"]]
    data = {"x": np.asarray(catalog.x, float), "y": np.asarray(catalog.y, float), "w": std["w"]}
    if kinematic:
        data["vz"] = np.asarray(catalog.vz, float) - scales["v_sys"]
        if catalog.vz_err is not None:
            data["verr"] = np.asarray(catalog.vz_err, float)
    return FitResult(profile, members, summary, flows, histories, scales, data)


def _version(name: str) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # pragma: no cover
        return "unknown"
