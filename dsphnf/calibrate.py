"""Calibration: do a method's 68 % and 95 % bands on rho(r) cover the truth as often as they claim?

:func:`calibrate` draws ``realisations`` independent mocks of one known model
(:func:`dsphnf.mocks.draw_mock`; realisation ``i`` uses the random seed
``seed + i`` for the mock *and* for the fit), fits each with every chosen
method (:func:`dsphnf.flows.fit_flow`, :func:`dsphnf.baseline.fit_baseline`)
and scores the fitted dark-matter density at five radii,
:data:`RADII_OVER_RHALF` x R_half, where R_half [kpc] is the projected
half-number radius of the *true* tracer (:func:`projected_half_radius` of the
model's nu(r), not the median radius of a sample), so every realisation is
scored at the same radii. Per realisation, method and radius:

``log10_err`` = log10(rho_fit / rho_true), with rho_true from the mock's truth table;
``z`` = log10_err / w68, w68 = (log10 rho_hi - log10 rho_lo) / 2 the half-width of the 68 % band in log10;
``in68``, ``in95`` = 1 when rho_lo <= rho_true <= rho_hi (resp. the 95 % band), else 0.

A method without bands (a single flow, ``ensemble=1``: its "band" is the fit
itself) is *not* reported as covering: its ``z``, ``in68`` and ``in95`` are
NaN. Coverage per method and radius (:func:`coverage`) is the fraction of
realisations inside each band with the binomial standard error
sqrt(p (1 - p) / n) (zero when p is 0 or 1: read it with n), beside the mean
and spread of z (a calibrated method has mean ~0, spread ~1, coverage ~0.68
and ~0.95).

Each (realisation, method) is one task of :func:`dsphnf.executor.run_grid`
(locally or on Ray) whose small table of rows is stored in ``OUT/tasks/``;
the same call resumes (finished fits are loaded, not rerun), and a larger
``realisations`` reuses the fits of a smaller one. A fit that raises a
:class:`~dsphnf.errors.FitError` gives NaN rows and is counted as failed.
Outputs (each written atomically once every fit is done): ``calibration.csv``
(:data:`CALIBRATION_COLUMNS`), ``coverage.csv`` (:data:`COVERAGE_COLUMNS`),
``coverage.png`` (:func:`plot_coverage`) and ``summary.json``.
"""
from __future__ import annotations

import csv
import inspect
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence, Union

import numpy as np

from .anisotropy import Anisotropy, AnisotropySpec, anisotropy_from, require_form
from .errors import DsphnfError, FitError
from .executor import ExecutorSpec, GridRun, run_grid
from .outputs import atomic_file, write_json
from .result import MIN_STARS

__all__ = [
    "RADII_OVER_RHALF", "MIN_REALISATIONS", "NOMINAL68", "NOMINAL95", "CALIBRATION_COLUMNS", "COVERAGE_COLUMNS",
    "CalibrationError", "MockSource", "FlowSettings", "BaselineSettings", "CalibrationSpec", "Calibration",
    "calibration_spec", "projected_half_radius", "score_profile", "calibration_task", "coverage", "calibrate",
    "plot_coverage", "format_coverage",
]

#: Radii of the table, in units of R_half (projected half-number radius of the true tracer).
RADII_OVER_RHALF: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
#: Fewest realisations a coverage can be computed from.
MIN_REALISATIONS = 2
#: Nominal coverage of the two bands.
NOMINAL68, NOMINAL95 = 0.6827, 0.95
#: Columns of calibration.csv (rho in Msun/kpc^3, r in kpc; in68/in95 are 1, 0 or NaN).
CALIBRATION_COLUMNS = ("realisation", "seed", "method", "r_over_rhalf", "r", "rho_true", "rho", "rho_lo", "rho_hi",
                       "rho_lo95", "rho_hi95", "log10_err", "z", "in68", "in95")
#: Columns of coverage.csv (n_fits: realisations; n_banded: those with a band and a truth there).
COVERAGE_COLUMNS = ("method", "r_over_rhalf", "r", "n_fits", "n_banded", "cover68", "cover68_err", "cover95",
                    "cover95_err", "z_mean", "z_std", "log10_err_mean", "log10_err_rms")
_METHODS = ("flow", "baseline")


class CalibrationError(DsphnfError, ValueError):
    """Bad calibration settings (one line)."""


