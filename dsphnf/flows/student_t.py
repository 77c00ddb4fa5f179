"""Student-t bootstrap intervals over ensemble members (the arithmetic of :mod:`~dsphnf.flows.ensemble`'s bands).

With K members' values of a quantity (ln x for positive ones), m and s their
mean and standard deviation:

- around the members' mean (``centre="members"``): m -+ t_{K-1}(q) s sqrt(1 + 1/K)
  (:func:`t_interval`), a prediction interval that covers the truth with
  probability q when the members scatter around the estimate as the estimate
  scatters around the truth;
- around another estimate c of the same quantity (a flow trained on all stars, the default centre with
  velocities and a given anisotropy):
  c -+ t_{K-1}(q) s (:func:`t_bands` with the members' :func:`t_moments`).

The band suffixes are those of :data:`BANDS`; no unit (the values' own).
"""
from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["BANDS", "SAME_TOLERANCE", "t_interval", "t_moments", "t_bands", "t_centre"]

#: suffix -> (side, two-sided coverage) of every banded quantity
BANDS = {"_lo": (-1, 0.6827), "_hi": (1, 0.6827), "_lo95": (-1, 0.95), "_hi95": (1, 0.95)}

#: members whose values differ by at most this (relative to max(1, |mean|)) agree: a given beta(r) read in
#: each member's own units differs by ~1e-15; any learned quantity's members differ by far more
SAME_TOLERANCE = 1e-9


def t_interval(values: np.ndarray, axis: int = 0) -> dict[str, np.ndarray]:
    """Student-t bootstrap bands (see the module docstring) of ``values`` along ``axis``.

    Non-finite values are left out; with fewer than two finite values there
    is no band (NaN: one flow says nothing about its own scatter). Returns the
    bands keyed by the suffixes of :data:`BANDS`.

    Members that agree to rounding (a given beta(r), read by every member
    from the same model in its own units: within :data:`SAME_TOLERANCE`) get a
    band of zero width at their mean, not one of rounding noise that a
    calibration would count as a band.

    >>> t_interval(np.array([[1.0], [np.nan]]))["_lo"]
    array([nan])
    >>> b = t_interval(np.array([[0.1], [0.1 + 1e-16], [0.1 - 1e-16]]))
    >>> bool(b["_lo"][0] == b["_hi"][0] == t_centre(np.array([[0.1], [0.1 + 1e-16], [0.1 - 1e-16]]))[0])
    True
    """
    mean, var, k = t_moments(values, axis)
    with np.errstate(all="ignore"):
        scale = np.sqrt(var * (1.0 + 1.0 / np.maximum(k, 1)))
    return t_bands(mean, scale, k)


def t_moments(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, sample variance (0 where the values agree to :data:`SAME_TOLERANCE`) and count of the finite ``values``.

    >>> [a.tolist() for a in t_moments(np.array([[1.0, 2.0], [3.0, np.nan]]))]
    [[2.0, 2.0], [2.0, nan], [2, 1]]
    """
    v = np.moveaxis(np.asarray(values, dtype=float), axis, 0)
    ok = np.isfinite(v)
    k = ok.sum(axis=0)
    with np.errstate(all="ignore"):
        mean = np.where(k > 0, np.where(ok, v, 0.0).sum(axis=0) / k, np.nan)
        spread = np.where(ok, v, -np.inf).max(axis=0) - np.where(ok, v, np.inf).min(axis=0)
        same = spread <= SAME_TOLERANCE * np.maximum(1.0, np.abs(mean))
        var = np.where(k > 1, np.where(same, 0.0, (np.where(ok, v - mean, 0.0) ** 2).sum(axis=0) / (k - 1)), np.nan)
    return mean, var, k


def t_bands(centre: np.ndarray, scale: np.ndarray, k: np.ndarray) -> dict[str, np.ndarray]:
    """centre -+ t_{k-1}(q) scale for the :data:`BANDS` (NaN where ``scale`` is NaN, i.e. fewer than two values).

    >>> b = t_bands(np.array([0.0]), np.array([1.0]), np.array([8]))
    >>> round(float(b["_hi"][0]), 4), round(float(b["_hi95"][0]), 4)  # t_7 quantiles
    (1.0767, 2.3646)
    """
    dof = np.maximum(np.asarray(k) - 1, 1)
    out = {}
    for suffix, (side, q) in BANDS.items():
        out[suffix] = centre + side * stats.t.ppf(0.5 + q / 2.0, dof) * scale
    return out


def t_centre(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """The centre of the :func:`t_interval` bands: the mean of the finite ``values`` (NaN where none).

    >>> t_centre(np.array([[1.0, 2.0], [3.0, np.nan]]))
    array([2., 2.])
    """
    v = np.moveaxis(np.asarray(values, dtype=float), axis, 0)
    ok = np.isfinite(v)
    k = ok.sum(axis=0)
    with np.errstate(all="ignore"):
        return np.where(k > 0, np.where(ok, v, 0.0).sum(axis=0) / np.maximum(k, 1), np.nan)
