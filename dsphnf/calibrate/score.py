"""Scoring one fitted rho(r), M(<r) and beta(r) against the truth, and the coverage of many.

R_half [kpc] is the projected half-number radius of the true tracer
(:func:`projected_half_radius`); the scored radii are :data:`RADII_OVER_RHALF`
x R_half. ``z`` = log10(rho_fit / rho_true) / w68 with w68 the half-width of
the 68 % band in log10; coverage errors are binomial, sqrt(p (1 - p) / n).
The enclosed mass is scored as the density is, in log10 (:data:`MASS_COLUMNS`),
beta as a difference (:data:`BETA_COLUMNS`).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from ..compare import loginterp  # the log-log reading compare() gives rho and M

__all__ = ["RADII_OVER_RHALF", "NOMINAL68", "NOMINAL95", "CALIBRATION_COLUMNS", "COVERAGE_COLUMNS", "BETA_COLUMNS",
           "MASS_COLUMNS", "projected_half_radius", "score_profile", "score_mass", "score_beta", "coverage",
           "nominal_interval", "pooled_coverage", "mean_abs_errors", "versus_start", "START_FAR_DEX"]

#: Radii of the table, in units of R_half (projected half-number radius of the true tracer).
RADII_OVER_RHALF: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
#: Fewest realisations a coverage can be computed from.
MIN_REALISATIONS = 2
#: Nominal coverage of the two bands.
NOMINAL68, NOMINAL95 = 0.6827, 0.95
#: A start this far off [dex, mean |log10 error| over the radii] is one training must cut to a third (issue 16).
START_FAR_DEX = 0.15
#: Columns of calibration.csv on the anisotropy (:func:`score_beta`; beta_err = beta - beta_true, no unit;
#: beta_constrained: 1 where the fit itself called beta constrained at r, 0 where it did not, NaN: no statement).
BETA_COLUMNS = ("beta_true", "beta", "beta_lo", "beta_hi", "beta_lo95", "beta_hi95", "beta_err", "beta_in68",
                "beta_in95", "beta_constrained")
#: Columns of calibration.csv on the enclosed mass (:func:`score_mass`; M in Msun, M_err = log10(M / M_true)).
MASS_COLUMNS = ("M_true", "M", "M_lo", "M_hi", "M_lo95", "M_hi95", "M_err", "M_in68", "M_in95")
#: Columns of calibration.csv (rho in Msun/kpc^3, r in kpc; in68/in95 are 1, 0 or NaN).
CALIBRATION_COLUMNS = ("realisation", "seed", "method", "r_over_rhalf", "r", "rho_true", "rho", "rho_lo", "rho_hi",
                       "rho_lo95", "rho_hi95", "log10_err", "z", "in68", "in95") + MASS_COLUMNS + BETA_COLUMNS
#: Columns of coverage.csv (n_fits: realisations; n_banded: those with a band and a truth there).
COVERAGE_COLUMNS = ("method", "r_over_rhalf", "r", "n_fits", "n_banded", "cover68", "cover68_err", "cover95",
                    "cover95_err", "z_mean", "z_std", "log10_err_mean", "log10_err_rms", "M_n_banded", "M_cover68",
                    "M_cover68_err", "M_cover95", "M_cover95_err", "M_err_mean", "M_err_rms", "beta_n_banded",
                    "beta_cover68", "beta_cover68_err", "beta_cover95", "beta_cover95_err", "beta_err_mean",
                    "beta_err_rms", "beta_n_constrained", "beta_cover68_constrained", "beta_cover95_constrained")


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
    if not (math.isfinite(total) and total > 0):
        raise ValueError("the tracer density has no finite positive total number")
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
    from ..compare import compare

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
    for row, mass, beta in zip(rows, score_mass(profile, truth, radii, banded),
                               score_beta(profile, truth, radii, banded)):
        row.update(mass)
        row.update(beta)
    return rows


def score_mass(profile: Mapping[str, np.ndarray], truth: Mapping[str, np.ndarray], radii: Sequence[float],
               banded: bool = True) -> list[dict[str, float]]:
    """The :data:`MASS_COLUMNS` of calibration.csv: a fitted enclosed mass M(<r) [Msun] against the true one.

    Values are read log-log linearly at ``radii`` [kpc]; ``M_err`` =
    log10(M / M_true); ``M_in68``/``M_in95`` are NaN where the fit has no
    band of positive width there (a single flow, a fit that failed) or the
    truth has no mass.

    Examples
    --------
    >>> r = np.geomspace(0.05, 2.0, 5)
    >>> fit = {"r": r, "M": 2e7 * r, "M_lo": 1.5e7 * r, "M_hi": 2.5e7 * r, "M_lo95": 1e7 * r, "M_hi95": 3e7 * r}
    >>> row = score_mass(fit, {"r": r, "M": 1.2e7 * r}, [0.5])[0]
    >>> round(row["M_err"], 4), row["M_in68"], row["M_in95"]  # log10(2 / 1.2)
    (0.2218, 0.0, 1.0)
    """
    radii = np.asarray(radii, dtype=float)
    true = _log_log(radii, truth, "M")
    val = {k: _log_log(radii, profile, k) for k in MASS_COLUMNS[1:6]}
    rows = []
    for i in range(radii.size):
        row = {"M_true": float(true[i]), **{k: float(v[i]) for k, v in val.items()}}
        ok = math.isfinite(row["M"]) and row["M"] > 0 and math.isfinite(row["M_true"]) and row["M_true"] > 0
        row["M_err"] = math.log10(row["M"] / row["M_true"]) if ok else math.nan
        for level, (lo, hi) in (("68", ("M_lo", "M_hi")), ("95", ("M_lo95", "M_hi95"))):
            inside = banded and ok and row[hi] > row[lo]  # False for NaN limits
            row["M_in" + level] = float(row[lo] <= row["M_true"] <= row[hi]) if inside else math.nan
        rows.append(row)
    return rows


def _log_log(radii: np.ndarray, table: Mapping[str, np.ndarray], key: str) -> np.ndarray:
    """``table[key]`` (> 0) at ``radii`` [kpc], linear in ln r and ln value (NaN outside the table, where the value
    is not positive, or without the key)."""
    if key not in table:
        return np.full(radii.size, np.nan)
    return loginterp(radii, np.asarray(table["r"], dtype=float), np.asarray(table[key], dtype=float))


def _lin_in_log_r(radii: np.ndarray, table: Mapping[str, np.ndarray], key: str) -> np.ndarray:
    """``table[key]`` at ``radii`` [kpc], linear in ln r (NaN outside the table or without the key)."""
    if key not in table:
        return np.full(radii.size, np.nan)
    r, v = np.asarray(table["r"], dtype=float), np.asarray(table[key], dtype=float)
    return np.interp(np.log(radii), np.log(r), v, left=np.nan, right=np.nan)


def score_beta(profile: Mapping[str, np.ndarray], truth: Mapping[str, np.ndarray], radii: Sequence[float],
               banded: bool = True) -> list[dict[str, float]]:
    """The :data:`BETA_COLUMNS` of calibration.csv: a fitted anisotropy beta(r) against the true one.

    ``beta_err`` = beta_fit - beta_true (beta is signed and unbounded below, so
    the difference, not a log); ``beta_in68``/``beta_in95`` are NaN where the
    fit has no band of positive width there (a given beta, a single flow, a
    method without beta) or the truth has no beta. ``beta_constrained`` is
    the fit's own statement, ``profile["beta_constrained"]`` (1 or 0 per
    node, the flow's :func:`~dsphnf.flows.beta_constraint.beta_constraint`): 1 only
    where the nodes on both sides of the radius say constrained, NaN without
    a statement (the baseline, a given beta), so that the bands can be
    scored where the fit claims that the stars constrain beta.

    Examples
    --------
    >>> r = np.geomspace(0.05, 2.0, 5)
    >>> fit = {"r": r, "beta": np.full(5, 0.3), "beta_lo": np.full(5, 0.1), "beta_hi": np.full(5, 0.5),
    ...        "beta_lo95": np.full(5, -0.2), "beta_hi95": np.full(5, 0.7)}
    >>> row = score_beta(fit, {"r": r, "beta": np.full(5, 0.6)}, [0.5])[0]
    >>> round(row["beta_err"], 6), row["beta_in68"], row["beta_in95"]
    (-0.3, 0.0, 1.0)
    >>> score_beta({"r": r, "rho": r}, {"r": r, "beta": np.zeros(5)}, [0.5])[0]["beta_in68"]  # no beta: NaN
    nan
    >>> said = {**fit, "beta_constrained": np.array([0.0, 1.0, 1.0, 1.0, 0.0])}
    >>> [row["beta_constrained"] for row in score_beta(said, {"r": r, "beta": np.full(5, 0.6)}, [0.1, 0.5, 1.9])]
    [0.0, 1.0, 0.0]
    """
    radii = np.asarray(radii, dtype=float)
    true = _lin_in_log_r(radii, truth, "beta")
    val = {k: _lin_in_log_r(radii, profile, k) for k in BETA_COLUMNS[1:6]}
    said = _lin_in_log_r(radii, profile, "beta_constrained")  # 1 between two constrained nodes, below 1 next to one not
    rows = []
    for i in range(radii.size):
        row = {"beta_true": float(true[i]), **{k: float(v[i]) for k, v in val.items()}}
        row["beta_err"] = row["beta"] - row["beta_true"]
        for level, (lo, hi) in (("68", ("beta_lo", "beta_hi")), ("95", ("beta_lo95", "beta_hi95"))):
            ok = banded and math.isfinite(row["beta_err"]) and row[hi] > row[lo]  # False for NaN limits
            row["beta_in" + level] = float(row[lo] <= row["beta_true"] <= row[hi]) if ok else math.nan
        row["beta_constrained"] = float(said[i] >= 1.0 - 1e-9) if math.isfinite(said[i]) else math.nan
        rows.append(row)
    return rows


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
            col = {k: np.array([float(r.get(k, math.nan)) for r in sub])
                   for k in ("in68", "in95", "z", "log10_err", "M_in68", "M_in95", "M_err", "beta_in68", "beta_in95",
                             "beta_err", "beta_constrained")}
            z = col["z"][np.isfinite(col["z"])]
            out.append({
                "method": method, "r_over_rhalf": ratio, "r": sub[0]["r"], "n_fits": len(sub),
                **_band_coverage(col, "", "log10_err"),
                "z_mean": float(z.mean()) if z.size else math.nan,
                "z_std": float(z.std(ddof=1)) if z.size > 1 else math.nan,
                **_band_coverage(col, "M_", "M_err"),
                **_band_coverage(col, "beta_", "beta_err"),
                **_constrained_coverage(col),
            })
    return out


def _band_coverage(col: Mapping[str, np.ndarray], prefix: str, err: str) -> dict[str, Any]:
    """Coverage columns of one quantity at one radius: ``prefix`` + n_banded, cover68(_err), cover95(_err) from
    the flags ``prefix`` + in68/in95, and the mean and rms of the finite errors ``col[err]`` (``err``_mean, _rms)."""
    (p68, e68), (p95, e95) = _binomial(col[prefix + "in68"]), _binomial(col[prefix + "in95"])
    e = col[err][np.isfinite(col[err])]
    return {prefix + "n_banded": int(np.isfinite(col[prefix + "in68"]).sum()), prefix + "cover68": p68,
            prefix + "cover68_err": e68, prefix + "cover95": p95, prefix + "cover95_err": e95,
            err + "_mean": float(e.mean()) if e.size else math.nan,
            err + "_rms": float(np.sqrt(np.mean(e**2))) if e.size else math.nan}


def _constrained_coverage(col: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """beta's coverage over the rows where the fit called beta constrained (``beta_constrained`` 1)."""
    said = col["beta_constrained"] == 1.0
    flags = {k: np.where(said, col["beta_in" + k], math.nan) for k in ("68", "95")}
    return {"beta_n_constrained": int(np.isfinite(flags["68"]).sum()),
            **{f"beta_cover{k}_constrained": _binomial(f)[0] for k, f in flags.items()}}