# ---------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class MockSource:
    """What the mocks are drawn from: a named Gaia Challenge ``model``, or ``halo``/``tracer`` spec strings.

    ``anisotropy`` is the mock's given beta(r); the spec strings are handed to
    :func:`dsphnf.mocks.draw_mock` as they are (it parses them).
    """

    model: str | None = None
    halo: str | None = None
    tracer: str | None = None
    anisotropy: Anisotropy | None = None

    def label(self) -> str:
        """Human-readable description, e.g. ``'PlumCuspIso'`` or ``'halo burkert:1e8,0.5, tracer plummer:0.25'``."""
        parts = [self.model] if self.model else []
        parts += [f"{k} {v}" for k, v in (("halo", self.halo), ("tracer", self.tracer)) if v]
        if self.anisotropy is not None:
            parts.append(f"anisotropy {self.anisotropy.spec()}")
        return ", ".join(parts)

    def draw(self, n: int, seed: int):
        """``draw_mock(model, n, seed, halo=..., tracer=..., anisotropy=...)`` (only the keywords given)."""
        from .mocks import draw_mock

        extra = {k: v for k, v in (("halo", self.halo), ("tracer", self.tracer), ("anisotropy", self.anisotropy))
                 if v is not None}
        missing = [k for k in extra if k not in inspect.signature(draw_mock).parameters]
        if missing:
            raise CalibrationError(f"draw_mock of this dsphnf does not take {', '.join('--' + k for k in missing)} "
                                   "yet; give a named MODEL")
        return draw_mock(self.model, n, seed, **extra)


@dataclass(frozen=True)
class FlowSettings:
    """Flow fits: ``fit_flow(catalog, anisotropy, ensemble=ensemble, steps=steps)``."""

    anisotropy: AnisotropySpec
    ensemble: int
    steps: int
    method: ClassVar[str] = "flow"

    @property
    def banded(self) -> bool:
        """Whether the fit has bands (an ensemble of at least two flows)."""
        return self.ensemble >= 2


@dataclass(frozen=True)
class BaselineSettings:
    """Baseline fits: ``fit_baseline(catalog, anisotropy, max_steps=max_steps, nwalkers=nwalkers)`` (Zhao halo)."""

    anisotropy: AnisotropySpec
    max_steps: int
    nwalkers: int
    method: ClassVar[str] = "baseline"
    banded: ClassVar[bool] = True


FitSettings = Union[FlowSettings, BaselineSettings]


@dataclass(frozen=True)
class CalibrationSpec:
    """Parsed settings of a calibration (build with :func:`calibration_spec`).

    Attributes
    ----------
    source : MockSource
    realisations, stars : int
        Mocks and stars per mock.
    fits : tuple of FlowSettings / BaselineSettings
        One per method.
    r_half : float
        Projected half-number radius [kpc] of the true tracer.
    seed : int
        Base random seed: realisation ``i`` uses ``seed + i``.
    """

    source: MockSource
    realisations: int
    stars: int
    fits: tuple[FitSettings, ...]
    r_half: float
    seed: int = 0

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(f.method for f in self.fits)

    @property
    def radii(self) -> np.ndarray:
        """The scored radii [kpc]."""
        return np.asarray(RADII_OVER_RHALF) * self.r_half

    def tasks(self) -> dict[str, dict[str, Any]]:
        """Per-task arguments of :func:`calibration_task`, keyed ``r0003_flow``."""
        return {f"r{i:04d}_{fit.method}": {"realisation": i, "seed": self.seed + i, "fit": fit}
                for i in range(self.realisations) for fit in self.fits}

    def describe(self) -> dict[str, Any]:
        """JSON-ready record of the settings."""
        fits = {f.method: {k: (v.spec() if hasattr(v, "spec") else v) for k, v in vars(f).items()} for f in self.fits}
        return {"source": self.source.label(), "realisations": self.realisations, "stars": self.stars,
                "seed": self.seed, "seed_rule": "realisation i: mock and fit use seed + i", "fits": fits,
                "r_half_kpc": self.r_half, "radii_over_r_half": list(RADII_OVER_RHALF),
                "radii_kpc": self.radii.tolist()}


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise CalibrationError(message)


def _integer(value: Any, name: str, least: int) -> int:
    _need(not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= least,
          f"{name} must be an integer of at least {least}, got {value!r}")
    return int(value)


