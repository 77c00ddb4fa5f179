"""Calibration: do a method's 68 % and 95 % bands on rho(r) and M(<r) cover the truth as often as they claim?

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

The enclosed mass is scored as the density is (:data:`MASS_COLUMNS`, :func:`score_mass`):
``M_err`` = log10(M_fit / M_true) and ``M_in68``, ``M_in95`` where the fit has a band on M.

The anisotropy is scored at the same radii (:data:`BETA_COLUMNS`, :func:`score_beta`):
``beta_err`` = beta_fit - beta_true and ``beta_in68``, ``beta_in95`` where the fit
has a band on beta (an inferred anisotropy, ``fit_anisotropy="free"``, ``"om"``, ...;
NaN for a given beta), so that coverage.csv gives the coverage of the beta bands too;
``beta_constrained`` records where the flow itself called beta constrained (its
``beta_constrained`` diagnostic), and coverage.csv gives beta's coverage there alone
(``beta_cover68_constrained``, ``beta_cover95_constrained``): the test of that statement.

A method without bands (a single flow, ``ensemble=1``: its "band" is the fit
itself) is *not* reported as covering: its ``z``, ``in68`` and ``in95`` are
NaN. The method ``start`` is the flow's untrained start (one flow, one step,
no bands), scored on the same mocks so that :func:`versus_start` can say on
how many of them each method beats it. Coverage per method and radius
(:func:`coverage`) is the fraction of realisations inside each band with
the binomial standard error sqrt(p (1 - p) / n) (zero when p is 0 or 1: read
it with n), beside the mean and spread of z (a calibrated method has mean
~0, spread ~1, coverage ~0.68 and ~0.95).

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

from .report import format_coverage, plot_coverage
from .run import Calibration, calibrate, calibration_task
from .score import (BETA_COLUMNS, CALIBRATION_COLUMNS, COVERAGE_COLUMNS, MASS_COLUMNS, NOMINAL68, NOMINAL95,
                    RADII_OVER_RHALF, coverage, mean_abs_errors, nominal_interval, pooled_coverage,
                    projected_half_radius, score_beta, score_mass, score_profile, versus_start)
from .spec import (MIN_REALISATIONS, BaselineSettings, CalibrationError, CalibrationSpec, FlowSettings, MockSource,
                   ProfileSettings, StartSettings, calibration_spec)

__all__ = [
    "RADII_OVER_RHALF", "MIN_REALISATIONS", "NOMINAL68", "NOMINAL95", "CALIBRATION_COLUMNS", "COVERAGE_COLUMNS",
    "BETA_COLUMNS", "MASS_COLUMNS", "CalibrationError", "MockSource", "FlowSettings", "StartSettings",
    "BaselineSettings", "ProfileSettings", "CalibrationSpec", "Calibration",
    "calibration_spec", "projected_half_radius", "score_profile", "score_mass", "score_beta", "calibration_task",
    "coverage", "calibrate", "nominal_interval", "pooled_coverage", "mean_abs_errors", "versus_start",
    "plot_coverage", "format_coverage",
]