def nominal_interval(n: int, p: float, level: float = 0.95) -> tuple[float, float]:
    """Central ``level`` interval of the covered fraction of ``n`` realisations for a band of nominal coverage ``p``.

    A calibrated 68 % band covers the truth in a binomial number of ``n``
    independent realisations; a measured coverage outside this interval is a
    miss at that ``level``, inside it is no evidence of miscalibration.

    Examples
    --------
    >>> nominal_interval(20, 0.68)   # 20 realisations: 45-85 % for a 68 % band
    (0.45, 0.85)
    >>> nominal_interval(20, 0.95)
    (0.85, 1.0)
    """
    from scipy import stats

    if n < 1:
        raise ValueError(f"a coverage needs at least one realisation, got n={n}")
    q = (1.0 - level) / 2.0
    return float(stats.binom.ppf(q, n, p) / n), float(stats.binom.ppf(1.0 - q, n, p) / n)


def pooled_coverage(rows: Sequence[Mapping[str, Any]], prefix: str = "") -> list[dict[str, Any]]:
    """Coverage of the 68 % and 95 % bands pooled over all radii, per method (``prefix`` "M_", "beta_": the
    enclosed mass's or beta's bands).

    The radii of one realisation are correlated (one fit), so a pooled
    fraction of ``n_pairs`` (radius, realisation) pairs has a larger error
    than a binomial of ``n_pairs``; read it beside the per-radius :func:`coverage`.

    Examples
    --------
    >>> rows = [{"method": "baseline", "in68": a, "in95": 1.0} for a in (1.0, 1.0, 0.0, float("nan"))]
    >>> c = pooled_coverage(rows)[0]
    >>> c["method"], c["n_pairs"], round(c["cover68"], 3), c["cover95"]
    ('baseline', 3, 0.667, 1.0)
    """
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        flags = {k: np.array([float(r.get(prefix + k, math.nan)) for r in rows if r["method"] == method])
                 for k in ("in68", "in95")}
        ok = np.isfinite(flags["in68"]) & np.isfinite(flags["in95"])
        n = int(ok.sum())
        out.append({"method": method, "n_pairs": n,
                    "cover68": float(flags["in68"][ok].mean()) if n else math.nan,
                    "cover95": float(flags["in95"][ok].mean()) if n else math.nan})
    return out