def _source(model: str | None, halo: str | None, tracer: str | None, anisotropy: Any) -> MockSource:
    from .mocks import get_model

    _need(not (model and (halo or tracer)), "give a MODEL or --halo/--tracer, not both")
    _need(bool(model or halo or tracer), "give a MODEL (e.g. PlumCuspIso) or --halo SPEC --tracer SPEC")
    beta = None if anisotropy is None else require_form(anisotropy_from(anisotropy), ("given:*",), "a mock")
    return MockSource(get_model(model).name if model else None, halo, tracer, beta)


def _fit_settings(methods: str, fit_anisotropy: Any, ensemble: int, steps: int | None, max_steps: int,
                  nwalkers: int) -> tuple[FitSettings, ...]:
    from .baseline.model import BASELINE_FORMS
    from .flows.cnf import FLOW_FORMS
    from .flows.settings import default_steps

    chosen = {"flow": ("flow",), "baseline": ("baseline",), "both": _METHODS}.get(str(methods).strip().lower())
    _need(chosen is not None, f"unknown --method {methods!r}: use flow, baseline or both")
    beta = anisotropy_from(fit_anisotropy)
    fits: list[FitSettings] = []
    if "flow" in chosen:
        fits.append(FlowSettings(require_form(beta, FLOW_FORMS, "the flow fit"), _integer(ensemble, "--ensemble", 1),
                                 default_steps() if steps is None else _integer(steps, "--steps", 1)))
    if "baseline" in chosen:  # the limits of fit_baseline, checked before anything runs
        fits.append(BaselineSettings(require_form(beta, BASELINE_FORMS, "the baseline"),
                                     _integer(max_steps, "--max-steps", 10), _integer(nwalkers, "--walkers", 4)))
    return tuple(fits)


def calibration_spec(model: str | None = None, *, halo: str | None = None, tracer: str | None = None,
                     anisotropy: Any = None, realisations: int = 20, stars: int = 1000, methods: str = "both",
                     ensemble: int = 8, fit_anisotropy: Any = "isotropic", steps: int | None = None,
                     max_steps: int = 20000, nwalkers: int = 32, seed: int = 0) -> CalibrationSpec:
    """Parse and check calibration settings once; draws one small mock to check the model.

    Parameters
    ----------
    model : str or None
        Gaia Challenge model name (:data:`dsphnf.mocks.MODELS`), or None with ``halo``/``tracer``.
    halo, tracer : str or None
        Spec strings for :func:`dsphnf.mocks.draw_mock` (e.g. ``burkert:1e8,0.5``, ``plummer:0.25``).
    anisotropy : str, Anisotropy or None
        The mock's given beta(r) (None: the model's own).
    realisations, stars : int
        Mocks (>= 2) and stars per mock (>= 20).
    methods : {"flow", "baseline", "both"}
    ensemble, steps : int
        Flows per fit and training steps per flow (None: ``dsphnf fit``'s default).
    fit_anisotropy : str or Anisotropy
        The beta(r) the fits assume (default isotropic), in the grammar of :mod:`dsphnf.anisotropy`.
    max_steps, nwalkers : int
        Baseline emcee settings.
    seed : int
        Base random seed (>= 0); realisation ``i`` uses ``seed + i``.

    Raises
    ------
    CalibrationError, AnisotropyError, DsphnfError
        One line, for any malformed setting.

    Examples
    --------
    >>> spec = calibration_spec("plumcuspiso", realisations=2, stars=60, methods="flow", ensemble=2, steps=2)
    >>> spec.source.model, spec.methods, list(spec.tasks())
    ('PlumCuspIso', ('flow',), ['r0000_flow', 'r0001_flow'])
    >>> calibration_spec("PlumCuspIso", realisations=1)
    Traceback (most recent call last):
    ...
    dsphnf.calibrate.CalibrationError: --realisations must be an integer of at least 2, got 1
    """
    source = _source(model, halo, tracer, anisotropy)
    realisations = _integer(realisations, "--realisations", MIN_REALISATIONS)
    stars = _integer(stars, "--stars", MIN_STARS)
    seed = _integer(seed, "--seed", 0)
    fits = _fit_settings(methods, fit_anisotropy, ensemble, steps, max_steps, nwalkers)
    probe = source.draw(MIN_STARS, seed)  # parses halo/tracer specs now, before anything is written
    return CalibrationSpec(source, realisations, stars, fits, projected_half_radius(probe.model.tracer.density), seed)


