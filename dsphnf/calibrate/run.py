"""Running a calibration: one :func:`~dsphnf.executor.run_grid` task per realisation and method, then the files.

Each task (:func:`calibration_task`) draws its mock, fits it and returns only
its rows of calibration.csv; the rows are stored in ``OUT/tasks/`` as they
arrive, so the same :func:`calibrate` call resumes.
"""
from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import FitError
from ..executor import TASK_THREADS, ExecutorSpec, GridRun, run_grid
from ..outputs import atomic_file, write_json
from ..plotting import save_figure
from ..provenance import cpu_label, machine_tally, software_versions
from ..result import band_columns
from .report import plot_coverage
from .score import (BETA_COLUMNS, CALIBRATION_COLUMNS, COVERAGE_COLUMNS, RADII_OVER_RHALF, coverage, score_profile,
                    versus_start)
from .spec import (CalibrationError, CalibrationSpec, FitSettings, FlowSettings, MockSource, ProfileSettings,
                   StartSettings)

__all__ = ["calibration_task", "Calibration", "calibrate"]


def _fit_profile(fit: FitSettings, catalog, radii: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """rho(r), M(<r) and beta(r) with their bands at ``radii`` [kpc] (NaN where the baseline's radial grid does not
    reach)."""
    if isinstance(fit, (FlowSettings, StartSettings)):
        return _flow_profile(fit, catalog, radii, seed)
    if isinstance(fit, ProfileSettings):
        return _profile_bands(fit, catalog, radii)
    from ..baseline import fit_baseline

    res = fit_baseline(catalog, fit.anisotropy, fit.halo, losvd=fit.losvd, max_steps=fit.max_steps,
                       nwalkers=fit.nwalkers, seed=seed, progress=False)
    grid = res.artefacts.likelihood.proj.r  # profile_at refuses radii outside the projector's grid
    inside = (radii >= grid[0]) & (radii <= grid[-1])
    part = res.artefacts.profile_at(radii[inside], seed=seed) if inside.any() else {}
    profile = {"r": radii}
    for key in (*band_columns("rho"), *band_columns("M"), *BETA_COLUMNS[1:6]):
        profile[key] = np.full(radii.size, np.nan)
        if key in part:
            profile[key][inside] = part[key]
    return profile


def _flow_profile(fit: FlowSettings | StartSettings, catalog, radii: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """rho(r) of a flow fit (or of its untrained start) at ``radii`` [kpc], read out there.

    At the grid's :data:`~dsphnf.executor.TASK_THREADS` torch thread, not the
    batched trainer's probe (whose choice depends on the machine's load), so
    that a realisation's fit is the same on every run and executor.
    """
    from ..flows import FitOptions, FlowConfig, TrainConfig, fit_flow

    train = None if fit.nu_mean == "none" else TrainConfig(nu_mean=fit.nu_mean)  # None: fit_flow's defaults
    res = fit_flow(catalog, fit.anisotropy, ensemble=fit.ensemble, steps=fit.steps, seed=seed,
                   progress=False, options=FitOptions(r_grid=tuple(radii), threads=TASK_THREADS,
                                                      warm_start=fit.warm_start, centre=fit.centre),
                   train_config=train, flow_config=FlowConfig(velocity=fit.velocity))
    profile = dict(res.profile)
    if not np.allclose(profile["r"], radii, rtol=1e-6):  # the read-out inverts r(u) numerically
        raise FitError("the flow read-out did not return the requested radii")
    profile["r"] = radii
    said = res.summary["diagnostics"].get("beta_constrained")  # the fit's statement, at these radii
    if said is not None:
        profile["beta_constrained"] = np.asarray(said["constrained"], dtype=float)
    return profile


def _profile_bands(fit: ProfileSettings, catalog, radii: np.ndarray) -> dict[str, np.ndarray]:
    """rho(r) and M(<r) at the maximum of the baseline's likelihood, with profile-likelihood bands, at ``radii``
    [kpc]."""
    from ..baseline.fit import likelihood_for, usable_stars
    from ..baseline.profile_likelihood import profile_bands

    catalog, _ = usable_stars(catalog)
    return profile_bands(likelihood_for(catalog, fit.anisotropy, fit.halo, losvd=fit.losvd), radii,
                         quantities=("rho", "M"))


def calibration_task(*, source: MockSource, stars: int, r_half: float, realisation: int, seed: int,
                     fit: FitSettings) -> dict[str, Any]:
    """Draw realisation ``realisation`` (random seed ``seed``), fit it and score it (one task of the grid).

    Returns
    -------
    dict
        ``rows`` (:data:`CALIBRATION_COLUMNS`), ``fit_s`` (fit wall time [s]),
        ``failed`` (None, or the one-line FitError of a fit that failed: NaN rows)
        and ``machine`` (:func:`dsphnf.provenance.cpu_label` of the process that fitted it).
    """
    mock = source.draw(stars, seed)
    radii = np.asarray(RADII_OVER_RHALF) * r_half
    t0 = time.perf_counter()
    failed = None
    try:
        profile = _fit_profile(fit, mock.catalog, radii, seed)
    except FitError as exc:
        failed = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        profile = {"r": radii, **{k: np.full(radii.size, np.nan) for k in ("rho", "rho_lo", "rho_hi", "M")}}
    fit_s = time.perf_counter() - t0
    rows = [{"realisation": realisation, "seed": seed, **row}
            for row in score_profile(fit.method, profile, mock.truth, radii, r_half, fit.banded)]
    return {"rows": rows, "fit_s": fit_s, "failed": failed, "machine": cpu_label()}


@dataclass(frozen=True)
class Calibration:
    """Outcome of :func:`calibrate`: the rows, the coverage table and how the grid ran.

    ``fit_s`` maps each method to its fits' wall times [s] (this run's and
    resumed ones); ``failed`` maps task keys to the FitError of failed fits;
    ``unbanded`` lists the methods without bands (NaN coverage).
    """

    spec: CalibrationSpec
    rows: list[dict[str, Any]]
    coverage: list[dict[str, Any]]
    grid: GridRun
    fit_s: dict[str, list[float]]
    failed: dict[str, str]
    unbanded: tuple[str, ...]
    folder: Path

    @property
    def without_fit(self) -> int:
        """Rows with no log10 error: failed fits, or radii outside a baseline's radial grid or the truth table."""
        return sum(1 for r in self.rows if not np.isfinite(r["log10_err"]))

    def summary(self) -> dict[str, Any]:
        """JSON-ready record written to summary.json."""
        times = {m: {"n": len(t), "mean_s": float(np.mean(t)), "max_s": float(np.max(t))}
                 for m, t in self.fit_s.items() if t}
        return {"spec": self.spec.describe(), "r_half_from": "projected half-number radius of the true tracer",
                "z": "log10(rho_fit/rho_true) / half-width of the 68% band in log10",
                "coverage_error": "binomial sqrt(p(1-p)/n)", "unbanded": list(self.unbanded),
                "failed": self.failed, "n_rows": len(self.rows), "n_rows_without_fit": self.without_fit,
                "fit_wall_s": times, "versus_start": versus_start(self.rows), "grid": self.grid.summary(),
                "machines": machine_tally(v.get("machine") for v in self.grid.results.values()),
                "versions": software_versions()}


def calibrate(spec: CalibrationSpec, out: str | Path, *, executor: ExecutorSpec | None = None,
              progress: bool | None = None) -> Calibration:
    """Run (or resume) a calibration and write its files into ``out``.

    Parameters
    ----------
    spec : CalibrationSpec
        From :func:`calibration_spec`.
    out : path
        Output folder; ``out/tasks/`` keeps every finished fit's rows, so the same call resumes.
    executor : ExecutorSpec or None
        Where the fits run (:func:`dsphnf.executor.executor_from`); None: in this process.
    progress : bool or None
        One bar for the grid (None: on a terminal).

    Returns
    -------
    Calibration
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CalibrationError(f"{out}: exists and is not a folder")
    common = {"source": spec.source, "stars": spec.stars, "r_half": spec.r_half}
    grid = run_grid(calibration_task, spec.tasks(), executor=executor, common=common, store=out / "tasks",
                    progress=progress, desc="fits")
    rows = [row for value in grid.results.values() for row in value["rows"]]
    fit_s = {m: [v["fit_s"] for k, v in grid.results.items() if k.endswith("_" + m)] for m in spec.methods}
    failed = {k: v["failed"] for k, v in grid.results.items() if v["failed"]}
    unbanded = tuple(f.method for f in spec.fits if not f.banded)
    cal = Calibration(spec, rows, coverage(rows), grid, fit_s, failed, unbanded, out)
    fig = plot_coverage(cal)  # everything is computed before the first file is written, each file atomically
    _write_table(out / "calibration.csv", rows, CALIBRATION_COLUMNS)
    _write_table(out / "coverage.csv", cal.coverage, COVERAGE_COLUMNS)
    save_figure(fig, out / "coverage.png")
    write_json(out / "summary.json", cal.summary())
    return cal


def _write_table(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """CSV with a header, numbers as %.8g (NaN as nan), atomically."""
    cell = lambda v: v if isinstance(v, str) else (str(v) if isinstance(v, (int, np.integer)) else f"{float(v):.8g}")
    with atomic_file(path) as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(columns)
        w.writerows([cell(row.get(c, math.nan)) for c in columns] for row in rows)  # rows stored before beta_*
