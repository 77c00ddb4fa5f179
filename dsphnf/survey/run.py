"""Running a survey: one :func:`~dsphnf.executor.run_grid` task per galaxy and method, then the table.

Each task (:func:`survey_task`) reads its galaxy's catalogue with the
survey's switches, fits it (a flow fit at the grid's
:data:`~dsphnf.executor.TASK_THREADS` torch thread, whatever the executor:
with the count left to the batched trainer's probe, which depends on the
machine's load, a rerun could differ in the last digits, and an unconverged
flow then by a few hundredths of a dex) and returns one row of the survey table; rows are
stored in ``OUT/tasks/`` as they arrive, so the same :func:`survey` call
resumes and a finished galaxy is kept. A flow's row there also keeps its
members' profiles (:func:`member_profiles`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..catalog import Catalog
from ..errors import FitError
from ..executor import TASK_THREADS, ExecutorSpec, GridRun, run_grid
from ..galaxies import GALAXIES, Galaxy
from ..outputs import write_json
from .report import plot_literature, write_comparison
from .quantities import (J_THETA_DEG, QUANTITIES, baseline_quantities, flow_diagnostics, flow_foreground,
                         flow_j_edge_deg, flow_quantities)
from .spec import SurveyOptions, SurveySpec
from .table import write_table

__all__ = ["survey_task", "survey_catalog", "photometric_tracer_priors", "baseline_losvd", "member_profiles", "Survey",
           "survey", "failed"]


def survey_catalog(galaxy: Galaxy, options: SurveyOptions, root: str | None = None) -> Catalog:
    """The stars a survey fits for ``galaxy`` under ``options`` (radius, membership, velocity errors)."""
    mixture = options.membership.startswith("mixture")
    cat = galaxy.read(root, radius=options.radius, min_member=0.0 if options.membership == "mixture-all" else None)
    if mixture:  # unit weights: the likelihood's foreground mixture decides who is a member
        cat = replace(cat, p_member=None, meta=dict(cat.meta))
    if options.velocity_errors == "ignored":
        cat = replace(cat, vz_err=None, meta=dict(cat.meta))
    return cat


def _theta_max_deg(galaxy: Galaxy, catalog: Catalog, options: SurveyOptions, root: str | None) -> float:
    """Angle [deg] on the sky of the farthest star fitted (its circular radius, not the elliptical one)."""
    sky = catalog if options.radius == "circular" else survey_catalog(galaxy, replace(options, radius="circular"),
                                                                      root)
    return float(np.rad2deg(np.max(sky.R) / galaxy.distance_kpc))


def photometric_tracer_priors(half_light_kpc: float) -> dict[str, Any]:
    """Baseline priors fixing the stellar density to a Plummer sphere of projected half-light radius ``half_light_kpc``.

    The baseline's Zhao tracer with gamma* = 0, beta* = 5 (alpha* = 2) is a
    Plummer sphere, whose projected half-number radius is its scale r*; with
    nu(r) fixed, the positions' term of the likelihood is a constant and only
    the velocities, given each star's radius, constrain the halo.

    >>> p = photometric_tracer_priors(0.223)
    >>> p["gamma_star"].describe(), p["beta_star"].describe(), round(10 ** p["log10_rstar"].a, 3)
    ('fixed 0', 'fixed 5', 0.223)
    """
    from ..baseline.priors import Prior

    return {"log10_rstar": Prior("fixed", float(np.log10(half_light_kpc))), "gamma_star": Prior("fixed", 0.0),
            "beta_star": Prior("fixed", 5.0)}


def _fit(fit: Any, catalog: Catalog, galaxy: Galaxy, options: SurveyOptions, seed: int):
    """Run one fit of the survey; returns the Result."""
    from ..foreground import Foreground

    foreground = Foreground.broad(catalog.vz) if options.membership.startswith("mixture") else None
    if fit.method == "flow":  # at the grid's one thread per task, not a probe's choice: reproducible rows
        # centred on the members (FlowSettings.centre): the survey's slope, J within theta_max and per-draw
        # distance values are banded around the members' mean, so its profile values are too (one estimator)
        from ..flows import FitOptions, FlowConfig, fit_flow

        return fit_flow(catalog, fit.anisotropy, ensemble=fit.ensemble, steps=fit.steps, seed=seed,
                        distance=galaxy.distance_kpc, progress=False, foreground=foreground,
                        distance_err=galaxy.distance_err_kpc if options.distance == "per-draw" else None,
                        options=FitOptions(threads=TASK_THREADS, centre=fit.centre),
                        flow_config=FlowConfig(velocity=fit.velocity))
    from ..baseline import fit_baseline

    priors = photometric_tracer_priors(galaxy.half_light_kpc) if options.tracer == "photometric" else None
    return fit_baseline(catalog, fit.anisotropy, fit.halo, losvd=fit.losvd, max_steps=fit.max_steps,
                        nwalkers=fit.nwalkers, seed=seed, progress=False, foreground=foreground, n_draws=100,
                        priors=priors)


def survey_task(*, galaxy: str, fit: Any, options: SurveyOptions, seed: int, n_draws: int,
                root: str | None = None) -> dict[str, Any]:
    """Fit one galaxy with one method (one task of the grid); returns its row of the survey table."""
    t0 = time.perf_counter()
    g = GALAXIES[galaxy]
    catalog = survey_catalog(g, options, root)
    theta_max = _theta_max_deg(g, catalog, options, root)
    try:
        result = _fit(fit, catalog, g, options, seed)
    except FitError as exc:  # e.g. an unphysical read-out: the galaxy's row says so, the survey goes on
        return _failed_row(g, fit, catalog, theta_max, str(exc), time.perf_counter() - t0)
    isotropic = result.summary["settings"]["anisotropy"] == "isotropic"
    if fit.method == "baseline":
        q = baseline_quantities(result, g.half_light_kpc, g.distance_kpc, g.distance_err_kpc,
                                options.distance == "per-draw", theta_max, n_draws, seed)
        s = result.summary["diagnostics"]["sampler"]
        converged, note = bool(s["converged"]), f"{s['n_steps']} steps x {s['n_walkers']} walkers"
        diag = {"converged": converged, "n_steps": int(s["n_steps"]), "n_walkers": int(s["n_walkers"]),
                "losvd": baseline_losvd(result)}
        extra: dict[str, Any] = {}
    else:
        q = flow_quantities(result, g.half_light_kpc, isotropic, g.distance_kpc, theta_max)
        diag = flow_diagnostics(result)
        q.update(flow_foreground(result))
        stops = ", ".join(f"{r} {n}" for r, n in diag["stop_reasons"].items())
        converged = diag["converged"]
        diag["j_edge_deg"] = flow_j_edge_deg(result, g.distance_kpc)
        note = f"{fit.ensemble} flows x at most {fit.steps} steps ({min(diag['steps'])}-{max(diag['steps'])}; {stops})"
        extra = {"member_profiles": member_profiles(result)}
    n_members = float(catalog.weights.sum())
    if "f_fg" in q:
        n_members = float((1.0 - q["f_fg"]) * catalog.n)
    return {"galaxy": g.key, "method": fit.method, "anisotropy": result.summary["settings"]["anisotropy"],
            "distance_kpc": g.distance_kpc, "distance_err_kpc": g.distance_err_kpc, "R_half_kpc": g.half_light_kpc,
            "n_stars": int(catalog.n), "n_members": n_members, **q, "theta_max_deg": theta_max,
            "j_beyond_data": bool(theta_max < J_THETA_DEG),
            "converged": converged, "fit_note": note,
            "diagnostics": diag, **extra, "wall_s": time.perf_counter() - t0}


def baseline_losvd(result: Any) -> dict[str, Any]:
    """The baseline's velocity distribution: its shape, the stars' kurtosis about the best fit and, where it
    was free, the fitted kurtosis (``kurtosis``, or ``kurtosis_inner`` and ``kurtosis_outer``) with its 68 % band
    (summary.json of the survey)."""
    from ..baseline.losvd import LOSVD_PARAMETERS

    out = dict(result.summary["diagnostics"]["losvd"])
    post = result.summary["diagnostics"]["parameters"]
    for name in LOSVD_PARAMETERS[out["shape"]]:
        k = post[name]
        out.update({name: k["median"], f"{name}_lo": k["lo"], f"{name}_hi": k["hi"]})
    return out


def member_profiles(result: Any) -> list[dict[str, list[float]]]:
    """Each flow member's tabulated read-out (r [kpc], rho [Msun/kpc^3], M [Msun], beta where present).

    Kept in the flow rows of the task store (``OUT/tasks/``), not in the
    table: quantities derived from the members (a J-factor with another
    angle or continuation, another radius) can be recomputed without
    refitting.
    """
    keys = ("r", "rho", "M", "beta")
    return [{k: np.asarray(m[k], dtype=float).tolist() for k in keys if k in m}
            for m in getattr(result.artefacts, "members", None) or []]


def _failed_row(g: Galaxy, fit: Any, catalog: Catalog, theta_max: float, why: str, wall_s: float) -> dict[str, Any]:
    """The row of a fit that raised FitError: every quantity NaN, ``fit_note`` 'failed: <why>'."""
    nan = {key + k: np.nan for key in QUANTITIES for k in ("", "_lo", "_hi")}
    return {"galaxy": g.key, "method": fit.method, "anisotropy": fit.anisotropy.spec(), "distance_kpc": g.distance_kpc,
            "distance_err_kpc": g.distance_err_kpc, "R_half_kpc": g.half_light_kpc, "n_stars": int(catalog.n),
            "n_members": float(catalog.weights.sum()), **nan, "n_j_left_out": 0, "theta_max_deg": theta_max,
            "j_beyond_data": bool(theta_max < J_THETA_DEG), "converged": False, "fit_note": f"failed: {why}",
            "diagnostics": {"failed": why}, "wall_s": wall_s}


def failed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows whose fit failed (their ``fit_note`` starts with 'failed:')."""
    return [r for r in rows if str(r.get("fit_note", "")).startswith("failed:")]