# ---------------------------------------------------------------------------- one realisation
def projected_half_radius(nu, r_lo: float = 1e-6, r_hi: float = 1e6) -> float:
    """Projected half-number radius R_half [kpc] of a spherical tracer density ``nu(r)`` [any normalisation].

    Solves N(R > R_half) = N / 2, with N(R' > R) = Int_R^inf 4 pi r^2 nu(r) sqrt(1 - R^2/r^2) dr
    (stars whose projected radius exceeds R) and N its value at R = 0.

    Examples
    --------
    >>> from dsphnf.profiles import tracer_zhao
    >>> round(projected_half_radius(tracer_zhao(0.3, 0.0, 5.0, 2.0).density), 6)  # Plummer: R_half = a
    0.3
    """
    from scipy.integrate import quad
    from scipy.optimize import brentq

    def outside(R: float) -> float:  # in ln r; sqrt(1 - R^2/r^2) -> 1 as R -> 0
        f = lambda u: 4.0 * math.pi * math.exp(3.0 * u) * float(nu(math.exp(u))) * math.sqrt(
            max(0.0, 1.0 - (R / math.exp(u)) ** 2))
        lo = math.log(R) if R > 0 else math.log(r_lo) - 20.0
        return quad(f, lo, math.log(r_hi) + 10.0, limit=400, epsabs=0.0, epsrel=1e-10)[0]

    total = outside(0.0)
    _need(math.isfinite(total) and total > 0, "the tracer density has no finite positive total number")
    root = brentq(lambda lnR: outside(math.exp(lnR)) / total - 0.5, math.log(r_lo), math.log(r_hi), xtol=1e-12)
    return math.exp(root)


def score_profile(method: str, profile: Mapping[str, np.ndarray], truth: Mapping[str, np.ndarray],
                  radii: Sequence[float], r_half: float, banded: bool = True) -> list[dict[str, Any]]:
    """Rows of calibration.csv (without realisation/seed) for one fitted profile.

    ``profile`` has ``r`` [kpc], ``rho``, ``M`` and the bands ``rho_lo``,
    ``rho_hi``, ``rho_lo95``, ``rho_hi95`` [Msun/kpc^3]; ``truth`` has ``r``
    and ``rho`` (read by :func:`dsphnf.compare.compare`, log-log interpolated).
    Without bands (``banded=False``, or a band of zero or non-finite width)
    ``z``, ``in68`` and ``in95`` are NaN.

    Examples
    --------
    >>> r = np.geomspace(0.05, 2.0, 20)
    >>> fit = {"r": r, "rho": 2e8 / r, "rho_lo": 1e8 / r, "rho_hi": 4e8 / r, "rho_lo95": 5e7 / r,
    ...        "rho_hi95": 8e8 / r, "M": r}
    >>> row = score_profile("flow", fit, {"r": r, "rho": 1e8 / r}, [0.5], r_half=0.5)[0]
    >>> round(row["log10_err"], 4), round(row["z"], 4), row["in68"], row["in95"]  # z = log10 2 / log10 2
    (0.301, 1.0, 1.0, 1.0)
    """
    from .compare import compare

    radii = np.asarray(radii, dtype=float)
    rows = []
    for c in compare({method: profile}, truth=truth, radii=radii):
        width = 0.5 * (math.log10(c["rho_hi"]) - math.log10(c["rho_lo"])) if c["rho_lo"] > 0 else math.nan
        ok = banded and math.isfinite(width) and width > 0 and math.isfinite(c["log10_err"])
        row = {"method": method, "r_over_rhalf": c["r"] / r_half, "r": c["r"]}
        row.update({k: c[k] for k in ("rho_true", "rho", "rho_lo", "rho_hi", "rho_lo95", "rho_hi95", "log10_err")})
        row["z"] = c["log10_err"] / width if ok else math.nan
        row["in68"] = float(c["in68"]) if ok and c["in68"] is not None else math.nan
        row["in95"] = float(c["in95"]) if ok and c["in95"] is not None else math.nan
        rows.append(row)
    return rows


