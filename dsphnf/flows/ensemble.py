"""Bands from an ensemble of flows: bootstrap intervals of profiles and of J-factors.

Each ensemble member is a flow trained on its own bootstrap resample of the
stars, with its own seed, so the spread of the members estimates the sampling
distribution of the fitted profile (finite sample and training noise together).

The reported value is the median over members. The bands are Student-t
bootstrap intervals, not percentiles of the members: with K members (K = 8 in
the benchmark) the 2.5/97.5 percentiles are the extreme members, and even for
an ideal estimator the truth falls outside the range of K draws with
probability 2/(K+1) (22 % for K = 8), so percentile "95 %" bands cover ~78 %.
Instead, at each radius, with m and s the mean and standard deviation of the
members (of ln x for positive quantities, of x for signed ones such as beta),

    band = m -+ t_{K-1}(q) s sqrt(1 + 1/K),

which covers the truth with probability q when the members scatter around the
estimate as the estimate scatters around the truth (the sqrt(1 + 1/K) and the
t quantile account for the K-member mean and standard deviation):
``_lo``/``_hi`` for q = 68 %, ``_lo95``/``_hi95`` for q = 95 %.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

__all__ = ["BANDS", "LOG_KEYS", "bootstrap_indices", "t_interval", "band_profiles", "member_log10_j", "ensemble_j_band"]

#: suffix -> (side, two-sided coverage) of every banded quantity
BANDS = {"_lo": (-1, 0.6827), "_hi": (1, 0.6827), "_lo95": (-1, 0.95), "_hi95": (1, 0.95)}
#: quantities whose bands are taken in ln x (positive by nature)
LOG_KEYS = ("nu", "sigma_r", "sigma_t", "M", "rho")


def bootstrap_indices(n: int, seed: int, member: int, ensemble: int) -> np.ndarray:
    """Star indices of one member: all stars for a single flow, else a bootstrap resample."""
    if ensemble <= 1:
        return np.arange(n)
    rng = np.random.default_rng([int(seed), int(member), 1299709])
    return rng.integers(0, n, n)


def t_interval(values: np.ndarray, axis: int = 0) -> dict[str, np.ndarray]:
    """Student-t bootstrap bands (see the module docstring) of ``values`` along ``axis``.

    Non-finite values are left out; with fewer than two finite values there
    is no band (NaN: one flow says nothing about its own scatter). Returns the
    bands keyed by the suffixes of :data:`BANDS`.

    >>> t_interval(np.array([[1.0], [np.nan]]))["_lo"]
    array([nan])
    """
    v = np.moveaxis(np.asarray(values, dtype=float), axis, 0)
    ok = np.isfinite(v)
    k = ok.sum(axis=0)
    with np.errstate(all="ignore"):
        vz = np.where(ok, v, 0.0)
        mean = np.where(k > 0, vz.sum(axis=0) / k, np.nan)
        var = np.where(k > 1, (np.where(ok, v - mean, 0.0) ** 2).sum(axis=0) / (k - 1), np.nan)
        dof = np.maximum(k - 1, 1)
        scale = np.sqrt(var * (1.0 + 1.0 / np.maximum(k, 1)))
    out = {}
    for suffix, (side, q) in BANDS.items():
        out[suffix] = mean + side * stats.t.ppf(0.5 + q / 2.0, dof) * scale
    return out


def band_profiles(members: list[dict[str, np.ndarray]], keys: list[str]) -> dict[str, np.ndarray]:
    """Median and bootstrap bands of ``keys`` over member profiles (same grid ``r``).

    Positive quantities (:data:`LOG_KEYS`) are banded in ln x, and a member's
    non-positive value (e.g. a negative rho from the Jeans read-out) is left out
    at that radius, like non-finite values (NaN where no member has one).
    """
    out = {"r": np.asarray(members[0]["r"])}
    for key in keys:
        stack = np.array([m[key] for m in members if key in m], dtype=float)
        if stack.size == 0:
            continue
        log = key in LOG_KEYS
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN radii give NaN, as documented
            good = np.isfinite(stack) & ((stack > 0) if log else True)
            vals = np.where(good, np.log(np.where(good, stack, 1.0)) if log else stack, np.nan)
            out[key] = np.exp(np.nanmedian(vals, axis=0)) if log else np.nanmedian(vals, axis=0)
        for suffix, band in t_interval(vals).items():
            out[key + suffix] = np.exp(band) if log else band
    return out


def member_log10_j(member: dict[str, np.ndarray], distance: float, theta_deg: float = 0.5) -> float | None:
    """log10 J(theta) [GeV^2 cm^-5] of one member's rho(r), or None when it has none.

    A member whose rho(r) is missing, non-finite or non-positive anywhere on the
    grid, or whose J diverges, gives None (the caller counts it as left out).
    The density is truncated outside the grid (see
    :func:`dsphnf.jfactor.j_factor_tabulated`); ``distance`` in kpc.
    """
    from ..jfactor import j_factor_tabulated

    rho = np.asarray(member.get("rho", []), dtype=float)
    if rho.size == 0 or not np.all(np.isfinite(rho)) or np.any(rho <= 0):
        return None
    try:
        return math.log10(j_factor_tabulated(np.asarray(member["r"]), rho, distance, theta_deg))
    except ValueError:
        return None


def ensemble_j_band(members: list[dict[str, np.ndarray]], distance: float,
                    theta_deg: float = 0.5) -> tuple[dict, list[float | None]]:
    """The J-factor band of an ensemble (:func:`dsphnf.result.j_band` schema) and every member's log10 J.

    The value is the median over the members with a J (:func:`member_log10_j`),
    the bands are Student-t intervals (:func:`t_interval`); members without a
    J are counted in ``n_left_out``.

    >>> r = np.geomspace(0.01, 1.0, 50)
    >>> band, each = ensemble_j_band([{"r": r, "rho": 1e8 / r}, {"r": r, "rho": -r}], 76.0)
    >>> band["n_used"], band["n_left_out"], each[1], band["log10_J"] == each[0]
    (1, 1, None, True)
    """
    from ..result import j_band

    each = [member_log10_j(m, distance, theta_deg) for m in members]
    values = [v for v in each if v is not None]
    return j_band(values, distance, theta_deg, len(members), t_interval), each
