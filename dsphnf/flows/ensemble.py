"""Bands from an ensemble of flows: percentiles of profiles and of J-factors.

Each ensemble member is a flow trained on its own bootstrap resample of the
stars, with its own seed, so the spread reflects the finite sample and the
training noise together. Bands are percentiles across members at each
radius: median, 16/84 (``_lo``/``_hi``) and 2.5/97.5 (``_lo95``/``_hi95``).
With few members the outer percentiles are close to the extreme members.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["PERCENTILES", "bootstrap_indices", "band_profiles", "j_factor_band"]

#: Percentiles reported for every banded quantity.
PERCENTILES = {"": 50.0, "_lo": 16.0, "_hi": 84.0, "_lo95": 2.5, "_hi95": 97.5}


def bootstrap_indices(n: int, seed: int, member: int, ensemble: int) -> np.ndarray:
    """Star indices of one member: all stars for a single flow, else a bootstrap resample."""
    if ensemble <= 1:
        return np.arange(n)
    rng = np.random.default_rng([int(seed), int(member), 1299709])
    return rng.integers(0, n, n)


def band_profiles(members: list[dict[str, np.ndarray]], keys: list[str]) -> dict[str, np.ndarray]:
    """Median and percentile bands of ``keys`` over member profiles (same grid ``r``).

    Non-finite member values are ignored at that radius (NaN where all are).
    """
    out = {"r": np.asarray(members[0]["r"])}
    for key in keys:
        stack = np.array([m[key] for m in members if key in m], dtype=float)
        if stack.size == 0:
            continue
        for suffix, q in PERCENTILES.items():
            with np.errstate(all="ignore"):
                out[key + suffix] = np.nanpercentile(np.where(np.isfinite(stack), stack, np.nan), q, axis=0)
    return out


def j_factor_band(members: list[dict[str, np.ndarray]], distance: float, theta_deg: float = 0.5) -> dict:
    """log10 J(theta) [GeV^2 cm^-5] of every member with a positive rho profile, and its band.

    Members whose rho(r) has a non-positive or non-finite value on the grid
    are left out (counted in ``n_excluded``). The density is truncated
    outside the grid (see :func:`dsphnf.jfactor.j_factor_tabulated`).
    """
    from ..jfactor import j_factor_tabulated

    values, excluded = [], 0
    for m in members:
        rho = np.asarray(m.get("rho", []), dtype=float)
        if rho.size == 0 or not np.all(np.isfinite(rho)) or np.any(rho <= 0):
            excluded += 1
            continue
        try:
            values.append(math.log10(j_factor_tabulated(np.asarray(m["r"]), rho, distance, theta_deg)))
        except ValueError:
            excluded += 1
    out: dict = {"distance_kpc": float(distance), "theta_deg": float(theta_deg), "n_excluded": excluded,
                 "members": values}
    if values:
        v = np.array(values)
        out.update(
            log10_J=float(np.median(v)),
            log10_J_lo=float(np.percentile(v, 16)),
            log10_J_hi=float(np.percentile(v, 84)),
            log10_J_lo95=float(np.percentile(v, 2.5)),
            log10_J_hi95=float(np.percentile(v, 97.5)),
        )
    return out