def _fit_profile(fit: FitSettings, catalog, radii: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """rho(r) with its bands at ``radii`` [kpc] (NaN where the baseline's radial grid does not reach)."""
    if isinstance(fit, FlowSettings):
        from .flows import FitOptions, fit_flow

        res = fit_flow(catalog, fit.anisotropy, ensemble=fit.ensemble, steps=fit.steps, seed=seed,
                       progress=False, options=FitOptions(r_grid=tuple(radii)))
        profile = dict(res.profile)
        if not np.allclose(profile["r"], radii, rtol=1e-6):  # the read-out inverts r(u) numerically
            raise FitError("the flow read-out did not return the requested radii")
        profile["r"] = radii
        return profile
    from .baseline import fit_baseline

    res = fit_baseline(catalog, fit.anisotropy, max_steps=fit.max_steps, nwalkers=fit.nwalkers, seed=seed,
                       progress=False)
    grid = res.artefacts.likelihood.proj.r  # profile_at refuses radii outside the projector's grid
    inside = (radii >= grid[0]) & (radii <= grid[-1])
    part = res.artefacts.profile_at(radii[inside], seed=seed) if inside.any() else {}
    profile = {"r": radii}
    for key in ("rho", "rho_lo", "rho_hi", "rho_lo95", "rho_hi95", "M"):
        profile[key] = np.full(radii.size, np.nan)
        if key in part:
            profile[key][inside] = part[key]
    return profile


def calibration_task(*, source: MockSource, stars: int, r_half: float, realisation: int, seed: int,
                     fit: FitSettings) -> dict[str, Any]:
    """Draw realisation ``realisation`` (random seed ``seed``), fit it and score it (one task of the grid).

    Returns
    -------
    dict
        ``rows`` (:data:`CALIBRATION_COLUMNS`), ``fit_s`` (fit wall time [s])
        and ``failed`` (None, or the one-line FitError of a fit that failed: NaN rows).
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
    return {"rows": rows, "fit_s": fit_s, "failed": failed}


# ---------------------------------------------------------------------------- coverage
def _binomial(flags: np.ndarray) -> tuple[float, float]:
    """Fraction of ones among finite flags and its binomial standard error (NaN, NaN without any)."""
    f = flags[np.isfinite(flags)]
    if f.size == 0:
        return math.nan, math.nan
    p = float(f.mean())
    return p, math.sqrt(p * (1.0 - p) / f.size)


def coverage(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Coverage of the 68 % and 95 % bands, and the mean and spread of z, per method and radius.

    Examples
    --------
    >>> rows = [{"method": "flow", "r_over_rhalf": 1.0, "r": 0.2, "in68": f, "in95": 1.0, "z": z,
    ...          "log10_err": 0.1 * z} for f, z in [(1.0, 0.5), (1.0, -0.5), (1.0, 0.2), (0.0, 1.5)]]
    >>> c = coverage(rows)[0]
    >>> c["n_banded"], c["cover68"], round(c["cover68_err"], 4), c["cover95"]  # sqrt(0.75 * 0.25 / 4)
    (4, 0.75, 0.2165, 1.0)
    """
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        for ratio in sorted({r["r_over_rhalf"] for r in rows if r["method"] == method}):
            sub = [r for r in rows if r["method"] == method and r["r_over_rhalf"] == ratio]
            col = {k: np.array([float(r[k]) for r in sub]) for k in ("in68", "in95", "z", "log10_err")}
            z = col["z"][np.isfinite(col["z"])]
            err = col["log10_err"][np.isfinite(col["log10_err"])]
            (p68, e68), (p95, e95) = _binomial(col["in68"]), _binomial(col["in95"])
            out.append({
                "method": method, "r_over_rhalf": ratio, "r": sub[0]["r"], "n_fits": len(sub),
                "n_banded": int(np.isfinite(col["in68"]).sum()), "cover68": p68, "cover68_err": e68,
                "cover95": p95, "cover95_err": e95,
                "z_mean": float(z.mean()) if z.size else math.nan,
                "z_std": float(z.std(ddof=1)) if z.size > 1 else math.nan,
                "log10_err_mean": float(err.mean()) if err.size else math.nan,
                "log10_err_rms": float(np.sqrt(np.mean(err**2))) if err.size else math.nan,
            })
    return out


# ---------------------------------------------------------------------------- the run
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

    def summary(self) -> dict[str, Any]:
        """JSON-ready record written to summary.json."""
        times = {m: {"n": len(t), "mean_s": float(np.mean(t)), "max_s": float(np.max(t))}
                 for m, t in self.fit_s.items() if t}
        return {"spec": self.spec.describe(), "r_half_from": "projected half-number radius of the true tracer",
                "z": "log10(rho_fit/rho_true) / half-width of the 68% band in log10",
                "coverage_error": "binomial sqrt(p(1-p)/n)", "unbanded": list(self.unbanded),
                "failed": self.failed, "fit_wall_s": times, "grid": self.grid.summary()}


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
    _write_table(out / "calibration.csv", rows, CALIBRATION_COLUMNS)
    _write_table(out / "coverage.csv", cal.coverage, COVERAGE_COLUMNS)
    plot_coverage(cal, out / "coverage.png")
    write_json(out / "summary.json", cal.summary())
    return cal


def _write_table(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """CSV with a header, numbers as %.8g (NaN as nan), atomically."""
    cell = lambda v: v if isinstance(v, str) else (str(v) if isinstance(v, (int, np.integer)) else f"{float(v):.8g}")
    with atomic_file(path) as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(columns)
        w.writerows([cell(row[c]) for c in columns] for row in rows)


# ---------------------------------------------------------------------------- report
def plot_coverage(cal: Calibration, path: str | Path | None = None):
    """Coverage per radius against the nominal 68/95 % (left) and the histogram of z (right).

    Returns the matplotlib Figure (saved atomically to ``path`` when given).
    """
    import matplotlib.pyplot as plt

    from .plotting import save_figure

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, method in enumerate(cal.spec.methods):
        cov = [c for c in cal.coverage if c["method"] == method]
        x = np.array([c["r_over_rhalf"] for c in cov])
        for key, mark, shift in (("cover68", "o", 0.97), ("cover95", "s", 1.03)):
            y = np.array([c[key] for c in cov])
            if np.isfinite(y).any():
                a.errorbar(x * shift, y, yerr=[c[key + "_err"] for c in cov], fmt=mark, color=f"C{i}", capsize=2,
                           label=f"{method}, {key[-2:]} % band")
        z = np.array([r["z"] for r in cal.rows if r["method"] == method], dtype=float)
        z = np.clip(z[np.isfinite(z)], -3.99, 3.99)  # |z| > 4 counted in the end bins
        if z.size:
            b.hist(z, bins=np.linspace(-4, 4, 17), density=True, histtype="step", color=f"C{i}", label=method)
    for level in (NOMINAL68, NOMINAL95):
        a.axhline(level, color="0.5", ls="--", lw=0.8)
    u = np.linspace(-4, 4, 200)
    b.plot(u, np.exp(-0.5 * u**2) / math.sqrt(2 * math.pi), "k--", lw=0.8, label="N(0, 1)")
    a.set(xscale="log", xlabel=r"$r / R_{\rm half}$", ylabel="fraction of realisations inside the band",
          ylim=(-0.02, 1.05), title=f"{cal.spec.source.label()}: {cal.spec.realisations} x {cal.spec.stars} stars")
    b.set(xlabel=r"$z = \log_{10}(\rho/\rho_{\rm true}) / w_{68}$ ($|z| > 4$ in the end bins)", ylabel="density")
    for ax in (a, b):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(frameon=False)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def format_coverage(cal: Calibration) -> str:
    """Plain-text coverage table (one line per method and radius)."""
    head = (f"{'method':<9s} {'r/R_half':>8s} {'r[kpc]':>8s} {'n':>3s} {'68% cover':>13s} {'95% cover':>13s} "
            f"{'z mean':>7s} {'z std':>6s} {'rms log10 err':>13s}")
    lines = [head, "-" * len(head)]
    f = lambda p, e: "         -   " if not math.isfinite(p) else f"{p:5.2f} +- {e:4.2f}"
    g = lambda v, w: f"{'-':>{w}s}" if not math.isfinite(v) else f"{v:{w}.2f}"
    for c in cal.coverage:
        lines.append(f"{c['method']:<9s} {c['r_over_rhalf']:8.3g} {c['r']:8.4f} {c['n_banded']:3d} "
                     f"{f(c['cover68'], c['cover68_err']):>13s} {f(c['cover95'], c['cover95_err']):>13s} "
                     f"{g(c['z_mean'], 7)} {g(c['z_std'], 6)} {g(c['log10_err_rms'], 13)}")
    return "\n".join(lines)