def mean_abs_errors(rows: Sequence[Mapping[str, Any]], method: str) -> dict[int, float]:
    """Per realisation (keyed by its random seed), the mean |log10 rho/rho_true| of ``method`` over the scored radii.

    Realisations with a non-finite error at any radius (a failed fit, a radius
    outside the truth table) are left out.

    >>> rows = [{"method": "flow", "seed": s, "log10_err": e} for s, e in [(0, 0.1), (0, -0.3), (1, float("nan"))]]
    >>> mean_abs_errors(rows, "flow")
    {0: 0.2}
    """
    by_seed: dict[int, list[float]] = {}
    for r in rows:
        if r["method"] == method:
            by_seed.setdefault(int(r["seed"]), []).append(float(r["log10_err"]))
    return {s: float(np.mean(np.abs(e))) for s, e in by_seed.items() if np.all(np.isfinite(e))}


def versus_start(rows: Sequence[Mapping[str, Any]], start: str = "start") -> list[dict[str, Any]]:
    """Each method against the flow's untrained start on the same mocks (empty without ``start`` rows).

    Per method: ``n`` realisations scored by both, ``better`` those where the
    method's mean |log10 error| over the radii (:func:`mean_abs_errors`) is
    smaller than the start's, ``third`` those where it is at most a third of
    it, ``far`` those where the start is at least :data:`START_FAR_DEX` off
    and ``far_third`` those of them where the method is within a third of
    the start's error, and the medians over the realisations of both mean
    errors [dex].

    >>> rows = [{"method": m, "seed": s, "log10_err": e}
    ...         for m, s, e in [("flow", 0, 0.05), ("start", 0, 0.3), ("flow", 1, 0.2), ("start", 1, 0.1)]]
    >>> v = versus_start(rows)[0]
    >>> v["method"], v["n"], v["better"], v["third"], v["median_abs_err"], v["start_median_abs_err"]
    ('flow', 2, 1, 1, 0.125, 0.2)
    >>> v["far"], v["far_third"]
    (1, 1)
    """
    ref = mean_abs_errors(rows, start)
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        if method == start or not ref:
            continue
        own = mean_abs_errors(rows, method)
        seeds = sorted(set(own) & set(ref))
        a, b = np.array([own[s] for s in seeds]), np.array([ref[s] for s in seeds])
        far = b >= START_FAR_DEX
        out.append({"method": method, "n": len(seeds), "better": int(np.sum(a < b)), "third": int(np.sum(a <= b / 3)),
                    "far": int(np.sum(far)), "far_third": int(np.sum(far & (a <= b / 3))),
                    "median_abs_err": float(np.median(a)) if seeds else math.nan,
                    "start_median_abs_err": float(np.median(b)) if seeds else math.nan})
    return out