@dataclass(frozen=True)
class Survey:
    """Outcome of :func:`survey`: the rows (one per galaxy and method), the grid run and the folder."""

    spec: SurveySpec
    rows: list[dict[str, Any]]
    grid: GridRun
    folder: Path


def survey(spec: SurveySpec, out: str | Path, *, executor: ExecutorSpec | None = None,
           progress: bool | None = None, plots: bool = True) -> Survey:
    """Run the survey's grid (resumable from ``out/tasks``) and write its files into ``out``.

    survey.ecsv (units in the header), survey.csv, literature.csv (pulls
    against the published values), literature.png (with ``plots``) and
    summary.json.

    A fit that raises :class:`~dsphnf.errors.FitError` (e.g. a flow whose
    read-out is unphysical) gives a row of NaN whose ``fit_note`` starts with
    'failed:' (see :func:`failed`); the other galaxies go on. It is stored
    like a finished fit: the fits are deterministic, so a rerun would fail alike.

    Raises
    ------
    TaskError
        A task crashed otherwise (one line naming galaxy and method); finished fits stay in ``out/tasks``.
    """
    folder = Path(out)
    grid = run_grid(survey_task, spec.tasks(), executor=executor, common=spec.common(), store=folder / "tasks",
                    progress=progress, desc="galaxies")
    rows = list(grid.results.values())
    write_table(rows, folder, meta={"settings": spec.describe()})
    write_comparison(rows, folder)
    if plots:
        plot_literature(rows, folder / "literature.png")
    write_json(folder / "summary.json", {"settings": spec.describe(), "grid": grid.summary(),
                                         "wall_s_per_fit": {k: r["wall_s"] for k, r in grid.results.items()},
                                         "diagnostics": {k: r.get("diagnostics") for k, r in grid.results.items()}})
    return Survey(spec, rows, grid, folder)
